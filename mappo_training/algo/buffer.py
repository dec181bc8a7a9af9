"""The rollout buffer: T steps of E arenas x N robots, then GAE over them.

Storage is numpy (what the simulator hands over each step); the learner turns
the finished batch into tensors once per update, so `add` costs a few copies.

Index convention: row t holds what the robots saw and did at step t and what
that step earned: obs[t] -> actions[t] -> rewards[t], terminated[t] ...
`active[t]` says whether a robot was still acting at step t (a robot that
arrives at step t is active at t and inactive from t+1 until its arena resets).
"""

from __future__ import annotations

import numpy as np

from mappo_training.algo.gae import compute_gae


class RolloutBuffer:
    """Fixed-size storage for one batch of on-policy experience."""

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        num_agents: int,
        *,
        obs_dim: int,
        state_dim: int,
        act_dim: int,
    ) -> None:
        sizes = {
            "num_steps": num_steps,
            "num_envs": num_envs,
            "num_agents": num_agents,
            "obs_dim": obs_dim,
            "state_dim": state_dim,
            "act_dim": act_dim,
        }
        for key, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"RolloutBuffer: {key}={value!r} must be an integer >= 1")
        T, E, N = num_steps, num_envs, num_agents
        self.num_steps, self.num_envs, self.num_agents = T, E, N
        self.obs_dim, self.state_dim, self.act_dim = obs_dim, state_dim, act_dim
        f32 = np.float32
        self.obs = np.zeros((T, E, N, obs_dim), f32)
        self.state = np.zeros((T, E, N, state_dim), f32)
        self.actions = np.zeros((T, E, N, act_dim), f32)
        self.logp = np.zeros((T, E, N), f32)
        self.values = np.zeros((T, E, N), f32)
        self.rewards = np.zeros((T, E, N), f32)
        self.terminated = np.zeros((T, E, N), bool)
        self.truncated = np.zeros((T, E), bool)
        self.active = np.ones((T, E, N), bool)
        self.bootstrap_values = np.zeros((T, E, N), f32)
        self.advantages = np.zeros((T, E, N), f32)
        self.returns = np.zeros((T, E, N), f32)
        self._filled = np.zeros(T, bool)
        self.ready = False
        """True once returns and advantages match the stored steps."""

    def add(
        self,
        t: int,
        *,
        obs: np.ndarray,
        state: np.ndarray,
        actions: np.ndarray,
        logp: np.ndarray,
        values: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        active: np.ndarray | None = None,
        bootstrap_values: np.ndarray | None = None,
    ) -> None:
        """Store step t of every arena.

        obs (E,N,D); state (E,N,S), or (E,S) when every robot's critic sees the
        same state; actions (E,N,A); logp, values, rewards (E,N); terminated
        (E,) for the arena or (E,N) per robot; truncated (E,); active (E,N)
        (None = all active); bootstrap_values (E,N) = V(final state) of arenas
        truncated at t (None = zeros, fine when nothing was truncated).
        """
        if not 0 <= t < self.num_steps:
            raise IndexError(f"RolloutBuffer.add: step t={t} outside [0, {self.num_steps})")
        E, N = self.num_envs, self.num_agents
        state = np.asarray(state)
        if state.shape == (E, self.state_dim):
            state = np.broadcast_to(state[:, None, :], (E, N, self.state_dim))
        terminated = np.asarray(terminated, dtype=bool)
        if terminated.shape == (E,):
            terminated = np.broadcast_to(terminated[:, None], (E, N))
        rows = (
            ("obs", self.obs, obs, (E, N, self.obs_dim)),
            ("state", self.state, state, (E, N, self.state_dim)),
            ("actions", self.actions, actions, (E, N, self.act_dim)),
            ("logp", self.logp, logp, (E, N)),
            ("values", self.values, values, (E, N)),
            ("rewards", self.rewards, rewards, (E, N)),
            ("terminated", self.terminated, terminated, (E, N)),
            ("truncated", self.truncated, truncated, (E,)),
            ("active", self.active, True if active is None else active, (E, N)),
            ("bootstrap_values", self.bootstrap_values, 0.0 if bootstrap_values is None
             else bootstrap_values, (E, N)),
        )  # fmt: skip
        for name, store, value, shape in rows:
            # Exact shapes only (scalars aside): silent broadcasting of, say, an
            # (N,) array over arenas would hide a bug in the training loop.
            if np.ndim(value) and np.shape(value) != shape:
                raise ValueError(
                    f"RolloutBuffer.add: {name} has shape {np.shape(value)}, expected {shape}"
                    " (E arenas, N robots)"
                )
            store[t] = value
        self._filled[t] = True
        self.ready = False

    def compute_returns_and_advantages(
        self,
        last_values: np.ndarray,
        gamma: float,
        lam: float,
        last_active: np.ndarray | None = None,
    ) -> None:
        """GAE over the stored steps; returns = raw advantages + values.

        last_values (E,N): V of the states after the last step (denormalised).
        last_active (E,N): which robots still act after the last step; when
        given, a robot that stopped at the last step is treated like one that
        stopped mid-rollout (see below). None = assume they still act.

        A robot that goes from active to inactive inside an episode (it
        arrived) ends its own episode there: its later rows are masked out of
        the losses, so their values are never trained and must not be
        bootstrapped from, nor may their rewards leak back into its advantage.
        """
        missing = np.flatnonzero(~self._filled)
        if missing.size:
            raise RuntimeError(
                f"RolloutBuffer: steps {missing.tolist()[:10]} were never added;"
                f" fill all {self.num_steps} steps before computing returns"
            )
        last_values = np.asarray(last_values, dtype=np.float32)
        for name, arr in (
            ("rewards", self.rewards),
            ("values", self.values),
            ("last_values", last_values),
        ):
            if not np.all(np.isfinite(arr)):
                where = np.argwhere(~np.isfinite(arr))[0].tolist()
                raise ValueError(f"RolloutBuffer: {name} is not finite at index {where}")
        arena_ended = self.terminated | self.truncated[..., None]
        next_active = np.empty_like(self.active)
        next_active[:-1] = self.active[1:]
        next_active[-1] = True if last_active is None else np.asarray(last_active, dtype=bool)
        robot_stopped = self.active & ~next_active & ~arena_ended
        self.advantages = compute_gae(
            self.rewards,
            self.values,
            self.terminated | robot_stopped,
            self.truncated,
            self.bootstrap_values,
            last_values,
            gamma,
            lam,
        )
        self.returns = self.advantages + self.values
        self.ready = True
