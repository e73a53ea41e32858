"""The emoji data set as training and evaluation use it: concept holdouts, the unseen style, captions.

Splits (fixed by SPLIT_SEED, the same for every run and model, so that held-out concepts stay held out):
- unseen test concepts: a seeded 10% of concepts; no image and no caption of theirs enters training;
- unseen validation concepts: a disjoint seeded 5%, for choosing settings (never the test concepts);
- the unseen style: OpenMoji. No OpenMoji drawing is ever trained on; its drawings of seen concepts measure
  transfer to a design team the model never saw;
- seen-concept validation: for a seeded 8% of the seen concepts, one default-tone drawing in a training style
  is held out of training (in-training validation and model selection), with all its skin tones (the same
  drawing in another tone would otherwise train).
The rule that keeps "zero-shot" honest: besides the held-out concepts' own images and captions, every training
caption that contains a held-out (test or validation) concept's full name as a phrase is removed (whole words,
case-insensitive, plural -s allowed, a hyphen does not bind), also when punctuation splits the phrase
("mountain railway: car" names "railway car"). A drawing whose own name contains a held-out name (the
"rolled-up newspaper" when "newspaper" is held out) keeps training under its other captions; it is a near
neighbour of that concept, and the near/far grouping (transfer.py) counts it as one. The index records how
many captions the rule removed.

SPLIT_FINGERPRINT fixes the concept split every figure of record was measured on: a changed package version or
drop rule that moved a concept between splits is refused (check_split) instead of scoring a model on concepts
it trained on.

Evaluation sets use one default-tone drawing per concept and style, so each concept counts once per style.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..captions import NamesAny
from ..datasets import CaptionedImages, LabelledImages
from .catalogue import STYLES
from .images import load_cache
from .packages import PACKAGES
from .transfer import near_concepts

SPLIT_SEED = 0
TEST_FRACTION, VAL_FRACTION, SEEN_VAL_FRACTION = 0.10, 0.05, 0.08
UNSEEN_STYLE = "openmoji"
TRAIN_STYLES = tuple(s for s in STYLES if s != UNSEEN_STYLE)
NAME_TEMPLATES = (
    "{}",
    "an emoji of {}.",
    "{} emoji.",
    "an emoji showing {}.",
    "a small drawing of {}.",
    "an icon of {}.",
    "{}, drawn as an emoji.",
    "a colourful emoji: {}.",
)
KEYWORD_TEMPLATES = ("{name}: {keywords}.", "an emoji for {keywords}.")  # up to KEYWORDS_PER_CAPTION keywords
KEYWORDS_PER_CAPTION = 3
GENERATION_TEMPLATE = NAME_TEMPLATES[1]  # class-conditional samples are asked in words the model learned
EVAL_TEMPLATES = ("a picture of {}.", "a symbol for {}.", "an illustration of {}.", "{}, as a small picture.")
EVAL_SETS = ("emoji-unseen", "emoji-unseen-val", "emoji-style", "emoji-seen-val")
# sha256 of the held-out test and validation names (split_fingerprint); every emoji figure of record used this split.
SPLIT_FINGERPRINT = "c4abfa07db9eddb9"


class SplitMismatch(ValueError):
    """A model or data cache whose held-out concepts differ from the split being scored."""


def split_fingerprint(held_out_test: list[str], held_out_validation: list[str]) -> str:
    """A short hash of the held-out concept names, in the split's order."""
    text = json.dumps({"test": list(held_out_test), "validation": list(held_out_validation)}, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _unpunctuated(caption: str) -> str:
    """`caption` with punctuation other than hyphens read as a space: "railway: car" -> "railway car"."""
    return " ".join(re.sub(r"[^\w\s-]", " ", caption).split())


def concept_captions(name: str, keywords: tuple[str, ...]) -> tuple[str, ...]:
    """Every training caption of one drawing: its name in each template, and with its keywords."""
    captions = [t.format(name) for t in NAME_TEMPLATES]
    if keywords:
        chosen = ", ".join(keywords[:KEYWORDS_PER_CAPTION])
        captions += [t.format(name=name, keywords=chosen) for t in KEYWORD_TEMPLATES]
    return tuple(captions)


@dataclass(frozen=True)
class EmojiData:
    """The built cache at one resolution, with the fixed splits."""

    images: np.ndarray  # (N, 3, R, R) uint8
    index: dict

    @classmethod
    def load(cls, resolution: int, root: str | Path | None = None) -> EmojiData:
        return cls(*load_cache(resolution, root))

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(c["name"] for c in self.index["concepts"])

    @cached_property
    def concept_split(self) -> np.ndarray:
        """Per concept: "test", "val" or "train" (a seeded permutation of all concepts)."""
        k = len(self.names)
        order = np.random.default_rng(SPLIT_SEED).permutation(k)
        n_test, n_val = round(TEST_FRACTION * k), round(VAL_FRACTION * k)
        split = np.full(k, "train", dtype=object)
        split[order[:n_test]] = "test"
        split[order[n_test : n_test + n_val]] = "val"
        return split

    def concepts(self, split: str) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.concept_split == split)]

    @cached_property
    def _records(self) -> list[dict]:
        return self.index["images"]

    @cached_property
    def default_drawings(self) -> dict[int, dict[str, int]]:
        """concept -> style -> the cache row of its default-tone drawing."""
        found: dict[int, dict[str, int]] = {}
        for i, r in enumerate(self._records):
            if r["tone"] == "":
                found.setdefault(r["concept"], {})[r["style"]] = i
        return found

    def drawings_of(self, concepts: list[int], styles: tuple[str, ...]) -> list[int]:
        """The default-tone drawings of `concepts` in `styles`, concept by concept."""
        return [self.default_drawings[c][s] for c in concepts for s in styles if s in self.default_drawings[c]]

    @cached_property
    def seen_validation_images(self) -> list[int]:
        """One default-tone drawing in a training style for a seeded SEEN_VAL_FRACTION of seen concepts."""
        rng = np.random.default_rng(SPLIT_SEED + 1)
        seen = self.concepts("train")
        chosen = sorted(rng.choice(seen, size=round(SEEN_VAL_FRACTION * len(seen)), replace=False).tolist())
        return sorted(int(rng.choice(self.drawings_of([c], TRAIN_STYLES))) for c in chosen)

    @cached_property
    def held_out_names(self) -> NamesAny:
        return NamesAny(tuple(self.names[c] for c in self.concepts("test") + self.concepts("val")))

    @cached_property
    def fingerprint(self) -> str:
        """split_fingerprint of this cache's held-out concepts."""
        return split_fingerprint(
            [self.names[c] for c in self.concepts("test")], [self.names[c] for c in self.concepts("val")]
        )

    def check_split(self, vocabulary: dict | None = None) -> None:
        """Refuse to score on a split other than the one of record, or a model (its `vocabulary.json`) that
        held out other concepts than this split, naming the difference."""
        if self.fingerprint != SPLIT_FINGERPRINT:
            raise SplitMismatch(
                f"the emoji split has fingerprint {self.fingerprint}, not {SPLIT_FINGERPRINT} of every figure of "
                "record: the installed packages or the drop rules moved concepts between splits. Install the pinned "
                "versions ('diffdis emoji install') and rebuild the cache, or record a new split and retrain"
            )
        if vocabulary is None or vocabulary.get("data") != "emoji":
            return
        for key, split in (("held_out_test", "test"), ("held_out_validation", "val")):
            recorded, current = set(vocabulary.get(key, ())), {self.names[c] for c in self.concepts(split)}
            if recorded != current:
                raise SplitMismatch(
                    f"this model's {key} differ from the split being scored: only the model's "
                    f"{sorted(recorded - current)[:5]}, only the split's {sorted(current - recorded)[:5]} "
                    f"({len(recorded ^ current)} in all). Its figures would count concepts it trained on; score it "
                    "with the data version it was trained on (its vocabulary.json's data_record), or retrain"
                )

    def training_rows(self, skin_tones: bool = True) -> list[int]:
        """Cache rows that may be trained on: seen concepts, training styles, seen-validation drawings removed
        with every tone of theirs (before the held-out-name rule, which may remove more); without the skin-tone
        variants if not `skin_tones` (they are 38% of the images, of 11% of the concepts)."""
        seen = set(self.concepts("train"))
        held = {(self._records[i]["concept"], self._records[i]["style"]) for i in self.seen_validation_images}
        return [
            i
            for i, r in enumerate(self._records)
            if r["concept"] in seen
            and r["style"] in TRAIN_STYLES
            and (r["concept"], r["style"]) not in held
            and (skin_tones or not r["tone"])
        ]

    def _captions_allowed(self, rows: list[int]) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
        """Drawing name -> its captions, before and after the held-out-name rule."""
        by_name: dict[str, tuple[str, ...]] = {}
        for i in rows:
            record = self._records[i]
            if record["name"] not in by_name:
                keywords = tuple(self.index["concepts"][record["concept"]]["keywords"])
                by_name[record["name"]] = concept_captions(record["name"], keywords)
        named = self.held_out_names
        allowed = {n: tuple(c for c in cs if not named(c) and not named(_unpunctuated(c))) for n, cs in by_name.items()}
        return by_name, allowed

    def trained_rows(self, skin_tones: bool = True) -> list[int]:
        """The cache rows of `training_set`'s images, in its order (rows left without a caption removed)."""
        rows = self.training_rows(skin_tones)
        allowed = self._captions_allowed(rows)[1]
        return [i for i in rows if allowed[self._records[i]["name"]]]

    def training_set(self, skin_tones: bool = True) -> tuple[CaptionedImages, dict]:
        """The training images with their captions after the held-out-name rule, and the counts of what the
        rule removed. Drawings that share a name (the same concept in several styles) share one caption set."""
        rows = self.training_rows(skin_tones)
        by_name, allowed = self._captions_allowed(rows)
        keep = self.trained_rows(skin_tones)
        names = list(dict.fromkeys(self._records[i]["name"] for i in keep))
        position = {name: k for k, name in enumerate(names)}
        caption_ids = torch.tensor([position[self._records[i]["name"]] for i in keep])
        data = CaptionedImages(torch.from_numpy(self.images[keep]), caption_ids, tuple(allowed[n] for n in names))
        rule = {
            "rule": "training captions containing a held-out concept's full name (test or validation), also across "
            "punctuation, are removed",
            "captions_removed": sum(len(by_name[n]) - len(allowed[n]) for n in by_name),
            "drawing_names_left_without_captions": sum(not allowed[n] for n in by_name),
            "images_removed": len(rows) - len(keep),
        }
        return data, rule

    @cached_property
    def shared_words(self) -> dict[int, list[str]]:
        """Held-out (test and validation) concept -> the content words its name shares with a trained drawing's
        name (its captions may not say it: the "rolled-up newspaper" trains as "news, paper, rolled") or a training
        caption (transfer.py); empty for a *far* concept. Counted with skin tones included, so the grouping is the
        same for every model of the split."""
        data, _ = self.training_set()
        held = {c: self.names[c] for c in self.concepts("test") + self.concepts("val")}
        drawing_names = {self._records[i]["name"] for i in self.training_rows()}
        return near_concepts(held, [*drawing_names, *(c for captions in data.caption_sets for c in captions)])

    def labelled(self, rows: list[int], concepts: list[int]) -> LabelledImages:
        """`rows` of the cache labelled by position of their concept among `concepts` (the candidates)."""
        position = {c: k for k, c in enumerate(concepts)}
        labels = torch.tensor([position[self._records[i]["concept"]] for i in rows])
        names = tuple(self.names[c] for c in concepts)
        return LabelledImages(torch.from_numpy(self.images[rows]), labels, names)

    def eval_rows(self, name: str) -> tuple[list[int], list[int]]:
        """An evaluation set's (cache rows, candidate concepts): emoji-unseen (test concepts, training styles,
        among the test concepts), emoji-unseen-val (the same for the validation concepts), emoji-style (seen
        concepts drawn by OpenMoji, among all seen concepts), emoji-seen-val (the held-out drawings of seen
        concepts, among those concepts)."""
        if name in ("emoji-unseen", "emoji-unseen-val"):
            concepts = self.concepts("test" if name == "emoji-unseen" else "val")
            return self.drawings_of(concepts, TRAIN_STYLES), concepts
        if name == "emoji-style":
            concepts = self.concepts("train")
            return self.drawings_of(concepts, (UNSEEN_STYLE,)), concepts
        if name == "emoji-seen-val":
            rows = self.seen_validation_images
            return rows, sorted({self._records[i]["concept"] for i in rows})
        raise ValueError(f"unknown emoji evaluation set {name!r}; use one of {', '.join(EVAL_SETS)}")

    def eval_set(self, name: str) -> LabelledImages:
        """The evaluation set `name` (eval_rows) labelled by position among its candidate concepts."""
        return self.labelled(*self.eval_rows(name))

    def record(self) -> dict:
        """What a result file says about the data: versions, checksum, split seed and counts."""
        return {
            "name": "emoji",
            "packages": {p.name: p.version for p in PACKAGES},
            "checksum": self.index["checksum"],
            "resolution": self.index["resolution"],
            "split_seed": SPLIT_SEED,
            "split_fingerprint": self.fingerprint,
            "concepts": {s: len(self.concepts(s)) for s in ("train", "val", "test")},
            "images": len(self._records),
            "unseen_style": UNSEEN_STYLE,
            "training_styles": list(TRAIN_STYLES),
            "seen_validation_images": len(self.seen_validation_images),
            "held_out_name_rule": {
                **self.training_set()[1],
                "counted_on": "every training drawing, skin tones included",
            },
        }

    def vocabulary(self) -> dict:
        """For a model folder's vocabulary.json: the concepts it was trained on and those held out, by name."""
        return {
            "data": "emoji",
            "captions": "CLDR names in templates, and keywords",
            "templates": [GENERATION_TEMPLATE],  # what `pipe.unfamiliar` compares prompts with (one per concept)
            "classes": {self.names[c]: [self.names[c]] for c in self.concepts("train")},
            "held_out_test": [self.names[c] for c in self.concepts("test")],
            "held_out_validation": [self.names[c] for c in self.concepts("val")],
            "unseen_style": UNSEEN_STYLE,
            "data_record": self.record(),
        }
