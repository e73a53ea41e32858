"""The ImageNet-1k class names (imagenet_classes.json, with its source), and which concept names match one.

An encoder pretrained on ImageNet saw those classes with labels, so a held-out concept that is an ImageNet class
is not unseen to a model built on that encoder. A concept *matches* a class when every content word of the
class name is among the concept name's content words (stemmed as for near/far: data/emoji/transfer.py), or when
the two are the same letters without spaces and hyphens ("hot dog" and "hotdog"). The rule leans towards
matching: a concept it flags is reported apart even if the encoder's class meant another sense of the word.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from .emoji.transfer import content_words, stem

CLASSES_FILE = Path(__file__).with_name("imagenet_classes.json")
FUNCTION_WORDS = frozenset("a an the of and or with in on for".split())


@cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1,000 class names in class-index order."""
    return tuple(json.loads(CLASSES_FILE.read_text())["classes"])


def _letters(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@cache
def _class_words() -> tuple[tuple[str, frozenset[str], str], ...]:
    """Each class with its stemmed words (only function words left out: "small" in "small white" counts) and its
    letters."""
    words = (
        frozenset(stem(w) for w in re.findall(r"[a-z0-9]+", n.lower()) if w not in FUNCTION_WORDS)
        for n in imagenet_classes()
    )
    return tuple((n, w, _letters(n)) for n, w in zip(imagenet_classes(), words))


def imagenet_match(name: str) -> str | None:
    """The first ImageNet-1k class `name` matches (module docstring), or None."""
    words, letters = content_words(name), _letters(name)
    for class_name, class_words, class_letters in _class_words():
        if (class_words and class_words <= words) or class_letters == letters:
            return class_name
    return None
