"""The second edition's headline tests re-read with intervals over concepts as well as seeds.

The study's seed-level t-interval holds for the 143 evaluated concepts only; on the emoji blocks the test drawings'
sampling error is as large as the seed spread (docs/study.md). This reads the committed per-drawing scores
(`runs/compare/runs/emoji-*/MODEL-seedS/result.json`) and gives each headline difference a two-level bootstrap over
concepts and seeds (evaluation.significance.concept_seed_interval) beside its seed-level t, Holm over the same
six tests, and the premise's own test (DiffDis's gain from pretraining minus clip's) outside that family.

    python -m diffdis.experiments.concept_intervals [--study runs/compare]   # -> runs/compare/concept_intervals.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..data.emoji import EmojiData
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


def scores(study: Path, block: str, model: str) -> np.ndarray:
    """(seeds, drawings) 0/1: each seed's per-drawing result on the unseen test concepts."""
    rows = []
    for seed in SEEDS:
        result = json.loads((study / "runs" / block / f"{model}-seed{seed}" / "result.json").read_text())
        rows.append(result["test"]["unseen"]["correct"])
    return np.array(rows, dtype=float)


def both(a: np.ndarray, b: np.ndarray, concepts: np.ndarray) -> dict:
    return {
        "concept_and_seed": concept_seed_interval(a, b, concepts),
        "seed_level": paired_interval(100 * a.mean(1), 100 * b.mean(1)),
    }


def concept_intervals(study: str | Path = "runs/compare") -> dict:
    study = Path(study)
    emoji = EmojiData.load(16)
    emoji.check_split()
    concepts = emoji.eval_set("emoji-unseen").labels.numpy()  # the drawings' order in every result file
    tests = {name: both(scores(study, *a), scores(study, *b), concepts) for name, (a, b) in HEADLINE.items()}
    adjusted, rejected = holm([t["concept_and_seed"]["p_value"] for t in tests.values()])
    for test, p, significant in zip(tests.values(), adjusted, rejected):
        test["concept_and_seed"].update(holm_p=p, holm_significant=significant)
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="runs/compare")
    for name, test in concept_intervals(parser.parse_args().study)["tests"].items():
        c, s = test["concept_and_seed"], test["seed_level"]
        print(
            f"{name}: {c['mean_difference']:+.2f}, seeds [{s['low']:+.2f}, {s['high']:+.2f}], concepts and seeds "
            f"[{c['low']:+.2f}, {c['high']:+.2f}], Holm p {c['holm_p']:.3f}"
        )
