"""Static obstacles and the 2-D contact tests between robots and the world.

Robots are circles, walls are the sides of a square centred on the arena
origin, obstacles are circles (cylinders) or rotated rectangles (boxes). All
tests are batched numpy over arenas and robots, so collision checking costs a
few array operations per step instead of one PyBullet query per pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

MIN_OBSTACLE_SIZE = 0.05
"""Smallest obstacle radius or half-extent in metres. A robot moves at most
max_linear * control_period (0.022 m for a TurtleBot3) per step, so anything
thicker cannot be driven through between two collision checks."""


@dataclass(frozen=True)
class Obstacle:
    """A static obstacle in the arena frame (origin at the arena centre; metres, radians).

    kind "cylinder" uses `radius`; kind "box" uses `half_x`, `half_y` and `yaw`.
    Also the type of SimConfig.obstacles, so it is filled from YAML too.
    """

    kind: Literal["cylinder", "box"] = "cylinder"
    x: float = 0.0
    y: float = 0.0
    radius: float = 0.2
    """Cylinder radius (unused for boxes)."""
    half_x: float = 0.2
    """Box half-length along its own x axis (unused for cylinders)."""
    half_y: float = 0.2
    """Box half-width along its own y axis (unused for cylinders)."""
    yaw: float = 0.0
    """Box rotation about z (unused for cylinders)."""

    def __post_init__(self) -> None:
        if self.kind not in ("cylinder", "box"):
            raise ValueError(f"obstacle kind={self.kind!r}: must be 'cylinder' or 'box'")
        sizes = ("radius",) if self.kind == "cylinder" else ("half_x", "half_y")
        for name in sizes:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= MIN_OBSTACLE_SIZE):
                raise ValueError(
                    f"obstacle {name}={value!r}: must be >= {MIN_OBSTACLE_SIZE} m"
                    " (thinner obstacles could be driven through in one control step)"
                )
        for name in ("x", "y", "yaw"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"obstacle {name}={getattr(self, name)!r}: must be finite")

    @property
    def bounding_radius(self) -> float:
        """Radius of the smallest circle around the obstacle's centre that holds it."""
        if self.kind == "cylinder":
            return self.radius
        return math.hypot(self.half_x, self.half_y)

    def moved(self, rotation: float, dx: float, dy: float) -> Obstacle:
        """This obstacle after rotating the world by `rotation` about the origin, then shifting."""
        c, s = math.cos(rotation), math.sin(rotation)
        return Obstacle(
            kind=self.kind,
            x=c * self.x - s * self.y + dx,
            y=s * self.x + c * self.y + dy,
            radius=self.radius,
            half_x=self.half_x,
            half_y=self.half_y,
            yaw=self.yaw + rotation,
        )

    def clearance(self, xy: np.ndarray) -> np.ndarray:
        """Distance from points (..., 2) to the obstacle's surface (negative inside)."""
        return obstacle_clearance(pack_obstacles([self]), np.asarray(xy, dtype=np.float64))[..., 0]


# Packed obstacle table: one row per obstacle, columns below. Cylinders are
# boxes' cousins here: a cylinder is a "box" of zero size with a rounding
# radius, so one formula (distance to a rounded rectangle) covers both.
_X, _Y, _HX, _HY, _COS, _SIN, _ROUND = range(7)
PACKED_WIDTH = 7


def pack_obstacles(obstacles: list[Obstacle] | tuple[Obstacle, ...]) -> np.ndarray:
    """Obstacles -> (M, 7) float array for the batched clearance test."""
    table = np.zeros((len(obstacles), PACKED_WIDTH))
    for i, o in enumerate(obstacles):
        if o.kind == "cylinder":
            table[i] = (o.x, o.y, 0.0, 0.0, 1.0, 0.0, o.radius)
        else:
            table[i] = (o.x, o.y, o.half_x, o.half_y, math.cos(o.yaw), math.sin(o.yaw), 0.0)
    return table


def obstacle_clearance(table: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Distance from each point to each obstacle's surface.

    table: (..., M, 7) packed obstacles; xy: (..., P, 2) points with the same
    leading dims. Returns (..., P, M); negative means inside the obstacle.
    """
    rel = xy[..., :, None, :] - table[..., None, :, [_X, _Y]]
    cos, sin = table[..., None, :, _COS], table[..., None, :, _SIN]
    # Point in the obstacle's own frame (rotate by -yaw); boxes are symmetric
    # so only the absolute coordinates matter.
    u = np.abs(cos * rel[..., 0] + sin * rel[..., 1]) - table[..., None, :, _HX]
    v = np.abs(-sin * rel[..., 0] + cos * rel[..., 1]) - table[..., None, :, _HY]
    outside = np.hypot(np.maximum(u, 0.0), np.maximum(v, 0.0))
    inside = np.minimum(np.maximum(u, v), 0.0)
    return outside + inside - table[..., None, :, _ROUND]


def wall_clearance(xy: np.ndarray, arena_size: float) -> np.ndarray:
    """Distance from points (..., 2) to the nearest wall of the arena (negative outside)."""
    return arena_size / 2.0 - np.abs(xy).max(axis=-1)


def robot_distances(xy: np.ndarray) -> np.ndarray:
    """Centre distances between robots: (..., N, 2) -> (..., N, N), +inf on the diagonal."""
    diff = xy[..., :, None, :] - xy[..., None, :, :]
    dist = np.hypot(diff[..., 0], diff[..., 1])
    n = xy.shape[-2]
    dist[..., np.arange(n), np.arange(n)] = np.inf
    return dist
