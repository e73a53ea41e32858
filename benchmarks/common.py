"""Shared by the benchmarks: interleaved timing (ratios are measured in one run, alternating the contenders,
so a busy machine slows both alike), the trained model they measure, and table printing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from diffdis import DiffDisPipeline, preset  # noqa: E402
from diffdis.training import train  # noqa: E402
from diffdis.utils.timing import alternating_times  # noqa: E402

OUT = Path("runs/bench")


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each contender, calls alternating A, B, A, B, ..."""
    return {name: s["median"] for name, s in alternating_times(contenders, repeats, warmup).items()}


def trained_model(path: str | None, train_steps: int) -> tuple[DiffDisPipeline, str]:
    """The model to measure: `path` if given (e.g. the demo's runs/demo-fashion/model), else a `tiny` model trained
    here for `train_steps` steps (kept in runs/bench/model-train and reused by later runs)."""
    if path:
        return DiffDisPipeline.from_pretrained(path), str(path)
    run = OUT / "model-train"
    if not (run / "model").exists():
        config = preset("tiny", [f"train.max_steps={train_steps}", "train.validate_every=0", "train.val_images=200"])
        train(config, run, progress=False)
    return DiffDisPipeline.from_pretrained(run / "model"), str(run / "model")


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [header] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for k, row in enumerate(cells):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
