"""The swarm task as a PettingZoo ParallelEnv."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("pettingzoo", reason="needs pettingzoo: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.sim import SimConfig, SwarmParallelEnv


def test_passes_the_pettingzoo_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    env = SwarmParallelEnv(SimConfig(num_robots=3, max_steps=40), seed=0)
    try:
        parallel_api_test(env, num_cycles=120)
    finally:
        env.close()


@pytest.mark.parametrize("state_mode", ["global", "agent_specific"])
def test_state_is_the_flat_global_state(state_mode):
    env = SwarmParallelEnv(SimConfig(num_robots=3, state_mode=state_mode), seed=1)
    try:
        env.reset(seed=1)
        state = env.state()
        assert state.shape == env.state_space.shape == (9 * 3,)
        assert env.state_space.contains(state)
    finally:
        env.close()


def test_every_agent_gets_the_team_reward_and_all_leave_together():
    env = SwarmParallelEnv(SimConfig(num_robots=3, max_steps=6), seed=2)
    try:
        observations, infos = env.reset(seed=2)
        assert env.agents == ["robot_0", "robot_1", "robot_2"]
        for step in range(6):
            actions = {a: env.action_space(a).sample() for a in env.agents}
            _, rewards, terminations, truncations, infos = env.step(actions)
            assert len(set(rewards.values())) == 1
            if step < 5:
                assert env.agents == ["robot_0", "robot_1", "robot_2"]
        assert all(truncations.values()) and env.agents == []
        assert infos["robot_0"]["episode"]["length"] == 6
    finally:
        env.close()


def test_rgb_render_draws_the_episode_so_far():
    env = SwarmParallelEnv(SimConfig(num_robots=2), seed=3, render_mode="rgb_array")
    try:
        env.reset(seed=3)
        env.step({a: np.array([1.0, 0.0], np.float32) for a in env.agents})
        frame = env.render()
        assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
        assert frame.std() > 0
    finally:
        env.close()
