"""Data specs, parsed in one place: what `train.data`, `train.val_data`, `diffdis evaluate`, `pack` and `encode`
are given.

A spec is `NAME` (a built-in data set or evaluation set, which data/builtin.py and data/eval_sets.py resolve) or
`KIND:TARGET` for data of your own. Each KIND means one thing wherever it is accepted:

    wds:SHARDS          webdataset tar shards of image + caption (brace patterns)    captioned
    folder:DIR          images with a metadata.jsonl of file_name and text            captioned
    csv:FILE            path,caption rows (comma or tab separated)                    captioned
    classes:DIR         labelled images in class_name/xxx.png sub-folders             labelled
    idx:IMAGES,LABELS   an IDX image file and label file; classes named by index      labelled

Captioned specs train (and are packed or encoded); labelled specs validate and evaluate. `train.data` joins
several with "+", each optionally weighted with "@WEIGHT". This module only reads the words; whether a named set
exists, and the files, are checked by the data layer before any compute.
"""

from __future__ import annotations

from dataclasses import dataclass

CAPTIONED, LABELLED = "captioned", "labelled"


@dataclass(frozen=True)
class SpecKind:
    form: str  # how it is written, for messages and help texts
    holds: str  # CAPTIONED or LABELLED
    description: str


SPEC_KINDS: dict[str, SpecKind] = {
    "wds": SpecKind("wds:SHARDS", CAPTIONED, "webdataset tar shards (brace patterns) of image + caption"),
    "folder": SpecKind("folder:DIR", CAPTIONED, "images with a metadata.jsonl of file_name and text"),
    "csv": SpecKind("csv:FILE", CAPTIONED, "path,caption rows (comma or tab separated)"),
    "classes": SpecKind("classes:DIR", LABELLED, "labelled images in class_name/xxx.png sub-folders"),
    "idx": SpecKind("idx:IMAGES,LABELS", LABELLED, "an IDX image file and label file; classes named by index"),
}


class SpecError(ValueError):
    """A data spec that cannot be read; the message names the forms that would work."""


@dataclass(frozen=True)
class DataSpec:
    kind: str  # a SPEC_KINDS key, or the name of a built-in set
    target: str = ""  # KIND's argument; for a named set, an optional argument such as a split
    weight: float = 1.0  # sampling weight among the sources of train.data

    @property
    def named(self) -> bool:
        """A built-in data set or evaluation set, resolved by its registry rather than read from files."""
        return self.kind not in SPEC_KINDS

    @property
    def paths(self) -> list[str]:
        """The files or folders a spec of your own names (idx: names two, comma-separated)."""
        if self.named:
            return []
        return self.target.split(",") if self.kind == "idx" else [self.target]

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind


def forms(holds: str) -> str:
    """The KIND:TARGET forms that hold `holds` data, for messages."""
    return ", ".join(k.form for k in SPEC_KINDS.values() if k.holds == holds)


def parse_spec(text: str, holds: str | None = None, what: str = "data") -> DataSpec:
    """One spec (no "+"): refused when its KIND holds the other sort of data than `holds`, naming the kinds that
    do; `what` names the setting in messages."""
    text = text.strip()
    kind, colon, target = text.partition(":")
    if not kind:
        raise SpecError(f"{what}={text!r} is empty; give a data set name or one of {forms(holds or CAPTIONED)}")
    if kind in SPEC_KINDS:
        found = SPEC_KINDS[kind]
        if not target or (kind == "idx" and len([p for p in target.split(",") if p]) != 2):
            raise SpecError(f"{what}={text!r}: write it as {found.form}")
        if holds and found.holds != holds:
            raise SpecError(
                f"{what}={text!r}: {found.form} holds {found.holds} images ({found.description}), and {what} needs "
                f"{holds} ones: use {forms(holds)}"
            )
    return DataSpec(kind, target if colon else "")


def parse_data(spec: str) -> tuple[DataSpec, ...]:
    """`train.data`: captioned specs joined by "+", each optionally "@WEIGHT"; named sets and files do not mix
    (named sets are concatenated, files streamed and mixed by weight)."""
    sources = []
    for part in spec.split("+"):
        text, weight = part.strip(), 1.0
        if "@" in text:
            text, _, raw = text.rpartition("@")
            try:
                weight = float(raw)
            except ValueError:
                raise SpecError(f"train.data: weight {raw!r} of {part.strip()!r} is not a number") from None
            if weight <= 0:
                raise SpecError(f"train.data: weight {raw!r} of {part.strip()!r} must be positive")
        source = parse_spec(text, CAPTIONED, "train.data")
        if source.named and source.target:
            raise SpecError(f"train.data: the built-in set {source.kind!r} takes no argument; write {source.kind}")
        sources.append(DataSpec(source.kind, source.target, weight))
    if len({s.named for s in sources}) > 1:
        raise SpecError(
            f"train.data={spec!r} mixes built-in and file sources; write the built-in set to shards with "
            "`diffdis pack` and mix the shards instead"
        )
    return tuple(sources)
