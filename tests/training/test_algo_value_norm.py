"""The value normaliser: exact round trips, statistics that converge, resumable state."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.algo import ValueNormalizer


def test_normalize_undoes_denormalize():
    norm = ValueNormalizer()
    norm.update(np.random.default_rng(0).normal(40.0, 7.0, 1000))
    x = np.linspace(-3.0, 3.0, 13)
    np.testing.assert_allclose(norm.normalize(norm.denormalize(x)), x, atol=1e-12)
    np.testing.assert_allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-12)
    assert norm.normalize(x.astype(np.float32)).dtype == np.float32


def test_statistics_converge_on_a_known_distribution_fed_in_batches():
    rng = np.random.default_rng(1)
    norm = ValueNormalizer()
    for size in [1, 7, 500, 3, 20_000]:  # uneven batches, as death-masked rollouts give
        norm.update(rng.normal(5.0, 2.0, size))
    assert norm.mean == pytest.approx(5.0, abs=0.05)
    assert norm.std == pytest.approx(2.0, abs=0.05)
    # The batched statistics are the statistics of everything seen, exactly.
    everything = np.random.default_rng(1)
    data = np.concatenate([everything.normal(5.0, 2.0, s) for s in [1, 7, 500, 3, 20_000]])
    assert norm.mean == pytest.approx(data.mean(), rel=1e-12)
    assert norm.std == pytest.approx(data.std(), rel=1e-9)


def test_near_constant_targets_are_not_blown_up():
    norm = ValueNormalizer(min_std=0.1)
    norm.update(np.full(100, 3.0) + np.random.default_rng(2).normal(0, 1e-6, 100))
    assert abs(norm.normalize(np.array([3.001]))[0]) < 0.02


def test_state_round_trip_and_bad_targets():
    norm = ValueNormalizer()
    norm.update(np.arange(10.0))
    other = ValueNormalizer()
    other.load_state_dict(norm.state_dict())
    assert (other.mean, other.std) == (norm.mean, norm.std)
    with pytest.raises(ValueError, match="NaN or inf"):
        norm.update(np.array([1.0, np.inf]))
