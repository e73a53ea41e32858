"""Zero-shot classification with the generation branch alone ("Your Diffusion Model is Secretly a Zero-Shot
Classifier", Li et al. 2023): for every class, the ε-prediction error of the image noised at a fixed set of
timesteps, conditioned on the class prompt; the class with the lowest error wins. Its cost grows with the class
count (classes x timesteps UNet evaluations per image), unlike DiffDis' query denoising."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data.captions import EVAL_TEMPLATES

DEFAULT_TIMESTEPS = (100, 200, 300, 400, 500, 600, 700, 800)


@torch.no_grad()
def diffusion_classifier_scores(
    pipe,
    images: torch.Tensor,  # (N, C, R, R) in [-1, 1]
    class_names: Sequence[str],
    templates: Sequence[str] | None = None,
    timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
    seed: int = 0,
    batch_size: int = 32,
) -> torch.Tensor:
    """(N, K) scores: minus the mean ε-prediction error per class. One prompt per class (the first template);
    the noise of image i at timestep j depends only on (seed, i, j), and every class sees the same noise."""
    model, k = pipe.model, len(class_names)
    prompt = (templates or EVAL_TEMPLATES)[0]
    context, _ = pipe.text_encoder([prompt.format(name) for name in class_names])  # (K, L, D)
    z_all = pipe.autoencoder.encode(images.to(pipe.device))
    noise = torch.randn(len(timesteps), *z_all.shape, generator=torch.Generator().manual_seed(seed))
    errors = torch.zeros(len(z_all), k)
    for start in range(0, len(z_all), batch_size):
        z = z_all[start : start + batch_size]
        b = len(z)
        for j, t in enumerate(timesteps):
            eps = noise[j, start : start + b].to(z.device)
            tt = torch.full((b,), t, dtype=torch.long, device=z.device)
            z_t = pipe.scheduler.add_noise(z, eps, tt)
            z_rep = z_t.repeat_interleave(k, 0)  # (B*K, C, H, W): every image against every class
            c_rep = context.repeat(b, 1, 1)
            err = (model(z_rep, tt.repeat_interleave(k), c_rep) - eps.repeat_interleave(k, 0)).square()
            errors[start : start + b] += err.mean(dim=(1, 2, 3)).view(b, k).cpu()
    return -errors / len(timesteps)


def unet_evaluations_per_image(num_classes: int, timesteps: Sequence[int] = DEFAULT_TIMESTEPS) -> int:
    return num_classes * len(timesteps)
