"""Image conversion shared by training and inference, so the pipeline sees images exactly as training did."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_pil(image: Image.Image, channels: int) -> Image.Image:
    """Any PIL mode -> "L" or "RGB". Transparency is composited on white; 16-bit and float are rescaled."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        array = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        image = Image.fromarray(array.round().astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("L" if channels == 1 else "RGB")


def center_square(image: Image.Image) -> Image.Image:
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def image_to_uint8(image: Image.Image, resolution: int, channels: int) -> np.ndarray:
    """PIL image -> (channels, resolution, resolution) uint8: mode conversion, centre crop, antialiased resize."""
    image = center_square(to_pil(image, channels)).resize((resolution, resolution), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def uint8_to_model(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) uint8 -> float in [-1, 1]."""
    return images.float() / 127.5 - 1.0


def model_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, C, H, W) in [-1, 1] -> PIL images ("L" for one channel, else "RGB")."""
    array = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    return [Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)) for a in array]


def images_to_tensor(images: list[Image.Image], resolution: int, channels: int) -> torch.Tensor:
    """PIL images of any mode and size -> (B, C, R, R) float in [-1, 1]."""
    return uint8_to_model(torch.from_numpy(np.stack([image_to_uint8(im, resolution, channels) for im in images])))


def check_image_batch(
    images: Sequence[Image.Image] | torch.Tensor, channels: int, resolution: int
) -> Sequence[Image.Image] | torch.Tensor:
    """A pipeline's image input (a list of PIL images, or an (N, C, R, R) tensor) checked for a model of
    `channels` and `resolution`: what it cannot read as meant is refused with the fix; a uint8 tensor (0-255) is
    converted to [-1, 1]."""
    if isinstance(images, (Image.Image, str, Path)):
        raise ValueError("images must be a list of PIL images or an (N, C, R, R) tensor; wrap one image in a list")
    if len(images) == 0:
        raise ValueError("no images were given")
    if not isinstance(images, torch.Tensor):
        bad = [type(im).__name__ for im in images if not isinstance(im, Image.Image)]
        if bad:
            raise ValueError(f"images must be PIL images (open files with PIL.Image.open); got {bad[0]}")
        return images
    expected = (channels, resolution, resolution)
    if images.dim() != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"an image tensor must have shape (N, {', '.join(map(str, expected))}) for this model; got "
            f"{tuple(images.shape)}. Pass PIL images instead to have them converted and resized"
        )
    if images.dtype == torch.uint8:
        return uint8_to_model(images)
    if not images.is_floating_point():
        raise ValueError(f"image tensors must be float in [-1, 1] or uint8 in 0-255; got {images.dtype}")
    low, high = images.min().item(), images.max().item()
    if low < -1.001 or high > 1.001:
        raise ValueError(
            f"image tensor values lie in [{low:.3g}, {high:.3g}]; the model reads [-1, 1]: pass x / 127.5 - 1 "
            "for 0-255 values, x * 2 - 1 for 0-1 values, or a uint8 tensor"
        )
    return images
