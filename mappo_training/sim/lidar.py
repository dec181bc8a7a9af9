"""Simulated 2-D lidar: the rays of many robots cast in PyBullet ray batches.

A scan follows the sensor_msgs/LaserScan convention: ray i points at
angle_min + i * angle_increment in the robot frame (counter-clockwise, 0 =
straight ahead), ranges are metres from the robot centre, +inf where nothing
was hit within range_max. Hits closer than range_min are reported as measured;
robot_io treats them as a real driver's invalid readings.

Rays start `start_offset` metres out from the robot centre (just outside the
robot's own body, which a ray would otherwise hit) and ranges are still
measured from the centre, as a lidar mounted on the robot's axis reports them.
"""

from __future__ import annotations

import gc
import math
from contextlib import contextmanager
from operator import itemgetter

import numpy as np

_FRACTION = itemgetter(2)

CAST_CHUNK = 1024
"""Rays per rayTestBatch call. PyBullet answers with about ten Python objects
per ray (a hit tuple holding two more); in chunks of about a thousand rays they
are freed while still in the CPU cache. Chunks of 16,383 rays (the most
PyBullet takes) cast about 15% slower per ray at 256 arenas (PyBullet 3.2.7)."""


@contextmanager
def paused_gc():
    """Pause Python's cyclic garbage collector for a block.

    rayTestBatch returns several tuples per ray (tens of thousands per step);
    each allocation batch would trigger a collection that scans them all,
    which costs about a fifth of the ray cast. They hold no cycles and are
    freed inside the block, so nothing is left for the collector to find.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def scan_geometry(num_rays: int, angle_min: float = -math.pi) -> tuple[float, float]:
    """(angle_min, angle_increment) of a full 360-degree scan of `num_rays` rays."""
    return angle_min, 2.0 * math.pi / num_rays


class LidarCaster:
    """Casts full scans for many robots at once through `rayTestBatch`.

    Built for one ray count and angle_min: `rays` turns robot poses in the
    physics frame into rays, `cast` casts them in a PyBullet client, `ranges`
    turns hit fractions into LaserScan ranges. The caster holds no client: a
    world may spread its arenas over several.
    """

    def __init__(
        self,
        pybullet_module,
        num_rays: int,
        range_max: float,
        height: float,
        angle_min: float = -math.pi,
        start_offset: float = 0.0,
    ) -> None:
        if num_rays < 1:
            raise ValueError(f"lidar num_rays={num_rays}: must be >= 1")
        self._p = pybullet_module
        self.num_rays = num_rays
        self.range_max = float(range_max)
        self.height = float(height)
        if not 0.0 <= start_offset < range_max:
            raise ValueError(f"lidar start_offset={start_offset}: must be in [0, range_max)")
        self.start_offset = float(start_offset)
        self.angle_min, self.angle_increment = scan_geometry(num_rays, angle_min)
        ray_angles = self.angle_min + self.angle_increment * np.arange(num_rays)
        self._ray_cos, self._ray_sin = np.cos(ray_angles), np.sin(ray_angles)
        # PyBullet refuses batches above MAX_RAY_INTERSECTION_BATCH_SIZE, and for
        # a batch of exactly that size it returns no results at all (checked with
        # 3.2.7: 16384 rays give an empty tuple, 16383 give 16383 hits), so a
        # chunk never reaches it. `swarm bench sim`'s floor casts with the same chunks.
        self.batch_size = min(CAST_CHUNK, int(pybullet_module.MAX_RAY_INTERSECTION_BATCH_SIZE) - 1)
        self._buffers: tuple[np.ndarray, np.ndarray] | None = None

    def rays(self, xy: np.ndarray, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ray start and end points (M * num_rays, 3) for M robots at xy (M, 2), yaw (M,).

        The returned arrays are reused by the next call; copy them to keep them.
        """
        m = len(xy)
        if self._buffers is None or len(self._buffers[0]) < m:
            # Reused between calls: only x and y change, z stays at the lidar height.
            self._buffers = (
                np.full((m, self.num_rays, 3), self.height),
                np.full((m, self.num_rays, 3), self.height),
            )
        starts, ends = self._buffers[0][:m], self._buffers[1][:m]
        # Ray directions in the world: the fixed ray table turned by each yaw.
        cy, sy = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        dx = cy * self._ray_cos - sy * self._ray_sin
        dy = sy * self._ray_cos + cy * self._ray_sin
        x, y = xy[:, 0:1], xy[:, 1:2]
        np.multiply(dx, self.start_offset, out=starts[..., 0])
        np.multiply(dy, self.start_offset, out=starts[..., 1])
        np.multiply(dx, self.range_max, out=ends[..., 0])
        np.multiply(dy, self.range_max, out=ends[..., 1])
        starts[..., 0] += x
        starts[..., 1] += y
        ends[..., 0] += x
        ends[..., 1] += y
        return starts.reshape(-1, 3), ends.reshape(-1, 3)

    def cast(self, starts: np.ndarray, ends: np.ndarray, client: int) -> np.ndarray:
        """Hit fractions along each ray in PyBullet client `client`, 1.0 where nothing was hit."""
        total = len(starts)
        fractions = np.empty(total)
        with paused_gc():
            for first in range(0, total, self.batch_size):
                last = min(first + self.batch_size, total)
                hits = self._p.rayTestBatch(
                    starts[first:last], ends[first:last], physicsClientId=client
                )
                # Each hit is (body, link, fraction, position, normal); a miss has
                # fraction 1.0, so the fractions alone say everything.
                fractions[first:last] = np.fromiter(
                    map(_FRACTION, hits), dtype=np.float64, count=last - first
                )
                del hits
        return fractions

    def ranges(self, fractions: np.ndarray) -> np.ndarray:
        """Ranges from the robot centre for hit fractions along the rays, +inf for a miss."""
        span = self.range_max - self.start_offset
        return np.where(fractions < 1.0, self.start_offset + fractions * span, np.inf)
