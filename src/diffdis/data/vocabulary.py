"""The words of training captions for labelled classes: several names per class, in varied templates.

A model trained on one string per class learns that string, not the class: a user who types Fashion-MNIST's
official "trouser" for our "pair of trousers" lost most of that class. A real caption corpus names a thing in
many ways, so with `train.captions=varied` (the default) each training image of a labelled class is captioned
by one of its class's captions, drawn afresh at every use:

- names: the name we use, the dataset's official name (and each part of a name like "T-shirt/top"), and every
  lemma of the class's WordNet 3.0 noun synset. The synset fixes the sense (the garment "coat", not the
  animal's); all of its lemmas are taken, none chosen. "Ankle boot" is not in WordNet, so its head noun "boot"
  is looked up. The lemmas live in `fashion_mnist_wordnet.json`, written from Debian's `wordnet-base` by
  `python -m diffdis.data.vocabulary` (the tests check it against the installed WordNet);
- number: each name singular with its article ("an ankle boot") and plural ("ankle boots");
- templates: VARIED_TEMPLATES, none of which renders an evaluation prompt.

`train.captions=fixed` is one name per class in the eight TRAIN_TEMPLATES: what models trained before this
option used, and what the comparison study trains on.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ..config import CAPTION_STYLES
from .captions import TRAIN_TEMPLATES, NamesAny, caption
from .datasets import FASHION_MNIST_CLASSES

WORDNET_DIR = "/usr/share/wordnet"
SNAPSHOT = Path(__file__).with_name("fashion_mnist_wordnet.json")

FASHION_MNIST_OFFICIAL: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Per class, the byte offset of its synset in WordNet 3.0's data.noun (the offset is the synset's identifier).
FASHION_MNIST_SYNSETS: tuple[str, ...] = (
    "03595614",  # jersey, T-shirt, tee shirt: a close-fitting pullover shirt
    "04489008",  # trouser, pant: a garment extending from the waist to the knee or ankle
    "04021028",  # pullover, slipover: a sweater that is put on by pulling it over the head
    "03236735",  # dress, frock: a one-piece garment for a woman
    "03057021",  # coat: an outer garment that has sleeves and covers the body from shoulder down
    "04133789",  # sandal: a shoe consisting of a sole fastened by straps to the foot
    "04197391",  # shirt: a garment worn on the upper half of the body
    "03472535",  # gym shoe, sneaker, tennis shoe: a canvas shoe with a pliable rubber sole
    "02774152",  # bag, handbag, pocketbook, purse: a container used for carrying money and small personal items
    "02872752",  # boot: footwear that covers the whole foot and lower leg
)

# A noun phrase with its article fills the slot: "a photo of an ankle boot.", "a photo of sneakers.".
VARIED_TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a picture of {}.",
    "an image of {}.",
    "{}.",
    "a small photo of {}.",
    "a greyscale photo of {}.",
    "a product shot of {}.",
    "a close-up photo of {}.",
    "a catalogue photo of {}.",
    "{} on a plain background.",
    "a cropped photo of {}.",
    "a grainy picture of {}.",
    "a thumbnail of {}.",
    "a scan of {}.",
    "a photograph showing {}.",
    "a shop listing photo of {}.",
)


def synset_lemmas(offset: str, wordnet_dir: str | Path = WORDNET_DIR) -> tuple[tuple[str, ...], str]:
    """The lemmas (underscores as spaces) and gloss of the noun synset at `offset` in WordNet's data.noun."""
    path = Path(wordnet_dir) / "data.noun"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install WordNet (apt-get install wordnet-base)")
    with path.open("rb") as f:
        f.seek(int(offset))
        line = f.readline().decode("utf-8")
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    if fields[:1] != [offset] or fields[2] != "n":
        raise ValueError(f"{path} has no noun synset at offset {offset}: is it WordNet 3.0?")
    count = int(fields[3], 16)
    return tuple(fields[4 + 2 * i].replace("_", " ") for i in range(count)), gloss.strip()


def wordnet_snapshot(wordnet_dir: str | Path = WORDNET_DIR) -> dict:
    classes = {}
    for name, offset in zip(FASHION_MNIST_CLASSES, FASHION_MNIST_SYNSETS):
        lemmas, gloss = synset_lemmas(offset, wordnet_dir)
        classes[name] = {"synset": offset, "lemmas": list(lemmas), "gloss": gloss}
    return {"source": "WordNet 3.0 noun synsets (data.noun), Princeton University", "classes": classes}


def _dedupe(names) -> tuple[str, ...]:
    seen, out = set(), []
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return tuple(out)


def fashion_mnist_names() -> tuple[tuple[str, ...], ...]:
    """Per class, the names of its captions (ours first; case-insensitive duplicates removed)."""
    lemmas = json.loads(SNAPSHOT.read_text())["classes"]
    return tuple(
        _dedupe([ours, official, *official.split("/"), *lemmas[ours]["lemmas"]])
        for ours, official in zip(FASHION_MNIST_CLASSES, FASHION_MNIST_OFFICIAL)
    )


def _head(words: list[str]) -> int:
    """The position of a name's head noun: before "of" ("pair of trousers"), else the last word."""
    return words.index("of") - 1 if "of" in words else len(words) - 1


def _is_plural(name: str) -> bool:
    noun = name.split(" ")[_head(name.split(" "))]
    return noun.endswith("s") and not noun.endswith("ss")


def plural(name: str) -> str | None:
    """The plural of a singular name by the regular English rules on its head noun ("pair of trousers" ->
    "pairs of trousers"); None for a name whose head already ends in -s (taken as plural) or with a '/'."""
    if "/" in name or _is_plural(name):
        return None
    words = name.split(" ")
    head = _head(words)
    words[head] += "es" if re.search(r"(s|sh|ch|x|z)$", words[head]) else "s"
    return " ".join(words)


def noun_phrases(name: str) -> tuple[str, ...]:
    """A name as the phrases a caption uses: singular with its article, and the plural without one."""
    if _is_plural(name):
        return (name,)
    article = "an" if name[0].lower() in "aeiou" else "a"
    return (f"{article} {name}",) + ((plural(name),) if plural(name) else ())


def class_captions(names: tuple[str, ...], templates: tuple[str, ...] = VARIED_TEMPLATES) -> tuple[str, ...]:
    return tuple(t.format(phrase) for name in names for phrase in noun_phrases(name) for t in templates)


def fashion_mnist_captions(style: str, without: list[int] | None = None) -> tuple[tuple[str, ...], ...]:
    """Per Fashion-MNIST class, its training captions in `style` (varied or fixed). Classes `without` (held out)
    get none, and no other class keeps a caption that names one of their names as a word ("tee shirt" is
    dropped when "shirt" is held out), so no training caption names a held-out class."""
    if style not in CAPTION_STYLES:
        raise ValueError(f"train.captions={style!r}; use one of {', '.join(CAPTION_STYLES)}")
    if style == "fixed":
        names = tuple((name,) for name in FASHION_MNIST_CLASSES)
        sets = [tuple(caption(n[0], t) for t in TRAIN_TEMPLATES) for n in names]
    else:
        names = fashion_mnist_names()
        sets = [class_captions(n) for n in names]
    held = sorted(set(without or []))
    names_held = NamesAny(tuple(n for k in held for n in names[k]))
    return tuple(() if k in held else tuple(c for c in s if not names_held(c)) for k, s in enumerate(sets))


def vocabulary_record(style: str, without: list[int] | None = None) -> dict:
    """What the model folder's vocabulary.json says: the names of each class its captions used, and the
    templates (the words a user can expect it to know)."""
    names = fashion_mnist_names() if style == "varied" else tuple((n,) for n in FASHION_MNIST_CLASSES)
    held = set(without or [])
    return {
        "data": "fashion-mnist",
        "captions": style,
        "classes": {FASHION_MNIST_CLASSES[k]: list(n) for k, n in enumerate(names) if k not in held},
        "held_out_classes": [FASHION_MNIST_CLASSES[k] for k in sorted(held)],
        "templates": list(VARIED_TEMPLATES if style == "varied" else TRAIN_TEMPLATES),
        "names_from": "ours, the dataset's official names, WordNet 3.0 synset lemmas"
        if style == "varied"
        else "one name per class",
    }


def record_captions(record: dict) -> list[str]:
    """Every training caption a vocabulary record describes."""
    templates = tuple(record["templates"])
    if record["captions"] == "varied":
        return [c for names in record["classes"].values() for c in class_captions(tuple(names), templates)]
    return [t.format(name) for names in record["classes"].values() for name in names for t in templates]


if __name__ == "__main__":  # rewrite the snapshot from an installed WordNet
    SNAPSHOT.write_text(json.dumps(wordnet_snapshot(*sys.argv[1:2]), indent=2) + "\n")
    print(f"wrote {SNAPSHOT}")
