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
    per_robot = (
        weights.progress * progress
        + weights.arrival * arrived
        - weights.robot_collision * robot_collided
        - weights.static_collision * static_collided
        - weights.time * driving
    )
    return per_robot.mean(axis=-1)
