"""Labelled evaluation sets, one registry: name -> how to load it at a model's resolution and channels.

Registered: `fashion-mnist` (real, 10k test), the emoji sets (`emoji-unseen`, `emoji-unseen-val`, `emoji-style`,
`emoji-seen-val`: data/emoji/splits.py), `digits` (scikit-learn's real 8x8 digits, 1,797 images),
`shapes-colour`, `shapes-shape`, `shapes-count`, `shapes-place` (procedural test split), the same on the
held-out compositions as `shapes-heldout-colour` and `shapes-heldout-shape`. Labelled data of your own is a spec
(specs.py): `classes:DIR` (class_name/xxx.png) or `idx:IMAGES,LABELS` (classes named by their index). Adding a
set is one `register_eval_set` call: `diffdis evaluate`, the CLI's choices and the suites read EVAL_SETS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..specs import LABELLED, forms, parse_spec
from ..utils.optional import require
from .captions import EVAL_TEMPLATES_BY_SET
from .datasets import FASHION_MNIST_DIR, LabelledImages, load_fashion_mnist, load_idx_pair
from .emoji import EVAL_SETS as EMOJI_EVAL_SETS
from .emoji import EVAL_TEMPLATES as EMOJI_EVAL_TEMPLATES
from .emoji import EmojiData
from .image_files import IMAGE_EXTENSIONS, UnreadableImage, is_image_file, read_image
from .shapes import SHAPES_EVAL_SETS, load_shapes
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
    digits = require("sklearn.datasets", "eval", "scikit-learn").load_digits()
    images = torch.from_numpy(np.round(digits.images * 255.0 / 16.0).astype(np.uint8))[:, None]  # (N, 1, 8, 8)
    return LabelledImages(convert(images, resolution, channels), torch.from_numpy(digits.target), DIGIT_NAMES)


def load_class_folder(path: str | Path, resolution: int, channels: int) -> LabelledImages:
    """class_name/xxx.png -> a labelled set; class names are the folder names with _ and - read as spaces. A file
    that does not decode is refused by name (an evaluation set must not shrink unnoticed)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = [(f, k) for k, c in enumerate(classes) for f in sorted((root / c).iterdir()) if is_image_file(f)]
    if not files:
        raise FileNotFoundError(f"{root} holds no class_name/xxx.png images ({', '.join(IMAGE_EXTENSIONS)})")
    images = []
    for f, _ in files:
        try:
            images.append(image_to_uint8(read_image(f), resolution, channels))
        except UnreadableImage as error:
            raise UnreadableImage(error.reason, f"{f} in evaluation folder {root}: fix or remove it") from None
    names = tuple(c.replace("_", " ").replace("-", " ") for c in classes)
    return LabelledImages(torch.from_numpy(np.stack(images)), torch.tensor([k for _, k in files]), names)


# (name, resolution, channels, data_dir, seed) -> the set
Load = Callable[[str, int, int, str, int], EvalSet]
EVAL_SETS: dict[str, Load] = {}


def register_eval_set(name: str, load: Load) -> None:
    """Offer `load` as the evaluation set `name` (diffdis evaluate, the suites, the CLI's choices)."""
    if name in EVAL_SETS or parse_spec(name).kind != name:
        raise ValueError(f"cannot register an evaluation set named {name!r}: taken, or not a plain name")
    EVAL_SETS[name] = load


def _fashion_mnist(name: str, resolution: int, channels: int, data_dir: str, seed: int) -> EvalSet:
    data = load_fashion_mnist("test", resolution, channels, data_dir)
    return EvalSet(name, data, EVAL_TEMPLATES_BY_SET[name], f"Fashion-MNIST test split, {data_dir}")


def _emoji(name: str, resolution: int, channels: int, data_dir: str, seed: int) -> EvalSet:
    emoji = EmojiData.load(resolution)
    data = emoji.eval_set(name)
    data = LabelledImages(convert(data.images, resolution, channels), data.labels, data.class_names)
    return EvalSet(name, data, EMOJI_EVAL_TEMPLATES, f"emoji {name}, data checksum {emoji.index['checksum'][:12]}")


def _digits(name: str, resolution: int, channels: int, data_dir: str, seed: int) -> EvalSet:
    return EvalSet(name, load_digits(resolution, channels), EVAL_TEMPLATES_BY_SET[name], "scikit-learn load_digits")


def _shapes(name: str, resolution: int, channels: int, data_dir: str, seed: int) -> EvalSet:
    parts = name.split("-")
    split, attribute = ("heldout", parts[2]) if parts[1] == "heldout" else ("test", parts[1])
    data = load_shapes(split, SHAPES_EVAL_SIZE, resolution, seed).attribute_set(attribute)
    data = LabelledImages(convert(data.images, resolution, channels), data.labels, data.class_names)
    source = f"shapes {split} split, {SHAPES_EVAL_SIZE} scenes, seed {seed}"
    return EvalSet(name, data, EVAL_TEMPLATES_BY_SET[f"shapes-{attribute}"], source)


register_eval_set("fashion-mnist", _fashion_mnist)
for _name in EMOJI_EVAL_SETS:
    register_eval_set(_name, _emoji)
register_eval_set("digits", _digits)
for _name in SHAPES_EVAL_SETS:
    register_eval_set(_name, _shapes)


def load_eval_set(
    name: str, resolution: int, channels: int, data_dir: str = FASHION_MNIST_DIR, seed: int = 0
) -> EvalSet:
    """A registered evaluation set by name, or labelled data of your own (classes:DIR, idx:IMAGES,LABELS)."""
    spec = parse_spec(name, LABELLED, "evaluation set")
    if spec.kind == "classes":
        data = load_class_folder(spec.target, resolution, channels)
        return EvalSet(name, data, EVAL_TEMPLATES_BY_SET["generic"], spec.target)
    if spec.kind == "idx":
        images, labels = load_idx_pair(*map(Path, spec.paths), resolution, channels)
        names = tuple(str(k) for k in range(int(labels.max()) + 1))
        return EvalSet(name, LabelledImages(images, labels, names), EVAL_TEMPLATES_BY_SET["generic"], spec.target)
    if name not in EVAL_SETS:
        raise ValueError(f"unknown evaluation set {name!r}; use one of {', '.join(EVAL_SETS)}, or {forms(LABELLED)}")
    return EVAL_SETS[name](name, resolution, channels, data_dir, seed)
