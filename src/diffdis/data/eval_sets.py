"""Labelled evaluation sets by name, converted to a model's resolution and channels.

Names: `fashion-mnist` (real, 10k test), the emoji sets (`emoji-unseen`, `emoji-unseen-val`, `emoji-style`,
`emoji-seen-val`: data/emoji/splits.py), `digits` (scikit-learn's real 8x8 digits, 1,797 images),
`shapes-colour`, `shapes-shape`, `shapes-count`, `shapes-place` (procedural test split), the same on the
held-out compositions as `shapes-heldout-colour` and `shapes-heldout-shape`, `folder:PATH` (an image folder laid
out as class_name/xxx.png) and `idx:IMAGES,LABELS` (an IDX pair; classes are named by their index).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .captions import EVAL_TEMPLATES_BY_SET
from .datasets import FASHION_MNIST_DIR, LabelledImages, load_fashion_mnist, load_idx_pair
from .emoji import EVAL_SETS as EMOJI_EVAL_SETS
from .emoji import EVAL_TEMPLATES as EMOJI_EVAL_TEMPLATES
from .emoji import EmojiData
from .files import IMAGE_EXTENSIONS, is_image_file
from .shapes import load_shapes
from .transforms import image_to_uint8

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SHAPES_EVAL_SIZE = 1000


@dataclass(frozen=True)
class EvalSet:
    name: str
    data: LabelledImages
    templates: tuple[str, ...]
    source: str  # where the images came from, for result files


def convert(images: torch.Tensor, resolution: int, channels: int) -> torch.Tensor:
    """(N, C, H, W) uint8 of any size and channel count -> the model's format, as the pipeline converts."""
    if images.shape[1:] == (channels, resolution, resolution):
        return images
    arrays = images.permute(0, 2, 3, 1).numpy()
    pil = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]
    return torch.from_numpy(np.stack([image_to_uint8(im, resolution, channels) for im in pil]))


def load_digits(resolution: int, channels: int) -> LabelledImages:
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.from_numpy(np.round(digits.images * 255.0 / 16.0).astype(np.uint8))[:, None]  # (N, 1, 8, 8)
    return LabelledImages(convert(images, resolution, channels), torch.from_numpy(digits.target), DIGIT_NAMES)


def load_image_folder(path: str | Path, resolution: int, channels: int) -> LabelledImages:
    """class_name/xxx.png -> a labelled set; class names are the folder names with _ and - read as spaces."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = [(f, k) for k, c in enumerate(classes) for f in sorted((root / c).iterdir()) if is_image_file(f)]
    if not files:
        raise FileNotFoundError(f"{root} holds no class_name/xxx.png images ({', '.join(IMAGE_EXTENSIONS)})")
    images = np.stack([image_to_uint8(Image.open(f), resolution, channels) for f, _ in files])
    names = tuple(c.replace("_", " ").replace("-", " ") for c in classes)
    return LabelledImages(torch.from_numpy(images), torch.tensor([k for _, k in files]), names)


def load_eval_set(
    name: str, resolution: int, channels: int, data_dir: str = FASHION_MNIST_DIR, seed: int = 0
) -> EvalSet:
    """One named evaluation set (see the module docstring)."""
    if name == "fashion-mnist":
        data = load_fashion_mnist("test", resolution, channels, data_dir)
        return EvalSet(name, data, EVAL_TEMPLATES_BY_SET[name], f"Fashion-MNIST test split, {data_dir}")
    if name in EMOJI_EVAL_SETS:
        emoji = EmojiData.load(resolution)
        data = emoji.eval_set(name)
        data = LabelledImages(convert(data.images, resolution, channels), data.labels, data.class_names)
        return EvalSet(name, data, EMOJI_EVAL_TEMPLATES, f"emoji {name}, data checksum {emoji.index['checksum'][:12]}")
    if name == "digits":
        return EvalSet(name, load_digits(resolution, channels), EVAL_TEMPLATES_BY_SET[name], "scikit-learn load_digits")
    if name.startswith("shapes-"):
        parts = name.split("-")
        split, attribute = ("heldout", parts[2]) if parts[1] == "heldout" else ("test", parts[1])
        shapes = load_shapes(split, SHAPES_EVAL_SIZE, resolution, seed)
        data = shapes.attribute_set(attribute)
        data = LabelledImages(convert(data.images, resolution, channels), data.labels, data.class_names)
        source = f"shapes {split} split, {SHAPES_EVAL_SIZE} scenes, seed {seed}"
        return EvalSet(name, data, EVAL_TEMPLATES_BY_SET[f"shapes-{attribute}"], source)
    if name.startswith("folder:"):
        path = name.split(":", 1)[1]
        return EvalSet(name, load_image_folder(path, resolution, channels), EVAL_TEMPLATES_BY_SET["generic"], path)
    if name.startswith("idx:"):
        images_path, _, labels_path = name.split(":", 1)[1].partition(",")
        images, labels = load_idx_pair(Path(images_path), Path(labels_path), resolution, channels)
        names = tuple(str(k) for k in range(int(labels.max()) + 1))
        return EvalSet(name, LabelledImages(images, labels, names), EVAL_TEMPLATES_BY_SET["generic"], name[4:])
    raise ValueError(
        f"unknown evaluation set {name!r}; use fashion-mnist, {', '.join(EMOJI_EVAL_SETS)}, digits, shapes-colour, "
        "shapes-shape, shapes-count, "
        "shapes-place, shapes-heldout-colour, shapes-heldout-shape, folder:PATH or idx:IMAGES,LABELS"
    )
