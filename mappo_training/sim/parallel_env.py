"""One arena of the swarm task as a PettingZoo ParallelEnv.

For tools that speak PettingZoo (and for checking the task against its API
test); training uses the batched env directly. Agents are "robot_0" ...
"robot_{N-1}". Every agent gets its reward (the team reward by default). The team finishes together:
robots that arrived early stay in `agents` (parked) until the episode ends,
then every agent is terminated or truncated at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from mappo_training.sim.config import SimConfig, load_sim_config
from mappo_training.sim.env import BatchedSwarmEnv
from mappo_training.sim.recording import EpisodeRecorder


class SwarmParallelEnv(ParallelEnv):
    """The swarm navigation task, one arena, PettingZoo parallel API."""

    metadata = {"render_modes": ["rgb_array"], "name": "swarm_nav_v0", "is_parallelizable": True}

    def __init__(
        self,
        cfg: SimConfig | dict[str, Any] | str | None = None,
        seed: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}: must be None or 'rgb_array'")
        self.cfg = load_sim_config(cfg)
        self.render_mode = render_mode
        self._env = BatchedSwarmEnv(self.cfg, num_arenas=1, seed=seed)
        self.contract = self._env.contract
        self.possible_agents = [f"robot_{i}" for i in range(self._env.num_robots)]
        self.agents: list[str] = []
        # Every observation feature and every state feature lies in [-1, 1].
        self._observation_space = spaces.Box(-1.0, 1.0, (self._env.obs_dim,), np.float32)
        self._action_space = spaces.Box(-1.0, 1.0, (self._env.action_dim,), np.float32)
        self.state_space = spaces.Box(-1.0, 1.0, (self._env.global_state_dim,), np.float32)
        self._state = np.zeros(self._env.global_state_dim, dtype=np.float32)
        self._recorder: EpisodeRecorder | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Box:
        return self._action_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, state = self._env.reset(seed=seed)
        self.agents = list(self.possible_agents)
        self._keep_state(state)
        self._recorder = EpisodeRecorder(self._env, 0) if self.render_mode else None
        return self._per_agent(obs[0]), {a: {} for a in self.agents}

    def step(self, actions: dict[str, np.ndarray]):
        if not self.agents:
            raise RuntimeError("the episode is over: call reset()")
        batch = np.zeros((1, len(self.possible_agents), 2), dtype=np.float32)
        for i, agent in enumerate(self.possible_agents):
            if agent in actions:
                batch[0, i] = actions[agent]
        obs, state, reward, terminated, truncated, info = self._env.step(batch)
        if self._recorder is not None:
            self._recorder.add(info)
        ended = bool(terminated[0] or truncated[0])
        if ended:
            # The batched env has already started the next episode; report the last one.
            obs, state = info["final_obs"], info["final_state"]
        self._keep_state(state)
        agents = self.agents
        observations = self._per_agent(obs[0])
        rewards = {a: float(reward[0, i]) for i, a in enumerate(agents)}
        terminations = {a: bool(terminated[0]) for a in agents}
        truncations = {a: bool(truncated[0]) for a in agents}
        infos = {
            a: {
                "arrived": bool(info["arrived"][0, i]),
                "collided": bool(info["collided"][0, i]),
                "active": bool(info["active"][0, i]),
            }
            for i, a in enumerate(agents)
        }
        if ended:
            for a in agents:
                infos[a]["episode"] = info["episodes"][0]
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The global state (every robot's pose, velocity, goal, arrived flag), flat."""
        return self._state.copy()

    def render(self) -> np.ndarray | None:
        """Top-down picture of the episode so far (render_mode="rgb_array")."""
        if self.render_mode is None or self._recorder is None:
            return None
        from mappo_training.sim import render

        return render.episode_rgb(self._recorder.recording())

    def close(self) -> None:
        self._env.close()

    def _keep_state(self, state: np.ndarray) -> None:
        # Global part of the critic state (same for every robot in either mode).
        start = self._env.obs_dim if self.cfg.state_mode == "agent_specific" else 0
        self._state = state[0, 0, start : start + self._env.global_state_dim].copy()

    def _per_agent(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {a: obs[i] for i, a in enumerate(self.possible_agents)}
