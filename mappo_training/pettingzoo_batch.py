"""Run copies of any cooperative PettingZoo ParallelEnv as one batched env.

The trainer speaks arrays shaped (E, N, ...): the `BatchedEnv` interface
(batched_env.py) that our own BatchedSwarmEnv has. This adapter gives that
interface to any ParallelEnv that has `state()`: E copies stepped in turn,
agents in `possible_agents` order, observations zero-padded to the widest
agent (heterogeneous teams), a discrete action carried as its index in column
0, automatic reset, and the final observation and state of an ended episode
kept for bootstrapping.

An ended episode's `return` is the sum over its steps of the mean reward of
the agents that acted in that step: each agent's episode return averaged over
the team when every agent acts to the end (MPE's tasks). Its `success` is
what the env says in the last step's infos (`infos[agent]["success"]` or
`["is_success"]`; the team succeeds when every agent that says one says
True), and None where no agent says one.
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any

import numpy as np

from mappo_training.batched_env import ActionSpec
from swarm_contract.config import ConfigError


def load_factory(spec: str):
    """`package.module:function` -> the function."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"env.factory={spec!r}: cannot import {module_name!r} ({err})") from err
    if not hasattr(module, attr):
        raise ConfigError(f"env.factory={spec!r}: module {module_name!r} has no {attr!r}")
    return getattr(module, attr)


SUCCESS_KEYS = ("success", "is_success")
"""Keys of an agent's info through which an env may report task success."""


def reported_success(infos: dict | None) -> bool | None:
    """The team's success from one step's per-agent infos, None if no agent reports one."""
    said = [
        bool(info[key])
        for info in (infos or {}).values()
        if isinstance(info, dict)
        for key in SUCCESS_KEYS
        if key in info
    ]
    return all(said) if said else None


class ParallelEnvBatch:
    """E copies of a PettingZoo ParallelEnv behind the `BatchedEnv` interface."""

    def __init__(self, factory: str | Any, kwargs: dict | None, num_copies: int, seed: int = 0):
        from gymnasium import spaces

        make = load_factory(factory) if isinstance(factory, str) else factory
        self.envs = [make(**(kwargs or {})) for _ in range(num_copies)]
        first = self.envs[0]
        if not hasattr(first, "state"):
            raise ConfigError(
                f"{type(first).__name__} has no state(): MAPPO's critic needs the global state"
            )
        self.agents = list(first.possible_agents)
        self.num_arenas = num_copies
        self.num_robots = len(self.agents)
        self.obs_dims: list[int] = []
        self.action_specs: list[ActionSpec] = []
        for agent in self.agents:
            obs_space = first.observation_space(agent)
            if not isinstance(obs_space, spaces.Box):
                raise ConfigError(
                    f"agent {agent!r}: observation space {obs_space} is not a Box;"
                    " flatten it (e.g. gymnasium's FlattenObservation idea) before training"
                )
            self.obs_dims.append(int(np.prod(obs_space.shape)))
            act_space = first.action_space(agent)
            if isinstance(act_space, spaces.Discrete):
                self.action_specs.append(ActionSpec(kind="discrete", n=int(act_space.n)))
            elif isinstance(act_space, spaces.Box):
                self.action_specs.append(
                    ActionSpec(
                        kind="box",
                        dim=int(np.prod(act_space.shape)),
                        low=float(np.min(act_space.low)),
                        high=float(np.max(act_space.high)),
                    )
                )
            else:
                raise ConfigError(
                    f"agent {agent!r}: action space {act_space} is not Box or Discrete"
                )
        self.obs_dim = max(self.obs_dims)
        self.action_dim = max(s.dim if s.kind == "box" else 1 for s in self.action_specs)
        self._seed = seed
        first.reset(seed=seed)
        self.state_dim = int(np.asarray(first.state(), dtype=np.float32).size)
        self.contract = None  # not our robots: nothing to export
        self._live = [set() for _ in self.envs]
        self._returns = np.zeros(num_copies)
        self._lengths = np.zeros(num_copies, dtype=int)
        self._episode_seed = seed
        self._picklable: bool | None = None  # found out at the first checkpoint

    # -- checkpoints -------------------------------------------------------- #

    @property
    def supports_snapshot(self) -> bool:
        """Whether a checkpoint can hold these episodes: only if the env pickles.

        Most pure-Python envs do (their RNGs included), so a resumed run
        continues the very episodes it stopped in; one holding a simulator or
        a window does not, and a resumed run starts fresh episodes instead.
        """
        if self._picklable is None:
            try:
                pickle.dumps(self.envs[0])
                self._picklable = True
            except Exception:  # noqa: BLE001 - whatever the env holds that will not pickle
                self._picklable = False
        return self._picklable

    def snapshot(self) -> bytes:
        """The env copies mid-episode and this adapter's bookkeeping, pickled."""
        return pickle.dumps(
            {
                "envs": self.envs,
                "live": self._live,
                "returns": self._returns,
                "lengths": self._lengths,
                "episode_seed": self._episode_seed,
            }
        )

    def restore(self, snapshot: bytes) -> None:
        data = pickle.loads(snapshot)
        if len(data["envs"]) != self.num_arenas:
            raise ValueError(
                f"snapshot holds {len(data['envs'])} env copies, this batch has {self.num_arenas}"
            )
        for env in self.envs:
            env.close()
        self.envs = data["envs"]
        self._live = data["live"]
        self._returns = data["returns"]
        self._lengths = data["lengths"]
        self._episode_seed = data["episode_seed"]

    # -- conversions -------------------------------------------------------- #

    def _obs_array(self, obs_dicts: list[dict]) -> np.ndarray:
        out = np.zeros((self.num_arenas, self.num_robots, self.obs_dim), np.float32)
        for e, obs in enumerate(obs_dicts):
            for i, agent in enumerate(self.agents):
                if agent in obs:
                    flat = np.asarray(obs[agent], np.float32).ravel()
                    out[e, i, : flat.size] = flat
        return out

    def _state_of(self, e: int) -> np.ndarray:
        s = np.asarray(self.envs[e].state(), np.float32).ravel()
        return np.repeat(s[None], self.num_robots, axis=0)

    def _action_dict(self, e: int, actions: np.ndarray) -> dict:
        out = {}
        for i, agent in enumerate(self.agents):
            if agent not in self._live[e]:
                continue
            spec = self.action_specs[i]
            if spec.kind == "discrete":
                out[agent] = int(np.clip(np.rint(actions[e, i, 0]), 0, spec.n - 1))
            else:
                space = self.envs[e].action_space(agent)
                a = np.nan_to_num(actions[e, i, : spec.dim]).reshape(space.shape)
                out[agent] = np.clip(a, space.low, space.high).astype(space.dtype)
        return out

    # -- the batched interface ---------------------------------------------- #

    def _reset_copy(self, e: int) -> dict:
        obs, _ = self.envs[e].reset(seed=self._episode_seed)
        self._episode_seed += 1
        self._live[e] = set(self.envs[e].agents)
        self._returns[e] = 0.0
        self._lengths[e] = 0
        return obs

    def reset(self, seed: int | None = None):
        if seed is not None:
            self._episode_seed = seed
        obs = [self._reset_copy(e) for e in range(self.num_arenas)]
        state = np.stack([self._state_of(e) for e in range(self.num_arenas)])
        return self._obs_array(obs), state

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions, np.float32)
        e_n = (self.num_arenas, self.num_robots)
        reward = np.zeros(e_n, np.float32)
        active = np.zeros(e_n, bool)
        # An agent whose own episode terminated this step (PettingZoo lets agents
        # leave early); the trainer does not bootstrap past it.
        agent_terminated = np.zeros(e_n, bool)
        terminated = np.zeros(self.num_arenas, bool)
        truncated = np.zeros(self.num_arenas, bool)
        next_obs: list[dict] = []
        final_obs = np.zeros((*e_n, self.obs_dim), np.float32)
        final_state = np.zeros((*e_n, self.state_dim), np.float32)
        episodes = []
        for e, env in enumerate(self.envs):
            for i, agent in enumerate(self.agents):
                active[e, i] = agent in self._live[e]
            obs, rew, term, trunc, infos = env.step(self._action_dict(e, actions))
            for i, agent in enumerate(self.agents):
                reward[e, i] = float(rew.get(agent, 0.0))
                if term.get(agent) or trunc.get(agent):
                    agent_terminated[e, i] = bool(term.get(agent)) and agent in self._live[e]
                    self._live[e].discard(agent)
            self._returns[e] += float(np.mean(list(rew.values()))) if rew else 0.0
            self._lengths[e] += 1
            if not self._live[e] or not env.agents:
                terminated[e] = any(term.values()) and not any(trunc.values())
                truncated[e] = not terminated[e]
                final_obs[e] = self._obs_array([obs] + [{}] * (self.num_arenas - 1))[0]
                final_state[e] = self._state_of(e)
                episodes.append(
                    {
                        "arena": e,
                        "return": float(self._returns[e]),
                        "length": int(self._lengths[e]),
                        "success": reported_success(infos),
                        "collisions": 0,
                    }
                )
                obs = self._reset_copy(e)
            next_obs.append(obs)
        state = np.stack([self._state_of(e) for e in range(self.num_arenas)])
        info = {
            "active": active,
            "arrived": agent_terminated,
            "final_obs": final_obs,
            "final_state": final_state,
            "episodes": episodes,
        }
        return self._obs_array(next_obs), state, reward, terminated, truncated, info

    def close(self) -> None:
        for env in self.envs:
            env.close()
