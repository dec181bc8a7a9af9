"""MAPPO learns: tiny seeded tasks written in numpy, whose return must clearly go up."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

import torch

from mappo_training.algo import ActionSpec, AlgoConfig, MAPPOLearner, RolloutBuffer

SMALL_NETS = {"hidden_sizes": [64, 64]}


# Tiny networks: a second intra-op thread only adds contention on 2 cores.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class MoveToTarget:
    """N robots on a plane, each must drive to its own target (team reward).

    obs_i = target_i - position_i; state = every robot's obs, concatenated.
    A robot that gets within `reach` has arrived: it stops acting (inactive)
    until its arena resets. Episodes end when every robot has arrived
    (terminated) or after `horizon` steps (truncated).
    """

    def __init__(self, num_arenas: int, num_robots: int = 2, horizon: int = 10, seed: int = 0):
        self.E, self.N, self.horizon = num_arenas, num_robots, horizon
        self.rng = np.random.default_rng(seed)
        self.speed, self.reach = 0.25, 0.15
        self.pos = np.zeros((self.E, self.N, 2))
        self.goal = np.zeros((self.E, self.N, 2))
        self.active = np.ones((self.E, self.N), bool)
        self.t = np.zeros(self.E, int)
        self.episode_return = np.zeros(self.E)
        self.finished_returns: list[float] = []
        self._reset(np.ones(self.E, bool))

    def _reset(self, which: np.ndarray) -> None:
        n = int(which.sum())
        self.pos[which] = 0.0
        self.goal[which] = self.rng.uniform(-1.0, 1.0, (n, self.N, 2))
        self.active[which] = True
        self.t[which] = 0
        self.episode_return[which] = 0.0

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        obs = (self.goal - self.pos).astype(np.float32)
        return obs, obs.reshape(self.E, 1, -1).repeat(self.N, axis=1)

    def step(self, actions: np.ndarray):
        was_active = self.active.copy()
        move = np.clip(actions, -1.0, 1.0) * self.speed
        self.pos += np.where(was_active[..., None], move, 0.0)
        dist = np.linalg.norm(self.goal - self.pos, axis=-1)
        team_reward = -dist.mean(axis=1)
        self.active &= dist > self.reach
        self.t += 1
        self.episode_return += team_reward
        terminated = ~self.active.any(axis=1)
        truncated = (self.t >= self.horizon) & ~terminated
        final_obs, final_state = self.observe()
        ended = terminated | truncated
        self.finished_returns += self.episode_return[ended].tolist()
        self._reset(ended)
        rewards = np.repeat(team_reward[:, None], self.N, axis=1).astype(np.float32)
        info = {"active": was_active, "final_obs": final_obs, "final_state": final_state}
        return rewards, terminated, truncated, info


def train(learner: MAPPOLearner, env, updates: int, steps: int) -> None:
    cfg = learner.cfg
    buf = RolloutBuffer(
        steps,
        env.E,
        env.N,
        obs_dim=learner.obs_dim,
        state_dim=learner.state_dim,
        act_dim=learner.act_dim,
    )
    obs, state = env.observe()
    for update in range(updates):
        learner.set_progress(update / updates)
        for t in range(steps):
            actions, logp = learner.act(obs)
            values = learner.value(state, obs)
            rewards, terminated, truncated, info = env.step(actions)
            bootstrap = np.zeros_like(values)
            if truncated.any():
                bootstrap[truncated] = learner.value(
                    info["final_state"][truncated], info["final_obs"][truncated]
                )
            buf.add(
                t,
                obs=obs,
                state=state,
                actions=actions,
                logp=logp,
                values=values,
                rewards=rewards,
                terminated=terminated,
                truncated=truncated,
                active=info["active"],
                bootstrap_values=bootstrap,
            )
            obs, state = env.observe()
        buf.compute_returns_and_advantages(
            learner.value(state, obs), cfg.gamma, cfg.gae_lambda, last_active=env.active
        )
        learner.update(buf)


def deterministic_return(learner: MAPPOLearner, episodes: int = 64, seed: int = 123) -> float:
    env = MoveToTarget(episodes, seed=seed)
    while len(env.finished_returns) < episodes:
        obs, _ = env.observe()
        env.step(learner.act(obs, deterministic=True)[0])
    return float(np.mean(env.finished_returns[:episodes]))


@pytest.mark.parametrize("share_actor", [True, False], ids=["shared", "per_robot"])
def test_robots_learn_to_drive_to_their_targets(share_actor):
    torch.manual_seed(0)
    cfg = AlgoConfig(**SMALL_NETS, epochs=4, actor_lr=1e-3, critic_lr=1e-3, share_actor=share_actor)
    box = ActionSpec(kind="box", dim=2)
    learner = MAPPOLearner(cfg, [2, 2], [box, box], state_dim=4, seed=0)
    before = deterministic_return(learner)
    train(learner, MoveToTarget(32, seed=1), updates=12, steps=20)
    after = deterministic_return(learner)
    # Standing still scores about -7.5; driving straight to the goals about -0.8.
    assert after > before + 5.0, f"return {before:.2f} -> {after:.2f}"


class SignalGame:
    """A one-step cooperative game with discrete actions.

    Both robots see the same signal c in {0, 1, 2} (one-hot). The team scores 1
    only if robot 0 picks c and robot 1 picks (c + 1) % 3, so a shared actor
    must tell the robots apart by their id. Every step is a whole episode.
    """

    def __init__(self, num_arenas: int, seed: int = 0):
        self.E, self.N = num_arenas, 2
        self.rng = np.random.default_rng(seed)
        self.active = np.ones((self.E, self.N), bool)
        self.signal = self.rng.integers(0, 3, self.E)

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        one_hot = np.eye(3, dtype=np.float32)[self.signal]
        obs = np.repeat(one_hot[:, None, :], self.N, axis=1)
        return obs, obs

    def step(self, actions: np.ndarray):
        choice = actions[..., 0].astype(int)
        wins = (choice[:, 0] == self.signal) & (choice[:, 1] == (self.signal + 1) % 3)
        self.signal = self.rng.integers(0, 3, self.E)
        rewards = np.repeat(wins[:, None], self.N, axis=1).astype(np.float32)
        done = np.ones(self.E, bool)
        return rewards, done, ~done, {"active": self.active}


@pytest.mark.parametrize(
    ("share_actor", "agent_id"),
    [(True, "onehot"), (False, "onehot"), (True, "none")],
    ids=["shared_with_id", "per_robot", "shared_without_id"],
)
def test_robots_learn_a_discrete_cooperative_game(share_actor, agent_id):
    cfg = AlgoConfig(
        **SMALL_NETS, epochs=4, actor_lr=1e-3, share_actor=share_actor, agent_id=agent_id
    )
    pick = ActionSpec(kind="discrete", n=3)
    learner = MAPPOLearner(cfg, [3, 3], [pick, pick], state_dim=3, seed=0)
    probe = SignalGame(300, seed=7)

    def win_rate() -> float:
        obs, _ = probe.observe()
        return float(probe.step(learner.act(obs, deterministic=True)[0])[0].mean())

    before = win_rate()
    train(learner, SignalGame(64, seed=1), updates=15, steps=4)
    after = win_rate()
    if share_actor and agent_id == "none":
        # Same observation, same network, no id: both robots always pick alike.
        assert after < 0.05, f"win rate {after:.2f} without robot ids"
    else:
        assert after > 0.9 and after > before + 0.5, f"win rate {before:.2f} -> {after:.2f}"
