"""The unified objective L = L_IG + λ·L_ITA (paper Eq. 9) on one mini-batch, as one module the trainer wraps.

Both tasks see the same batch with independent timesteps t_z, t_e (Algorithm 1):
- L_IG (Eq. 4): ε-prediction MSE of the generation pass; the text query is absent, and the caption is replaced
  by the empty caption with probability `text_dropout` (for classifier-free guidance).
- L_ITA (Eq. 8): symmetric InfoNCE between ê_0 (from the image) and the caption queries e. The caption
  condition c is masked in this pass; the image is replaced by the learned null latent with probability
  `image_dropout` (for guidance on the image). A learnable logit scale (CLIP-style) is our addition: the
  paper's equation has none, and raw cosines in [-1, 1] train poorly.
  Identical captions in one batch are positives of each other, not negatives (templated data repeats them).

Several processes: every random draw (timesteps, noise, dropouts) is made for the whole global batch from a
generator seeded per step, and each process keeps its rows, so a run does not depend on the process count; the
InfoNCE negatives are the whole global batch (features gathered from all processes with their gradients).

The single-task baselines (`model.variant`) use the same module: `gen` computes L_IG only, `dis` L_ITA only,
`clip` L_ITA on the pooled encoder embedding of the clean image (no text diffusion, no L_IG).

With `train.align_weight` > 0 every variant adds REPA's alignment loss (repa.py) on the pass it has; at 0 nothing
of it is built and the loss is exactly L_IG + λ·L_ITA.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .config import Answer, TrainConfig
from .data.transforms import uint8_to_model
from .diffusion import QueryDiffusion
from .models.diffdis import DiffDisModel
from .models.encoders import KLAutoencoder, PixelSpace, TextEncoder
from .models.image_encoders import FrozenImageEncoder, image_encoder
from .repa import Alignment

LOGIT_SCALE_MAX = math.log(100.0)  # CLIP's clamp of the temperature


@dataclass
class Encoders:
    """A pipeline's frozen encoders as training uses them: a micro-batch -> (z, c, e)."""

    text: TextEncoder
    autoencoder: PixelSpace | KLAutoencoder
    resolution: int
    text_length: int

    def __call__(self, batch: dict, generator: torch.Generator | None, device: torch.device):
        """Latents z (B, C, h, w) sampled from the VAE posterior, c (B, L, D), e (B, D): through the encoders, or
        from the encodings `diffdis encode` precomputed (checked against this model's shapes)."""
        if "latent" in batch:
            z = self.autoencoder.from_moments(batch["latent"].to(device), generator)
        else:
            z = self.autoencoder.encode(uint8_to_model(batch["images"]).to(device), sample=True, generator=generator)
        if "c" in batch:
            c, e = batch["c"].float(), batch["e"].float()
        else:
            c, e = self.text.encode_cached(batch["captions"])
        side = self.resolution // self.autoencoder.downsample
        expected = {
            "latents": (self.autoencoder.latent_channels, side, side),
            "text": (self.text_length, self.text.dim),
        }
        found = {"latents": tuple(z.shape[1:]), "text": tuple(c.shape[1:])}
        precomputed = {"latents": "latent" in batch, "text": "c" in batch}
        wrong = [k for k in expected if found[k] != expected[k]]
        if wrong:
            made = {k: "precomputed by `diffdis encode`" if precomputed[k] else "encoded on the fly" for k in wrong}
            listed = "; ".join(f"{k} {made[k]} have shape {found[k]}, this model needs {expected[k]}" for k in wrong)
            advice = (
                "run `diffdis encode` again with this model's autoencoder, text encoder and resolution"
                if any(precomputed[k] for k in wrong)
                else "check model.resolution, model.text_max_length and the encoders named in the config"
            )
            raise ValueError(f"{listed}: {advice}")
        return z, c.to(device), e.to(device)


class DiffDisObjective(nn.Module):
    """One training step's loss from one micro-batch: encodes the batch with the frozen encoders (or reads the
    encodings `diffdis encode` precomputed), then L = L_IG + λ·L_ITA. Build it with `from_pipeline`."""

    def __init__(
        self,
        model: DiffDisModel,
        scheduler,
        query: QueryDiffusion,
        config: TrainConfig,
        encoders: Encoders,
        rank: int = 0,
        world: int = 1,
        query_regression: bool = False,
        encoder: FrozenImageEncoder | None = None,
    ):
        super().__init__()
        self.rank, self.world = rank, world
        self.query_regression = query_regression  # ablation: the text branch always at t_e = T-1
        self.model = model
        self.declared = model.declared
        self.scheduler = scheduler
        self.query = query
        # A tuple, so that the frozen encoders are no submodules: never checkpointed, never wrapped by DDP.
        self.encoders = (encoders,)
        self.lam = config.lam
        self.snr_gamma = config.snr_gamma
        self.text_dropout = config.text_dropout
        self.image_dropout = config.image_dropout
        if self.declared.discriminates:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init)))
        self.align_weight = config.align_weight
        self.align = None
        if config.align_weight > 0:  # REPA: the encoder computes targets a batch does not bring (repa.py)
            self.image_encoder = (encoder or image_encoder(config.align_encoder),)
            self.align = Alignment(model.unet, config.align_layer, self.image_encoder[0].spec.channels)

    @classmethod
    def from_pipeline(cls, pipe, config: TrainConfig, rank: int = 0, world: int = 1) -> DiffDisObjective:
        """The objective of a DiffDisPipeline's model, encoders and noise schedule."""
        m = pipe.config.model
        encoders = Encoders(pipe.text_encoder, pipe.autoencoder, m.resolution, m.text_max_length)
        return cls(pipe.model, pipe.scheduler, pipe.query, config, encoders, rank, world, m.regression_query)

    def new_parameters(self) -> list[nn.Parameter]:
        """Parameters that Stable Diffusion does not have (they get their own learning rate)."""
        own = [self.logit_scale] if self.declared.discriminates else []
        projector = list(self.align.parameters()) if self.align is not None else []
        return [*self.model.new_parameters(), *own, *projector]

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep the logit scale at most 100 after each optimizer step (as CLIP does). Clamping inside the forward
        pass instead would zero its gradient for good once it passed the bound."""
        if self.declared.discriminates:
            self.logit_scale.clamp_(max=LOGIT_SCALE_MAX)

    def logit_scale_value(self) -> float | None:
        return self.logit_scale.exp().item() if self.declared.discriminates else None

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A micro-batch ({"images", "captions"} or precomputed {"latent", "c", "e"}; with REPA, optionally the
        encoder's "features" of its images) -> the losses."""
        targets = self.align_targets(batch) if self.align is not None else None
        return self.loss(*self.encode(batch, generator), generator, targets)

    def align_targets(self, batch: dict) -> torch.Tensor:
        """REPA's targets (B, C, h, w): the features the batch brings (cached for built-in sets), else the
        encoder run on its images (file sources: ~60 ms an image on a CPU)."""
        if "features" in batch:
            return batch["features"]
        if "images" not in batch:
            raise ValueError(
                "train.align_weight > 0 needs the training images for the image encoder, but this batch holds "
                "only precomputed latents: train from the image files, or set train.align_weight=0"
            )
        return self.image_encoder[0](batch["images"])

    def encode(self, batch: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """A micro-batch -> (z, c, e) through the frozen encoders (or read from precomputed encodings)."""
        return self.encoders[0](batch, generator, self.model.null_context.device)

    def query_loss(
        self,
        z: torch.Tensor,  # (B, C, H, W) clean latents
        e: torch.Tensor,  # (B, D) unit caption query
        t_e: torch.Tensor,  # (B,) text timesteps
        noise: torch.Tensor,  # (B, D) ε_e
        drop_image: torch.Tensor | None = None,  # (B,) bool: rows that see the null image (CFG)
    ) -> torch.Tensor:
        """L_ITA of the diffused query (Eq. 6-8): noise e to t_e, predict ê_0 from the image, InfoNCE."""
        e_t = self.query.noise(e, t_e, noise)
        z_in = z if drop_image is None else torch.where(drop_image[:, None, None, None], self.model.null_latents(z), z)
        e_hat = self.query.direction(self.model.predict_query(z_in, e_t, t_e), e_t, t_e)  # (B, D) unit
        return self.contrastive(e_hat, e)

    def loss(
        self,
        z: torch.Tensor,  # (B, C, H, W) clean latents
        c: torch.Tensor,  # (B, L, D) caption condition
        e: torch.Tensor,  # (B, D) unit caption query
        generator: torch.Generator | None = None,
        targets: torch.Tensor | None = None,  # (B, C, h, w) REPA's encoder features of the clean images
    ) -> dict[str, torch.Tensor]:
        b, device = z.shape[0], z.device
        T = self.scheduler.config.num_train_timesteps
        # Every draw is made for the whole global batch (rows = B x processes); this process keeps its own rows.
        rows, mine = b * self.world, slice(self.rank * b, (self.rank + 1) * b)
        rng = {"generator": generator, "device": device}
        t_z = torch.randint(0, T, (rows,), **rng)[mine]
        t_e = torch.randint(0, T, (rows,), **rng)[mine]
        if self.query_regression:  # pure regression from noise: same draws, the query timestep pinned at T-1
            t_e = torch.full_like(t_e, T - 1)
        zero = torch.zeros((), device=device)
        # REPA records the aligned layer's first output: the generation pass's when the variant has one.
        capture = self.align.capture() if self.align is not None else nullcontext([])

        l_ig, l_ita = zero, zero
        with capture as hidden:
            if self.declared.generates:  # generation pass (text query masked): Eq. 4
                eps_z = torch.randn(rows, *z.shape[1:], dtype=z.dtype, **rng)[mine]
                z_t = self.scheduler.add_noise(z, eps_z, t_z)
                drop_text = (torch.rand(rows, **rng)[mine] < self.text_dropout)[:, None, None]
                c_in = torch.where(drop_text, self.model.null_context.to(c.dtype), c)
                l_ig = self.generation_loss(self.model(z_t, t_z, c_in), eps_z, t_z)

            if self.declared.answer is Answer.DIFFUSED:  # discrimination pass (caption masked): Eq. 6-8
                eps_e = torch.randn(rows, *e.shape[1:], dtype=z.dtype, **rng)[mine]
                drop_image = torch.rand(rows, **rng)[mine] < self.image_dropout
                l_ita = self.query_loss(z, e, t_e, eps_e, drop_image)
            elif self.declared.answer is Answer.POOLED:
                l_ita = self.contrastive(self.model.pooled_query(z), e)

        # "terms": the two summands with their graphs, for the trainer's per-loss gradients (L_IG, λ·L_ITA).
        terms = (l_ig, self.lam * l_ita)
        l_align = zero
        if self.align is not None:  # REPA's term joins the pass it aligns
            l_align = self.align.loss(hidden[0], targets)
            aligned = self.align_weight * l_align
            terms = (terms[0] + aligned, terms[1]) if self.declared.generates else (terms[0], terms[1] + aligned)
        return {
            "loss": terms[0] + terms[1],
            "l_ig": l_ig.detach(),
            "l_ita": l_ita.detach(),
            "l_align": l_align.detach(),
            "terms": terms,
        }

    def generation_loss(self, eps_hat: torch.Tensor, eps: torch.Tensor, t_z: torch.Tensor) -> torch.Tensor:
        """L_IG (Eq. 4): the ε-MSE, each sample weighted by min(SNR, γ) / SNR when train.snr_gamma is set."""
        if not self.snr_gamma:
            return F.mse_loss(eps_hat.float(), eps.float())
        per_sample = (eps_hat.float() - eps.float()).pow(2).flatten(1).mean(1)  # (B,)
        alpha_bar = self.scheduler.alphas_cumprod.to(t_z.device)[t_z].float()  # (B,)
        snr = alpha_bar / (1 - alpha_bar)
        return (snr.clamp(max=self.snr_gamma) / snr * per_sample).mean()

    def contrastive(self, e_hat: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE over s_ij = cos(ê_0(image i), e(caption j)): this process's B rows against the
        N = B x processes columns of the global batch, in both directions."""
        with torch.autocast(e.device.type, enabled=False):  # fp32: the duplicate test needs 1e-5 precision
            e_hat, e = e_hat.float(), e.float()
            all_e_hat, all_e = self._gather(e_hat), self._gather(e.detach())  # (N, D)
            scale = self.logit_scale.exp()  # clamped after each optimizer step, not here
            same_caption = e @ all_e.T > 1 - 1e-5  # (B, N) identical captions are all positives of each other
            rows = torch.arange(len(e), device=e.device)
            same_caption[rows, rows + self.rank * len(e)] = True
            targets = same_caption.float() / same_caption.sum(1, keepdim=True)
            image_to_text = F.cross_entropy(scale * e_hat @ all_e.T, targets)
            text_to_image = F.cross_entropy(scale * e @ all_e_hat.T, targets)
            return 0.5 * (image_to_text + text_to_image)

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) on each process -> (N, D) in rank order; gradients flow back to the process that made each row."""
        return x if self.world == 1 else _GatherWithGradient.apply(x)


class _GatherWithGradient(torch.autograd.Function):
    """all_gather whose backward sums every process's gradient for the rows this process contributed (an
    all-reduce, then this process's slice: works on every backend, gloo included)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = slice(dist.get_rank() * len(x), (dist.get_rank() + 1) * len(x))
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rows]
