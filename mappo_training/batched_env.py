"""What the trainer needs from an environment: the `BatchedEnv` protocol.

The trainer, the rollout and the worker pool speak one interface: E arenas of
N robots (agents) stepped as one batch, arrays shaped (E, N, ...). Three
classes implement it: our simulator (`sim.BatchedSwarmEnv`), any PettingZoo
ParallelEnv behind `pettingzoo_batch.ParallelEnvBatch`, and `vec_env.WorkerPool`,
which splits either over processes. `ActionSpec`, the shape of one robot's
action, lives here because the environment declares it and the learner reads it.

This module imports nothing but the standard library, so the simulator can
declare its actions without depending on the learning algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np

    from swarm_contract.robot_io import Contract

ACTION_KINDS = ("box", "discrete")


@dataclass(frozen=True)
class ActionSpec:
    """One robot's action space: a continuous box or a discrete choice.

    In the (E, N, A) action arrays a box action fills the first `dim` columns
    and a discrete action is its integer index stored as float in column 0;
    the remaining columns are zero padding.
    """

    kind: Literal["box", "discrete"] = "box"
    dim: int = 0
    """Box: number of action components."""
    low: float = -1.0
    """Box: lower bound the environment clips to (the policy itself is unbounded)."""
    high: float = 1.0
    """Box: upper bound the environment clips to."""
    n: int = 0
    """Discrete: number of choices."""

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"ActionSpec.kind={self.kind!r}: choose one of {list(ACTION_KINDS)}")
        if self.kind == "box":
            if self.dim < 1:
                raise ValueError(f"ActionSpec(kind='box').dim={self.dim}: must be >= 1")
            if not self.low < self.high:
                raise ValueError(
                    f"ActionSpec(kind='box'): low={self.low} must be below high={self.high}"
                )
        elif self.n < 2:
            raise ValueError(f"ActionSpec(kind='discrete').n={self.n}: need at least 2 choices")

    @property
    def width(self) -> int:
        """Columns this action occupies in the padded action array."""
        return self.dim if self.kind == "box" else 1


class BatchedEnv(Protocol):
    """E arenas of N robots, stepped together; every array leads with (E, N).

    step(actions (E, N, action_dim)) returns (obs, state, reward, terminated,
    truncated, info): obs (E, N, obs_dim), state (E, N, state_dim), reward
    (E, N), terminated and truncated (E,). An ended arena resets inside step;
    info holds "active" and "arrived" (E, N) masks, "final_obs" and
    "final_state" of the arenas that ended (for bootstrapping) and "episodes",
    one dict per ended episode (arena, return, length, success, collisions, ...).
    """

    @property
    def num_arenas(self) -> int:
        """E: arenas (independent episodes) stepped side by side."""
        ...

    @property
    def num_robots(self) -> int:
        """N: robots (agents) per arena, in a fixed order."""
        ...

    @property
    def obs_dims(self) -> list[int]:
        """Each robot's observation width; a narrower one is zero-padded to obs_dim."""
        ...

    @property
    def obs_dim(self) -> int:
        """Width of the observation arrays: the widest robot's."""
        ...

    @property
    def action_specs(self) -> list[ActionSpec]:
        """Each robot's action space."""
        ...

    @property
    def action_dim(self) -> int:
        """Width of the action arrays: the widest action spec's."""
        ...

    @property
    def state_dim(self) -> int:
        """Width of the critic's input per robot."""
        ...

    @property
    def contract(self) -> Contract | None:
        """The robot observation/action contract an exported policy must meet;
        None for an environment that is not our robots (it cannot be exported)."""
        ...

    @property
    def supports_snapshot(self) -> bool:
        """Whether `snapshot()` can capture the episodes in progress, so that a
        resumed run continues them exactly; false: it starts fresh episodes."""
        ...

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Start a new episode in every arena; (obs, state)."""
        ...

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        """One control step of every arena (see the class docstring)."""
        ...

    def snapshot(self) -> Any:
        """The episodes in progress, picklable (only where supports_snapshot)."""
        ...

    def restore(self, snapshot: Any) -> None:
        """Continue from `snapshot()` of an environment built the same way."""
        ...

    def close(self) -> None:
        """Free simulators, windows and worker processes."""
        ...
