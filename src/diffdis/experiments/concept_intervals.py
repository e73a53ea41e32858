"""The emoji editions' headline tests with intervals over concepts as well as seeds.

The study's seed-level t-interval holds for the 143 evaluated concepts only; on the emoji blocks the test drawings'
sampling error is as large as the seed spread (docs/study.md). This reads the committed per-drawing scores
(`runs/compare/runs/BLOCK/MODEL-seedS/result.json`) and gives each headline difference a two-level bootstrap over
concepts and seeds (evaluation.significance.concept_seed_interval) beside its seed-level t.

- Second edition: Holm over its six headline tests, and the premise's test (DiffDis's gain from pretraining minus
  clip's) outside that family.
- Third edition, as pre-registered in docs/study.md: the one headline test, the difference of the two models' gains
  from the generator at equal image presentations (two-level bootstrap, no correction); the exploratory family
  (each model's gain, DiffDis - clip at each start, REPA on each arm) with Holm; every arm's unseen top-1 for all,
  near and far concepts and for the concepts whose names an ImageNet class matches apart, beside lit's.

    python -m diffdis.experiments.concept_intervals [--study runs/compare] [--edition 2|3]
    # -> runs/compare/concept_intervals.json (second edition) or third_edition.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..data.emoji import EmojiData
from ..evaluation.emoji import imagenet_drawings, near_drawings
from ..evaluation.significance import concept_seed_interval, holm, paired_interval
from ..provenance import provenance
from ..utils.results import write_json

SEEDS = range(5)
HEADLINE = {  # name -> (block, model) minus (block, model), as the second edition's family
    "pretrained DiffDis - pretrained clip": (("emoji-pretrained", "diffdis"), ("emoji-pretrained", "clip")),
    "pretrained DiffDis - pretrained dis": (("emoji-pretrained", "diffdis"), ("emoji-pretrained", "dis")),
    "pretrained DiffDis - regression": (("emoji-pretrained", "diffdis"), ("emoji-pretrained", "regression")),
    "clip, pretrained - from scratch": (("emoji-pretrained", "clip"), ("emoji-scratch", "clip")),
    "DiffDis, pretrained - from scratch": (("emoji-pretrained", "diffdis"), ("emoji-scratch", "diffdis")),
    "dis, pretrained - from scratch": (("emoji-pretrained", "dis"), ("emoji-scratch", "dis")),
}


def scores(study: Path, block: str, model: str, seeds=SEEDS) -> np.ndarray:
    """(seeds, drawings) 0/1: each seed's per-drawing result on the unseen test concepts."""
    rows = []
    for seed in seeds:
        result = json.loads((study / "runs" / block / f"{model}-seed{seed}" / "result.json").read_text())
        rows.append(result["test"]["unseen"]["correct"])
    return np.array(rows, dtype=float)


def both(a: np.ndarray, b: np.ndarray, concepts: np.ndarray) -> dict:
    return {
        "concept_and_seed": concept_seed_interval(a, b, concepts),
        "seed_level": paired_interval(100 * a.mean(1), 100 * b.mean(1)),
    }


def corrected(tests: dict[str, dict]) -> None:
    """Holm over the tests' two-level p-values: each gains holm_p and holm_significant."""
    adjusted, rejected = holm([t["concept_and_seed"]["p_value"] for t in tests.values()])
    for test, p, significant in zip(tests.values(), adjusted, rejected):
        test["concept_and_seed"].update(holm_p=p, holm_significant=significant)


def concept_intervals(study: str | Path = "runs/compare") -> dict:
    study = Path(study)
    emoji = EmojiData.load(16)
    emoji.check_split()
    concepts = emoji.eval_set("emoji-unseen").labels.numpy()  # the drawings' order in every result file
    tests = {name: both(scores(study, *a), scores(study, *b), concepts) for name, (a, b) in HEADLINE.items()}
    corrected(tests)
    gains = {m: scores(study, "emoji-pretrained", m) - scores(study, "emoji-scratch", m) for m in ("diffdis", "clip")}
    premise = both(gains["diffdis"], gains["clip"], concepts)
    record = {
        **provenance(),
        "what": "the second edition's headline tests on the 143 unseen test concepts (427 drawings, 5 seeds), from "
        "the committed per-drawing results, with a two-level bootstrap over concepts and seeds beside the "
        "seed-level t; Holm over the six headline tests",
        "tests": tests,
        "premise, outside the family: DiffDis's pretraining gain minus clip's": premise,
    }
    write_json(study / "concept_intervals.json", record)
    return record


ARMS = {  # the third edition's arms: name -> (block, model)
    "DiffDis from the generator": ("emoji3-pretrained", "diffdis"),
    "DiffDis from scratch": ("emoji3-scratch", "diffdis"),
    "clip from the generator": ("emoji3-pretrained", "clip"),
    "clip from scratch": ("emoji3-scratch", "clip"),
}
REPA_ARMS = {f"{name} with REPA": (block, f"{model}-repa") for name, (block, model) in ARMS.items()}
THIRD_FAMILY = {  # the exploratory tests, Holm within them: name -> arm minus arm
    "DiffDis, generator - scratch": ("DiffDis from the generator", "DiffDis from scratch"),
    "clip, generator - scratch": ("clip from the generator", "clip from scratch"),
    "from the generator, DiffDis - clip": ("DiffDis from the generator", "clip from the generator"),
    "from scratch, DiffDis - clip": ("DiffDis from scratch", "clip from scratch"),
    **{f"{arm}: REPA - without": (f"{arm} with REPA", arm) for arm in ARMS},
}


THIRD_HEADLINE = "headline: DiffDis's gain from the generator minus clip's (one test, no correction)"


def drawing_groups(emoji: EmojiData, unseen) -> dict[str, np.ndarray]:
    """Masks over the unseen test drawings: all; near and far concepts (data/emoji/transfer.py); the concepts whose
    name matches an ImageNet-1k class (an ImageNet encoder saw them with labels: data/imagenet.py) and the rest."""
    near, imagenet = near_drawings(emoji, unseen), imagenet_drawings(unseen)
    return {
        "all": np.ones(len(near), bool),
        "near": near,
        "far": ~near,
        "ImageNet-class": imagenet,
        "other": ~imagenet,
    }


def third_edition(study: str | Path = "runs/compare", seeds=SEEDS, lit: str | Path = "runs/lit-emoji") -> dict:
    """The third edition's analysis (module docstring). Needs the 2 x 2's results; the REPA family members that
    have not all been measured are listed as missing, and Holm runs only once the family is complete."""
    study = Path(study)
    emoji = EmojiData.load(16)
    emoji.check_split()
    unseen = emoji.eval_set("emoji-unseen")
    concepts, groups = unseen.labels.numpy(), drawing_groups(emoji, unseen)
    measured = lambda block, model: all(  # noqa: E731
        (study / "runs" / block / f"{model}-seed{seed}" / "result.json").is_file() for seed in seeds
    )
    arms = {name: scores(study, *where, seeds) for name, where in {**ARMS, **REPA_ARMS}.items() if measured(*where)}
    if set(ARMS) - set(arms):
        raise FileNotFoundError(f"the 2 x 2 is not measured yet: {sorted(set(ARMS) - set(arms))} lack results")
    gain = {m: arms[f"{m} from the generator"] - arms[f"{m} from scratch"] for m in ("DiffDis", "clip")}
    headline = {g: both(gain["DiffDis"][:, m], gain["clip"][:, m], concepts[m]) for g, m in groups.items()}
    family = {name: both(arms[a], arms[b], concepts) for name, (a, b) in THIRD_FAMILY.items() if {a, b} <= set(arms)}
    missing = sorted(set(THIRD_FAMILY) - set(family))
    if not missing:
        corrected(family)
    lit_scores = np.array(_lit_scores(Path(lit)), dtype=float)
    record = {
        **provenance(),
        "what": f"the third edition (docs/study.md, pre-registered) on the 143 unseen test concepts ({len(concepts)} "
        f"drawings, {len(seeds)} seeds), from the per-drawing results; intervals: two-level bootstrap over concepts "
        "and seeds, beside the seed-level t",
        "groups": {g: {"drawings": int(m.sum()), "concepts": len(set(concepts[m]))} for g, m in groups.items()},
        THIRD_HEADLINE: headline,
        "family (exploratory; Holm once complete)": {"tests": family, "missing": missing},
        "top1": {name: {g: _top1(a[:, m]) for g, m in groups.items()} for name, a in arms.items()},
        "lit (reference line; one fit, its encoder saw ImageNet's classes)": {
            g: float(100 * lit_scores[m].mean()) for g, m in groups.items()
        },
    }
    write_json(study / "third_edition.json", record)
    return record


def _top1(scores_: np.ndarray) -> dict:
    """Top-1 (%) of (seeds, drawings) 0/1 scores: the mean and each seed's."""
    return {"mean": float(100 * scores_.mean()), "per_seed": [float(v) for v in 100 * scores_.mean(1)]}


def _lit_scores(lit: Path) -> list[int]:
    """lit's per-drawing result on the unseen test concepts, in the same drawing order."""
    return json.loads((lit / "results.json").read_text())["discrimination"]["test"]["unseen"]["correct"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="runs/compare")
    parser.add_argument("--edition", type=int, choices=(2, 3), default=2)
    args = parser.parse_args()
    if args.edition == 3:
        for group, test in third_edition(args.study)[THIRD_HEADLINE].items():
            c, s = test["concept_and_seed"], test["seed_level"]
            print(
                f"difference of gains, {group} concepts: {c['mean_difference']:+.2f}, concepts and seeds "
                f"[{c['low']:+.2f}, {c['high']:+.2f}] (p {c['p_value']:.3f}), seeds [{s['low']:+.2f}, {s['high']:+.2f}]"
            )
        raise SystemExit(0)
    for name, test in concept_intervals(args.study)["tests"].items():
        c, s = test["concept_and_seed"], test["seed_level"]
        print(
            f"{name}: {c['mean_difference']:+.2f}, seeds [{s['low']:+.2f}, {s['high']:+.2f}], concepts and seeds "
            f"[{c['low']:+.2f}, {c['high']:+.2f}], Holm p {c['holm_p']:.3f}"
        )
