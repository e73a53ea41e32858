"""The named training corpora (`train.data`), alone or mixed with `+`, and their validation sets."""

from __future__ import annotations

from ..config import Config, data_sources
from .captions import TRAIN_TEMPLATES
from .datasets import CaptionedImages, LabelledImages, load_fashion_mnist, train_val_split
from .shapes import load_shapes


def _source(name: str, config: Config) -> tuple[CaptionedImages, LabelledImages]:
    m, t = config.model, config.train
    if name == "fashion-mnist":
        full = load_fashion_mnist("train", m.resolution, m.image_channels, t.data_dir)
        train, val = train_val_split(full, t.val_size, t.seed)
        return CaptionedImages.from_labelled(train, TRAIN_TEMPLATES), val
    train = load_shapes("train", t.shapes_size, m.resolution, t.seed)
    val = load_shapes("val", t.val_size, m.resolution, t.seed).attribute_set("shape")
    return CaptionedImages.from_captions(train.images, train.captions), val


def training_data(config: Config) -> tuple[CaptionedImages, LabelledImages]:
    """The training set (all sources concatenated) and the validation set of the first source (held out from
    training; the test splits are never loaded here)."""
    parts = [_source(name, config) for name in data_sources(config.train.data)]
    if len(parts) == 1:
        return parts[0]
    return CaptionedImages.concatenate([p[0] for p in parts]), parts[0][1]
