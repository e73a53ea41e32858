"""A long-budget tuning record: one run's validation curve against another's (runs trained by `diffdis release
--stage train`, which validates every 1,000 steps on validation data only), with each run's command, code and wall
clock. Points are paired at the steps both measured, or, with `--by time` (runs whose steps cost differently, as
models of different sizes), each of the other run's points with the baseline's nearest in training time: a run's
training minutes at step s are s x batch / its median training rate, so that pauses and a busy machine do not count.

    python -m diffdis.experiments.tuning BASELINE_RUN OTHER_RUN --out runs/emoji-tuning/NAME.json [--by time]
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


def minutes_per_step(run: str | Path, record: dict) -> float:
    """Training minutes per optimizer step at the run's median rate (after step 2,000)."""
    batch = json.loads((Path(run) / "config.json").read_text())["train"]["batch_size"]
    return batch / record["median_images_per_second_after_step_2000"] / 60


def compare(baseline: str | Path, other: str | Path, out: str | Path, by: str = "step") -> dict:
    base, run = run_record(baseline), run_record(other)
    if by == "step":
        steps = sorted(set(base["points"]) & set(run["points"]))
        points = [{"step": s, "baseline": base["points"][s], "other": run["points"][s]} for s in steps]
    elif by == "time":
        rate = {"baseline": minutes_per_step(baseline, base), "other": minutes_per_step(other, run)}
        points = []
        for step in sorted(run["points"]):
            minutes = step * rate["other"]
            nearest = min(base["points"], key=lambda s: abs(s * rate["baseline"] - minutes))
            points.append(
                {
                    "minutes": {"baseline": round(nearest * rate["baseline"], 1), "other": round(minutes, 1)},
                    "step": {"baseline": nearest, "other": step},
                    "baseline": base["points"][nearest],
                    "other": run["points"][step],
                }
            )
    else:
        raise ValueError(f"by={by!r}; pair points by 'step' or 'time'")
    record = {
        **provenance(),
        "what": "validation curves (unseen validation concepts; judged generation on seen and validation prompts), "
        + (
            "point by point at equal steps"
            if by == "step"
            else "each point against the baseline's nearest in "
            "training minutes (steps x batch / the run's median training rate after step 2,000)"
        )
        + "; never a test concept",
        "baseline": {k: v for k, v in base.items() if k != "points"},
        "other": {k: v for k, v in run.items() if k != "points"},
        "points": points,
    }
    write_json(out, record)
    return record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline")
    parser.add_argument("other")
    parser.add_argument("--out", required=True)
    parser.add_argument("--by", choices=("step", "time"), default="step", help="pair points by step or by time")
    args = parser.parse_args()
    for point in compare(args.baseline, args.other, args.out, args.by)["points"]:
        b, o = point["baseline"], point["other"]
        print(
            f"{point.get('minutes') or point['step']}: unseen top-1 {b['unseen_top1']} -> {o['unseen_top1']}, "
            f"judged seen {b['judged_seen']} -> {o['judged_seen']}"
        )
