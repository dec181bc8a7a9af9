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
    wrong_side: np.ndarray | None = None,
    reversing: np.ndarray | None = None,
    present: np.ndarray | None = None,
) -> np.ndarray:
    """Reward of each robot, (K, N): `team_share` of the team mean plus the rest
    of its own terms. team_share=1 is the pure team reward (every robot the same).

    neighbour_gap: (K, N) footprint-to-footprint distance to the nearest other
    robot, for the proximity term. wrong_side: (K, N) in [0, 1] from
    `wrong_side_closeness`, for the keep-right term. reversing: (K, N) in
    [0, 1], backward speed as a share of max_linear, for the reverse term.
    present: (K, N) robots taking part (None: all); the others get 0 and
    the team mean is over those taking part.
    """
    own = (
        weights.progress * progress
        + weights.arrival * arrived
        - weights.robot_collision * robot_collided
        - weights.static_collision * static_collided
        - weights.time * driving
    )
    if weights.proximity and neighbour_gap is not None:
        closeness = np.clip(1.0 - neighbour_gap / weights.proximity_gap, 0.0, 1.0)
        own = own - weights.proximity * closeness * driving
    if weights.keep_right and wrong_side is not None:
        own = own - weights.keep_right * wrong_side * driving
    if weights.reverse and reversing is not None:
        own = own - weights.reverse * reversing * driving
    if present is None:
        team = own.mean(axis=-1, keepdims=True)
        return weights.team_share * team + (1.0 - weights.team_share) * own
    own = own * present
    team = own.sum(axis=-1, keepdims=True) / np.maximum(present.sum(axis=-1, keepdims=True), 1)
    return (weights.team_share * team + (1.0 - weights.team_share) * own) * present


def wrong_side_closeness(poses: np.ndarray, velocities: np.ndarray, reach: float) -> np.ndarray:
    """(K, N) in [0, 1]: for each robot, 1 - d / reach for the nearest neighbour
    it is about to pass on the wrong side, 0 when there is none.

    Wrong side: the neighbour is ahead and to the right (bearing in (-90, 0)
    degrees) and the two are closing (their relative velocity points them
    together). Keeping right leaves oncoming robots on the left.
    poses (K, N, 3) x, y, yaw; velocities (K, N, 2) body-frame linear, angular.
    """
    xy, yaw = poses[..., :2], poses[..., 2]
    heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
    velocity = velocities[..., :1] * heading  # world frame, (K, N, 2)
    offset = xy[..., None, :, :] - xy[..., :, None, :]  # [k, i, j] = p_j - p_i
    dist = np.hypot(offset[..., 0], offset[..., 1])
    bearing = np.arctan2(offset[..., 1], offset[..., 0]) - yaw[..., :, None]
    bearing = (bearing + np.pi) % (2.0 * np.pi) - np.pi
    approach = velocity[..., None, :, :] - velocity[..., :, None, :]
    closing = (approach * offset).sum(axis=-1) < 0.0
    ahead_right = (bearing > -0.5 * np.pi) & (bearing < 0.0)
    closeness = np.clip(1.0 - dist / reach, 0.0, 1.0)
    n = xy.shape[-2]
    closeness[..., np.arange(n), np.arange(n)] = 0.0
    return np.where(ahead_right & closing, closeness, 0.0).max(axis=-1)
