"""DiffDisModel: both passes of the paper on one diffusers UNet.

- Generation, Φ_u(z_t, t_z, c) -> ε̂_z: the UNet's own, unchanged forward (the text query is absent).
- Discrimination, Φ_θ(e_t, t_e, z) -> ê_0: conv_in, the time embedding at t_z = 0 on the clean latent, the down
  blocks and the mid block with the text stream threaded through every attention block, then the unique
  transformer. The caption never enters: cross-attention sees the null (empty-caption) context, and the up
  path is not run (paper Fig. 2, Algorithm 1's mask on c). Ablations (`model.fusion`): the text stream in the
  mid block's attention only, or nowhere (the unique transformer alone reads e_t + Embed(t_e)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import Answer, ModelConfig
from .text_stream import DualStreamBlock, TimestepEmbedder, UniqueTransformer, shared_context_transformer


@dataclass
class ImagePrefix:
    """The query-independent start of the discrimination pass for a batch of images."""

    h: torch.Tensor  # (B, C, H, W) features entering the first attention block
    temb: torch.Tensor  # (B, T) time embedding at t_z = 0
    index: int  # position of the first attention block in DiffDisModel._operations()


def build_unet(config: ModelConfig, latent_channels: int, latent_size: int, text_dim: int) -> UNet2DConditionModel:
    """A randomly initialised UNet of the configured shape."""
    down = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in config.attention_levels]
    up = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.attention_levels)]
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        cross_attention_dim=text_dim,
        # diffusers reads `attention_head_dim` as the number of heads per level.
        attention_head_dim=config.heads_per_level(),
        norm_num_groups=config.norm_num_groups,
    )


def _check_supported(unet: UNet2DConditionModel) -> None:
    cfg = unet.config
    extras = {k: cfg[k] for k in ("class_embed_type", "addition_embed_type", "encoder_hid_dim") if cfg.get(k)}
    if extras or unet.mid_block is None or not hasattr(unet.mid_block, "attentions"):
        raise ValueError(
            "DiffDis needs a UNet2DConditionModel with a cross-attention mid block and no class/addition "
            f"embeddings (the Stable Diffusion v1 layout); this one has {extras or 'no attention mid block'}"
        )


class DiffDisModel(nn.Module):
    """The trainable network: the UNet (image branch) plus the text stream, unique transformer and null latent.

    `null_context` is the text encoder's output for the empty caption (1, L, D); it is the masked condition of
    the discrimination pass and the unconditional condition for classifier-free guidance.
    """

    def __init__(self, unet: UNet2DConditionModel, config: ModelConfig, null_context: torch.Tensor):
        super().__init__()
        _check_supported(unet)
        self.unet = unet
        self.declared = config.declared  # what it generates and discriminates (config.VARIANTS)
        text_dim = null_context.shape[-1]
        self.register_buffer("null_context", null_context.detach().clone(), persistent=True)
        # The trained InfoNCE temperature (exp of the objective's logit scale), written into the model at export
        # to turn cosines into probabilities; not part of the training state (the objective owns that).
        self.register_buffer("logit_scale", torch.tensor(1 / 0.07), persistent=False)
        # Only the modules a variant uses are built or trained: a parameter without a gradient would stall DDP.
        if config.declared.text_stream:
            attentions = self.attention_blocks()
            fused = {
                "all": range(len(attentions)),
                "mid": range(len(attentions) - len(unet.mid_block.attentions), len(attentions)),
                "none": range(0),
            }[config.fusion]
            # Keyed by the attention block's position, so that "all" keeps the keys blocks.0, blocks.1, ...
            self.blocks = nn.ModuleDict({str(i): DualStreamBlock(text_dim, attentions[i]) for i in fused})
            if not fused:  # the query enters at the unique transformer
                self.query_embed = TimestepEmbedder(text_dim)
            self.unique = UniqueTransformer(
                text_dim,
                unet.config.block_out_channels[-1],
                config.transformer_width,
                config.transformer_blocks,
                config.transformer_head_dim,
            )
            # Learned "no image" for classifier-free guidance of the discrimination pass (one value per channel,
            # so it works at any resolution). Zero = a mid-grey image at initialisation.
            self.null_latent = nn.Parameter(torch.zeros(1, unet.config.in_channels, 1, 1))
        if config.declared.answer is Answer.POOLED:  # its image tower ends in a pooled linear embedding instead
            self.clip_head = nn.Linear(unet.config.block_out_channels[-1], text_dim)
        if not config.declared.generates:  # the up path is never run
            for module in (unet.up_blocks, unet.conv_norm_out, unet.conv_out):
                if module is not None:
                    module.requires_grad_(False)

    @property
    def text_dim(self) -> int:
        return self.null_context.shape[-1]

    def attention_blocks(self) -> list[nn.Module]:
        """The attention blocks of the down path and the mid block, in the order the image flows through them."""
        attns = [a for down in self.unet.down_blocks for a in getattr(down, "attentions", [])]
        return attns + list(self.unet.mid_block.attentions)

    def sharding_units(self) -> list[nn.Module]:
        """The sub-modules whose parameters are used only inside their own forward call, in both passes: the units
        that FSDP gathers one at a time (training/sharding.py). The down path's attention blocks are not among
        them (the text stream calls into their parts), nor the UNet's stem and head."""
        unet = self.unet
        units = [r for block in (*unet.down_blocks, unet.mid_block) for r in block.resnets]
        units += [d for block in unet.down_blocks for d in block.downsamplers or []]
        for block in unet.up_blocks:  # the up path runs in the generation pass only, through each part's forward
            units += [*block.resnets, *(getattr(block, "attentions", None) or []), *(block.upsamplers or [])]
        if self.declared.text_stream:
            units += [*self.blocks.values(), self.unique]
        return units

    def new_parameters(self) -> list[nn.Parameter]:
        """Parameters that Stable Diffusion does not have (they get their own learning rate)."""
        return [p for name, p in self.named_parameters() if not name.startswith("unet.")]

    def forward(self, z_t: torch.Tensor, t_z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Generation pass Φ_u: (B, C, H, W) noisy latent -> (B, C, H, W) predicted noise ε̂_z (Eq. 4)."""
        return self.unet(z_t, t_z, encoder_hidden_states=c).sample

    def null_latents(self, like: torch.Tensor) -> torch.Tensor:
        return self.null_latent.to(like.dtype).expand_as(like)

    def predict_query(
        self, z: torch.Tensor, e_t: torch.Tensor, t_e: torch.Tensor, prefix: ImagePrefix | None = None
    ) -> torch.Tensor:
        """Discrimination pass Φ_θ: clean latent (B, C, H, W), noisy query (B, D), timestep (B,) -> (B, D).
        `prefix` = `image_prefix(z)` computed once when the same images are queried at several timesteps."""
        h, h_e = self._encode(prefix or self.image_prefix(z), (e_t, t_e))
        return self.unique(h_e, h)  # (B, D)

    def clip_embed(self, z: torch.Tensor) -> torch.Tensor:
        """The `clip` baseline's image embedding: the same encoder path without the text stream, mean-pooled
        mid-block features through a linear head (B, D)."""
        h, _ = self._encode(self.image_prefix(z), None)
        return self.clip_head(h.mean(dim=(2, 3)))

    def pooled_query(self, z: torch.Tensor) -> torch.Tensor:
        """A pooled variant's answer (Answer.POOLED), as training and inference both read it: (B, D) unit."""
        return F.normalize(self.clip_embed(z).float(), dim=-1)

    def _operations(self) -> list[tuple[str, nn.Module]]:
        """The discrimination pass as a flat list: down blocks (resnets, attention, downsamplers), then the
        mid block. Attention entries are where the text stream joins."""
        unet, ops = self.unet, []
        for down in unet.down_blocks:
            attentions = getattr(down, "attentions", None) or [None] * len(down.resnets)
            for resnet, attn in zip(down.resnets, attentions):
                ops.append(("resnet", resnet))
                if attn is not None:
                    ops.append(("attn", attn))
            ops += [("down", d) for d in down.downsamplers or []]
        mid = unet.mid_block
        ops.append(("resnet", mid.resnets[0]))
        for attn, resnet in zip(mid.attentions, mid.resnets[1:]):
            ops += [("attn", attn), ("resnet", resnet)]
        return ops

    def image_prefix(self, z: torch.Tensor) -> ImagePrefix:
        """The part of the discrimination pass that the text query cannot influence: the time embedding at
        t_z = 0 and everything before the first attention block (the query first meets the image there)."""
        unet = self.unet
        t_z = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)  # the image is clean in this pass
        temb = unet.time_embedding(unet.time_proj(t_z).to(z.dtype))
        h, ops = unet.conv_in(z), self._operations()
        index = next(i for i, (kind, _) in enumerate(ops) if kind == "attn")
        for kind, module in ops[:index]:
            h = self._run(module, h, temb) if kind == "resnet" else module(h)
        return ImagePrefix(h, temb, index)

    def _run(self, module: nn.Module, *args):
        if self.training and self.unet.is_gradient_checkpointing:
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def _encode(self, prefix: ImagePrefix, query: tuple[torch.Tensor, torch.Tensor] | None):
        """The rest of the down path and the mid block. With `query` = (e_t, t_e) the text stream rides along
        every attention block; without it the blocks run as plain UNet attention."""
        h, temb = prefix.h, prefix.temb
        context = self.null_context.to(h.dtype)  # (1, L, D): c is masked (Algorithm 1)
        h_e = None
        if query is not None:
            e_t, t_e = query[0].to(h.dtype), query[1]
            h_e = torch.zeros_like(e_t) if len(self.blocks) else e_t + self.query_embed(t_e)  # h_{e,0}
        attention = 0
        for kind, module in self._operations()[prefix.index :]:
            if kind == "resnet":
                h = self._run(module, h, temb)
            elif kind == "down":
                h = module(h)
            elif query is not None and str(attention) in self.blocks:
                h, h_e = self._run(self.blocks[str(attention)], module, h, context, e_t, t_e, h_e)
            else:
                h = self._run(shared_context_transformer, module, h, context)
            attention += kind == "attn"
        return h, h_e
