"""Captions made from class names, and zero-shot prompt templates.

Training captions and zero-shot evaluation prompts use *disjoint* template sets, so zero-shot accuracy is not
measured on the exact strings the model was trained on. Each evaluation set has its own templates
(EVAL_TEMPLATES_BY_SET); EVAL_TEMPLATES, the clothing set, is the pipeline's default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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

# The prompt for class-conditional samples (grids, generation accuracy, FID): a training template, since
# generation is asked in the words it learned.
GENERATION_PROMPT = TRAIN_TEMPLATES[0]

EVAL_TEMPLATES: tuple[str, ...] = (
    "a photo of the {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "this is a {}.",
    "an item of clothing: a {}.",
)

EVAL_TEMPLATES_BY_SET: dict[str, tuple[str, ...]] = {
    "fashion-mnist": EVAL_TEMPLATES,
    "digits": ("a photo of the number {}.", "a handwritten {}.", "the digit {}.", "a blurry image of the number {}."),
    "shapes-colour": ("a {} object.", "something {}.", "a {} thing on a black background."),
    "shapes-shape": ("a single {}.", "a coloured {}.", "a {} on a black background."),
    "shapes-count": ("{}.", "an image with {}.", "a picture of {} on black."),
    "shapes-place": ("a shape {}.", "an object {}.", "something {}."),
    "generic": ("a photo of the {}.", "a picture of the {}.", "an image showing a {}.", "this is a {}."),
}


class NamesAny:
    """A test: does a caption name any of `names` as a word (case-insensitive, plural -s or -es allowed)?
    A hyphen separates words, as it does for a text encoder's tokenizer: holding out "shirt" catches "t-shirt"
    too, so no caption of another class still says "shirt". Picklable, for loader workers."""

    def __init__(self, names: tuple[str, ...]):
        words = "|".join(re.escape(n.lower()) for n in sorted(names, key=len, reverse=True))
        self.pattern = re.compile(rf"(?<!\w)(?:{words})(?:e?s)?(?!\w)", re.IGNORECASE) if names else None

    def __call__(self, caption: str) -> bool:
        return self.pattern is not None and self.pattern.search(caption) is not None


def caption(class_name: str, template: str) -> str:
    return template.format(class_name)


def captions_for(
    labels: np.ndarray, class_names: tuple[str, ...], templates: tuple[str, ...], seed: int = 0
) -> list[str]:
    """One caption per label from its class name, each with a template drawn by a generator seeded with `seed`."""
    picks = np.random.default_rng(seed).integers(len(templates), size=len(labels))
    return [caption(class_names[int(y)], templates[int(k)]) for y, k in zip(labels, picks)]


def split_labels(text: str) -> tuple[list[str], list[str]]:
    """Class names typed as one text, separated by commas or new lines: (each name once, in order; the names
    typed more than once). Blank entries are dropped."""
    labels = [s.strip() for s in re.split(r"[,\n]", text) if s.strip()]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    return list(dict.fromkeys(labels)), repeated


def check_labels(labels: Sequence[str], what: str = "class_names") -> None:
    """The one rule for candidate labels (the pipeline, the command line and the web app apply it alike): non-empty
    names, at least two distinct ones (with one, every image gets it)."""
    if isinstance(labels, str) or not all(isinstance(n, str) and n.strip() for n in labels):
        raise ValueError(f"{what}={labels!r}: give a list of non-empty names, e.g. ['dress', 'bag']")
    distinct = list(dict.fromkeys(labels))
    if len(distinct) < 2:
        found = f"only {distinct[0]!r}" if distinct else "none"
        raise ValueError(
            f"{what}: give at least two labels, all different ({found} was given); with one, all images get it"
        )


def candidate_labels(text: str, what: str = "labels") -> list[str]:
    """Labels typed as one text (comma- or line-separated) -> each name once, in order, checked by check_labels."""
    labels, _ = split_labels(text)
    check_labels(labels, what)
    return labels
