"""Scenarios: where robots start, where their goals are, where obstacles stand.

Pure numpy functions of a random generator and the config, so the ROS 2 sim
bridge, the evaluator and tests can draw the same layouts without a physics
client. Coordinates are in the arena frame: origin at the arena centre, walls
at +-arena_size / 2.

- random: starts and goals drawn uniformly, at least `min_separation` apart
  (starts among themselves, goals among themselves), each goal at least
  `min_goal_distance` from its robot's start, all clear of walls and obstacles.
- circle: robots evenly spaced on a circle facing the centre, each goal
  antipodal to its start, so everyone meets in the middle.
- swap: two groups in columns on opposite sides; each robot drives to the
  mirrored place on the other side, so the groups pass through each other.
- layout: a named room layout (`SimConfig.layout`, see rooms.py): fixed walls
  and furniture from YAML, starts drawn in the start zones of each robot's
  route and goals in its goal zones (two rooms: from one room to the other).

Random clutter (`num_obstacles`: cylinders and boxes, alternating) is added to
any scenario. In a named layout it keeps a robot's width plus wall_clearance
from the layout's walls and from other clutter, so it never closes a doorway,
a corridor or an aisle.

`required_arena_size` says how large the arena must be for the robots of a
scenario to fit; the environment and the sim bridge grow the arena to that
size (`fitted_arena_size`). A named layout's arena is the size in its YAML.

Arenas of different sizes: PyBullet's walls are built once, at one size for
all arenas, so an episode played in a smaller square (`arena_size_range`, or a
named layout smaller than the world's arena) is fenced in by four thin box
walls among its obstacles, inner faces at +-room_size / 2
(`ArenaLayout.room_size`). The lidar sees them like any wall.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mappo_training.sim.config import SimConfig
from mappo_training.sim.geometry import (
    MIN_OBSTACLE_SIZE,
    Obstacle,
    obstacle_clearance,
    pack_obstacles,
    wall_clearance,
)
from mappo_training.sim.rooms import (
    PlacementError,
    RoomLayout,
    ZoneSampler,
    check_fits,
    deal_routes,
    load_room_layout,
)
from swarm_contract.config import ConfigError
from swarm_contract.robot_io import RobotProfile

# Random placement keeps the robots' discs (diameter min_separation) covering
# at most this share of the free area; random sequential placement jams near
# 0.55, so this leaves rejection sampling plenty of room.
RANDOM_COVERAGE = 0.3
PLACEMENT_TRIES = 200
PLACEMENT_RESTARTS = 50
SIZE_GRID = 0.01
"""Random obstacle sizes are drawn on this grid (metres): the world keeps one
PyBullet shape per size it has seen (PyBullet never frees a used shape)."""
ROOM_GRID = 0.05
"""Sides drawn from arena_size_range are on this grid (metres), for the same reason."""


def _on_grid(value, grid: float = SIZE_GRID, low: float = -np.inf, high: float = np.inf):
    """value rounded to the grid, kept in [low, high] (a float or an array)."""
    rounded = np.clip(np.round(np.asarray(value) / grid) * grid, low, high)
    return float(rounded) if rounded.ndim == 0 else rounded


BOUNDARY_HALF_THICKNESS = MIN_OBSTACLE_SIZE
"""Half thickness in metres of the walls that fence in an episode's smaller square."""


@dataclass(frozen=True, eq=False)
class ArenaLayout:
    """One arena's episode set-up: everything needed to reproduce or draw it."""

    arena_size: float
    """Side of the square arena in metres (walls at +-arena_size / 2)."""
    starts: np.ndarray
    """(N, 3) start poses x, y, yaw."""
    goals: np.ndarray
    """(N, 2) goal positions."""
    obstacles: tuple[Obstacle, ...] = field(default_factory=tuple)
    robot_radius: float = 0.105
    goal_tolerance: float = 0.15
    room_size: float | None = None
    """Side of the square, centred on the origin, the episode is played in when
    smaller than the arena: thin box walls among `obstacles` fence it in.
    None: the arena's own walls."""

    @property
    def num_robots(self) -> int:
        return len(self.starts)

    def moved(self, rotation: float, dx: float = 0.0, dy: float = 0.0) -> ArenaLayout:
        """The same layout with the whole world rotated about the origin, then shifted."""
        c, s = math.cos(rotation), math.sin(rotation)
        rot = np.array([[c, -s], [s, c]])
        shift = np.array([dx, dy])
        starts = self.starts.copy()
        starts[:, :2] = self.starts[:, :2] @ rot.T + shift
        starts[:, 2] = self.starts[:, 2] + rotation
        return ArenaLayout(
            arena_size=self.arena_size,
            starts=starts,
            goals=self.goals @ rot.T + shift,
            obstacles=tuple(o.moved(rotation, dx, dy) for o in self.obstacles),
            robot_radius=self.robot_radius,
            goal_tolerance=self.goal_tolerance,
            room_size=self.room_size,
        )


# --------------------------------------------------------------------------- #
# Sizes.
# --------------------------------------------------------------------------- #


def _margin(cfg: SimConfig, robot_radius: float) -> float:
    """Closest a start or goal centre may come to a wall."""
    return robot_radius + cfg.wall_clearance


def circle_radius(cfg: SimConfig, robot_radius: float) -> float:
    """Radius of the circle scenario: as configured (or as large as the arena
    allows), grown so neighbours are min_separation apart."""
    n = cfg.num_robots
    wanted = cfg.circle_radius
    if wanted is None:
        wanted = cfg.arena_size / 2.0 - _margin(cfg, robot_radius)
    needed = cfg.min_separation / (2.0 * math.sin(math.pi / n)) if n >= 2 else 0.0
    return max(wanted, needed, cfg.min_goal_distance / 2.0)


def _swap_spacing(cfg: SimConfig, inner: float, rows: int) -> float:
    """Distance between neighbours in a swap column: spread out, at least min_separation."""
    return max(cfg.min_separation, min(1.0, inner / max(rows, 1)))


def required_arena_size(cfg: SimConfig, robot_radius: float) -> float:
    """Smallest arena side (metres, >= cfg.arena_size) in which the scenario fits.

    A named layout: the size in its YAML. With arena_size_range: the largest
    size of the range, or more when the robots need it.
    """
    if cfg.scenario == "layout":
        return load_room_layout(cfg.layout).arena_size
    if cfg.arena_size_range is not None:
        return required_arena_size(_room_config(cfg, cfg.arena_size_range[1]), robot_radius)
    margin = _margin(cfg, robot_radius)
    n = cfg.num_robots
    if cfg.scenario == "circle":
        needed = 2.0 * (circle_radius(cfg, robot_radius) + margin)
    elif cfg.scenario == "swap":
        rows = math.ceil(n / 2)
        column = (rows - 1) * cfg.min_separation
        needed = 2.0 * margin + max(column, cfg.min_goal_distance)
    else:
        disc = math.pi * cfg.min_separation**2 / 4.0
        obstacle = math.pi * (_largest_obstacle(cfg) + margin) ** 2
        area = (n * disc + cfg.num_obstacles * obstacle) / RANDOM_COVERAGE
        needed = 2.0 * margin + max(math.sqrt(area), 1.5 * cfg.min_goal_distance)
    return max(cfg.arena_size, needed)


def fitted_arena_size(cfg: SimConfig, profile: RobotProfile) -> float:
    """`required_arena_size` for robots of `profile`, which min_separation must
    leave room for (ConfigError otherwise). A named layout that cannot take the
    largest team is refused here, before any episode (PlacementError)."""
    if cfg.min_separation <= 2 * profile.radius:
        raise ConfigError(
            f"sim.min_separation={cfg.min_separation}: robots of profile"
            f" {profile.name!r} (radius {profile.radius} m) need more than"
            f" {2 * profile.radius:.3f} m between centres"
        )
    if cfg.scenario == "layout":
        largest = max(cfg.team_sizes or [cfg.num_robots])
        room = load_room_layout(cfg.layout)
        margin = _margin(cfg, profile.radius)
        check_fits(room, largest, margin, cfg.min_separation, RANDOM_COVERAGE)
    return required_arena_size(cfg, profile.radius)


def _room_config(cfg: SimConfig, size: float) -> SimConfig:
    """cfg for an episode played in a square of side `size` (no range left to draw)."""
    return dataclasses.replace(cfg, arena_size=size, arena_size_range=None)


def _largest_obstacle(cfg: SimConfig) -> float:
    return math.sqrt(2.0) * cfg.obstacle_size[1]


def default_max_steps(cfg: SimConfig, arena_size: float, max_linear: float, period: float) -> int:
    """Episode limit when the config leaves it open: twice the arena side at top speed."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    return math.ceil(2.0 * arena_size / max_linear / period)


# --------------------------------------------------------------------------- #
# Layouts.
# --------------------------------------------------------------------------- #


def draw_layout(
    rng: np.random.Generator, cfg: SimConfig, arena_size: float, robot_radius: float
) -> ArenaLayout:
    """A fresh episode layout for the configured scenario.

    arena_size is the world's (its walls); the episode may be played in a
    smaller square inside it (arena_size_range, or a smaller named layout).
    """
    if cfg.arena_size_range is not None:
        return _draw_in_smaller_room(rng, cfg, arena_size, robot_radius)
    if cfg.scenario == "layout":
        return _draw_named_layout(rng, cfg, arena_size, robot_radius)
    fixed = tuple(cfg.obstacles)
    if cfg.scenario == "random":
        obstacles = fixed + random_obstacles(rng, cfg, arena_size, robot_radius, np.zeros((0, 2)))
        starts, goals = place_random(rng, cfg, arena_size, robot_radius, obstacles)
    else:
        place = place_circle if cfg.scenario == "circle" else place_swap
        starts, goals = place(rng, cfg, arena_size, robot_radius)
        if cfg.start_jitter > 0:
            starts[:, :2] += jitter(rng, cfg, robot_radius, len(starts))
        _check_clear_of(fixed, starts[:, :2], goals, cfg, robot_radius)
        points = np.concatenate([starts[:, :2], goals])
        obstacles = fixed + random_obstacles(rng, cfg, arena_size, robot_radius, points)
    return ArenaLayout(
        arena_size=arena_size,
        starts=starts,
        goals=goals,
        obstacles=obstacles,
        robot_radius=robot_radius,
        goal_tolerance=cfg.goal_tolerance,
    )


def _draw_in_smaller_room(
    rng: np.random.Generator, cfg: SimConfig, arena_size: float, robot_radius: float
) -> ArenaLayout:
    """The scenario in a square of a side drawn from cfg.arena_size_range (grown
    when the team needs more room, never beyond the world's arena), fenced in."""
    low, high = cfg.arena_size_range
    side = _on_grid(rng.uniform(low, high), ROOM_GRID, low, high) if high > low else float(low)
    room_cfg = _room_config(cfg, side)
    side = min(required_arena_size(room_cfg, robot_radius), arena_size)
    inner = draw_layout(rng, dataclasses.replace(room_cfg, arena_size=side), side, robot_radius)
    return _fenced(inner, arena_size)


def _draw_named_layout(
    rng: np.random.Generator, cfg: SimConfig, arena_size: float, robot_radius: float
) -> ArenaLayout:
    """Starts and goals in the zones of each robot's route, clutter kept passable."""
    room = load_room_layout(cfg.layout)
    if arena_size < room.arena_size - 1e-9:
        raise PlacementError(
            f"layout {room.name!r} is {room.arena_size} m across, the arena only"
            f" {arena_size:.2f} m; build the arena at least {room.arena_size} m"
        )
    fixed = room.obstacles + tuple(cfg.obstacles)
    starts, goals = place_in_zones(rng, cfg, room, robot_radius, fixed)
    points = np.concatenate([starts[:, :2], goals])
    # A robot's width plus clearance from the walls and each other: clutter
    # narrows a doorway or aisle but never closes it. A full layout (a large
    # team in narrow arms) may leave room for fewer than num_obstacles: a
    # training run must not stop on one crowded episode.
    passage = 2.0 * robot_radius + cfg.wall_clearance
    clutter = random_obstacles(
        rng, cfg, room.arena_size, robot_radius, points, fixed, passage, as_many_as_fit=True
    )
    inner = ArenaLayout(
        arena_size=room.arena_size,
        starts=starts,
        goals=goals,
        obstacles=fixed + clutter,
        robot_radius=robot_radius,
        goal_tolerance=cfg.goal_tolerance,
    )
    return _fenced(inner, arena_size)


def _fenced(inner: ArenaLayout, arena_size: float) -> ArenaLayout:
    """`inner` (played in a square of side inner.arena_size) inside an arena of
    `arena_size`: boundary walls added when the square is the smaller."""
    side = inner.arena_size
    if side >= arena_size - 1e-9:
        return inner
    return dataclasses.replace(
        inner,
        arena_size=arena_size,
        obstacles=boundary_walls(side) + inner.obstacles,
        room_size=side,
    )


def boundary_walls(side: float) -> tuple[Obstacle, ...]:
    """Four thin boxes whose inner faces form a square of `side` centred on the
    origin; the north and south walls run on over the corners."""
    t = BOUNDARY_HALF_THICKNESS
    off, long = side / 2.0 + t, side / 2.0 + 2.0 * t
    return (
        Obstacle("box", x=0.0, y=off, half_x=long, half_y=t),
        Obstacle("box", x=0.0, y=-off, half_x=long, half_y=t),
        Obstacle("box", x=off, y=0.0, half_x=t, half_y=side / 2.0),
        Obstacle("box", x=-off, y=0.0, half_x=t, half_y=side / 2.0),
    )


def place_in_zones(
    rng: np.random.Generator,
    cfg: SimConfig,
    room: RoomLayout,
    robot_radius: float,
    obstacles: tuple[Obstacle, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Starts (N, 3) and goals (N, 2) of a named layout: robots dealt out over its
    routes, each start in its route's start zones and goal in its goal zones."""
    n = cfg.num_robots
    margin = _margin(cfg, robot_radius)
    check_fits(room, n, margin, cfg.min_separation, RANDOM_COVERAGE)
    zones = ZoneSampler(room, obstacles, margin)
    for _ in range(PLACEMENT_RESTARTS):
        starts: list[np.ndarray] = []
        goals: list[np.ndarray] = []
        for r in deal_routes(rng, n, len(room.routes)):
            route = room.routes[r]
            start = _sample(
                lambda z=route.starts: zones.point(rng, z), zones.free, starts, cfg.min_separation
            )
            if start is None:
                break
            goal = _sample(
                lambda z=route.goals: zones.point(rng, z),
                zones.free,
                goals,
                cfg.min_separation,
                start,
                cfg.min_goal_distance,
            )
            if goal is None:
                break
            starts.append(start)
            goals.append(goal)
        if len(goals) == n:
            yaw = rng.uniform(-math.pi, math.pi, size=(n, 1))
            return np.hstack([np.array(starts), yaw]), np.array(goals)
    raise PlacementError(
        f"layout {room.name!r}: could not place {n} robots with min_separation="
        f"{cfg.min_separation} and min_goal_distance={cfg.min_goal_distance} in its zones"
        f" among {len(obstacles)} obstacle(s); use fewer robots or fixed obstacles,"
        " or lower min_separation"
    )


def place_random(
    rng: np.random.Generator,
    cfg: SimConfig,
    arena_size: float,
    robot_radius: float,
    obstacles: tuple[Obstacle, ...] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Random starts (N, 3) and goals (N, 2) by rejection sampling."""
    n = cfg.num_robots
    margin = _margin(cfg, robot_radius)
    table = pack_obstacles(obstacles)
    half = arena_size / 2.0 - margin

    def free(xy: np.ndarray) -> bool:
        if wall_clearance(xy, arena_size) < margin:
            return False
        return not len(table) or obstacle_clearance(table, xy[None])[0].min() >= margin

    def draw() -> np.ndarray:
        return rng.uniform(-half, half, size=2)

    for _ in range(PLACEMENT_RESTARTS):
        starts: list[np.ndarray] = []
        goals: list[np.ndarray] = []
        for _robot in range(n):
            start = _sample(draw, free, starts, cfg.min_separation)
            if start is None:
                break
            goal = _sample(draw, free, goals, cfg.min_separation, start, cfg.min_goal_distance)
            if goal is None:
                break
            starts.append(start)
            goals.append(goal)
        if len(goals) == n:
            yaw = rng.uniform(-math.pi, math.pi, size=(n, 1))
            return np.hstack([np.array(starts), yaw]), np.array(goals)
    raise PlacementError(
        f"could not place {n} robots with min_separation={cfg.min_separation} and"
        f" min_goal_distance={cfg.min_goal_distance} in an arena of {arena_size:.2f} m"
        f" with {len(obstacles)} obstacle(s); raise arena_size or lower num_obstacles"
    )


def place_circle(
    rng: np.random.Generator, cfg: SimConfig, arena_size: float, robot_radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Robots evenly on a circle (randomly turned), facing their antipodal goals."""
    n = cfg.num_robots
    radius = circle_radius(cfg, robot_radius)
    angles = rng.uniform(0.0, 2.0 * math.pi) + 2.0 * math.pi * np.arange(n) / n
    xy = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    goals = -xy
    yaw = angles + math.pi
    return np.hstack([xy, yaw[:, None]]), goals


def place_swap(
    rng: np.random.Generator, cfg: SimConfig, arena_size: float, robot_radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Two columns on opposite walls; each robot heads for its mirror image.

    The pair of columns is turned by a random multiple of 90 degrees so that
    robots do not always cross in the same direction.
    """
    n = cfg.num_robots
    margin = _margin(cfg, robot_radius)
    inner = arena_size - 2.0 * margin
    side_x = arena_size / 2.0 - margin
    left = math.ceil(n / 2)
    xy = []
    for count, x in ((left, -side_x), (n - left, side_x)):
        spacing = _swap_spacing(cfg, inner, count)
        ys = (np.arange(count) - (count - 1) / 2.0) * spacing
        xy.extend((x, y) for y in ys)
    xy = np.array(xy, dtype=np.float64)
    goals = xy * np.array([-1.0, 1.0])
    turn = rng.integers(4) * math.pi / 2.0
    c, s = round(math.cos(turn)), round(math.sin(turn))
    rot = np.array([[c, -s], [s, c]], dtype=np.float64)
    xy, goals = xy @ rot.T, goals @ rot.T
    heading = goals - xy
    yaw = np.arctan2(heading[:, 1], heading[:, 0])
    return np.hstack([xy, yaw[:, None]]), goals


def random_obstacles(
    rng: np.random.Generator,
    cfg: SimConfig,
    arena_size: float,
    robot_radius: float,
    keep_clear: np.ndarray,
    avoid: tuple[Obstacle, ...] = (),
    gap: float = 0.0,
    as_many_as_fit: bool = False,
) -> tuple[Obstacle, ...]:
    """`cfg.num_obstacles` cylinders and boxes (alternating) inside the walls,
    clear of the `keep_clear` points (starts and goals) by a robot footprint.

    gap > 0: each also keeps `gap` metres from the walls, from the `avoid`
    obstacles and from the others (measured from its bounding circle).
    as_many_as_fit: an obstacle that finds no place is left out instead of
    raising PlacementError.
    """
    margin = _margin(cfg, robot_radius)
    low, high = cfg.obstacle_size
    placed: list[Obstacle] = []
    for i in range(cfg.num_obstacles):
        for _ in range(PLACEMENT_TRIES):
            if i % 2 == 0:
                size = {"radius": _on_grid(rng.uniform(low, high), low=low, high=high)}
                kind = "cylinder"
            else:
                half_x, half_y = _on_grid(rng.uniform(low, high, size=2), low=low, high=high)
                size = {"half_x": half_x, "half_y": half_y, "yaw": rng.uniform(-math.pi, math.pi)}
                kind = "box"
            bounding = Obstacle(kind, **size).bounding_radius
            reach = arena_size / 2.0 - bounding - gap
            x, y = rng.uniform(-reach, reach, size=2)
            candidate = Obstacle(kind, x=float(x), y=float(y), **size)
            if len(keep_clear) and candidate.clearance(keep_clear).min() < margin:
                continue
            if gap > 0 and _too_close(candidate, bounding + gap, avoid + tuple(placed)):
                continue
            placed.append(candidate)
            break
        else:
            if as_many_as_fit:
                continue
            raise PlacementError(
                f"could not place obstacle {i + 1} of num_obstacles={cfg.num_obstacles}"
                f" clear of {len(keep_clear)} starts/goals in an arena of {arena_size:.2f} m;"
                " lower num_obstacles or obstacle_size, or raise arena_size"
            )
    return tuple(placed)


def _too_close(candidate: Obstacle, distance: float, others: tuple[Obstacle, ...]) -> bool:
    """Whether any of `others` comes within `distance` of the candidate's centre."""
    if not others:
        return False
    centre = np.array([[candidate.x, candidate.y]])
    return bool(obstacle_clearance(pack_obstacles(others), centre).min() < distance)


def jitter(rng: np.random.Generator, cfg: SimConfig, robot_radius: float, n: int) -> np.ndarray:
    """(n, 2) start offsets: normal with std cfg.start_jitter, each cut to a length
    that keeps the start off the walls (the wall_clearance placement left) and
    off its neighbours (min_separation apart, both moving). Untruncated, a
    16-robot circle in a fenced 4 m room drew a start touching the fence about
    once in 10^5 episodes and stopped a training run."""
    offsets = rng.normal(0.0, cfg.start_jitter, (n, 2))
    longest = 0.9 * min(cfg.wall_clearance, (cfg.min_separation - 2 * robot_radius) / 2)
    length = np.linalg.norm(offsets, axis=1, keepdims=True)
    return offsets * np.minimum(1.0, longest / np.maximum(length, 1e-12))


def _check_clear_of(
    obstacles: tuple[Obstacle, ...],
    starts: np.ndarray,
    goals: np.ndarray,
    cfg: SimConfig,
    robot_radius: float,
) -> None:
    """Fixed obstacles must leave the scenario's starts and goals free."""
    for i, o in enumerate(obstacles):
        for what, points in (("start", starts), ("goal", goals)):
            gap = o.clearance(points)
            if gap.min() < robot_radius:
                robot = int(np.argmin(gap))
                raise PlacementError(
                    f"obstacles[{i}] ({o.kind} at {o.x:.2f}, {o.y:.2f}) covers the {what} of"
                    f" robot {robot} in the {cfg.scenario} scenario; move the obstacle"
                )


def _sample(
    draw: Callable[[], np.ndarray],
    free: Callable[[np.ndarray], bool],
    others: list[np.ndarray],
    separation: float,
    anchor: np.ndarray | None = None,
    anchor_distance: float = 0.0,
) -> np.ndarray | None:
    """A point from `draw` that is free, `separation` away from `others` and
    `anchor_distance` away from `anchor`; None after many misses."""
    for _ in range(PLACEMENT_TRIES):
        p = draw()
        if not free(p) or any(math.dist(p, q) < separation for q in others):
            continue
        if anchor is None or math.dist(p, anchor) >= anchor_distance:
            return p
    return None
