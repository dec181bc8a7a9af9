"""Running mean/std of the critic's targets (the MAPPO paper's value normalisation).

With it on, the critic learns returns in normalised units, so its loss and
gradients keep the same scale while the returns grow from -50 to +200 over
training. Values leave the learner denormalised (GAE and logs see real units);
targets enter the critic normalised.

Statistics are exact running moments over every target seen (Chan et al.'s
parallel update, float64), which is what the paper's EMA with beta=0.99999
amounts to over a run, without its bias correction.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class ValueNormalizer:
    """Tracks the mean and std of value targets; maps values in and out of that scale."""

    def __init__(self, min_std: float = 0.1) -> None:
        """min_std: floor on the std, so near-constant early returns (e.g. all
        zero before the first goal is reached) are not blown up into noise
        (the paper's code floors the variance at 1e-2, the same thing)."""
        if not min_std > 0:
            raise ValueError(f"ValueNormalizer: min_std={min_std} must be > 0")
        self.min_std = float(min_std)
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the mean

    @property
    def var(self) -> float:
        return self._m2 / self.count if self.count else 1.0

    @property
    def std(self) -> float:
        return max(float(np.sqrt(self.var)), self.min_std)

    def update(self, targets: np.ndarray) -> None:
        """Fold a batch of (unnormalised) targets into the statistics."""
        x = np.asarray(targets, dtype=np.float64).ravel()
        if x.size == 0:
            return
        if not np.all(np.isfinite(x)):
            raise ValueError("ValueNormalizer.update: targets contain NaN or inf")
        n, batch_mean = x.size, float(x.mean())
        batch_m2 = float(((x - batch_mean) ** 2).sum())
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self._m2 += batch_m2 + delta**2 * self.count * n / total
        self.count = total

    def normalize(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values)
        dtype = values.dtype if values.dtype.kind == "f" else np.float32
        return ((values - self.mean) / self.std).astype(dtype)

    def denormalize(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values)
        dtype = values.dtype if values.dtype.kind == "f" else np.float32
        return (values * self.std + self.mean).astype(dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "m2": self._m2, "min_std": self.min_std}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.mean = float(state["mean"])
        self._m2 = float(state["m2"])
        self.min_std = float(state["min_std"])
