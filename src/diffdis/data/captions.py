"""Captions made from class names, and zero-shot prompt templates.

Training captions and zero-shot evaluation prompts use *disjoint* template sets, so zero-shot accuracy is not
measured on the exact strings the model was trained on.
"""

from __future__ import annotations

import numpy as np

TRAIN_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a {}.",
    "a small photo of a {}.",
    "a greyscale photo of a {}.",
    "a product shot of a {}.",
    "a close-up photo of a {}.",
)

EVAL_TEMPLATES: tuple[str, ...] = (
    "a photo of the {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "this is a {}.",
    "an item of clothing: a {}.",
)


def caption(class_name: str, template: str) -> str:
    return template.format(class_name)


def random_captions(
    labels: np.ndarray,
    class_names: tuple[str, ...],
    rng: np.random.Generator,
    templates: tuple[str, ...] = TRAIN_TEMPLATES,
) -> list[str]:
    """One caption per label, each with a template drawn at random."""
    picks = rng.integers(len(templates), size=len(labels))
    return [caption(class_names[int(y)], templates[int(k)]) for y, k in zip(labels, picks)]
