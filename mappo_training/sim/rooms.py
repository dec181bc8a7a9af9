"""Named room layouts: fixed walls and furniture from YAML, with start and goal zones.

A layout file (packaged ones live in `layouts/`, next to this module) holds:

    description: one line for humans
    arena_size: 7.0                   # side of the square arena, metres
    obstacles:                        # walls as thin boxes, furniture, shelves
      - {kind: box, x: 0.0, y: 2.05, half_x: 0.05, half_y: 1.45}
    zones:                            # rectangles where robot centres may be placed:
      room_a: [-3.5, -3.5, -0.5, 3.5] # [x_min, y_min, x_max, y_max] in the arena frame
      room_b: [0.5, -3.5, 3.5, 3.5]
    routes:                           # who starts where and drives where
      - {starts: [room_a], goals: [room_b]}
      - {starts: [room_b], goals: [room_a]}

Each episode the robots are dealt out over the routes in turn (the routes in
a random order), so a team of N has N / len(routes) robots on each, give or
take one. A robot's start is drawn in its route's start zones and its goal in
the goal zones, clear of walls and obstacles by the robot footprint plus
wall_clearance, starts min_separation apart (and goals too): routes lead from
one part of the layout to another, so every robot must cross the doorway,
corridor or aisles that the layout is about.

Whether N robots fit is known before drawing: the free area of a route's
zones holds at most RANDOM_COVERAGE of it in robot discs of diameter
min_separation (the rule the random scenario uses); more is refused with a
PlacementError that names the layout, N and what to change.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mappo_training.sim.geometry import Obstacle, obstacle_clearance, pack_obstacles, wall_clearance
from swarm_contract.config import ConfigError, from_dict, load_yaml

LAYOUTS_DIR = Path(__file__).parent / "layouts"
"""Packaged layouts: `<name>.yaml`."""

GRID_STEP = 0.05
"""Resolution in metres of the grid that measures a zone's free area."""


class PlacementError(RuntimeError):
    """A scenario could not place robots, goals or obstacles in the arena."""


@dataclass(frozen=True)
class Route:
    """Robots on this route start in one of `starts` and have their goal in one of `goals`."""

    starts: tuple[str, ...] = ()
    """Names of the zones a start is drawn in."""
    goals: tuple[str, ...] = ()
    """Names of the zones a goal is drawn in."""


@dataclass(frozen=True, eq=False)
class RoomLayout:
    """A named layout: fixed obstacles plus where robots start and where their goals are.

    Compared and hashed by identity: `load_room_layout` hands out one object per
    file, so per-layout caches (free areas) stay valid.
    """

    arena_size: float
    """Side of the square arena in metres (walls at +-arena_size / 2)."""
    zones: dict[str, tuple[float, ...]]
    """Named rectangles [x_min, y_min, x_max, y_max] where robot centres may be placed."""
    routes: tuple[Route, ...]
    """Start zones -> goal zones; robots are dealt out over the routes in turn."""
    obstacles: tuple[Obstacle, ...] = ()
    """Walls (thin boxes), furniture, shelves: present in every episode."""
    description: str = ""
    name: str = ""
    """Filled by the loader: the packaged name or the file's path."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.arena_size) and self.arena_size > 0):
            raise ValueError(f"arena_size={self.arena_size!r}: must be > 0 (metres)")
        if not self.zones:
            raise ValueError("zones: give at least one, e.g. {room_a: [-3, -3, -1, 3]}")
        half = self.arena_size / 2.0 + 1e-9
        for zone, rect in self.zones.items():
            ok = isinstance(rect, tuple | list) and len(rect) == 4
            ok = ok and all(isinstance(v, int | float) for v in rect)
            if not ok or not (
                -half <= rect[0] < rect[2] <= half and -half <= rect[1] < rect[3] <= half
            ):
                raise ValueError(
                    f"zones.{zone}={rect!r}: must be [x_min, y_min, x_max, y_max] with"
                    f" min < max, inside the arena (+-{self.arena_size / 2} m)"
                )
        if not self.routes:
            raise ValueError(
                "routes: give at least one, e.g. [{starts: [room_a], goals: [room_b]}]"
            )
        for i, route in enumerate(self.routes):
            for end in ("starts", "goals"):
                names = getattr(route, end)
                if not names:
                    raise ValueError(f"routes[{i}].{end}: name at least one zone")
                unknown = [z for z in names if z not in self.zones]
                if unknown:
                    raise ValueError(
                        f"routes[{i}].{end}: unknown zone(s) {unknown}; zones: {sorted(self.zones)}"
                    )

    def zone_rects(self, names: tuple[str, ...]) -> np.ndarray:
        """(Z, 4) rectangles of the named zones."""
        return np.array([self.zones[z] for z in names], dtype=np.float64)


def known_layouts() -> list[str]:
    """Names of the packaged layouts."""
    return sorted(p.stem for p in LAYOUTS_DIR.glob("*.yaml"))


def layout_path(name_or_path: str | Path) -> Path:
    """The file of a packaged layout name, or the given YAML path (ConfigError if missing)."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise ConfigError(
                f"layout={text!r}: no such file (give a layout YAML or one of {known_layouts()})"
            )
        return path
    path = LAYOUTS_DIR / f"{text}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"layout={text!r}: unknown layout; known layouts: {known_layouts()},"
            " or give the path of a layout YAML"
        )
    return path


@functools.cache
def _load(path: Path, name: str) -> RoomLayout:
    data = load_yaml(path)
    zones = data.get("zones")
    if isinstance(zones, dict):
        data["zones"] = {str(k): tuple(v) if isinstance(v, list) else v for k, v in zones.items()}
    layout = from_dict(
        RoomLayout, {k: v for k, v in data.items() if k != "name"}, f"layout {name!r}"
    )
    return dataclasses.replace(layout, name=name)


def load_room_layout(name_or_path: str | Path) -> RoomLayout:
    """A packaged layout by name (see `known_layouts`) or a layout YAML by path.

    Errors (ConfigError) name the layout and the bad key. Loaded once per file.
    """
    path = layout_path(name_or_path)
    text = str(name_or_path)
    return _load(path.resolve(), text)


# --------------------------------------------------------------------------- #
# Capacity.
# --------------------------------------------------------------------------- #


@functools.lru_cache(maxsize=256)
def free_area(layout: RoomLayout, zones: tuple[str, ...], margin: float) -> float:
    """Square metres of the named zones (their union) where a robot centre may stand:
    `margin` clear of the arena walls and the layout's obstacles."""
    rects = layout.zone_rects(zones)
    lo, hi = rects[:, :2].min(axis=0), rects[:, 2:].max(axis=0)
    xs = np.arange(lo[0] + GRID_STEP / 2, hi[0], GRID_STEP)
    ys = np.arange(lo[1] + GRID_STEP / 2, hi[1], GRID_STEP)
    xy = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    inside = np.zeros(len(xy), dtype=bool)
    for x0, y0, x1, y1 in rects:
        inside |= (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    xy = xy[inside]
    free = wall_clearance(xy, layout.arena_size) >= margin
    if layout.obstacles:
        free &= obstacle_clearance(pack_obstacles(layout.obstacles), xy).min(axis=-1) >= margin
    return float(free.sum()) * GRID_STEP**2


def capacity(
    layout: RoomLayout, zones: tuple[str, ...], margin: float, separation: float, coverage: float
) -> int:
    """Robots whose discs (diameter `separation`) cover at most `coverage` of the free area."""
    disc = math.pi * separation**2 / 4.0
    return int(coverage * free_area(layout, zones, margin) / disc)


def robots_per_route(num_robots: int, num_routes: int) -> int:
    """Most robots one route gets when `num_robots` are dealt out over the routes in turn."""
    return math.ceil(num_robots / num_routes)


def largest_team(layout: RoomLayout, margin: float, separation: float, coverage: float) -> int:
    """The most robots the layout takes (see `check_fits`)."""
    n = 0
    while _shortfall(layout, n + 1, margin, separation, coverage) is None:
        n += 1
    return n


def _shortfall(
    layout: RoomLayout, num_robots: int, margin: float, separation: float, coverage: float
) -> tuple[str, tuple[str, ...], int, int] | None:
    """(end, zones, capacity, needed) for the first zone set that is too small, or None."""
    per_route = robots_per_route(num_robots, len(layout.routes))
    for end in ("starts", "goals"):
        needed: dict[tuple[str, ...], int] = {}
        for route in layout.routes:
            zones = getattr(route, end)
            needed[zones] = min(num_robots, needed.get(zones, 0) + per_route)
        for zones, count in needed.items():
            room = capacity(layout, zones, margin, separation, coverage)
            if count > room:
                return end, zones, room, count
    return None


def check_fits(
    layout: RoomLayout, num_robots: int, margin: float, separation: float, coverage: float
) -> None:
    """PlacementError naming the layout, the team size and the fix when the robots
    would not fit in the zones of their routes."""
    short = _shortfall(layout, num_robots, margin, separation, coverage)
    if short is None:
        return
    end, zones, room, count = short
    most = largest_team(layout, margin, separation, coverage)
    raise PlacementError(
        f"layout {layout.name!r} cannot fit {num_robots} robots: {count} {end[:-1]}s go in"
        f" zone(s) {list(zones)}, which hold {room} at min_separation={separation} m; use at"
        f" most {most} robots, lower min_separation or wall_clearance, or pick a larger layout"
    )


# --------------------------------------------------------------------------- #
# Placement.
# --------------------------------------------------------------------------- #


@dataclass
class ZoneSampler:
    """Draws robot centres uniformly over a set of zones, `margin` clear of the arena
    walls and `obstacles`."""

    layout: RoomLayout
    obstacles: tuple[Obstacle, ...]
    margin: float
    _table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._table = pack_obstacles(self.obstacles)

    def free(self, xy: np.ndarray) -> bool:
        if wall_clearance(xy, self.layout.arena_size) < self.margin:
            return False
        return (
            not len(self._table)
            or obstacle_clearance(self._table, xy[None])[0].min() >= self.margin
        )

    def point(self, rng: np.random.Generator, zones: tuple[str, ...]) -> np.ndarray:
        """A uniform point in the union of the zones (not yet checked for being free)."""
        rects = self.layout.zone_rects(zones)
        areas = (rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])
        x0, y0, x1, y1 = rects[rng.choice(len(rects), p=areas / areas.sum())]
        return rng.uniform((x0, y0), (x1, y1))


def deal_routes(rng: np.random.Generator, num_robots: int, num_routes: int) -> np.ndarray:
    """(N,) route of each robot: the routes in a random order, dealt out in turn."""
    order = rng.permutation(num_routes)
    return order[np.arange(num_robots) % num_routes]
