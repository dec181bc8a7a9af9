"""The physical world: how robots move, what they hit, what their lidar sees."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.sim import ArenaLayout, Obstacle, World
from swarm_contract.robot_io import load_profile

PROFILE = load_profile("turtlebot3_burger")
R = PROFILE.radius
DT = PROFILE.control_period


def layout(starts, goals=None, obstacles=(), arena_size=6.0) -> ArenaLayout:
    starts = np.asarray(starts, dtype=float)
    goals = np.zeros((len(starts), 2)) + 2.0 if goals is None else np.asarray(goals, float)
    return ArenaLayout(arena_size, starts, goals, tuple(obstacles), robot_radius=R)


@pytest.fixture
def make_world():
    worlds = []

    def make(starts, obstacles=(), arena_size=6.0) -> World:
        world = World(1, len(starts), arena_size, PROFILE)
        world.set_layout(0, layout(starts, obstacles=obstacles, arena_size=arena_size))
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()


def drive(world: World, twists, steps: int):
    """Hold twists (N, 2) for `steps` control periods; returns each step's contacts."""
    world.set_twists(np.asarray(twists, dtype=float)[None])
    return [world.advance() for _ in range(steps)]


# --------------------------------------------------------------------------- #
# Motion.
# --------------------------------------------------------------------------- #


def test_robot_driven_straight_moves_straight_at_the_commanded_speed(make_world):
    world = make_world([[-1.0, -0.5, 0.4]])
    drive(world, [[0.2, 0.0]], steps=20)  # 2 s at 0.2 m/s
    x, y, yaw = world.poses()[0, 0]
    assert math.hypot(x + 1.0, y + 0.5) == pytest.approx(0.4, abs=1e-3)
    assert math.atan2(y + 0.5, x + 1.0) == pytest.approx(0.4, abs=1e-3)  # along its heading
    assert yaw == pytest.approx(0.4, abs=1e-9)
    assert world.velocities()[0, 0] == pytest.approx([0.2, 0.0])
    assert world.sim_time == pytest.approx(2.0)


def test_positive_angular_velocity_turns_left_counter_clockwise(make_world):
    world = make_world([[0.0, 0.0, 0.0]])
    drive(world, [[0.0, 1.0]], steps=5)
    assert world.poses()[0, 0, 2] == pytest.approx(0.5)  # yaw grew: CCW (REP-103)
    assert world.poses()[0, 0, :2] == pytest.approx([0.0, 0.0])  # turning in place
    drive(world, [[0.2, 1.0]], steps=5)
    assert world.poses()[0, 0, 1] > 0.05  # heading +x-ish and turning left: moves to +y


def test_a_full_circle_at_constant_twist_comes_back_to_the_start(make_world):
    world = make_world([[0.0, -0.5, 0.0]])
    # One turn takes 6.3 s = 63 control steps; the circle's radius is v / w = 0.5 m.
    w = 2 * math.pi / 6.3
    drive(world, [[0.5 * w, w]], steps=63)
    assert world.poses()[0, 0] == pytest.approx([0.0, -0.5, 0.0], abs=1e-6)


def test_speeds_are_clipped_to_the_profile_and_nan_stops(make_world):
    world = make_world([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    drive(world, [[5.0, 0.0], [math.nan, math.inf]], steps=10)
    assert world.poses()[0, 0, 0] == pytest.approx(PROFILE.max_linear * 10 * DT)
    assert world.poses()[0, 1] == pytest.approx([1.0, 1.0, 0.0])


# --------------------------------------------------------------------------- #
# Collisions.
# --------------------------------------------------------------------------- #


def test_robot_driven_into_a_wall_reports_a_collision_and_stays_inside(make_world):
    world = make_world([[2.5, 0.0, 0.0]], arena_size=6.0)  # wall at x = 3.0
    contacts = drive(world, [[0.22, 0.0]], steps=40)
    hits = [bool(c.static[0, 0]) for c in contacts]
    assert not any(hits[:15]), "no contact while there is still room"
    assert all(hits[25:]), "pushing against the wall is a contact every step"
    x = world.poses()[0, 0, 0]
    assert 3.0 - R - PROFILE.max_linear * DT <= x <= 3.0 - R
    assert world.velocities()[0, 0, 0] == 0.0  # odometry says it is not moving
    assert not any(c.robot[0, 0] for c in contacts)


def test_robots_driven_into_each_other_both_report_it_and_never_overlap(make_world):
    world = make_world([[-0.6, 0.0, 0.0], [0.6, 0.0, math.pi]])
    contacts = drive(world, [[0.2, 0.0], [0.2, 0.0]], steps=40)
    assert any(c.robot[0, 0] and c.robot[0, 1] for c in contacts)
    assert not any(c.static.any() for c in contacts)
    gap = np.linalg.norm(world.poses()[0, 0, :2] - world.poses()[0, 1, :2])
    assert 2 * R <= gap < 2 * R + 2 * PROFILE.max_linear * DT


def test_a_moving_robot_hitting_a_parked_one_is_a_collision_for_both(make_world):
    world = make_world([[-0.6, 0.0, 0.0], [0.0, 0.0, 0.0]])
    contacts = drive(world, [[0.2, 0.0], [0.0, 0.0]], steps=30)
    assert any(c.robot[0, 0] and c.robot[0, 1] for c in contacts)
    assert world.poses()[0, 1] == pytest.approx([0.0, 0.0, 0.0])  # not pushed


@pytest.mark.parametrize(
    "obstacle",
    [
        Obstacle("cylinder", x=1.0, y=0.0, radius=0.2),
        Obstacle("box", x=1.0, y=0.0, half_x=0.1, half_y=0.5, yaw=0.6),
    ],
)
def test_robot_driven_into_an_obstacle_reports_a_collision(make_world, obstacle):
    world = make_world([[0.0, 0.0, 0.0]], obstacles=[obstacle])
    contacts = drive(world, [[0.22, 0.0]], steps=50)
    assert any(c.static[0, 0] for c in contacts)
    assert obstacle.clearance(world.poses()[0, :, :2]).min() >= R - 1e-9


def test_layout_with_overlapping_robots_is_refused_naming_them():
    with World(1, 2, 4.0, PROFILE) as world, pytest.raises(ValueError, match="robots 0 and 1"):
        world.set_layout(0, layout([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]], arena_size=4.0))


# --------------------------------------------------------------------------- #
# Lidar.
# --------------------------------------------------------------------------- #


def test_lidar_sees_a_box_in_front_at_the_right_distance_and_beam(make_world):
    # Box face 1.2 m ahead of a robot at (-1, 0.5) heading 0.7 rad.
    yaw = 0.7
    ahead = np.array([math.cos(yaw), math.sin(yaw)])
    centre = np.array([-1.0, 0.5]) + (1.2 + 0.1) * ahead
    box = Obstacle("box", x=centre[0], y=centre[1], half_x=0.1, half_y=0.4, yaw=yaw)
    world = make_world([[-1.0, 0.5, yaw]], obstacles=[box])
    ranges = world.scan(360)[0, 0]  # LaserScan: ray i at -pi + i degrees
    assert ranges[180] == pytest.approx(1.2, abs=2e-3)  # ray 180 = 0 rad = straight ahead
    assert ranges[170] == pytest.approx(1.2 / math.cos(math.radians(10)), abs=2e-3)
    assert ranges[0] > 1.5  # behind: only the far wall

    # The TurtleBot3 LDS convention (angle_min = 0) sees the same box at index 0.
    assert world.scan(360, angle_min=0.0)[0, 0, 0] == pytest.approx(1.2, abs=2e-3)


def test_lidar_reports_walls_and_other_robots_and_inf_beyond_range(make_world):
    world = make_world([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]], arena_size=10.0)
    ranges = world.scan(360)[0, 0]
    assert ranges[270] == pytest.approx(1.0 - R, abs=2e-3)  # +90 deg: the other robot
    assert np.isinf(ranges[180])  # walls 5 m away, range_max 3.5 m
    near_wall = make_world([[4.0, 0.0, math.pi]], arena_size=10.0)
    assert near_wall.scan(360)[0, 0, 0] == pytest.approx(1.0, abs=2e-3)  # wall behind it


def test_lidar_of_one_arena_does_not_see_another():
    with World(2, 1, 4.0, PROFILE) as world:
        world.set_layout(0, layout([[0.0, 0.0, 0.0]], arena_size=4.0))
        world.set_layout(1, layout([[0.5, 0.0, 0.0]], arena_size=4.0))
        ranges = world.scan(72)
        assert ranges[0, 0, 36] == pytest.approx(2.0, abs=2e-3)
        assert ranges[1, 0, 36] == pytest.approx(1.5, abs=2e-3)


def test_a_scan_larger_than_one_pybullet_ray_batch_hits_with_every_ray():
    # PyBullet casts at most MAX_RAY_INTERSECTION_BATCH_SIZE (16384) rays a call
    # and returns nothing for exactly that many: scans of many arenas must be
    # cast in smaller chunks, every ray answered.
    with World(1, 1, 4.0, PROFILE) as world:
        world.set_layout(0, layout([[0.0, 0.0, 0.0]], arena_size=4.0))
        ranges = world.scan(20_000)[0, 0]
        # Walls 2 to 2.83 m away all round, within the lidar's 3.5 m.
        assert np.isfinite(ranges).all() and (ranges < 2.9).all()


def test_snapshot_and_restore_continue_identically(make_world):
    world = make_world([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    world.set_twists(np.array([[[0.1, 0.5], [0.2, -0.3]]]))
    world.advance()
    saved = world.snapshot()
    for _ in range(5):
        world.advance()
    expected = world.poses(), world.scan(24)
    world.restore(saved)
    for _ in range(5):
        world.advance()
    assert np.array_equal(world.poses(), expected[0])
    assert np.array_equal(world.scan(24), expected[1])


def test_scans_larger_than_one_pybullet_batch_are_complete():
    from mappo_training.sim import World

    # 20 arenas x 4 robots x 360 rays = 28,800 rays, more than one rayTestBatch
    # takes, in two PyBullet clients (16 arenas and 4).
    with World(num_arenas=20, num_robots=4, arena_size=4.0) as world:
        ranges = world.scan(360)
    assert ranges.shape == (20, 4, 360)
    assert np.isfinite(ranges).any(axis=-1).all(), "every robot sees the arena walls"


def test_arenas_beyond_one_pybullet_client_see_the_same_as_the_first():
    from mappo_training.sim.world import ARENAS_PER_CLIENT

    # Arena 0 and the last arena live in different PyBullet clients; with the
    # same layout (a robot, a second robot and a box) their scans agree (to the
    # rounding of their different places on the grid), also after both arenas'
    # robots move, and a partial scan keeps its order.
    box = Obstacle("box", x=1.0, y=-0.8, half_x=0.2, half_y=0.3, yaw=0.4)
    same = layout([[0.0, 0.0, 0.3], [0.0, 1.0, -1.0]], obstacles=[box], arena_size=4.0)
    last = ARENAS_PER_CLIENT
    with World(last + 1, 2, 4.0, PROFILE) as world:
        assert len(world.clients) == 2
        for arena in (0, last):
            world.set_layout(arena, same)
        world.set_twists(np.tile([[0.1, 0.5], [0.15, -0.2]], (last + 1, 1, 1)))
        for _ in range(5):
            world.advance()
        ranges = world.scan(72)
        assert np.isfinite(ranges[last]).any()
        np.testing.assert_allclose(ranges[last], ranges[0], rtol=0, atol=1e-9)
        partial = world.scan(72, arenas=np.array([last, 0]))
        assert np.array_equal(partial, ranges[[last, 0]])


def test_a_world_of_many_arenas_opens_a_bounded_number_of_pybullet_clients(monkeypatch):
    from mappo_training.sim import world as world_module

    # PyBullet allows 1024 clients per process; past MAX_CLIENTS * 16 arenas a
    # world packs more arenas into each client instead of opening more.
    monkeypatch.setattr(world_module, "MAX_CLIENTS", 2)
    with World(40, 1, 4.0, PROFILE) as world:
        assert len(world.clients) == 2
        world.set_layout(39, layout([[0.5, 0.0, 0.0]], arena_size=4.0))
        assert world.scan(72)[39, 0, 36] == pytest.approx(1.5, abs=2e-3)


def test_obstacles_of_many_episodes_reuse_their_shapes_and_bodies_go():
    """PyBullet never frees a collision shape a body used: one shape per size,
    reused, keeps a long run's memory flat; removed bodies really go."""
    import pybullet

    from mappo_training.sim.env import BatchedSwarmEnv

    env = BatchedSwarmEnv({"num_robots": 2, "num_obstacles": 6, "max_steps": 1}, seed=0)
    env.reset()
    client = env.world.clients[0]
    bodies_at_start = pybullet.getNumBodies(physicsClientId=client)
    for _ in range(300):  # 300 episodes, 1800 random obstacles
        env.step(np.zeros((1, 2, 2)))
    assert pybullet.getNumBodies(physicsClientId=client) == bodies_at_start
    # Sizes on a 1 cm grid in [0.15, 0.3]: at most 16 radii and 16 x 16 boxes.
    assert len(env.world._obstacle_shapes) <= 16 + 16 * 16
    env.close()
