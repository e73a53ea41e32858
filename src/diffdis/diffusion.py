"""The two diffusion processes and their samplers, on top of diffusers schedulers.

- Image stream: ordinary DDPM noising of the latent z, ε-prediction (paper Eq. 4); sampled by a registered
  sampler (samplers.py: DDIM, DPM-Solver++) with classifier-free guidance on the caption (Algorithm 2).
- Text stream: e_t = sqrt(ᾱ_t)·γ·e_0 + sqrt(1-ᾱ_t)·ε_e (Eq. 6). The head predicts ê_0 (x0, the paper's
  choice) or ε̂_e. Sampling starts from Gaussian noise, never from a caption's embedding (Algorithm 3).

Guidance convention: `guidance_scale` s gives cond·s + uncond·(1-s), as in diffusers (s = 1: no guidance).
The paper's w in "(1+w)·cond - w·uncond" is s - 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from .config import ModelConfig
from .models.diffdis import DiffDisModel
from .samplers import DEFAULT_SAMPLER, sampler_for


def training_scheduler(config: ModelConfig) -> DDPMScheduler:
    """The forward process shared by both streams (same β schedule, independent timesteps)."""
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        # Only read by samplers built from this config outside DiffDis (e.g. diffusers' StableDiffusionPipeline
        # on an exported folder): latents are unbounded, so no clipping there; SD's step offset.
        clip_sample=config.autoencoder == "none",
        steps_offset=1,
    )


class QueryDiffusion:
    """Noising of the text query and conversion of the head's output to a unit direction ê_0."""

    def __init__(self, scheduler: DDPMScheduler, gamma: float, prediction: str):
        self.alphas_cumprod = scheduler.alphas_cumprod.float()  # (T,)
        self.gamma = gamma
        self.prediction = prediction

    def _alphas(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self.alphas_cumprod.to(like.device)[t].to(like.dtype)[:, None]  # (B, 1)
        return ab.sqrt(), (1 - ab).sqrt()

    def noise(self, e: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Eq. 6: (B, D) unit query -> (B, D) noisy query at timesteps t (B,)."""
        a, s = self._alphas(t, e)
        return a * self.gamma * e + s * eps

    def direction(self, output: torch.Tensor, e_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Head output -> unit-norm estimate of the clean query ê_0 (B, D)."""
        if self.prediction == "epsilon":
            a, s = self._alphas(t, e_t)
            output = (e_t - s * output) / a
        return F.normalize(output.float(), dim=-1)


def read_out(model: DiffDisModel, query: QueryDiffusion, z: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """The one-step query: the head's clean-query estimate, read out once at t_e = T-1 from `start` (B, D), as a
    unit vector (B, D). Differentiable in z (self-guidance takes its gradient)."""
    t_e = torch.full((len(z),), len(query.alphas_cumprod) - 1, device=z.device)
    return query.direction(model.predict_query(z, start, t_e, model.image_prefix(z)), start, t_e)


def guide(predict: Callable[..., torch.Tensor], x: torch.Tensor, t: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance in one batch: `predict(x, t)` runs on [x; x], whose halves the caller has paired
    with the condition and the null condition; the result is cond·s + uncond·(1-s). Scale 1: one plain pass."""
    if scale == 1.0:
        return predict(x, t)
    cond, uncond = predict(torch.cat([x, x]), t).chunk(2)
    return scale * cond + (1 - scale) * uncond


@torch.no_grad()
def sample_query(
    model: DiffDisModel,
    query: QueryDiffusion,
    scheduler: DDPMScheduler,
    z: torch.Tensor,  # (B, C, H, W) clean image latents
    noise: torch.Tensor,  # (B, D) e_T
    steps: int,
    guidance_scale: float = 1.0,
    sampler: str = DEFAULT_SAMPLER,
) -> torch.Tensor:
    """Algorithm 3: denoise a text query conditioned on each image; returns unit vectors (B, D).

    The image side of the pass that the query cannot influence is computed once, not once per step; with
    guidance the conditional and the null-image passes run as one batch. One step (or a sampler without a build,
    x0) is one read-out at t = T-1; the sampler never steps past the last estimate."""
    build = sampler_for(sampler, "query").build
    if build is None or steps == 1:
        sched, step_kwargs = None, {}
        timesteps = torch.tensor([scheduler.config.num_train_timesteps - 1], device=z.device)
    else:
        sched, step_kwargs = build(scheduler, "sample")
        sched.set_timesteps(steps, device=z.device)
        timesteps = sched.timesteps
    guided = guidance_scale != 1.0
    cond = torch.cat([z, model.null_latents(z)]) if guided else z  # [image; null image]
    prefix = model.image_prefix(cond)

    def unit_query(e_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t_in = t.expand(e_in.shape[0]).to(z.device)
        return query.direction(model.predict_query(cond, e_in, t_in, prefix), e_in, t_in)

    e = noise.to(z.dtype)
    for i, t in enumerate(timesteps):
        direction = guide(unit_query, e, t, guidance_scale)
        if guided:  # guidance mixes unit directions; the mix is renormalised (docs/model.md, the choices made here)
            direction = F.normalize(direction, dim=-1)
        if i + 1 < len(timesteps):
            e = sched.step(query.gamma * direction.to(e.dtype), t, e, **step_kwargs).prev_sample
    return direction


@torch.no_grad()
def sample_latents(
    model: DiffDisModel,
    scheduler: DDPMScheduler,
    context: torch.Tensor,  # (B, L, D) caption condition c
    noise: torch.Tensor,  # (B, C, H, W) z_T
    steps: int,
    guidance_scale: float,
    sampler: str = DEFAULT_SAMPLER,
    clip_sample: bool = False,
    adjust: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Algorithm 2: text-conditioned generation with classifier-free guidance; returns clean latents.
    `adjust(z_t, t, ε̂)` may change each step's guided noise estimate (the pipeline's self-guidance);
    `on_step()` is called after every step (progress reports)."""
    sched, step_kwargs = sampler_for(sampler, "image").build(scheduler, "epsilon", clip_sample)
    sched.set_timesteps(steps, device=noise.device)
    if guidance_scale != 1.0:  # [caption; empty caption]
        context = torch.cat([context, model.null_context.to(context.dtype).expand_as(context)])

    def epsilon(z_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(sched.scale_model_input(z_in, t), t.expand(z_in.shape[0]).to(z_in.device), context)

    z = noise * sched.init_noise_sigma
    for t in sched.timesteps:
        eps = guide(epsilon, z, t, guidance_scale)
        if adjust is not None:
            eps = adjust(z, t, eps)
        z = sched.step(eps, t, z, **step_kwargs).prev_sample
        if on_step is not None:
            on_step()
    return z
