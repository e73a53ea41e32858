"""Image conversion shared by training and inference, so the pipeline sees images exactly as training did."""

from __future__ import annotations

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
