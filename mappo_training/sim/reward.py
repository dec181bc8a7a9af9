"""The shared team reward of the navigation task.

Every robot of an arena receives the same reward: the mean over its robots of
each robot's progress, arrival, collision and time terms (weights in
RewardConfig). Averaging keeps the scale independent of the number of robots,
and sharing it makes the task cooperative: a robot that blocks a teammate
loses as much as the teammate.
"""

from __future__ import annotations

import numpy as np

from mappo_training.sim.config import RewardConfig


def robot_rewards(
    weights: RewardConfig,
    progress: np.ndarray,
    arrived: np.ndarray,
    robot_collided: np.ndarray,
    static_collided: np.ndarray,
    driving: np.ndarray,
    neighbour_gap: np.ndarray | None = None,
) -> np.ndarray:
    """Reward of each robot, (K, N): `team_share` of the team mean plus the rest
    of its own terms. team_share=1 is the pure team reward (every robot the same).

    neighbour_gap: (K, N) footprint-to-footprint distance to the nearest other
    robot, for the proximity term.
    """
    own = _terms(weights, progress, arrived, robot_collided, static_collided, driving)
    if weights.proximity and neighbour_gap is not None:
        closeness = np.clip(1.0 - neighbour_gap / weights.proximity_gap, 0.0, 1.0)
        own = own - weights.proximity * closeness * driving
    team = own.mean(axis=-1, keepdims=True)
    return weights.team_share * team + (1.0 - weights.team_share) * own


def team_reward(
    weights: RewardConfig,
    progress: np.ndarray,
    arrived: np.ndarray,
    robot_collided: np.ndarray,
    static_collided: np.ndarray,
    driving: np.ndarray,
) -> np.ndarray:
    """Team reward per arena, (K,), from per-robot terms of one step, (K, N) each.

    progress: metres the robot got closer to its goal (negative if it moved away);
    arrived: reached its goal this step; robot_collided / static_collided: hit a
    robot / a wall or obstacle this step; driving: not parked before this step.
    """
    return _terms(weights, progress, arrived, robot_collided, static_collided, driving).mean(
        axis=-1
    )


def _terms(weights, progress, arrived, robot_collided, static_collided, driving) -> np.ndarray:
    return (
        weights.progress * progress
        + weights.arrival * arrived
        - weights.robot_collision * robot_collided
        - weights.static_collision * static_collided
        - weights.time * driving
    )
