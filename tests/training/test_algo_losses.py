"""PPO's losses against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

import torch

from mappo_training.algo.losses import (
    clipped_policy_loss,
    explained_variance,
    masked_mean,
    regression_loss,
    value_loss,
)

RATIOS = [1.5, 0.5, 1.1, 0.7]
ADVANTAGES = [2.0, 2.0, -1.0, -1.0]
# Per entry, max(-A r, -A clip(r, 0.8, 1.2)):
#   r=1.5, A=2:  max(-3.0, -2.4) = -2.4   (gain capped at the clip)
#   r=0.5, A=2:  max(-1.0, -1.6) = -1.0   (the pessimistic, unclipped term)
#   r=1.1, A=-1: max( 1.1,  1.1) =  1.1   (inside the clip range)
#   r=0.7, A=-1: max( 0.7,  0.8) =  0.8
PER_ENTRY = [-2.4, -1.0, 1.1, 0.8]


def policy_inputs():
    logp = torch.log(torch.tensor(RATIOS)).requires_grad_()
    return logp, torch.zeros(4), torch.tensor(ADVANTAGES)


def test_clipped_policy_loss_matches_hand_computation():
    logp, old_logp, adv = policy_inputs()
    mask = torch.ones(4, dtype=torch.bool)
    loss, stats = clipped_policy_loss(logp, old_logp, adv, 0.2, mask)
    assert loss.item() == pytest.approx(sum(PER_ENTRY) / 4)  # -0.375
    assert stats["clipfrac"].item() == pytest.approx(3 / 4)  # 1.5, 0.5, 0.7 are outside 1 +- 0.2
    kl = np.mean([(r - 1) - math.log(r) for r in RATIOS])
    assert stats["approx_kl"].item() == pytest.approx(kl, rel=1e-5)
    assert stats["old_approx_kl"].item() == pytest.approx(-np.mean(np.log(RATIOS)), rel=1e-5)

    loss.backward()
    # A clipped entry gives no gradient; the others give d(-A r)/d log r / 4 = -A r / 4.
    expected = [0.0, -2.0 * 0.5 / 4, 1.1 / 4, 0.0]
    np.testing.assert_allclose(logp.grad.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_importance_weights_scale_each_entry_and_its_gradient():
    logp, old_logp, adv = policy_inputs()
    mask = torch.ones(4, dtype=torch.bool)
    weights = torch.tensor([2.0, 0.5, 1.0, 3.0])
    loss, _ = clipped_policy_loss(logp, old_logp, adv, 0.2, mask, weights)
    assert loss.item() == pytest.approx((2 * -2.4 + 0.5 * -1.0 + 1.1 + 3 * 0.8) / 4)
    loss.backward()
    expected = [0.0, 0.5 * -2.0 * 0.5 / 4, 1.1 / 4, 0.0]
    np.testing.assert_allclose(logp.grad.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_masked_entries_do_not_count_even_when_they_hold_nan():
    logp, old_logp, adv = policy_inputs()
    adv = adv.clone()
    adv[0] = float("nan")
    mask = torch.tensor([False, True, True, True])
    loss, _ = clipped_policy_loss(logp, old_logp, adv, 0.2, mask)
    assert loss.item() == pytest.approx((-1.0 + 1.1 + 0.8) / 3)
    assert masked_mean(torch.ones(3), torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_value_clipping_matches_hand_computation():
    old = torch.tensor([1.0, 1.0, 0.0])
    new = torch.tensor([2.0, 1.1, -1.0])
    target = torch.tensor([3.0, 0.0, -0.5])
    mask = torch.ones(3, dtype=torch.bool)
    # 0.5 * err^2 at the new value / at the value clipped to old +- 0.2:
    #   1: new 2.0 -> err 1.0 -> 0.5;     clipped 1.2 -> err 1.8 -> 1.62   => 1.62
    #   2: new 1.1 -> err 1.1 -> 0.605;   clipped 1.1 (inside)            => 0.605
    #   3: new -1.0 -> err 0.5 -> 0.125;  clipped -0.2 -> err 0.3 -> 0.045 => 0.125
    clipped = value_loss(new, old, target, mask, value_clip=0.2, huber_delta=None)
    assert clipped.item() == pytest.approx((1.62 + 0.605 + 0.125) / 3)
    plain = value_loss(new, old, target, mask, value_clip=None, huber_delta=None)
    assert plain.item() == pytest.approx((0.5 + 0.605 + 0.125) / 3)


def test_huber_is_mse_for_small_errors_and_linear_for_large_ones():
    error = torch.tensor([0.5, -2.0, 3.0], requires_grad=True)
    huber = regression_loss(error, huber_delta=1.0)
    mse = regression_loss(error, huber_delta=None)
    # 0.5 e^2 = [0.125, 2, 4.5];  Huber(1): 0.5 e^2 inside |e| <= 1, else |e| - 0.5.
    np.testing.assert_allclose(mse.detach().numpy(), [0.125, 2.0, 4.5])
    np.testing.assert_allclose(huber.detach().numpy(), [0.125, 1.5, 2.5])
    huber.sum().backward()
    # An outlier pulls the critic with at most delta, not with its full error.
    np.testing.assert_allclose(error.grad.numpy(), [0.5, -1.0, 1.0])


def test_explained_variance():
    target = np.array([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(target, target) == pytest.approx(1.0)
    assert explained_variance(np.full(4, target.mean()), target) == pytest.approx(0.0)
    # Residuals [0.5, -0.5, 0.5, -0.5]: var 0.25 against var(target) 1.25.
    assert explained_variance(target + [0.5, -0.5, 0.5, -0.5], target) == pytest.approx(0.8)
