"""A long-budget tuning record: one run's validation curve against another's (runs trained by `diffdis release
--stage train`, which validates every 1,000 steps on validation data only), with each run's command, code and wall
clock. Points are paired at the steps both measured, or, with `--by time` (runs whose steps cost differently, as
models of different sizes), each of the other run's points with the baseline's nearest in training time: a run's
training minutes at step s are s x batch / its median training rate, so that pauses and a busy machine do not count.
With `--raw`, one run's kept checkpoints are scored twice instead, with their EMA weights and with their raw
weights: the two ends of the EMA horizon, at no training cost.

    python -m diffdis.experiments.tuning BASELINE_RUN OTHER_RUN --out runs/emoji-tuning/NAME.json [--by time]
    python -m diffdis.experiments.tuning RUN --raw --out runs/emoji-tuning/NAME.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from ..config import Config
from ..data.emoji import EmojiData
from ..pipeline import DiffDisPipeline
from ..provenance import provenance
from ..training.checkpoint import checkpoints
from ..utils.results import write_json
from .release import EmojiCurve, checkpoint_run

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
    warm = min(p["step"] for p in points)  # the first steps are slower: caches fill, the machine settles
    rates = [row["images_per_second"] for row in log if row.get("images_per_second") and row["step"] > warm]
    return {
        "run": str(run),
        "steps": max(p["step"] for p in points),
        "loop_seconds": seconds,
        "median_images_per_second_after_the_first_point": statistics.median(rates) if rates else None,
        "segments": [{k: s.get(k) for k in ("from_step", "command", "code")} for s in segments],
        "points": {p["step"]: {k: p.get(k) for k in KEYS} for p in points},
    }


def minutes_per_step(run: str | Path, record: dict) -> float:
    """Training minutes per optimizer step at the run's median rate (after its first validation point)."""
    batch = json.loads((Path(run) / "config.json").read_text())["train"]["batch_size"]
    return batch / record["median_images_per_second_after_the_first_point"] / 60


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
            "training minutes (steps x batch / the run's median training rate after its first point)"
        )
        + "; never a test concept",
        "baseline": {k: v for k, v in base.items() if k != "points"},
        "other": {k: v for k, v in run.items() if k != "points"},
        "points": points,
    }
    write_json(out, record)
    return record


def ema_against_raw(run: str | Path, out: str | Path) -> dict:
    """Each kept checkpoint of `run` on the validation curve with its EMA weights and with its raw weights, in one
    process with one judge."""
    run = Path(run)
    curve = EmojiCurve(EmojiData.load(Config.from_json(run / "config.json").model.resolution))
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in checkpoints(run):
            step, scored = int(folder.name.split("_")[-1]), {}
            for weights, averaged in (("ema", True), ("raw", False)):
                model_dir = checkpoint_run(run, step, Path(tmp) / f"{step}-{weights}", averaged)
                point = curve(DiffDisPipeline.from_pretrained(model_dir))
                scored[weights] = {k: point[k] for k in KEYS}
            points.append({"step": step, **scored})
    record = {
        **provenance(),
        "what": "validation curves (unseen validation concepts; judged generation on seen and validation prompts) of "
        "each kept checkpoint, with its EMA weights and with its raw weights (EMA horizon 0); never a test concept",
        "run": {k: v for k, v in run_record(run).items() if k != "points"},
        "ema_decay": json.loads((run / "config.json").read_text())["train"]["ema_decay"],
        "points": points,
    }
    write_json(out, record)
    return record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline")
    parser.add_argument("other", nargs="?", help="the run compared with the baseline (not with --raw)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--by", choices=("step", "time"), default="step", help="pair points by step or by time")
    parser.add_argument("--raw", action="store_true", help="the baseline's checkpoints, EMA against raw weights")
    args = parser.parse_args()
    if args.raw == bool(args.other):
        parser.error("give a second run to compare with, or --raw for one run's EMA against its raw weights")
    if args.raw:
        for point in ema_against_raw(args.baseline, args.out)["points"]:
            ema, raw = point["ema"]["unseen_top1"], point["raw"]["unseen_top1"]
            print(f"step {point['step']}: unseen top-1 EMA {ema}, raw {raw}")
        raise SystemExit(0)
    for point in compare(args.baseline, args.other, args.out, args.by)["points"]:
        b, o = point["baseline"], point["other"]
        print(
            f"{point.get('minutes') or point['step']}: unseen top-1 {b['unseen_top1']} -> {o['unseen_top1']}, "
            f"judged seen {b['judged_seen']} -> {o['judged_seen']}"
        )
