"""95% bootstrap intervals over sequences for the benchmark's means, and paired differences of two trackers.

A percentile bootstrap: the sequences are resampled with replacement ``RESAMPLES`` times from a fixed
seed, the metric's mean is taken on each resample, and the interval is the 2.5th and 97.5th percentile
of those means. Every tracker and every metric of one report uses the same resamples, so a paired
difference resamples the same sequences for both trackers.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESAMPLES = 10_000
SEED = 0
CONFIDENCE = 0.95
METRICS = ("auc", "precision", "ao")


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``resamples`` x ``n`` indices drawn with replacement from ``range(n)``, reproducible from ``seed``."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_ci(values: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED,
                 confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values``; None when there are none."""
    values = np.asarray(values, dtype=float).reshape(-1)
    if values.size == 0:
        return None
    means = values[resample_indices(values.size, resamples, seed)].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED,
                      confidence: float = CONFIDENCE) -> tuple[float, tuple[float, float]]:
    """Mean of ``a - b`` over paired sequences and its bootstrap interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired difference needs two equally long non-empty lists, got {a.size}, {b.size}")
    interval = bootstrap_ci(a - b, resamples, seed, confidence)
    assert interval is not None
    return float(np.mean(a - b)), interval


def add_intervals(summary: dict, resamples: int = RESAMPLES, seed: int = SEED) -> None:
    """Add ``<metric>_ci95`` = [low, high] (None without sequences) to every tracker's ``mean``."""
    summary["bootstrap"] = {"resamples": resamples, "seed": seed, "confidence": CONFIDENCE,
                            "method": "percentile, sequences resampled with replacement"}
    for entry in summary["trackers"].values():
        per_seq = entry["sequences"].values()
        for metric in METRICS:
            interval = bootstrap_ci([m[metric] for m in per_seq], resamples, seed)
            entry["mean"][f"{metric}_ci95"] = None if interval is None else list(interval)


def format_ci(mean: float, interval: Sequence[float] | None, digits: int = 3) -> str:
    """``0.437 [0.401, 0.470]``, or the mean alone without an interval."""
    if interval is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
