"""One rollout: collecting it with a fixed policy, then its value targets.

Collection needs only the actors, never the critic: the critic's values for
every step are computed afterwards in one batched pass (`compute_targets`),
just before the update that uses them. That split is what lets the trainer
collect the next rollout with a frozen copy of the actors while the learner is
still updating on this one: acting and learning then run on both cores at
once. With simulator workers each worker acts for its own arenas
(`remote_rollout`), so the workers never wait for each other or for the
learner; without them the update runs in a thread (`BackgroundUpdate`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the learner imports torch; this module must not, eagerly
    from mappo_training.algo import AlgoConfig, MAPPOLearner, RolloutBuffer
    from mappo_training.batched_env import ActionSpec, BatchedEnv

# What a checkpoint keeps of a collected rollout whose update has not run yet.
# Values, advantages and returns are left out: compute_targets remakes them.
_STORED = ("obs", "state", "actions", "logp", "rewards", "terminated", "truncated", "active")


@dataclass
class Rollout:
    """A filled buffer plus what GAE needs beyond it.

    finals: for each step t at which arenas hit the time limit, (t, those
    arenas, their final state, their final obs), whose values bootstrap the
    truncated returns. last_obs / last_state: what the robots see after the
    last step, whose values bootstrap the rollout's end.
    """

    buffer: RolloutBuffer
    finals: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    last_obs: np.ndarray | None = None
    last_state: np.ndarray | None = None
    stale: bool = False
    """Collected by a frozen copy of the actors one update older than the learner's."""

    def state_dict(self) -> dict[str, Any]:
        """The rollout's arrays, not copies: callers pickle or save it at once."""
        return {
            "buffer": {name: getattr(self.buffer, name) for name in _STORED},
            "finals": list(self.finals),
            "last_obs": self.last_obs,
            "last_state": self.last_state,
            "stale": self.stale,
        }

    def load_parts(self, parts: list[dict[str, Any]], offsets: list[int]) -> None:
        """Fill this rollout from workers' `state_dict()`s of consecutive arena
        slices (worker w's arenas start at offsets[w])."""
        for name in _STORED:
            getattr(self.buffer, name)[...] = np.concatenate(
                [part["buffer"][name] for part in parts], axis=1
            )
        self.buffer._filled[:] = True
        self.buffer.ready = False
        self.finals = [
            (t, arenas + offset, s, o)
            for part, offset in zip(parts, offsets, strict=True)
            for t, arenas, s, o in part["finals"]
        ]
        self.last_obs = np.concatenate([part["last_obs"] for part in parts], axis=0)
        self.last_state = np.concatenate([part["last_state"] for part in parts], axis=0)
        self.stale = parts[0]["stale"]

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.load_parts([data], [0])


def collect(
    env: BatchedEnv,
    learner: MAPPOLearner,
    rollout: Rollout,
    obs,
    state,
    actors,
    on_episodes,
    *,
    stale: bool,
    generator=None,
) -> tuple:
    """Step every arena rollout.buffer.num_steps times with `actors`; returns (obs, state) after.

    actors: the learner's own actors, or (stale=True) a frozen copy while the
    learner updates in the background. generator: the action noise's RNG
    (None: the learner's own). on_episodes receives each step's finished
    episodes (the progress statistics).
    """
    buf = rollout.buffer
    rollout.finals, rollout.stale = [], stale
    for t in range(buf.num_steps):
        actions, logp = learner.act(obs, actors=actors, generator=generator)
        next_obs, next_state, reward, terminated, truncated, info = env.step(actions)
        if truncated.any():
            ended = np.flatnonzero(truncated)
            rollout.finals.append(
                (t, ended, np.array(info["final_state"][ended]), np.array(info["final_obs"][ended]))
            )
        buf.add(
            t,
            obs=obs,
            state=state,
            actions=actions,
            logp=logp,
            values=0.0,  # filled by compute_targets
            rewards=reward,
            # A robot that arrives ends its own episode (no bootstrap past it),
            # even on the rollout's last step.
            terminated=terminated[:, None] | info["arrived"],
            truncated=truncated,
            active=info["active"],
        )
        on_episodes(info.get("episodes", []))
        obs, state = next_obs, next_state
    # Copies: an environment may hand out the same arrays again next step, and
    # with overlap these are read only after the next rollout has begun.
    rollout.last_obs, rollout.last_state = np.array(obs), np.array(state)
    return obs, state


@dataclass
class ActingSpec:
    """What a simulator worker needs to act for the run: the shape of its actors."""

    algo: AlgoConfig
    obs_dims: list[int]
    action_specs: list[ActionSpec]
    state_dim: int
    matmul_precision: str = "highest"


def remote_rollout(env: BatchedEnv, cache: dict, request: dict[str, Any]) -> dict[str, Any]:
    """Worker side (vec_env): collect one rollout of this worker's arenas.

    The request carries everything: the actors' weights (as numpy, so nothing
    is shared with the learner's live tensors), the sampling RNG state, the
    observations to start from and the step count. The reply is the rollout's
    `state_dict()`, the finished episodes and the RNG state after. The worker
    itself keeps no state between rollouts but its simulator.
    """
    import torch

    from mappo_training.algo import MAPPOLearner, RolloutBuffer

    spec: ActingSpec = request["spec"]
    if cache.get("spec") != spec:
        torch.set_num_threads(1)
        torch.set_float32_matmul_precision(spec.matmul_precision)
        cache["learner"] = MAPPOLearner(
            spec.algo, spec.obs_dims, spec.action_specs, spec.state_dim, device="cpu", seed=0
        )
        cache["spec"] = spec
    learner = cache["learner"]
    learner.actors.load_state_dict({k: torch.from_numpy(v) for k, v in request["actors"].items()})
    generator = torch.Generator()
    generator.set_state(torch.from_numpy(request["rng"]))
    rollout = Rollout(
        RolloutBuffer(
            request["steps"],
            env.num_arenas,
            env.num_robots,
            obs_dim=env.obs_dim,
            state_dim=env.state_dim,
            act_dim=env.action_dim,
        )
    )
    episodes: list[dict] = []
    collect(
        env,
        learner,
        rollout,
        request["obs"],
        request["state"],
        None,
        episodes.extend,
        stale=request["stale"],
        generator=generator,
    )
    return {
        "rollout": rollout.state_dict(),
        "episodes": episodes,
        "rng": generator.get_state().numpy(),
    }


def actor_weights(learner) -> dict[str, np.ndarray]:
    """The actors' weights as numpy copies, for a rollout request."""
    return {k: v.detach().cpu().numpy().copy() for k, v in learner.actors.state_dict().items()}


def compute_targets(learner, rollout: Rollout, gamma: float, lam: float) -> None:
    """The current critic's values for every stored step, then GAE returns and advantages."""
    buf = rollout.buffer
    T, E, N = buf.num_steps, buf.num_envs, buf.num_agents
    flat_state = buf.state.reshape(T * E, N, buf.state_dim)
    flat_obs = buf.obs.reshape(T * E, N, buf.obs_dim)
    buf.values[...] = learner.value(flat_state, flat_obs).reshape(T, E, N)
    buf.bootstrap_values[...] = 0.0
    for t, ended, final_state, final_obs in rollout.finals:
        buf.bootstrap_values[t, ended] = learner.value(final_state, final_obs)
    last_values = learner.value(rollout.last_state, rollout.last_obs)
    buf.compute_returns_and_advantages(last_values=last_values, gamma=gamma, lam=lam)


class BackgroundUpdate:
    """Run one update in a thread while the caller collects; `with` joins it.

    Torch releases the GIL inside its kernels, so the update's arithmetic and
    the collecting thread (mostly waiting on simulator workers) overlap. An
    exception in the update is raised again in the caller after the join.
    """

    def __init__(self, update) -> None:
        self._update = update
        self._result: dict[str, float] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ppo-update", daemon=True)

    def _run(self) -> None:
        try:
            self._result = self._update()
        except BaseException as err:  # re-raised in the caller's thread
            self._error = err

    def __enter__(self) -> BackgroundUpdate:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # Always wait: nothing may read or save the learner mid-update.
        self._thread.join()

    def result(self) -> dict[str, float]:
        if self._thread.is_alive():
            raise RuntimeError("BackgroundUpdate.result() before the update finished")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result
