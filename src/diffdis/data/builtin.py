"""The built-in data sets, one registry: name -> how to load its training and validation images, what to check
before any compute, what its model folder records about the words it learned, and its evaluation sets.

`train.data`, `diffdis evaluate`, the demo and the CLI's choices read from BUILTIN; config.BUILTIN_SOURCES names
the same sets for validation (config sits below data and cannot import it; a test checks that both agree).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config, ConfigError
from .datasets import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_FILES,
    CaptionedImages,
    LabelledImages,
    find_idx,
    load_fashion_mnist,
    train_val_split,
)
from .emoji import EVAL_SETS as EMOJI_EVAL_SETS
from .emoji import EmojiData, require_packages
from .shapes import load_shapes
from .vocabulary import fashion_mnist_captions, vocabulary_record

SHAPES_EVAL_SETS = (
    "shapes-colour",
    "shapes-shape",
    "shapes-count",
    "shapes-place",
    "shapes-heldout-colour",
    "shapes-heldout-shape",
)


@dataclass(frozen=True)
class BuiltinSet:
    name: str
    load: Callable[[Config], tuple[CaptionedImages, LabelledImages]]  # (training set, validation set)
    check: Callable[[Config], None]  # refuses missing data, naming how to get it
    vocabulary: Callable[[Config], dict | None]  # the model folder's vocabulary.json
    eval_sets: tuple[str, ...]  # evaluation sets drawn from the same data (test splits)
    description: str


def holdout_indices(holdout: tuple[str, ...], class_names: tuple[str, ...]) -> list[int]:
    """train.holdout_classes (class names, or indices into `class_names`) -> sorted class indices."""
    indices = []
    for item in holdout:
        if item.isdigit() and int(item) < len(class_names):
            indices.append(int(item))
        elif item in class_names:
            indices.append(class_names.index(item))
        else:
            raise ConfigError(
                f"train.holdout_classes: {item!r} is not a class of the training set; use names among "
                f"{', '.join(class_names)}, or indices 0-{len(class_names) - 1}"
            )
    if len(set(indices)) >= len(class_names) - 1:
        raise ConfigError("train.holdout_classes leaves fewer than two classes to train on")
    return sorted(set(indices))


def _fashion_load(config: Config) -> tuple[CaptionedImages, LabelledImages]:
    """Held-out classes lose their images; a class whose every caption names a held-out class (with one name
    per class, "t-shirt" when "shirt" is held out) loses its images too, with a warning: an image cannot be
    trained on without a caption."""
    m, t = config.model, config.train
    full = load_fashion_mnist("train", m.resolution, m.image_channels, t.data_dir)
    train, val = train_val_split(full, t.val_size, t.seed)
    held = holdout_indices(t.holdout_classes, full.class_names)
    captions = fashion_mnist_captions(t.captions, held)
    emptied = [k for k, s in enumerate(captions) if not s and k not in held]
    if emptied:
        warnings.warn(
            f"every training caption of {', '.join(full.class_names[k] for k in emptied)} names a held-out class, "
            "so its images are not trained on either (train.captions=varied gives classes more names)",
            stacklevel=2,
        )
    dropped = torch.tensor(held + emptied, dtype=torch.long)
    train = train.subset(torch.nonzero(~torch.isin(train.labels, dropped)).flatten())
    return CaptionedImages.from_labelled(train, captions), val


def _fashion_check(config: Config) -> None:
    for stem in FASHION_MNIST_FILES["train"]:
        find_idx(Path(config.train.data_dir), stem)  # names the missing file and how to get it
    holdout_indices(config.train.holdout_classes, FASHION_MNIST_CLASSES)


def _fashion_vocabulary(config: Config) -> dict:
    t = config.train
    return vocabulary_record(t.captions, holdout_indices(t.holdout_classes, FASHION_MNIST_CLASSES))


def _shapes_load(config: Config) -> tuple[CaptionedImages, LabelledImages]:
    m, t = config.model, config.train
    train = load_shapes("train", t.shapes_size, m.resolution, t.seed)
    val = load_shapes("val", t.val_size, m.resolution, t.seed).attribute_set("shape")
    return CaptionedImages.from_captions(train.images, train.captions), val


def _emoji_load(config: Config) -> tuple[CaptionedImages, LabelledImages]:
    emoji = EmojiData.load(config.model.resolution)
    return emoji.training_set(config.train.emoji_skin_tones)[0], emoji.eval_set("emoji-seen-val")


BUILTIN: dict[str, BuiltinSet] = {
    s.name: s
    for s in (
        BuiltinSet(
            "fashion-mnist",
            _fashion_load,
            _fashion_check,
            _fashion_vocabulary,
            ("fashion-mnist",),
            "Fashion-MNIST (Debian dataset-fashion-mnist): 60k real greyscale clothing images, ten classes",
        ),
        BuiltinSet(
            "shapes",
            _shapes_load,
            lambda config: None,
            lambda config: None,
            SHAPES_EVAL_SETS,
            "procedural coloured shapes with compositional captions; two colour-shape pairs held out",
        ),
        BuiltinSet(
            "emoji",
            _emoji_load,
            lambda config: require_packages(),
            lambda config: EmojiData.load(config.model.resolution).vocabulary(),
            EMOJI_EVAL_SETS,
            "emoji art (Noto, Twemoji, Fluent; OpenMoji held out as an unseen style): 1,426 CLDR-named concepts, "
            "10% held out as unseen test concepts and 5% as unseen validation concepts",
        ),
    )
}


def builtin(name: str) -> BuiltinSet:
    if name not in BUILTIN:
        raise ConfigError(f"unknown built-in data set {name!r}; use one of {', '.join(BUILTIN)}")
    return BUILTIN[name]
