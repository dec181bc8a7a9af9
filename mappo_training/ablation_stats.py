"""Scores over seeds, the way rliable aggregates them (numpy only).

A variant's score is the interquartile mean (IQM) of its per-seed scores: the
mean of the middle half, which ignores one lucky or unlucky seed without
throwing away as much as the median does. Its uncertainty is a bootstrap 95%
confidence interval: resample the seeds with replacement (each variant on its
own, as rliable stratifies by task), recompute, take the 2.5th and 97.5th
percentiles.

A percentage of full MAPPO needs a floor (what zero learning scores), or a
negative return makes "percent" meaningless:

    percent = 100 * (score - floor) / (full - floor)

floor = 0 for a success rate; for returns, the uniform-random policy's mean
return (simple_spread's returns are all negative, so a bare ratio would call
a *worse* variant more than 100%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0
"""A fixed RNG seed: the same runs always give the same interval."""


def iqm(scores) -> float:
    """Interquartile mean: drop the lowest and highest quarter, average the rest.

    With n scores, floor(n/4) are dropped from each end (scipy's trim_mean(x,
    0.25), which rliable uses): with fewer than 4 seeds nothing is dropped and
    the IQM is the plain mean. NaN for no scores.
    """
    x = np.sort(np.asarray(scores, dtype=float).ravel())
    if x.size == 0:
        return math.nan
    cut = x.size // 4
    return float(x[cut : x.size - cut].mean())


def percent_of_full(score: float, full: float, floor: float = 0.0) -> float:
    """100 x (score - floor) / (full - floor); NaN when full did not beat the
    floor (no scale to measure against)."""
    span = full - floor
    if not span > 0:
        return math.nan
    return 100.0 * (score - floor) / span


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """IQM of each row of a (resamples, n) array."""
    x = np.sort(samples, axis=1)
    cut = x.shape[1] // 4
    return x[:, cut : x.shape[1] - cut].mean(axis=1)


def _resample(rng: np.random.Generator, scores: np.ndarray, samples: int) -> np.ndarray:
    idx = rng.integers(0, scores.size, size=(samples, scores.size))
    return _iqm_rows(scores[idx])


@dataclass
class Interval:
    """A point estimate with its bootstrap 95% CI (NaN where undefined)."""

    value: float
    low: float
    high: float


def percent_of_full_ci(
    variant_scores,
    full_scores,
    floor: float = 0.0,
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """A variant's IQM as a percentage of full MAPPO's IQM, with a bootstrap 95% CI.

    Both sets of seeds are resampled (independently) in every bootstrap
    sample. A sample in which full's IQM does not beat the floor has no
    percentage and is left out (possible only when some of full's seeds
    score at the floor); if most samples are like that the interval is NaN.
    """
    variant = np.asarray(variant_scores, dtype=float).ravel()
    full = np.asarray(full_scores, dtype=float).ravel()
    point = percent_of_full(iqm(variant), iqm(full), floor)
    if variant.size == 0 or full.size == 0:
        return Interval(point, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    v = _resample(rng, variant, samples)
    f = _resample(rng, full, samples)
    span = f - floor
    ok = span > 0
    if ok.sum() < samples / 2:
        return Interval(point, math.nan, math.nan)
    pct = 100.0 * (v[ok] - floor) / span[ok]
    low, high = np.percentile(pct, [2.5, 97.5])
    return Interval(point, float(low), float(high))


def iqm_ci(scores, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> Interval:
    """IQM of the scores with its bootstrap 95% CI over seeds."""
    x = np.asarray(scores, dtype=float).ravel()
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    boot = _resample(np.random.default_rng(seed), x, samples)
    low, high = np.percentile(boot, [2.5, 97.5])
    return Interval(iqm(x), float(low), float(high))
