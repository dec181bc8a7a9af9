"""Planar poses between a fleet's shared `map` and each robot's own `odom` (REP-105).

A robot's odom frame starts where the robot started: its map->odom transform
is its start pose in map (x, y, yaw). The one implementation of that planar
transform: the policy node brings map goals into odom with it (goals.py), the
sim bridge publishes odometry in the robot's odom frame, and the watcher and
`swarm replay` draw in map. numpy only, no ROS.
"""

from __future__ import annotations

import numpy as np


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def to_odom(origin, pose) -> np.ndarray:
    """`pose` (..., 2 or 3: x, y[, yaw]) given in map, expressed in the odom frame whose
    map pose is `origin` (..., 3)."""
    origin = np.asarray(origin, dtype=np.float64)
    pose = np.asarray(pose, dtype=np.float64)
    c, s = np.cos(origin[..., 2]), np.sin(origin[..., 2])
    dx, dy = pose[..., 0] - origin[..., 0], pose[..., 1] - origin[..., 1]
    out = [c * dx + s * dy, -s * dx + c * dy]
    if pose.shape[-1] >= 3:
        out.append(_wrap(pose[..., 2] - origin[..., 2]))
    return np.stack(out, axis=-1)


def to_map(origin, pose) -> np.ndarray:
    """`pose` (..., 2 or 3) given in the odom frame whose map pose is `origin`, in map."""
    origin = np.asarray(origin, dtype=np.float64)
    pose = np.asarray(pose, dtype=np.float64)
    c, s = np.cos(origin[..., 2]), np.sin(origin[..., 2])
    out = [
        origin[..., 0] + c * pose[..., 0] - s * pose[..., 1],
        origin[..., 1] + s * pose[..., 0] + c * pose[..., 1],
    ]
    if pose.shape[-1] >= 3:
        out.append(_wrap(pose[..., 2] + origin[..., 2]))
    return np.stack(out, axis=-1)
