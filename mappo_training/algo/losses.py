"""PPO's losses, each a masked mean so finished robots (mask false) count for nothing.

Masked entries are selected away with `torch.where`, never multiplied by 0, so
a NaN or inf sitting in a masked row cannot poison the loss value. (Its gradient
would still be NaN, 0 * NaN, so the learner also zeroes masked rows first.)
"""

from __future__ import annotations

import numpy as np
import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over entries where mask is true; 0 when none is."""
    total = torch.where(mask, x, torch.zeros_like(x)).sum()
    return total / mask.sum().clamp(min=1)


def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_coef: float,
    mask: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, negated to minimise: mean of max(-A r, -A clip(r)).

    weights: per-sample importance weights (decoupled PPO, see the learner),
    multiplying each sample's term; None = 1.

    Also returns detached diagnostics: approx_kl (the unbiased (r - 1) - log r
    estimator), old_approx_kl (-log r) and clipfrac (share of |r - 1| > clip).
    """
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)
    surrogate = torch.maximum(unclipped, clipped)
    if weights is not None:
        surrogate = weights * surrogate
    loss = masked_mean(surrogate, mask)
    with torch.no_grad():
        stats = {
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "old_approx_kl": masked_mean(-log_ratio, mask),
            "clipfrac": masked_mean(((ratio - 1.0).abs() > clip_coef).float(), mask),
        }
    return loss, stats


def regression_loss(error: torch.Tensor, huber_delta: float | None) -> torch.Tensor:
    """Elementwise 0.5 * error^2, or Huber with threshold delta.

    The squared loss carries the 0.5 so Huber equals it exactly inside
    |error| <= delta and grows only linearly (slope delta) beyond.
    """
    if huber_delta is None:
        return 0.5 * error.square()
    abs_err = error.abs()
    return torch.where(
        abs_err <= huber_delta,
        0.5 * error.square(),
        huber_delta * (abs_err - 0.5 * huber_delta),
    )


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    value_clip: float | None,
    huber_delta: float | None,
) -> torch.Tensor:
    """Critic loss; with value_clip, the max of the loss at the new prediction and
    at the prediction clipped to old +- value_clip (PPO's pessimistic clipping)."""
    loss = regression_loss(targets - values, huber_delta)
    if value_clip is not None:
        clipped = old_values + (values - old_values).clamp(-value_clip, value_clip)
        loss = torch.maximum(loss, regression_loss(targets - clipped, huber_delta))
    return masked_mean(loss, mask)


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 - Var(target - predicted) / Var(target): 1 is perfect, <= 0 is useless."""
    var_target = float(np.var(target))
    if var_target == 0.0 or target.size == 0:
        return float("nan")
    return 1.0 - float(np.var(target - predicted)) / var_target
