"""Timing that a busy machine cannot tilt: the contenders run in alternation (A, B, A, B, ...), so load slows
them alike, and each gets its median and range over the rounds. Every cost comparison in the project uses it."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def alternating_times(
    contenders: dict[str, Callable[[], object]], rounds: int = 5, warmup: int = 1
) -> dict[str, dict[str, float]]:
    """Seconds per call of each contender: median, min and max over `rounds` alternating rounds, after `warmup`
    untimed ones."""
    for _ in range(warmup):
        for run in contenders.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v), "rounds": len(v)}
        for name, v in times.items()
    }


def per_item(stats: dict[str, float], items: int, unit: float = 1.0, key: str = "median") -> dict[str, float]:
    """One contender's times divided by the `items` a call handled, times `unit` (1000: milliseconds); the median
    under `key`."""
    scale = unit / items
    return {
        key: stats["median"] * scale,
        "min": stats["min"] * scale,
        "max": stats["max"] * scale,
        "rounds": stats["rounds"],
    }
