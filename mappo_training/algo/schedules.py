"""What the learning rate, entropy coefficient and std ceiling are at a point of training.

Everything is a function of one number, the fraction of training done, set by
the training loop before each rollout; so a resumed run that restores that
number is back on exactly the same schedules.
"""

from __future__ import annotations

import math

from mappo_training.algo.config import AlgoConfig


def linear(start: float, end: float, fraction: float) -> float:
    """start at fraction 0, end at fraction 1, a straight line between."""
    return start + (end - start) * fraction


def check_fraction(fraction: float) -> float:
    """A training fraction in [0, 1]; tiny float overshoot is clipped, real errors raise."""
    fraction = float(fraction)
    if not (math.isfinite(fraction) and -1e-9 <= fraction <= 1.0 + 1e-9):
        raise ValueError(
            f"progress fraction {fraction!r} is outside [0, 1]; pass updates_done / total_updates"
        )
    return min(max(fraction, 0.0), 1.0)


def learning_rates(cfg: AlgoConfig, fraction: float) -> tuple[float, float]:
    """(actor lr, critic lr)."""
    factor = 1.0 - fraction if cfg.anneal_lr else 1.0
    return cfg.actor_lr * factor, cfg.critic_lr * factor


def entropy_coef(cfg: AlgoConfig, fraction: float) -> float:
    return linear(cfg.entropy_coef, 0.0, fraction) if cfg.anneal_entropy else cfg.entropy_coef


def max_log_std(cfg: AlgoConfig, fraction: float) -> float | None:
    """Ceiling on each Gaussian log_std, or None when std_decay is off.

    The ceiling falls linearly in std (not log std) from init_std to std_decay.
    The learner projects log_std onto it after every optimiser step instead of
    clamping inside the distribution: the parameter then always equals the std
    that is used (what the exporter and the logs read), and while it sits at the
    ceiling the policy gradient can still pull it below.
    """
    if cfg.std_decay is None:
        return None
    return math.log(linear(cfg.init_std, cfg.std_decay, fraction))
