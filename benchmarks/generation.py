"""Benchmark 3: `DiffDisPipeline.generate` against a plain denoising loop written directly on diffusers (same
UNet, scheduler, steps, guidance, noise; both encode the prompts and return PIL images)."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DDIMScheduler

from diffdis.data.captions import GENERATION_PROMPT
from diffdis.data.transforms import model_to_pil
from diffdis.pipeline import DiffDisPipeline

from .common import interleaved, print_table


@torch.no_grad()
def plain_loop(pipe: DiffDisPipeline, prompts: list[str], steps: int, guidance: float) -> list:
    m = pipe.config.model
    scheduler = DDIMScheduler.from_config(
        pipe.scheduler.config, clip_sample=True, set_alpha_to_one=True, timestep_spacing="trailing"
    )
    scheduler.set_timesteps(steps)
    c, _ = pipe.text_encoder(prompts)
    context = torch.cat([c, pipe.model.null_context.expand_as(c)])
    shape = (len(prompts), m.image_channels, m.resolution, m.resolution)
    z = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    for t in scheduler.timesteps:
        eps_cond, eps_uncond = pipe.model.unet(torch.cat([z, z]), t, encoder_hidden_states=context).sample.chunk(2)
        eps = eps_uncond + guidance * (eps_cond - eps_uncond)
        z = scheduler.step(eps, t, z, use_clipped_model_output=True).prev_sample
    return model_to_pil(z)


def run(pipe: DiffDisPipeline, n: int = 32, steps: int = 25, guidance: float = 3.0) -> dict:
    names = ("t-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
    prompts = [GENERATION_PROMPT.format(names[i % len(names)]) for i in range(n)]
    ours = pipe.generate(prompts, steps, guidance, seed=0)
    theirs = plain_loop(pipe, prompts, steps, guidance)
    differences = [np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() for a, b in zip(ours, theirs)]
    seconds = interleaved(
        {
            "pipeline.generate": lambda: pipe.generate(prompts, steps, guidance, seed=0),
            "plain diffusers loop": lambda: plain_loop(pipe, prompts, steps, guidance),
        },
        repeats=15,  # short calls, many alternations: the shared machine's noise averages out
    )
    ratio = seconds["pipeline.generate"] / seconds["plain diffusers loop"]
    print_table(
        f"generation, {n} prompts, DDIM {steps} steps, guidance {guidance}",
        ["path", "seconds", "/ plain loop"],
        [[name, s, s / seconds["plain diffusers loop"]] for name, s in seconds.items()],
    )
    print(f"largest pixel difference between the two paths' images: {max(differences)} (of 255)")
    return {
        "seconds": seconds,
        "generate_vs_plain_loop_ratio": ratio,
        "max_pixel_difference": int(max(differences)),
        "prompts": n,
        "steps": steps,
        "guidance": guidance,
    }
