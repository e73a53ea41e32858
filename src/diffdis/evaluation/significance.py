"""Is a difference between two models real? Paired comparisons: both models trained with the same seeds and
scored on the same evaluation images, so each seed gives one difference."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def paired_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """The mean of the per-seed differences a_s - b_s and its two-sided Student-t interval. The difference is
    called significant when the interval excludes 0. One seed gives a difference but no interval."""
    if len(a) != len(b):
        raise ValueError(f"paired figures need one value per seed on both sides, got {len(a)} and {len(b)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    out = {"mean_difference": float(d.mean()), "seeds": len(d), "confidence": confidence}
    if len(d) < 2:
        return {**out, "low": None, "high": None, "significant": None}
    half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    low, high = out["mean_difference"] - half, out["mean_difference"] + half
    return {**out, "low": float(low), "high": float(high), "significant": bool(low > 0 or high < 0)}


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, samples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Per-image scores (seeds, images) of two models on the same seeds and images -> the mean difference in
    percent and a percentile interval from resampling seeds and images together (both models keep the same
    draws, so the pairing is kept at both levels)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same seeds and images, got shapes {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    d = a - b  # (S, N)
    s, n = d.shape
    means = np.empty(samples)
    for i in range(samples):
        rows = rng.integers(s, size=s)
        means[i] = d[rows][:, rng.integers(n, size=n)].mean()
    low, high = np.quantile(100 * means, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return {
        "mean_difference": float(100 * d.mean()),
        "low": float(low),
        "high": float(high),
        "significant": bool(low > 0 or high < 0),
        "seeds": s,
        "images": n,
        "confidence": confidence,
        "method": "bootstrap over seeds and images",
    }
