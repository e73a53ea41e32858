"""REPA, representation alignment (Yu et al., ICLR 2025), as a training-only addition to the objective.

A small projector (a two-layer MLP at every location: 1x1 convolutions) maps one intermediate UNet feature map to
a frozen pretrained image encoder's feature map of the same clean image; the loss is the negative cosine
similarity per location, averaged, weighted by `train.align_weight`:

    L = L_IG + λ·L_ITA + w·(−mean_ij cos(proj(h)_ij, f_ij))

The encoder's map is average-pooled (or bilinearly resized) to the UNet layer's size. For variants that generate
(diffdis, gen) the aligned features are the generation pass's, from the noisy image, as in REPA; for dis and clip,
which have no generation pass, their discrimination pass's. The projector lives in the objective: it is
checkpointed with the training state but never exported, so inference is unchanged and needs no encoder.

`train.align_layer` names the UNet feature map: "mid" (the mid block's output) or "down.N" (the output of down
block N's resnets, before its attention and downsampler).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError

PROJECTOR_WIDTH = 256


def aligned_module(unet: nn.Module, layer: str) -> nn.Module:
    """The UNet module whose output `layer` names (its last resnet: both passes run it as a module)."""
    if layer == "mid":
        return unet.mid_block.resnets[-1]
    found = re.fullmatch(r"down\.(\d+)", layer)
    if found is None or int(found[1]) >= len(unet.down_blocks):
        raise ConfigError(
            f"train.align_layer={layer!r}; use 'mid' or 'down.N' with N below {len(unet.down_blocks)} "
            "(this UNet's down blocks)"
        )
    return unet.down_blocks[int(found[1])].resnets[-1]


class Alignment(nn.Module):
    """The projector and the alignment loss; `capture` records the aligned UNet layer's output during a pass."""

    def __init__(self, unet: nn.Module, layer: str, encoder_channels: int):
        super().__init__()
        self.layer = layer
        self._module = (aligned_module(unet, layer),)  # a tuple: the UNet's module is not the projector's child
        width = self._module[0].out_channels
        self.projector = nn.Sequential(
            nn.Conv2d(width, PROJECTOR_WIDTH, 1),
            nn.SiLU(),
            nn.Conv2d(PROJECTOR_WIDTH, encoder_channels, 1),
        )

    @contextmanager
    def capture(self) -> Iterator[list[torch.Tensor]]:
        """Within the block, the first output of the aligned layer is appended to the yielded list (gradient
        checkpointing runs the layer again in backward: that rerun is not recorded)."""
        seen: list[torch.Tensor] = []

        def record(module, args, output):
            if not seen:
                seen.append(output)

        handle = self._module[0].register_forward_hook(record)
        try:
            yield seen
        finally:
            handle.remove()

    def loss(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """hidden (B, c, h, w) UNet features, target (B, C, H, W) encoder features -> −mean cosine per location."""
        projected = self.projector(hidden).float()  # (B, C, h, w)
        target = target.to(projected.device).float()
        if target.shape[-2:] != projected.shape[-2:]:
            smaller = target.shape[-1] > projected.shape[-1]
            target = (
                F.adaptive_avg_pool2d(target, projected.shape[-2:])
                if smaller
                else F.interpolate(target, size=projected.shape[-2:], mode="bilinear", align_corners=False)
            )
        return -F.cosine_similarity(projected, target, dim=1).mean()
