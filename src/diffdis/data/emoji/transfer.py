"""Near and far held-out concepts: which unseen concepts share a content word with what training named.

A held-out concept is *near* when a content word of its name (after a light stemming, so "teeth" meets "tooth"
and "cats" meets "cat") occurs in a training concept's name or in a training caption's keywords; otherwise it is
*far*. Near concepts can be recognised by word overlap alone ("smiling cat" after training on "cat face"); far
ones are the real test of transfer, and every emoji zero-shot report gives both groups apart.
"""

from __future__ import annotations

import re

# Words that carry no concept: articles, prepositions, and the caption templates' own words.
STOP_WORDS = frozenset(
    "a an the of and or with without in on at to for by from as is are be up down out off over under into its "
    "it this that his her their one two emoji emojis drawing drawn icon small showing colourful picture symbol "
    "illustration".split()
)
IRREGULAR = {
    "teeth": "tooth",
    "feet": "foot",
    "men": "man",
    "women": "woman",
    "mice": "mouse",
    "geese": "goose",
    "children": "child",
    "people": "person",
    "knives": "knife",
    "leaves": "leaf",
    "wolves": "wolf",
}
_WORD = re.compile(r"[a-z0-9]+")


def stem(word: str) -> str:
    """A light English stemmer: irregular plurals, then -ies/-es/-s, -ing, -ed (enough to meet singular and
    plural, verb and gerund; not a linguist's stemmer)."""
    word = IRREGULAR.get(word, word)
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("xes", "x")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            return word[: -len(suffix)] + keep
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            word = word[: -len(suffix)]
            if len(word) > 2 and word[-1] == word[-2]:  # "running" -> "runn" -> "run"
                word = word[:-1]
            break
    return word


def content_words(text: str) -> set[str]:
    """The stemmed words of `text` that could name something (stop words and template words removed)."""
    return {stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS and len(w) > 1}


def near_concepts(held_out: dict[int, str], training_texts: list[str]) -> dict[int, list[str]]:
    """For each held-out concept (index -> name): the content words it shares with `training_texts` (the
    training concepts' names and captions); an empty list means far."""
    seen: set[str] = set()
    for text in training_texts:
        seen |= content_words(text)
    return {c: sorted(content_words(name) & seen) for c, name in held_out.items()}
