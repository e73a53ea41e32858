"""The new modules of DiffDis (paper Fig. 3, yellow boxes): the text-query stream that rides along the UNet's
attention blocks, and the unique transformer with its linear head that reads out the clean query ê_0.

The shared modules (self-attention `attn1`, cross-attention `attn2`, image FFN `ff`, their norms, and the
block's GroupNorm/proj_in/proj_out) belong to the diffusers UNet and are only *called* from here.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn


def sinusoidal(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) sin/cos features."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class TimestepEmbedder(nn.Module):
    """Embedder(t_e): sinusoidal features -> 2-layer MLP in the text-query space (Fig. 3)."""

    def __init__(self, dim: int, frequency_dim: int = 128):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal(t, self.frequency_dim).to(self.mlp[0].weight.dtype))  # (B, dim)


def _check_plain_block(block: BasicTransformerBlock) -> None:
    if block.norm_type != "layer_norm" or block.only_cross_attention or block.pos_embed is not None:
        raise ValueError(
            "the dual-stream block supports UNet transformer blocks with norm_type='layer_norm', "
            "only_cross_attention=False and no positional embedding (the Stable Diffusion v1 layout)"
        )


def shared_context_attention(attn, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """`attn(x, encoder_hidden_states=context)` for a context that is the same for every image (1, L, D), the
    masked caption of the discrimination pass: its keys and values are projected once, not once per image.
    Falls back to the module's own call for attention variants this shortcut does not cover."""
    plain = attn.norm_q is None and attn.norm_k is None and attn.norm_cross is None and attn.group_norm is None
    if context.shape[0] != 1 or not plain or attn.residual_connection or attn.rescale_output_factor != 1.0:
        return attn(x, encoder_hidden_states=context.expand(x.shape[0], -1, -1))
    b, n, _ = x.shape
    q = attn.to_q(x).view(b, n, attn.heads, -1).transpose(1, 2)  # (B, heads, N, d)
    k = attn.to_k(context).view(1, -1, attn.heads, q.shape[-1]).transpose(1, 2).expand(b, -1, -1, -1)
    v = attn.to_v(context).view(1, -1, attn.heads, q.shape[-1]).transpose(1, 2).expand(b, -1, -1, -1)
    out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)  # (B, heads, N, d)
    return attn.to_out[1](attn.to_out[0](out.transpose(1, 2).reshape(b, n, -1)))


def _tokens(transformer: Transformer2DModel, h_z: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, HW, C): the block's GroupNorm and input projection, as Transformer2DModel does."""
    b, _, height, width = h_z.shape
    x = transformer.norm(h_z)
    if not transformer.use_linear_projection:
        x = transformer.proj_in(x)
    x = x.permute(0, 2, 3, 1).reshape(b, height * width, -1)
    return transformer.proj_in(x) if transformer.use_linear_projection else x


def _image(transformer: Transformer2DModel, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """(B, HW, C) tokens -> (B, C, H, W) through the output projection, plus the block's residual."""
    b, _, height, width = residual.shape
    if transformer.use_linear_projection:
        x = transformer.proj_out(x)
    x = x.reshape(b, height, width, -1).permute(0, 3, 1, 2).contiguous()
    if not transformer.use_linear_projection:
        x = transformer.proj_out(x)
    return x + residual


def shared_context_transformer(transformer: Transformer2DModel, h_z: torch.Tensor, context: torch.Tensor):
    """A UNet attention block on image tokens alone, with a context shared by the whole batch (the masked caption
    of the discrimination pass): what `transformer(h_z, encoder_hidden_states=context.expand(B, ...))` computes,
    with the context's keys and values projected once. The image towers without a text stream (the `clip`
    baseline, unfused blocks of the fusion ablations) run their attention blocks this way."""
    try:
        for block in transformer.transformer_blocks:
            _check_plain_block(block)
    except ValueError:
        return transformer(h_z, encoder_hidden_states=context.expand(h_z.shape[0], -1, -1), return_dict=False)[0]
    x = _tokens(transformer, h_z)
    for block in transformer.transformer_blocks:
        x = x + block.attn1(block.norm1(x))
        x = x + shared_context_attention(block.attn2, block.norm2(x), context)
        x = x + block.ff(block.norm3(x))
    return _image(transformer, x, h_z)


class DualStreamBlock(nn.Module):
    """One dual-stream deep-fusion block (Fig. 3) wrapped around one of the UNet's Transformer2DModels.

    u = e_t + Embed(t_e) + h_{e,l-1}  ->  FC in  ->  one text token, joined to the image tokens in the shared
    self-attention; the image tokens then take cross-attention with c and the image FFN, the text token its
    own FFN; FC out gives h_{e,l}.
    """

    def __init__(self, text_dim: int, transformer: Transformer2DModel):
        super().__init__()
        for block in transformer.transformer_blocks:
            _check_plain_block(block)
        width = transformer.transformer_blocks[0].norm1.normalized_shape[0]
        self.embed_time = TimestepEmbedder(text_dim)
        self.fc_in = nn.Linear(text_dim, width)
        # The text FFN starts as a copy of the image FFN: the text token lives in the same token space.
        self.text_norms = nn.ModuleList(copy.deepcopy(b.norm3) for b in transformer.transformer_blocks)
        self.text_ffs = nn.ModuleList(copy.deepcopy(b.ff) for b in transformer.transformer_blocks)
        self.fc_out = nn.Linear(width, text_dim)

    def forward(
        self,
        transformer: Transformer2DModel,
        h_z: torch.Tensor,  # (B, C, H, W) hidden latent image
        context: torch.Tensor,  # (1, L, D) the null caption: the caption is masked in the discrimination pass
        e_t: torch.Tensor,  # (B, D) noisy text query
        t_e: torch.Tensor,  # (B,) text timestep
        h_e: torch.Tensor,  # (B, D) hidden text query from the previous block (zeros before the first)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = _tokens(transformer, h_z)  # (B, HW, C)
        u = self.fc_in(e_t + self.embed_time(t_e) + h_e)[:, None]  # (B, 1, C) cross-block skip connection
        for block, text_norm, text_ff in zip(transformer.transformer_blocks, self.text_norms, self.text_ffs):
            s = torch.cat([u, x], dim=1)  # (B, 1 + HW, C)
            s = s + block.attn1(block.norm1(s))  # shared self-attention over both modalities
            u, x = s[:, :1], s[:, 1:]
            x = x + shared_context_attention(block.attn2, block.norm2(x), context)  # image tokens only
            x = x + block.ff(block.norm3(x))  # image FFN
            u = u + text_ff(text_norm(u))  # text FFN
        return _image(transformer, x, h_z), self.fc_out(u[:, 0])


def sincos_2d(height: int, width: int, dim: int, device: torch.device) -> torch.Tensor:
    """(H*W, dim) fixed 2-D sin/cos position codes, so the unique transformer works at any resolution."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.cat([sinusoidal(ys.flatten(), dim // 2), sinusoidal(xs.flatten(), dim - dim // 2)], dim=-1)


class UniqueTransformer(nn.Module):
    """M transformer blocks over [text token; projected mid-block feature map] and the linear head that reads
    the text token out as ê_0 (or ε̂_e), paper §3 / NOTES §2.1."""

    def __init__(self, text_dim: int, feature_channels: int, width: int, depth: int, head_dim: int):
        super().__init__()
        self.width = width
        self.text_in = nn.Linear(text_dim, width)
        self.image_in = nn.Linear(feature_channels, width)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width,
                width // head_dim,
                4 * width,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, text_dim)

    def forward(self, h_e: torch.Tensor, h_mid: torch.Tensor) -> torch.Tensor:
        b, _, height, width = h_mid.shape
        image = self.image_in(h_mid.flatten(2).transpose(1, 2))  # (B, HW, W)
        image = image + sincos_2d(height, width, self.width, h_mid.device).to(image.dtype)
        tokens = torch.cat([self.text_in(h_e)[:, None], image], dim=1)  # (B, 1 + HW, W)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens[:, 0]))  # (B, D)
