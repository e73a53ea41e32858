"""Is a difference between two models real? Paired comparisons: both models trained with the same seeds and
scored on the same evaluation images, so each seed gives one difference.

The unit of replication is the training seed: the interval is a Student-t interval over the per-seed differences
with seeds - 1 degrees of freedom (with 3 seeds its quantile is 4.30, not 1.96). It says how a difference would
move with other seeds on the same test images; it does not cover their sampling, which enters only as the
precision of one seed's figure (`image_standard_error`). Where that error is as large as the seed spread (the
emoji concepts: docs/study.md), the interval holds for the evaluated concepts only. A report that tests several
differences at once corrects them as a family with Holm-Bonferroni (`holm`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..utils.optional import require

stats = require("scipy.stats", "eval", "scipy")


def paired_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """The mean of the per-seed differences a_s - b_s, its two-sided Student-t interval (df = seeds - 1) and
    the two-sided p-value of "no difference". The difference is called significant (before any correction for
    multiple tests) when the interval excludes 0. One seed gives a difference but no interval."""
    if len(a) != len(b):
        raise ValueError(f"paired figures need one value per seed on both sides, got {len(a)} and {len(b)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    out = {
        "mean_difference": float(d.mean()),
        "per_seed": d.tolist(),
        "seeds": len(d),
        "confidence": confidence,
        "method": f"seed-level paired t-interval, df = {len(d) - 1}",
    }
    if len(d) < 2:
        return {**out, "low": None, "high": None, "p_value": None, "significant": None}
    sd = d.std(ddof=1)
    half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * sd / math.sqrt(len(d))
    if sd == 0:  # every seed agrees exactly: no spread to test against
        p = 1.0 if d[0] == 0 else 0.0
    else:
        p = float(2 * stats.t.sf(abs(d.mean()) / (sd / math.sqrt(len(d))), len(d) - 1))
    low, high = out["mean_difference"] - half, out["mean_difference"] + half
    return {**out, "low": float(low), "high": float(high), "p_value": p, "significant": bool(low > 0 or high < 0)}


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[list[float], list[bool]]:
    """Holm-Bonferroni over a family of tests: the adjusted p-values (in the given order) and whether each test
    is rejected at family-wise error `alpha`. The k-th smallest p is multiplied by (m - k + 1), the adjusted
    values made non-decreasing in that order, and capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist(), (adjusted <= alpha).tolist()


def image_standard_error(a: np.ndarray, b: np.ndarray) -> float:
    """Per-image 0/1 scores (seeds, images) of two models on the same images -> the standard error, in points,
    of one seed's difference from the sampling of test images alone (mean over seeds): the precision of a
    single seed's figure, not an interval for the models."""
    d = 100.0 * (np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    if d.shape[1] < 2:
        return float("nan")
    return float(np.mean(d.std(axis=1, ddof=1) / math.sqrt(d.shape[1])))


def concept_seed_interval(
    a: np.ndarray,  # (seeds, images) 0/1 scores of one model
    b: np.ndarray,  # (seeds, images) of the other, on the same images and seeds
    concepts: np.ndarray,  # (images,) the concept (class) of each image
    confidence: float = 0.95,
    resamples: int = 10000,
    seed: int = 0,
) -> dict:
    """A two-level bootstrap of the accuracy difference a - b (in points) that counts both sources of variation:
    the concepts evaluated (resampled with replacement, each with all its images) and the training seeds
    (resampled with replacement). Percentile interval; two-sided p from the share of resampled differences on
    the other side of 0. It generalises to other concepts of the same kind, where the seed-level t holds for
    these concepts only."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.shape[1] != len(concepts):
        raise ValueError(f"scores {a.shape} and {b.shape} must be (seeds, images) with {len(concepts)} images")
    groups, index = np.unique(np.asarray(concepts), return_inverse=True)
    counts = np.bincount(index, minlength=len(groups)).astype(float)  # (K,) images per concept
    sums = np.stack([np.bincount(index, weights=row, minlength=len(groups)) for row in a - b])  # (S, K)
    rng = np.random.default_rng(seed)
    seeds, k = sums.shape
    concept_weights = rng.multinomial(k, np.full(k, 1 / k), size=resamples)  # (B, K) times each concept is drawn
    seed_weights = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=resamples)  # (B, S)
    per_draw = ((seed_weights @ sums) * concept_weights).sum(1) / (concept_weights @ counts) / seeds  # (B,)
    per_draw *= 100.0
    low, high = np.quantile(per_draw, [0.5 - confidence / 2, 0.5 + confidence / 2])
    p = min(1.0, 2 * min((per_draw <= 0).mean(), (per_draw >= 0).mean()))
    return {
        "mean_difference": float(100.0 * (a - b).mean()),
        "low": float(low),
        "high": float(high),
        "p_value": float(p),
        "significant": bool(low > 0 or high < 0),
        "confidence": confidence,
        "seeds": seeds,
        "concepts": k,
        "method": f"two-level bootstrap over {k} concepts and {seeds} seeds, {resamples} resamples, percentile",
    }
