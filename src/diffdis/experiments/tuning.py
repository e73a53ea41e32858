"""A long-budget tuning record: one run's validation curve against another's, point by point at the steps both
measured (runs trained by `diffdis release --stage train`, which validates every 1,000 steps on validation data
only), with each run's command, code and wall clock.

    python -m diffdis.experiments.tuning BASELINE_RUN OTHER_RUN --out runs/emoji-tuning/NAME.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ..provenance import provenance
from ..training.checkpoint import checkpoints
from ..utils.results import write_json

KEYS = (
    "unseen_top1",
    "unseen_top5",
    "unseen_near_top1",
    "unseen_far_top1",
    "seen_heldout_drawings_top1",
    "judged_seen",
    "judged_val",
)


def run_record(run: str | Path) -> dict:
    """A run's validation points, segments (command, code), loop seconds and training rate, from its summary when
    it finished, else from its newest checkpoint."""
    run = Path(run)
    summary = run / "train_summary.json"
    if summary.is_file():
        data = json.loads(summary.read_text())
        points, segments, seconds = data["validation"], data["trained_by"], data["train_seconds"]
    else:
        data = json.loads((checkpoints(run)[-1] / "state.json").read_text())
        points, segments, seconds = data["history"], data["segments"], data["seconds"]
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    rates = [row["images_per_second"] for row in log if row.get("images_per_second") and row["step"] > 2000]
    return {
        "run": str(run),
        "steps": max(p["step"] for p in points),
        "loop_seconds": seconds,
        "median_images_per_second_after_step_2000": statistics.median(rates) if rates else None,
        "segments": [{k: s.get(k) for k in ("from_step", "command", "code")} for s in segments],
        "points": {p["step"]: {k: p.get(k) for k in KEYS} for p in points},
    }


def compare(baseline: str | Path, other: str | Path, out: str | Path) -> dict:
    base, run = run_record(baseline), run_record(other)
    steps = sorted(set(base["points"]) & set(run["points"]))
    record = {
        **provenance(),
        "what": "validation curves (unseen validation concepts; judged generation on seen and validation prompts), "
        "point by point at equal steps; never a test concept",
        "baseline": {k: v for k, v in base.items() if k != "points"},
        "other": {k: v for k, v in run.items() if k != "points"},
        "points": [{"step": s, "baseline": base["points"][s], "other": run["points"][s]} for s in steps],
    }
    write_json(out, record)
    return record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline")
    parser.add_argument("other")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    for point in compare(args.baseline, args.other, args.out)["points"]:
        b, o = point["baseline"], point["other"]
        print(f"step {point['step']}: unseen top-1 {b['unseen_top1']} -> {o['unseen_top1']}")
