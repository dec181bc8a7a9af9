"""GAE and the rollout buffer against advantages worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.algo import RolloutBuffer, compute_gae

GAMMA, LAM = 0.9, 0.5  # gamma * lambda = 0.45

# One arena, one robot, five steps: a termination at t=1, a truncation at t=3.
REWARDS = [1.0, 0.0, 2.0, 1.0, 0.5]
VALUES = [0.5, 1.0, 0.2, 0.4, 0.6]
TERMINATED = [False, True, False, False, False]
TRUNCATED = [False, False, False, True, False]
BOOTSTRAP = [9.9, 9.9, 9.9, 3.0, 9.9]  # read only at t=3 (9.9 = must be ignored)
LAST_VALUE = 2.0
# By hand:
#   d4 = 0.5 + 0.9 * 2.0 - 0.6 = 1.7            (last step: bootstrap from last_values)
#   d3 = 1.0 + 0.9 * 3.0 - 0.4 = 3.3            (truncated: V(final state) = 3.0, not V4)
#   d2 = 2.0 + 0.9 * 0.4 - 0.2 = 2.16
#   d1 = 0.0 + 0            - 1.0 = -1.0        (terminated: nothing to bootstrap)
#   d0 = 1.0 + 0.9 * 1.0 - 0.5 = 1.4
#   A4 = 1.7;  A3 = 3.3 (episode ended);  A2 = 2.16 + 0.45 * 3.3 = 3.645
#   A1 = -1.0 (episode ended);  A0 = 1.4 + 0.45 * -1.0 = 0.95
EXPECTED_ADV = [0.95, -1.0, 3.645, 3.3, 1.7]
EXPECTED_RETURNS = [1.45, 0.0, 3.845, 3.7, 2.3]  # raw advantages + values


def column(values, dtype=np.float32):
    return np.asarray(values, dtype=dtype).reshape(5, 1, 1)


def test_gae_handles_a_termination_and_a_truncation_inside_the_rollout():
    adv = compute_gae(
        column(REWARDS),
        column(VALUES),
        column(TERMINATED, bool),
        column(TRUNCATED, bool),
        column(BOOTSTRAP),
        np.full((1, 1), LAST_VALUE, np.float32),
        GAMMA,
        LAM,
    )
    np.testing.assert_allclose(adv.ravel(), EXPECTED_ADV, rtol=1e-6)


def fill(buf: RolloutBuffer, rewards, values, terminated, truncated, bootstrap, active=None):
    E, N = buf.num_envs, buf.num_agents
    for t in range(buf.num_steps):
        buf.add(
            t,
            obs=np.zeros((E, N, buf.obs_dim), np.float32),
            state=np.zeros((E, buf.state_dim), np.float32),
            actions=np.zeros((E, N, buf.act_dim), np.float32),
            logp=np.zeros((E, N), np.float32),
            values=values[t],
            rewards=rewards[t],
            terminated=terminated[t],
            truncated=truncated[t],
            active=None if active is None else active[t],
            bootstrap_values=bootstrap[t],
        )


def test_buffer_returns_are_raw_advantages_plus_values():
    buf = RolloutBuffer(5, 1, 1, obs_dim=3, state_dim=2, act_dim=2)
    fill(
        buf,
        column(REWARDS),
        column(VALUES),
        np.array(TERMINATED).reshape(5, 1),  # per arena, (E,)
        np.array(TRUNCATED).reshape(5, 1),
        column(BOOTSTRAP),
    )
    buf.compute_returns_and_advantages(np.full((1, 1), LAST_VALUE), GAMMA, LAM)
    np.testing.assert_allclose(buf.advantages.ravel(), EXPECTED_ADV, rtol=1e-6)
    # Not (normalised advantages + values): normalisation is the learner's job.
    np.testing.assert_allclose(buf.returns.ravel(), EXPECTED_RETURNS, rtol=1e-6)


def test_an_arena_end_ends_every_robot_in_it():
    rewards = np.stack([column(REWARDS)[:, 0, 0], np.ones(5)], axis=1)[:, None, :]
    values = np.stack([column(VALUES)[:, 0, 0], np.zeros(5)], axis=1)[:, None, :]
    adv = compute_gae(
        rewards,
        values,
        np.array(TERMINATED).reshape(5, 1),  # (T, E): broadcast over the robots
        np.array(TRUNCATED).reshape(5, 1),
        np.stack([column(BOOTSTRAP)[:, 0, 0], np.zeros(5)], axis=1)[:, None, :],
        np.array([[LAST_VALUE, 0.0]]),
        GAMMA,
        LAM,
    )
    np.testing.assert_allclose(adv[:, 0, 0], EXPECTED_ADV, rtol=1e-6)
    # Robot 1: reward 1 each step, V = 0. Its episodes are [0, 1], [2, 3], [4]:
    # t=1 terminated -> 1; t=0 -> 1 + 0.45 * 1 = 1.45; t=3 truncated with
    # bootstrap 0 -> 1; t=2 -> 1.45; t=4 -> 1 + 0.9 * 0 = 1.
    np.testing.assert_allclose(adv[:, 0, 1], [1.45, 1.0, 1.45, 1.0, 1.0], rtol=1e-6)


def test_a_robot_that_arrives_ends_its_own_episode():
    """After arriving a robot is masked out; what is stored for it afterwards
    (stale values, rewards of the team) must not leak into its advantages."""
    T = 4
    terminated = np.zeros((T, 1), bool)
    truncated = np.zeros((T, 1), bool)
    active = np.array([[1, 1], [1, 0], [1, 0], [1, 0]], bool).reshape(T, 1, 2)
    rewards = np.full((T, 1, 2), 1.0, np.float32)
    values = np.full((T, 1, 2), 0.5, np.float32)

    def advantages(garbage: float) -> np.ndarray:
        r, v = rewards.copy(), values.copy()
        r[1:, 0, 1] = garbage  # robot 1 is inactive from t = 1 on
        v[1:, 0, 1] = garbage
        buf = RolloutBuffer(T, 1, 2, obs_dim=1, state_dim=1, act_dim=1)
        fill(buf, r, v, terminated, truncated, np.zeros((T, 1, 2)), active)
        buf.compute_returns_and_advantages(np.zeros((1, 2)), GAMMA, LAM)
        return buf.advantages

    clean, dirty = advantages(0.0), advantages(1e6)
    # Robot 1 arrived at t=0: A0 = r0 - V0 = 1 - 0.5, no bootstrap from its stale rows.
    assert clean[0, 0, 1] == pytest.approx(0.5)
    assert dirty[0, 0, 1] == pytest.approx(0.5)
    np.testing.assert_array_equal(clean[:, 0, 0], dirty[:, 0, 0])  # robot 0 untouched


def test_buffer_refuses_missing_steps_wrong_shapes_and_nan():
    buf = RolloutBuffer(3, 2, 2, obs_dim=4, state_dim=5, act_dim=2)
    with pytest.raises(RuntimeError, match=r"steps \[0, 1, 2\] were never added"):
        buf.compute_returns_and_advantages(np.zeros((2, 2)), GAMMA, LAM)
    with pytest.raises(ValueError, match=r"obs has shape \(2, 4\), expected \(2, 2, 4\)"):
        buf.add(
            0,
            obs=np.zeros((2, 4)),
            state=np.zeros((2, 5)),
            actions=np.zeros((2, 2, 2)),
            logp=np.zeros((2, 2)),
            values=np.zeros((2, 2)),
            rewards=np.zeros((2, 2)),
            terminated=np.zeros(2, bool),
            truncated=np.zeros(2, bool),
        )
    rewards = np.zeros((3, 2, 2))
    rewards[1, 0, 1] = np.nan
    fill(buf, rewards, np.zeros((3, 2, 2)), np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match=r"rewards is not finite at index \[1, 0, 1\]"):
        buf.compute_returns_and_advantages(np.zeros((2, 2)), GAMMA, LAM)
