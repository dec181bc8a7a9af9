"""The physical world: K square arenas of N differential-drive robots in PyBullet.

This is the layer the ROS 2 sim bridge drives (the RL task sits on top of it
in `env.py`). Units are SI, frames follow REP-103: x forward, y left, yaw
counter-clockwise. Each arena has its own frame, origin at its centre; the
arenas lie side by side on one grid, far enough apart that no ray leaves one
arena for another.

    world = World(num_arenas=1, num_robots=4, arena_size=4.0)
    world.set_layout(0, layout)              # starts, goals, obstacles (scenarios.py)
    world.set_twists(twists)                 # (K, N, 2) v m/s, w rad/s
    contacts = world.advance()               # one control period
    world.poses(), world.velocities()        # (K, N, 3) x, y, yaw; (K, N, 2) body v, w
    ranges = world.scan(360)                 # (K, N, 360), LaserScan convention
    world.goals(), world.obstacles(arena), world.sim_time

Motion is kinematic: each control period a robot follows the exact arc of its
commanded (v, w). Contacts are decided in numpy on the 2-D footprints (robot
circles, wall lines, obstacle circles and rectangles); a robot whose move would
overlap anything stays where it was (it may still turn in place) and the contact
is reported. PyBullet holds the geometry for the lidar rays (as triangle
meshes, see bodies.py), and a scan casts the rays of every robot in a few
`rayTestBatch` calls. No stepSimulation is needed: nothing in the world has
dynamics.

Arenas are spread over headless PyBullet clients, ARENAS_PER_CLIENT to a
client, so a ray's way through the broadphase tree (which holds every body of
its client) does not grow with K.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mappo_training.sim import bodies
from mappo_training.sim.geometry import (
    obstacle_clearance,
    pack_obstacles,
    robot_distances,
    wall_clearance,
)
from mappo_training.sim.lidar import LidarCaster
from mappo_training.sim.scenarios import ArenaLayout
from swarm_contract import robot_io

ROBOT_HEIGHT = 0.2
LIDAR_HEIGHT = 0.15
WALL_HEIGHT = 0.4
OBSTACLE_HEIGHT = 0.4
_FAR = 1e6  # where padding rows of the obstacle table live

ARENAS_PER_CLIENT = 16
"""Arenas that share one PyBullet client. Bullet finds the bodies a ray may hit
by walking a tree of every body in the client: in one client of 256 arenas a ray
costs 18% more than in one of 16, in 1024 arenas 25% more (PyBullet 3.2.7).
Arenas keep their place on the common grid whichever client holds them, so
every ray and every hit is computed with the same numbers as in one client."""

ABSENT_DISTANCE = 1.0e5
ABSENT_SPACING = 10.0
"""A team smaller than the world's robot slots leaves the spare robots at
(ABSENT_DISTANCE + ABSENT_SPACING * slot, ABSENT_DISTANCE) in their arena's
frame: beyond any ray (the grid of 1024 arenas spans under 1 km at 4 m) and
apart from each other."""

MAX_CLIENTS = 64
"""Clients one world opens at most (PyBullet allows 1024 per process): beyond
MAX_CLIENTS * ARENAS_PER_CLIENT arenas, clients hold more arenas each."""


class Contacts(NamedTuple):
    """Which robots touched something during the last control period, (K, N) each."""

    robot: np.ndarray
    """Hit another robot (both robots of a pair are flagged)."""
    static: np.ndarray
    """Hit a wall or an obstacle."""

    @property
    def any(self) -> np.ndarray:
        return self.robot | self.static


class World:
    """K arenas x N robots, their walls and obstacles, in headless PyBullet clients."""

    def __init__(
        self,
        num_arenas: int,
        num_robots: int,
        arena_size: float,
        profile: robot_io.RobotProfile | None = None,
    ) -> None:
        import pybullet

        self.profile = profile or robot_io.load_profile()
        if num_arenas < 1 or num_robots < 1:
            raise ValueError(
                f"World needs num_arenas >= 1 and num_robots >= 1,"
                f" got num_arenas={num_arenas}, num_robots={num_robots}"
            )
        if not arena_size > 2 * self.profile.radius:
            raise ValueError(
                f"arena_size={arena_size}: must exceed a robot's diameter"
                f" ({2 * self.profile.radius} m)"
            )
        self._p = pybullet
        self.num_arenas = num_arenas
        self.num_robots = num_robots
        self.arena_size = float(arena_size)
        self.sim_time = 0.0
        # Arenas on a grid, spaced so a ray (range_max long) never reaches the next one.
        pitch = self.arena_size + 2.0 * self.profile.range_max + 1.0
        cols = math.ceil(math.sqrt(num_arenas))
        k = np.arange(num_arenas)
        self.arena_origins = np.stack([k % cols, k // cols], axis=-1) * pitch
        per_client = max(ARENAS_PER_CLIENT, math.ceil(num_arenas / MAX_CLIENTS))
        self.clients: list[int] = []
        """PyBullet client ids, one per ARENAS_PER_CLIENT consecutive arenas."""
        for _ in range(0, num_arenas, per_client):
            client = pybullet.connect(pybullet.DIRECT)
            if client < 0:
                self.close()
                raise RuntimeError(
                    f"PyBullet refused a new client after {len(self.clients)} for this world:"
                    " close worlds (env.close()) that are no longer used"
                )
            self.clients.append(client)
        self.arena_clients = np.array(self.clients)[k // per_client]
        """(K,) the PyBullet client holding each arena's bodies."""

        self._poses = np.zeros((num_arenas, num_robots, 3))
        self._velocities = np.zeros((num_arenas, num_robots, 2))
        self._twists = np.zeros((num_arenas, num_robots, 2))
        self._goals = np.zeros((num_arenas, num_robots, 2))
        self._present = np.ones((num_arenas, num_robots), dtype=bool)
        self._layouts: list[ArenaLayout | None] = [None] * num_arenas
        self._obstacle_bodies: list[list[int]] = [[] for _ in range(num_arenas)]
        # PyBullet 3.2.7 never frees a collision shape once a body used it
        # (removeCollisionShape after removeBody answers "it is used"): a new
        # shape per obstacle per episode leaked 29 KB each, over 1 GB in a run
        # of room layouts. One shape per client and obstacle size, reused;
        # random sizes are drawn on a 1 cm grid (scenarios.py) to keep it small.
        self._obstacle_shapes: dict[tuple, int] = {}
        self._obstacle_table = np.zeros((num_arenas, 0, 7))
        self._casters: dict[tuple[int, float], LidarCaster] = {}

        robot_shapes = {
            client: bodies.create_robot_shape(pybullet, client, self.profile.radius, ROBOT_HEIGHT)
            for client in self.clients
        }
        # Robots start parked in a row; set_layout puts them where they belong.
        self._robot_bodies = np.zeros((num_arenas, num_robots), dtype=int)
        for a in range(num_arenas):
            client = int(self.arena_clients[a])
            x, y = self.arena_origins[a]
            bodies.create_walls(pybullet, client, self.arena_size, WALL_HEIGHT, x, y)
            for r in range(num_robots):
                self._poses[a, r, :2] = self._parking_spot(r)
                x, y = self._poses[a, r, :2] + self.arena_origins[a]
                self._robot_bodies[a, r] = bodies.create_robot(
                    pybullet, client, robot_shapes[client], x, y
                )

    # -- construction ------------------------------------------------------- #

    def _parking_spot(self, robot: int) -> np.ndarray:
        spacing = self.arena_size / (self.num_robots + 1)
        return np.array([-self.arena_size / 2.0 + spacing * (robot + 1), 0.0])

    def _absent_spot(self, robot: int) -> np.ndarray:
        """Where a robot the episode does not use waits: far outside every
        arena (no ray reaches it, ABSENT_SPACING apart so no contact is found)."""
        return np.array([ABSENT_DISTANCE + ABSENT_SPACING * robot, ABSENT_DISTANCE])

    def _replace_obstacles(self, arena: int, layout: ArenaLayout) -> None:
        p = self._p
        client = int(self.arena_clients[arena])
        for body in self._obstacle_bodies[arena]:
            p.removeBody(body, physicsClientId=client)
        ox, oy = self.arena_origins[arena]
        self._obstacle_bodies[arena] = [
            bodies.place_obstacle(p, client, self._obstacle_shape(client, o), o, o.x + ox, o.y + oy)
            for o in layout.obstacles
        ]

    def _obstacle_shape(self, client: int, obstacle) -> int:
        key = (client, *bodies.obstacle_shape_key(obstacle))
        if key not in self._obstacle_shapes:
            self._obstacle_shapes[key] = bodies.create_obstacle_shape(
                self._p, client, obstacle, OBSTACLE_HEIGHT
            )
        return self._obstacle_shapes[key]

    def _rebuild_obstacle_table(self) -> None:
        # One padded (K, M, 7) table keeps the contact test a single numpy call.
        tables = [pack_obstacles(lay.obstacles if lay else ()) for lay in self._layouts]
        width = max(len(t) for t in tables)
        padded = np.zeros((self.num_arenas, width, 7))
        padded[..., :2] = _FAR
        padded[..., 4] = 1.0
        for a, t in enumerate(tables):
            padded[a, : len(t)] = t
        self._obstacle_table = padded

    # -- episode set-up ----------------------------------------------------- #

    def set_layout(self, arena: int, layout: ArenaLayout) -> None:
        """Put arena `arena`'s robots on their starts, set goals and obstacles.

        A layout may hold fewer robots than the world has slots (a smaller
        team): robots from `layout.num_robots` on are absent for the episode,
        parked far outside every arena, never moved, never scanned.
        Velocities and commands of the arena are zeroed. Raises ValueError
        when the layout does not fit this world (too many robots, arena size,
        overlapping robots or robots in walls or obstacles).
        """
        starts = np.asarray(layout.starts, dtype=np.float64)
        n = len(starts)
        if starts.ndim != 2 or starts.shape[1] != 3 or not 1 <= n <= self.num_robots:
            raise ValueError(
                f"layout starts have shape {starts.shape}, this world has"
                f" {self.num_robots} robot slots: expected (n, 3) with 1 <= n <= {self.num_robots}"
            )
        if abs(layout.arena_size - self.arena_size) > 1e-9:
            raise ValueError(
                f"layout is for an arena of {layout.arena_size} m, this world's is {self.arena_size} m"
            )
        self._check_free(starts[:, :2], layout)
        self._layouts[arena] = layout
        self._present[arena] = np.arange(self.num_robots) < n
        self._poses[arena, :n] = starts
        self._goals[arena, :n] = np.asarray(layout.goals, dtype=np.float64)
        for r in range(n, self.num_robots):
            self._poses[arena, r] = (*self._absent_spot(r), 0.0)
            self._goals[arena, r] = self._absent_spot(r)
        self._velocities[arena] = 0.0
        self._twists[arena] = 0.0
        self._replace_obstacles(arena, layout)
        self._rebuild_obstacle_table()
        which = np.zeros((self.num_arenas, self.num_robots), dtype=bool)
        which[arena] = True
        self._sync_bodies(which)

    def _check_free(self, xy: np.ndarray, layout: ArenaLayout) -> None:
        r = self.profile.radius
        gaps = robot_distances(xy)
        if (gaps < 2 * r).any():
            i, j = np.argwhere(gaps < 2 * r)[0]
            raise ValueError(
                f"layout starts robots {i} and {j} {gaps[i, j]:.3f} m apart;"
                f" robots of radius {r} m need at least {2 * r:.3f} m"
            )
        walls = wall_clearance(xy, self.arena_size)
        if (walls < r).any():
            i = int(np.argmin(walls))
            raise ValueError(
                f"layout starts robot {i} at {xy[i].round(3).tolist()}, inside or touching"
                f" a wall of the {self.arena_size} m arena (walls at +-{self.arena_size / 2} m)"
            )
        if layout.obstacles:
            gaps = obstacle_clearance(pack_obstacles(layout.obstacles), xy)
            if (gaps < r).any():
                i, m = np.argwhere(gaps < r)[0]
                raise ValueError(f"layout starts robot {i} inside or touching obstacle {m}")

    def layout(self, arena: int) -> ArenaLayout:
        """The layout arena `arena` was last set up with."""
        layout = self._layouts[arena]
        if layout is None:
            raise RuntimeError(f"arena {arena} has no layout yet: call set_layout first")
        return layout

    # -- control ------------------------------------------------------------ #

    def set_twists(self, twists: np.ndarray) -> None:
        """Commands (K, N, 2): v in m/s, w in rad/s; clipped to the profile's
        limits, non-finite values become 0. Held until changed."""
        t = np.asarray(twists, dtype=np.float64)
        t = np.where(np.isfinite(t), t, 0.0)
        if t.shape != self._twists.shape:
            raise ValueError(f"twists shape {t.shape}, expected {self._twists.shape}")
        self._twists[..., 0] = np.clip(t[..., 0], -self.profile.max_linear, self.profile.max_linear)
        self._twists[..., 1] = np.clip(
            t[..., 1], -self.profile.max_angular, self.profile.max_angular
        )
        self._twists[~self._present] = 0.0

    def advance(self) -> Contacts:
        """Move every robot for one control period; report who touched what."""
        dt = self.profile.control_period
        r = self.profile.radius
        old = self._poses
        v, w = self._twists[..., 0], self._twists[..., 1]
        yaw = old[..., 2]
        turn = w * dt
        # Exact arc of a unicycle at constant (v, w); straight line when w ~ 0.
        straight = np.abs(turn) < 1e-9
        safe_w = np.where(straight, 1.0, w)
        sin0, cos0 = np.sin(yaw), np.cos(yaw)
        sin1, cos1 = np.sin(yaw + turn), np.cos(yaw + turn)
        dx = np.where(straight, v * dt * cos0, v / safe_w * (sin1 - sin0))
        dy = np.where(straight, v * dt * sin0, v / safe_w * (cos0 - cos1))
        moving = v != 0.0
        candidate = old[..., :2] + np.stack([dx, dy], axis=-1)

        static_hit = moving & (wall_clearance(candidate, self.arena_size) < r)
        if self._obstacle_table.shape[1]:
            clearance = obstacle_clearance(self._obstacle_table, candidate).min(axis=-1)
            static_hit |= moving & (clearance < r)
        blocked = static_hit.copy()
        robot_hit = np.zeros_like(blocked)
        xy = np.where(blocked[..., None], old[..., :2], candidate)
        # Undo the moves of robots that would overlap; repeat, since a robot
        # sent back can now be in the way of another. Start poses never
        # overlap, so this ends once every involved robot is back.
        for _ in range(self.num_robots + 1):
            overlap = (robot_distances(xy) < 2 * r).any(axis=-1)
            if not overlap.any():
                break
            robot_hit |= overlap
            blocked |= overlap & moving
            xy = np.where(blocked[..., None], old[..., :2], candidate)

        new = np.empty_like(old)
        new[..., :2] = xy
        new[..., 2] = robot_io.wrap_angle(yaw + turn)
        self._velocities[..., 0] = np.where(blocked, 0.0, v)
        self._velocities[..., 1] = w
        changed = (moving & ~blocked) | (w != 0.0)
        self._poses = new
        self._sync_bodies(changed)
        self.sim_time += dt
        return Contacts(robot=robot_hit, static=static_hit)

    def _sync_bodies(self, which: np.ndarray) -> None:
        """Move the PyBullet bodies of the robots in `which` (K, N) to their poses."""
        arenas, robots = np.nonzero(which)
        if not len(arenas):
            return
        pose = self._poses[arenas, robots]
        xs = (pose[:, 0] + self.arena_origins[arenas, 0]).tolist()
        ys = (pose[:, 1] + self.arena_origins[arenas, 1]).tolist()
        half = pose[:, 2] / 2.0
        sines, cosines = np.sin(half).tolist(), np.cos(half).tolist()
        ids = self._robot_bodies[arenas, robots].tolist()
        clients = self.arena_clients[arenas].tolist()
        reset = self._p.resetBasePositionAndOrientation
        for body, client, x, y, s, c in zip(ids, clients, xs, ys, sines, cosines, strict=True):
            reset(body, (x, y, 0.0), (0.0, 0.0, s, c), physicsClientId=client)

    # -- readings ----------------------------------------------------------- #

    @property
    def robot_bodies(self) -> np.ndarray:
        """(K, N) PyBullet body ids of the robots, each in its arena's client
        (`arena_clients`); for benchmarks and debugging."""
        return self._robot_bodies.copy()

    def poses(self) -> np.ndarray:
        """(K, N, 3) x, y (metres, arena frame) and yaw (radians, (-pi, pi])."""
        return self._poses.copy()

    def velocities(self) -> np.ndarray:
        """(K, N, 2) body-frame linear and angular velocity, as odometry reports
        them: a blocked robot's linear velocity is 0."""
        return self._velocities.copy()

    def goals(self) -> np.ndarray:
        """(K, N, 2) goal positions in the arena frame."""
        return self._goals.copy()

    @property
    def present(self) -> np.ndarray:
        """(K, N) robots taking part in each arena's episode (a smaller team
        leaves the last slots absent; see set_layout)."""
        return self._present.copy()

    def obstacles(self, arena: int) -> tuple:
        """Arena `arena`'s obstacles (geometry.Obstacle, arena frame)."""
        layout = self._layouts[arena]
        return layout.obstacles if layout else ()

    def scan(
        self, num_rays: int, angle_min: float = -math.pi, arenas: np.ndarray | None = None
    ) -> np.ndarray:
        """Full lidar scans (K, N, num_rays) (or only the given arenas).

        LaserScan convention: ray i at angle_min + i * 2pi / num_rays in the
        robot frame, ranges in metres from the robot centre, +inf = no return.
        """
        caster = self.lidar(num_rays, angle_min)
        chosen = np.arange(self.num_arenas) if arenas is None else np.asarray(arenas)
        poses = self._poses[chosen]
        xy = poses[..., :2] + self.arena_origins[chosen][:, None, :]
        ranges = np.full(poses.shape[:2] + (caster.num_rays,), np.inf)
        owners = self.arena_clients[chosen]
        present = self._present[chosen]
        for client in self.clients:
            # Only the robots of this client's arenas that take part in the
            # episode: an absent robot's scan is all "no return".
            rows, robots = np.nonzero(present & (owners == client)[:, None])
            if len(rows):
                starts, ends = caster.rays(xy[rows, robots], poses[rows, robots, 2])
                fractions = caster.cast(starts, ends, client)
                ranges[rows, robots] = caster.ranges(fractions).reshape(len(rows), caster.num_rays)
        return ranges

    def lidar(self, num_rays: int, angle_min: float = -math.pi) -> LidarCaster:
        """The ray caster behind `scan` for this ray count (built once, then reused)."""
        key = (int(num_rays), float(angle_min))
        if key not in self._casters:
            self._casters[key] = LidarCaster(
                self._p,
                num_rays,
                self.profile.range_max,
                LIDAR_HEIGHT,
                angle_min,
                start_offset=bodies.robot_clearance(self.profile.radius),
            )
        return self._casters[key]

    # -- snapshots ---------------------------------------------------------- #

    def snapshot(self) -> dict:
        """Everything needed to continue exactly from here (picklable)."""
        return {
            "poses": self._poses.copy(),
            "velocities": self._velocities.copy(),
            "twists": self._twists.copy(),
            "goals": self._goals.copy(),
            "present": self._present.copy(),
            "layouts": list(self._layouts),
            "sim_time": self.sim_time,
        }

    def restore(self, snapshot: dict) -> None:
        """Go back to a snapshot taken from a world of the same shape."""
        if snapshot["poses"].shape != self._poses.shape:
            raise ValueError(
                f"snapshot holds {snapshot['poses'].shape[:2]} (arenas, robots),"
                f" this world has {self._poses.shape[:2]}"
            )
        for arena, layout in enumerate(snapshot["layouts"]):
            if layout is not None:
                self._layouts[arena] = layout
                self._replace_obstacles(arena, layout)
        self._rebuild_obstacle_table()
        self._poses = snapshot["poses"].copy()
        self._velocities = snapshot["velocities"].copy()
        self._twists = snapshot["twists"].copy()
        self._goals = snapshot["goals"].copy()
        # Snapshots from before team sizes varied: every robot took part.
        self._present = snapshot.get("present", np.ones_like(self._present)).copy()
        self.sim_time = snapshot["sim_time"]
        self._sync_bodies(np.ones(self._poses.shape[:2], dtype=bool))

    def close(self) -> None:
        for client in self.clients:
            if self._p.isConnected(physicsClientId=client):
                self._p.disconnect(physicsClientId=client)
        self.clients = []

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
