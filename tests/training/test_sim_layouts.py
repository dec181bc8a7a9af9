"""Scenarios that look like rooms: named layouts, passable clutter, arenas of varying size."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.sim import ArenaLayout, BatchedSwarmEnv, SimConfig, load_sim_config
from mappo_training.sim.geometry import obstacle_clearance, pack_obstacles, wall_clearance
from mappo_training.sim.rooms import known_layouts, load_room_layout
from mappo_training.sim.scenarios import (
    PlacementError,
    draw_layout,
    fitted_arena_size,
)
from swarm_contract.config import ConfigError
from swarm_contract.robot_io import load_profile

PROFILE = load_profile()
R = PROFILE.radius
LAYOUTS = ["corridor", "two_rooms", "crossing", "warehouse"]
SIZES = {"corridor": 8.0, "two_rooms": 7.0, "crossing": 9.0, "warehouse": 8.0}


def margin(cfg: SimConfig) -> float:
    return R + cfg.wall_clearance


def in_zones(xy: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """(P,) whether each point lies in any of the rectangles [x0, y0, x1, y1]."""
    x, y = xy[:, None, 0], xy[:, None, 1]
    inside = (x >= rects[:, 0]) & (x <= rects[:, 2]) & (y >= rects[:, 1]) & (y <= rects[:, 3])
    return inside.any(axis=1)


def on_some_route(room, start: np.ndarray, goal: np.ndarray) -> bool:
    return any(
        in_zones(start[None], room.zone_rects(route.starts))[0]
        and in_zones(goal[None], room.zone_rects(route.goals))[0]
        for route in room.routes
    )


def pairwise_min(xy: np.ndarray) -> float:
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    d[np.arange(len(xy)), np.arange(len(xy))] = np.inf
    return float(d.min())


@pytest.fixture
def make_env():
    envs = []

    def make(num_arenas: int = 1, seed: int | None = 0, **cfg) -> BatchedSwarmEnv:
        env = BatchedSwarmEnv(SimConfig(**cfg), num_arenas=num_arenas, seed=seed)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


# --------------------------------------------------------------------------- #
# Named layouts.
# --------------------------------------------------------------------------- #


def test_the_four_named_layouts_are_packaged():
    assert set(LAYOUTS) <= set(known_layouts())
    for name in LAYOUTS:
        room = load_room_layout(name)
        assert room.arena_size == SIZES[name] and room.obstacles and room.routes


@pytest.mark.parametrize("num_robots", [2, 4, 8, 16])
@pytest.mark.parametrize("name", LAYOUTS)
def test_layouts_place_teams_of_2_to_16_in_their_zones_clear_of_everything(name, num_robots):
    cfg = SimConfig(scenario="layout", layout=name, num_robots=num_robots, num_obstacles=2)
    room = load_room_layout(name)
    size = fitted_arena_size(cfg, PROFILE)
    assert size == room.arena_size, "a layout's arena is the size in its YAML"
    gap = margin(cfg) - 1e-9
    for seed in range(4):
        layout = draw_layout(np.random.default_rng(seed), cfg, size, R)
        starts, goals = layout.starts[:, :2], layout.goals
        assert layout.arena_size == size and layout.room_size is None
        assert layout.obstacles[: len(room.obstacles)] == room.obstacles
        table = pack_obstacles(layout.obstacles)
        for points in (starts, goals):
            assert wall_clearance(points, size).min() >= gap
            assert obstacle_clearance(table, points).min() >= gap
            assert pairwise_min(points) >= cfg.min_separation if num_robots > 1 else True
        assert np.all(np.hypot(*(goals - starts).T) >= cfg.min_goal_distance)
        for start, goal in zip(starts, goals, strict=True):
            assert on_some_route(room, start, goal), f"{name}: {start} -> {goal} on no route"


def test_two_rooms_sends_half_the_team_through_the_doorway_each_way():
    cfg = SimConfig(scenario="layout", layout="two_rooms", num_robots=8)
    for seed in range(5):
        layout = draw_layout(np.random.default_rng(seed), cfg, 7.0, R)
        start_side = np.sign(layout.starts[:, 0])
        assert np.all(np.sign(layout.goals[:, 0]) == -start_side), "every goal is in the other room"
        assert (start_side < 0).sum() == (start_side > 0).sum() == 4


def test_crossing_deals_the_team_out_over_its_four_arms():
    cfg = SimConfig(scenario="layout", layout="crossing", num_robots=8)
    for seed in range(3):
        layout = draw_layout(np.random.default_rng(seed), cfg, 9.0, R)

        def arm(xy: np.ndarray) -> tuple[int, int]:  # (axis along the arm, which end)
            axis = int(abs(xy[1]) > abs(xy[0]))
            return axis, int(np.sign(xy[axis]))

        starts = [arm(xy) for xy in layout.starts[:, :2]]
        goals = [arm(xy) for xy in layout.goals]
        assert sorted(starts.count(a) for a in set(starts)) == [2, 2, 2, 2], "two per arm"
        for (axis, end), goal in zip(starts, goals, strict=True):
            assert goal == (axis, -end), "each goal is on the opposite arm"


def test_clutter_in_a_layout_keeps_a_robots_width_from_walls_and_furniture():
    cfg = SimConfig(scenario="layout", layout="two_rooms", num_robots=4, num_obstacles=6)
    room = load_room_layout("two_rooms")
    passage = 2 * R + cfg.wall_clearance
    fixed = pack_obstacles(room.obstacles)
    for seed in range(5):
        layout = draw_layout(np.random.default_rng(seed), cfg, 7.0, R)
        clutter = layout.obstacles[len(room.obstacles) :]
        assert len(clutter) == 6 and {o.kind for o in clutter} == {"cylinder", "box"}
        for i, o in enumerate(clutter):
            centre = np.array([[o.x, o.y]])
            others = [c for j, c in enumerate(clutter) if j != i]
            assert obstacle_clearance(fixed, centre).min() >= o.bounding_radius + passage - 1e-9
            assert wall_clearance(centre, 7.0)[0] >= o.bounding_radius + passage - 1e-9
            if others:
                assert (
                    obstacle_clearance(pack_obstacles(others), centre).min()
                    >= o.bounding_radius + passage - 1e-9
                )


def test_a_team_too_large_for_a_layout_is_refused_naming_layout_size_and_fix():
    cfg = SimConfig(scenario="layout", layout="crossing", num_robots=32)
    with pytest.raises(PlacementError, match=r"'crossing' cannot fit 32 robots.*use at most \d+"):
        fitted_arena_size(cfg, PROFILE)
    with pytest.raises(PlacementError, match="crossing"):
        BatchedSwarmEnv(cfg)


def test_a_layout_smaller_than_the_arena_is_fenced_in():
    cfg = SimConfig(scenario="layout", layout="two_rooms", num_robots=4)
    layout = draw_layout(np.random.default_rng(0), cfg, 9.0, R)
    assert layout.arena_size == 9.0 and layout.room_size == 7.0
    walls = layout.obstacles[:4]
    assert layout.obstacles[4:] == load_room_layout("two_rooms").obstacles
    # The fence's inner faces are at +-3.5 m: a point just inside is free, just outside is not.
    table = pack_obstacles(walls)
    assert obstacle_clearance(table, np.array([[3.45, 0.0], [0.0, -3.45]])).min() > 0
    assert obstacle_clearance(table, np.array([[3.55, 0.0], [0.0, -3.55]])).min(axis=-1).max() < 0


def test_a_layout_from_a_yaml_path_is_used(tmp_path):
    path = tmp_path / "hall.yaml"
    path.write_text(
        "arena_size: 5.0\n"
        "obstacles: [{kind: box, x: 0.0, y: 0.0, half_x: 0.5, half_y: 0.5}]\n"
        "zones: {left: [-2.5, -2.5, -1.0, 2.5], right: [1.0, -2.5, 2.5, 2.5]}\n"
        "routes: [{starts: [left], goals: [right]}]\n"
    )
    cfg = load_sim_config({"scenario": "layout", "layout": str(path), "num_robots": 3})
    assert fitted_arena_size(cfg, PROFILE) == 5.0
    layout = draw_layout(np.random.default_rng(0), cfg, 5.0, R)
    assert np.all(layout.starts[:, 0] < -1.0 + 1e-9) and np.all(layout.goals[:, 0] > 1.0 - 1e-9)


# --------------------------------------------------------------------------- #
# Config errors.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            {"scenario": "layout", "layout": "ballroom"},
            ["'ballroom'", "unknown layout", "two_rooms"],
        ),
        ({"scenario": "layout"}, ["scenario=layout needs layout", "corridor"]),
        ({"layout": "two_rooms"}, ["layout='two_rooms'", "scenario: layout"]),
        (
            {"scenario": "layout", "layout": "/no/such/file.yaml"},
            ["/no/such/file.yaml", "no such file"],
        ),
        ({"arena_size_range": [6.0, 3.0]}, ["arena_size_range=[6.0, 3.0]", "min <= max"]),
        ({"arena_size_range": [3.0]}, ["arena_size_range=[3.0]"]),
        (
            {"scenario": "layout", "layout": "corridor", "arena_size_range": [3.0, 6.0]},
            ["arena_size_range", "'corridor' has its own size"],
        ),
    ],
)
def test_bad_layout_keys_are_refused_naming_them(data, words):
    with pytest.raises(ConfigError) as err:
        load_sim_config(data)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("zonez: {}\n", ["zonez", "valid keys", "zones"]),
        (
            "zones: {a: [0, 0, 1, 1]}\nroutes: [{starts: [a], goals: [b]}]\n",
            ["routes[0].goals", "'b'"],
        ),
        (
            "zones: {a: [1, 0, 0, 1]}\nroutes: [{starts: [a], goals: [a]}]\n",
            ["zones.a", "min < max"],
        ),
        (
            "zones: {a: [0, 0, 9, 1]}\nroutes: [{starts: [a], goals: [a]}]\n",
            ["zones.a", "inside the arena"],
        ),
    ],
)
def test_a_bad_layout_file_is_refused_naming_the_file_and_key(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text("arena_size: 4.0\n" + text)
    with pytest.raises(ConfigError) as err:
        SimConfig(scenario="layout", layout=str(path))
    assert "bad.yaml" in str(err.value)
    for word in words:
        assert word in str(err.value)


# --------------------------------------------------------------------------- #
# In the simulator.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_env_runs_episodes_in_each_layout(make_env, name):
    env = make_env(num_arenas=2, scenario="layout", layout=name, num_robots=4, num_obstacles=2)
    assert env.arena_size == SIZES[name]
    obs, _ = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, _, reward, *_ = env.step(rng.uniform(-1, 1, (2, 4, 2)).astype(np.float32))
    assert np.all(np.isfinite(obs)) and np.all(np.isfinite(reward))
    assert len(env.world.obstacles(0)) == len(load_room_layout(name).obstacles) + 2


def test_the_lidar_sees_a_layouts_wall_at_its_distance(make_env):
    env = make_env(scenario="layout", layout="two_rooms", num_robots=2)
    room = load_room_layout("two_rooms")
    # Robot 0 faces +x towards the dividing wall (face at x = -0.05) from 0.95 m;
    # robot 1 looks -x through the doorway: the far wall is 4.5 m off, out of range.
    starts = np.array([[-1.0, 2.6, 0.0], [1.0, 0.0, math.pi]])
    layout = ArenaLayout(7.0, starts, np.array([[2.0, 0.0], [-2.0, 0.0]]), room.obstacles, R)
    env.reset(layouts=[layout])
    ahead = env.world.scan(360)[0, :, 180]  # ray 180 points straight ahead
    assert ahead[0] == pytest.approx(0.95, abs=1e-3)
    assert ahead[1] == np.inf, "the doorway is open"


# --------------------------------------------------------------------------- #
# Arenas of varying size.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("scenario", ["random", "circle", "swap"])
def test_arena_size_range_plays_each_episode_in_a_square_of_a_drawn_size(scenario):
    cfg = SimConfig(scenario=scenario, num_robots=4, arena_size_range=[3.0, 6.0], num_obstacles=2)
    size = fitted_arena_size(cfg, PROFILE)
    assert size == 6.0, "the arena's walls stand at the range's largest size"
    rng = np.random.default_rng(0)
    sides = []
    for _ in range(12):
        layout = draw_layout(rng, cfg, size, R)
        side = layout.room_size or size
        sides.append(side)
        assert 3.0 - 1e-9 <= side <= 6.0 and layout.arena_size == 6.0
        for points in (layout.starts[:, :2], layout.goals):
            assert wall_clearance(points, side).min() >= margin(cfg) - 1e-6
            assert obstacle_clearance(pack_obstacles(layout.obstacles), points).min() > 0
        for o in layout.obstacles[4:] if layout.room_size else layout.obstacles:
            assert max(abs(o.x), abs(o.y)) + o.bounding_radius <= side / 2 + 1e-9
    assert len({round(s, 3) for s in sides}) >= 6, "episode sizes vary"


def test_a_range_too_small_for_the_team_grows_the_square_to_fit():
    cfg = SimConfig(scenario="circle", num_robots=16, arena_size_range=[2.0, 8.0])
    rng = np.random.default_rng(0)
    layouts = [draw_layout(rng, cfg, fitted_arena_size(cfg, PROFILE), R) for _ in range(10)]
    needed = 2 * (cfg.min_separation / (2 * math.sin(math.pi / 16)) + margin(cfg))
    assert min(lay.room_size or 8.0 for lay in layouts) >= needed - 1e-6


def test_robots_stay_inside_the_fence_and_the_lidar_sees_it(make_env):
    env = make_env(num_arenas=2, num_robots=4, arena_size_range=[3.0, 5.0], seed=3)
    env.reset()
    sides = [env.arena_layout(a).room_size or env.arena_size for a in range(2)]
    rng = np.random.default_rng(0)
    forward = np.zeros((2, 4, 2), np.float32)
    forward[..., 0] = 1.0
    for t in range(80):  # mostly full speed ahead: every robot runs into the fence
        forward[..., 1] = rng.uniform(-0.3, 0.3, (2, 4)) if t % 10 == 0 else forward[..., 1]
        _, _, _, done, trunc, _ = env.step(forward)
        assert not (done | trunc).any()
        poses = env.poses()
        for a in range(2):
            assert np.abs(poses[a, :, :2]).max() <= sides[a] / 2 - R + 1e-9

    # One robot in the middle of a fenced square, facing +x: the fence is side / 2 ahead.
    cfg = SimConfig(num_robots=1, arena_size_range=[3.0, 5.0])
    single = make_env(num_robots=1, arena_size_range=[3.0, 5.0])
    layout = draw_layout(np.random.default_rng(1), cfg, single.arena_size, R)
    assert layout.room_size is not None and layout.room_size < 5.0
    centred = ArenaLayout(
        layout.arena_size,
        np.zeros((1, 3)),
        np.array([[1.0, 0.0]]),
        layout.obstacles,
        R,
        room_size=layout.room_size,
    )
    single.reset(layouts=[centred])
    assert single.world.scan(360)[0, 0, 180] == pytest.approx(layout.room_size / 2, abs=1e-3)


# --------------------------------------------------------------------------- #
# Pictures.
# --------------------------------------------------------------------------- #


def test_the_picture_of_a_layout_draws_its_walls(make_env, tmp_path):
    from PIL import Image

    from mappo_training.sim.render import episode_png

    pictures = {}
    for name, cfg in (
        ("open", {"arena_size": 7.0}),
        ("two_rooms", {"scenario": "layout", "layout": "two_rooms"}),
    ):
        env = make_env(num_robots=2, **cfg)
        env.reset()
        recording = {"layout": env.arena_layout(0), "poses": env.poses()[:1], "period": 0.1}
        pictures[name] = np.asarray(Image.open(episode_png(recording, tmp_path / f"{name}.png")))
    grey = {
        k: int((np.abs(v[..., :3].astype(int) - 153).max(axis=-1) < 4).sum())
        for k, v in pictures.items()
    }
    assert grey["two_rooms"] > grey["open"] + 2000, "walls and furniture are drawn grey"


@pytest.mark.parametrize("scenario", ["circle", "swap"])
def test_jittered_starts_never_touch_the_fence_or_each_other(scenario):
    """Jitter is normal but cut short: an untruncated draw once put a start of a
    16-robot circle on the fence of its 4 m room and stopped a training run."""
    cfg = SimConfig(
        scenario=scenario, num_robots=16, arena_size_range=[4.0, 4.0], start_jitter=0.25
    )
    rng = np.random.default_rng(0)
    for _ in range(200):
        layout = draw_layout(rng, cfg, 8.0, R)
        xy = layout.starts[:, :2]
        assert obstacle_clearance(pack_obstacles(layout.obstacles), xy).min() >= R
        assert pairwise_min(xy) >= 2 * R
