"""A scripted reference for MPE simple_spread: what a trained policy should beat.

Each agent acts from its own observation only, which in simple_spread is

    [self_vel (2), self_pos (2), landmark positions relative to the agent (2N),
     other agents' positions relative to the agent (2(N-1)), communication]

with the other agents in index order, the agent itself left out. The rule:

1. Assignment. Agent j puts itself (at the origin) back at index j among the
   others, so it knows every agent's and every landmark's position in its own
   frame. It then picks the agent-to-landmark matching with the least total
   distance, trying every permutation (N! of them, fine for N <= 7). Distances
   do not depend on the frame, so every agent finds the same matching (barring
   exact ties) without talking, and every landmark gets exactly one agent,
   which is what the reward counts: the sum over landmarks of the nearest
   agent's distance.
2. Steering. A discrete action pushes along one axis (mpe2's order: 0 no-op,
   1 left -x, 2 right +x, 3 down -y, 4 up +y; `_set_action` in
   mpe2/_mpe_utils/simple_env.py). A particle keeps 75% of its velocity each
   0.1 s step, so left alone it still travels 0.4 x its velocity; the agent
   aims at the landmark minus that drift, pushes along the axis with the larger
   remaining error, and does nothing once within `deadband` of it.

With `continuous_actions=True` (a Box(0, 1) per action: mpe2 pushes by
a[right] - a[left] and a[up] - a[down]) the same choice is played as a
one-hot vector, which moves the particle exactly as the discrete action does.

No collision avoidance: the matching sends agents to different landmarks, and
agents only bump on the way or where two landmarks lie closer than two agents'
size (0.3).
"""

from __future__ import annotations

import itertools

import numpy as np

NO_OP, LEFT, RIGHT, DOWN, UP = range(5)
"""mpe2's discrete movement actions, in its order."""

COAST = 0.4
"""Distance a particle still travels per unit of velocity with no push:
dt * (1 + 0.75 + 0.75^2 + ...) = 0.1 / 0.25 (mpe2's dt and damping)."""

MAX_AGENTS = 7
"""Above this, trying every permutation gets slow (8! = 40320 per agent per step)."""


def split_observation(obs: np.ndarray, num_agents: int) -> dict[str, np.ndarray]:
    """One agent's simple_spread observation, (..., obs_dim), as named parts."""
    n = num_agents
    need = 4 + 2 * n + 2 * (n - 1)
    if obs.shape[-1] < need:
        raise ValueError(
            f"observation has {obs.shape[-1]} values, simple_spread with N={n} has at least"
            f" {need}; is this simple_spread, and is N right?"
        )
    lead = obs.shape[:-1]
    return {
        "vel": obs[..., 0:2],
        "pos": obs[..., 2:4],
        "landmarks": obs[..., 4 : 4 + 2 * n].reshape(*lead, n, 2),
        "others": obs[..., 4 + 2 * n : 4 + 2 * n + 2 * (n - 1)].reshape(*lead, n - 1, 2),
    }


def assign_landmarks(agents: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The matching with the least total distance: landmark index for each agent.

    agents: (N, 2), landmarks: (N, 2) positions in any common frame.
    """
    n = len(agents)
    if n > MAX_AGENTS:
        raise ValueError(
            f"{n} agents: the scripted reference tries every matching and stops at"
            f" {MAX_AGENTS}; use N <= {MAX_AGENTS}"
        )
    cost = np.linalg.norm(agents[:, None, :] - landmarks[None, :, :], axis=-1)
    perms = np.array(list(itertools.permutations(range(n))))
    totals = cost[np.arange(n), perms].sum(axis=1)
    return perms[int(np.argmin(totals))]


def steer(to_target: np.ndarray, vel: np.ndarray, deadband: float = 0.02) -> int:
    """The discrete action that brings a particle to a point `to_target` away."""
    error = to_target - COAST * vel
    axis = int(np.argmax(np.abs(error)))
    if abs(error[axis]) < deadband:
        return NO_OP
    if axis == 0:
        return RIGHT if error[0] > 0 else LEFT
    return UP if error[1] > 0 else DOWN


class SpreadReference:
    """Scripted simple_spread actions for a batch of observations (E, N, obs_dim).

    Discrete: (E, N, 1), the action index in column 0 (the adapter's
    convention). continuous=True: (E, N, 5), the chosen action one-hot.
    """

    def __init__(self, num_agents: int, *, continuous: bool = False, deadband: float = 0.02):
        if not 1 <= num_agents <= MAX_AGENTS:
            raise ValueError(f"num_agents={num_agents}: use 1 to {MAX_AGENTS}")
        self.num_agents = num_agents
        self.continuous = continuous
        self.deadband = deadband

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float64)
        e, n, _ = obs.shape
        if n != self.num_agents:
            raise ValueError(
                f"observations for {n} agents, this reference is for {self.num_agents}"
            )
        parts = split_observation(obs, n)
        choice = np.zeros((e, n), np.int64)
        for k in range(e):
            for j in range(n):
                # Every agent in agent j's frame: itself at the origin, at index j.
                agents = np.insert(parts["others"][k, j], j, 0.0, axis=0)
                landmarks = parts["landmarks"][k, j]
                mine = assign_landmarks(agents, landmarks)[j]
                choice[k, j] = steer(landmarks[mine], parts["vel"][k, j], self.deadband)
        if self.continuous:
            return np.eye(5, dtype=np.float32)[choice]
        return choice[..., None].astype(np.float32)
