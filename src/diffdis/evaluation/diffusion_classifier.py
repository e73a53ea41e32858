"""Zero-shot classification with the generation branch alone ("Your Diffusion Model is Secretly a Zero-Shot
Classifier", Li et al. 2023): for every class, the ε-prediction error of the image noised at a fixed set of
timesteps, conditioned on the class prompt; the class with the lowest error wins. Its cost grows with the class
count (classes x timesteps UNet evaluations per image), unlike DiffDis' query denoising."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data.captions import EVAL_TEMPLATES

DEFAULT_TIMESTEPS = (100, 200, 300, 400, 500, 600, 700, 800)


def spaced_timesteps(n: int, num_train_timesteps: int = 1000) -> tuple[int, ...]:
    """n timesteps evenly spaced over the schedule, each at the centre of its n-th (the original method's grid)."""
    return tuple(int((j + 0.5) * num_train_timesteps / n) for j in range(n))


@torch.no_grad()
def diffusion_classifier_scores(
    pipe,
    images: torch.Tensor,  # (N, C, R, R) in [-1, 1]
    class_names: Sequence[str],
    templates: Sequence[str] | None = None,
    timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
    seed: int = 0,
    batch_size: int = 32,
    per_template: bool = False,
) -> torch.Tensor:
    """(N, K) scores: minus the mean ε-prediction error per class. By default the condition of a class is its
    prompts' token states averaged over the templates (as the query paths average their class embeddings), so the
    cost stays K x timesteps passes, but that average is a condition no model saw in training; `per_template`
    conditions on each prompt as trained and averages the errors instead (templates times the cost). The noise
    of image i at timestep j depends only on (seed, i, j), and every class sees the same noise."""
    templates = templates or EVAL_TEMPLATES
    if per_template:
        return torch.stack(
            [
                diffusion_classifier_scores(pipe, images, class_names, [t], timesteps, seed, batch_size)
                for t in templates
            ]
        ).mean(0)
    model, k = pipe.model, len(class_names)
    prompts = [template.format(name) for name in class_names for template in templates]
    context, _ = pipe.text_encoder(prompts)  # (K * templates, L, D)
    context = context.view(k, len(templates), *context.shape[1:]).mean(1)  # (K, L, D)
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
