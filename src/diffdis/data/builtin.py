"""The built-in data sets, one registry: name -> how to load its training and validation images, what to check
before any compute, what its model folder records about the words it learned, and its evaluation sets.

Adding one is one `register_builtin` call: `train.data`, the checks before training, the demo and the CLI's
choices read BUILTIN. (specs.py reads the words of `train.data`; whether a name is registered is checked here.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config, ConfigError
from ..specs import CAPTIONED, forms, parse_data
from .datasets import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_FILES,
    CaptionedImages,
    LabelledImages,
    find_idx,
    load_fashion_mnist,
    train_val_split,
)
from .emoji import EmojiData, require_packages
from .shapes import SHAPES_EVAL_SETS, load_shapes
from .vocabulary import fashion_mnist_captions, vocabulary_record


@dataclass(frozen=True)
class BuiltinSet:
    name: str
    load: Callable[[Config], tuple[CaptionedImages, LabelledImages]]  # (training set, validation set)
    check: Callable[[Config], None]  # refuses missing data, naming how to get it
    vocabulary: Callable[[Config], dict | None]  # the model folder's vocabulary.json
    # Evaluation sets drawn from the same data (test splits; data/eval_sets.py) -> what training on this set makes
    # of each, for the suite's means: one of evaluation/suite.py's RELATIONS
    eval_sets: dict[str, str]
    description: str
    colour: bool = False  # its captions name colours, so a model trained on it needs RGB images
    holdout_classes: bool = True  # train.holdout_classes applies (else the set holds out concepts of its own)


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


BUILTIN: dict[str, BuiltinSet] = {}


def register_builtin(data_set: BuiltinSet) -> None:
    """Offer `data_set` as `train.data=NAME` (and in the CLI's choices) under its name."""
    if data_set.name in BUILTIN or ":" in data_set.name or "+" in data_set.name:
        raise ValueError(f"cannot register a built-in data set named {data_set.name!r}: taken, or not a plain name")
    BUILTIN[data_set.name] = data_set


for _set in (
    BuiltinSet(
        "fashion-mnist",
        _fashion_load,
        _fashion_check,
        _fashion_vocabulary,
        {"fashion-mnist": "trained"},
        "Fashion-MNIST (Debian dataset-fashion-mnist): 60k real greyscale clothing images, ten classes",
    ),
    BuiltinSet(
        "shapes",
        _shapes_load,
        lambda config: None,
        lambda config: None,
        {s: "held-out compositions" if "heldout" in s else "trained" for s in SHAPES_EVAL_SETS},
        "procedural coloured shapes with compositional captions; two colour-shape pairs held out",
        colour=True,
        holdout_classes=False,
    ),
    BuiltinSet(
        "emoji",
        _emoji_load,
        lambda config: require_packages(),
        lambda config: EmojiData.load(config.model.resolution).vocabulary(),
        {
            "emoji-unseen": "not trained on",
            "emoji-unseen-val": "not trained on",
            "emoji-style": "seen concepts, unseen style",
            "emoji-seen-val": "trained",
        },
        "emoji art (Noto, Twemoji, Fluent; OpenMoji held out as an unseen style): 1,426 CLDR-named concepts, "
        "10% held out as unseen test concepts and 5% as unseen validation concepts",
        colour=True,
        holdout_classes=False,
    ),
):
    register_builtin(_set)


def builtin(name: str) -> BuiltinSet:
    if name not in BUILTIN:
        raise ConfigError(
            f"unknown built-in data set {name!r}; use one of {', '.join(BUILTIN)}, or files of your own: "
            f"{forms(CAPTIONED)}"
        )
    return BUILTIN[name]


def check_builtin(config: Config) -> None:
    """Refuse, before any compute, built-in sources that are not registered, or that this config cannot train on:
    colour captions on greyscale images, train.holdout_classes on a set that holds out concepts of its own."""
    for source in config.train.sources:
        data_set = builtin(source.kind)
        if data_set.colour and config.model.image_channels != 3:
            raise ConfigError(
                f"train.data includes {data_set.name}, whose captions name colours: set model.image_channels=3"
            )
        if config.train.holdout_classes and not data_set.holdout_classes:
            raise ConfigError(
                f"train.holdout_classes does not apply to {data_set.name}, which holds out concepts of its own "
                f"(its evaluation sets: {', '.join(data_set.eval_sets)}); it applies to fashion-mnist and file sources"
            )
        data_set.check(config)


def data_overrides(data: str) -> list[str]:
    """The overrides for training on `data`: `train.data` and what that data needs (RGB images when it includes
    a set whose captions name colours). Later overrides can still change either."""
    overrides = [f"train.data={data}"]
    if any(s.named and s.kind in BUILTIN and BUILTIN[s.kind].colour for s in parse_data(data)):
        overrides.append("model.image_channels=3")
    return overrides
