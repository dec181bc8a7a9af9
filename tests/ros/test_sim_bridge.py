"""The sim bridge's simulation and parameters, without DDS.

Commands time out, arrived robots park, arrivals and contacts become events,
episodes end and are scored. The scores are training's EpisodeTracker, tested
on its own in tests/training/test_episodes.py; the ROS side is tested in
test_sim_bridge_ros.py.
"""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")
pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

import ros_sim_helpers
import yaml
from builtin_interfaces.msg import Time
from visualization_msgs.msg import Marker

from mappo_training.sim import ArenaLayout, Obstacle, SimConfig
from swarm_contract.config import ConfigError
from swarm_contract.robot_io import load_profile
from swarm_controller.frames import to_map, to_odom
from swarm_ops.lockstep import Action, Decision, Lockstep
from swarm_ops.sim_bridge import (
    SimulatedArena,
    arena_markers,
    event_json,
    odom_origins,
    static_transforms,
    transform_msg,
)
from swarm_ops.sim_bridge_config import (
    PARAMETERS,
    BridgeSettings,
    build_sim_config,
    settings_from_parameters,
)

PROFILE = load_profile()
R = PROFILE.radius


def two_robot_layout(arena_size: float = 3.0) -> ArenaLayout:
    """Robot 0 faces a goal 0.6 m ahead; robot 1 faces a wall 0.5 m ahead."""
    starts = np.array([[-1.0, 0.0, 0.0], [1.0, 1.0, math.pi / 2]])
    goals = np.array([[-0.4, 0.0], [1.0, -1.0]])
    return ArenaLayout(arena_size, starts, goals, (), robot_radius=R, goal_tolerance=0.15)


@pytest.fixture
def make_arena():
    arenas = []

    def make(cfg: SimConfig, layout: ArenaLayout | None = None, **kwargs) -> SimulatedArena:
        arena = SimulatedArena(cfg, **kwargs)
        arenas.append(arena)
        arena.start_episode(layout)
        return arena

    yield make
    for arena in arenas:
        arena.close()


# --------------------------------------------------------------------------- #
# Episodes: events, parking, scores.
# --------------------------------------------------------------------------- #


def test_an_episode_reports_each_arrival_and_each_contact_once_and_scores_it(make_arena):
    cfg = SimConfig(num_robots=2, arena_size=3.0, max_steps=40)
    arena = make_arena(cfg, two_robot_layout())
    events = []
    for _ in range(cfg.max_steps):
        arena.command(0, 0.2, 0.0)
        arena.command(1, 0.2, 0.0)
        outcome = arena.step()
        events += outcome.events
    end = outcome.episode_end
    assert end is not None and end["reason"] == "timeout" and end["length"] == 40
    # Robot 0 closes the 0.45 m to within goal_tolerance at 0.02 m per step: step 23.
    arrivals = [(e["robot"], e["time_to_goal"]) for e in events if e["type"] == "arrival"]
    assert arrivals == [(0, pytest.approx(2.3))]
    # Robot 1 pushed against the wall for many steps, but that is one contact event.
    assert [(e["robot"], e["with"]) for e in events if e["type"] == "collision"] == [(1, "static")]
    assert end["static_collisions"] > 5 and end["robot_collisions"] == 0
    assert end["collisions"] == end["static_collisions"]
    assert end["success"] is False and end["arrived_fraction"] == 0.5
    assert end["time_to_goal"] == pytest.approx(2.3)
    # Robot 0 drove 0.46 m of the 0.45 m a straight arrival needs, all of it forwards.
    assert end["path_efficiency"] == pytest.approx(0.45 / 0.46)
    assert end["reverse_share"] == 0.0
    assert "return" not in end  # nothing rewards the robots on ROS
    # Robot 0 parked on arrival although it was still told to drive.
    x, y, _ = arena.world.poses()[0, 0]
    assert math.hypot(x + 0.4, y) < cfg.goal_tolerance
    assert arena.parked.tolist() == [True, False]


def test_a_command_drives_for_cmd_timeout_then_the_robot_stops(make_arena):
    cfg = SimConfig(num_robots=2, arena_size=3.0, max_steps=100)
    arena = make_arena(cfg, two_robot_layout(), cmd_timeout=0.5)
    arena.command(0, 0.2, 0.0)
    speeds = []
    for _ in range(10):
        arena.step()
        speeds.append(arena.world.velocities()[0, 0, 0])
    assert speeds == pytest.approx([0.2] * 5 + [0.0] * 5)
    assert arena.world.poses()[0, 0, 0] == pytest.approx(-1.0 + 0.2 * 0.5)


def test_a_non_finite_command_stops_the_robot_and_is_counted(make_arena):
    cfg = SimConfig(num_robots=2, arena_size=3.0, max_steps=100)
    arena = make_arena(cfg, two_robot_layout())
    arena.command(0, 0.2, 0.0)
    arena.step()
    assert arena.command(0, math.nan, 0.0) is False
    assert arena.command(0, 0.1, math.inf) is False
    x_before = arena.world.poses()[0, 0, 0]
    arena.step()
    assert arena.world.poses()[0, 0, 0] == x_before
    assert arena.world.velocities()[0, 0] == pytest.approx([0.0, 0.0])
    assert arena.end_episode("reset")["rejected_commands"] == 2


def test_episode_ends_when_every_robot_arrived_and_the_next_has_a_new_layout(make_arena):
    cfg = SimConfig(num_robots=1, arena_size=3.0, scenario="random")
    arena = make_arena(cfg, seed=4)
    first_goal = arena.world.goals()[0, 0].copy()
    outcome = None
    for _ in range(arena.max_steps):
        x, y, yaw = arena.world.poses()[0, 0]
        bearing = math.atan2(first_goal[1] - y, first_goal[0] - x) - yaw
        bearing = math.atan2(math.sin(bearing), math.cos(bearing))
        arena.command(0, 0.22 * max(0.0, math.cos(bearing)) ** 4, 3.0 * bearing)
        outcome = arena.step()
        if outcome.episode_end:
            break
    end = outcome.episode_end
    assert end["reason"] == "all_arrived" and end["success"] is True
    assert end["arrived_fraction"] == 1.0 and 0.0 < end["path_efficiency"] <= 1.0
    start = arena.start_episode()
    assert start["episode"] == 1
    assert not np.allclose(start["goals"][0], first_goal)


def test_end_on_collision_ends_the_episode_at_the_first_contact(make_arena):
    cfg = SimConfig(num_robots=2, arena_size=3.0, max_steps=100, end_on_collision=True)
    arena = make_arena(cfg, two_robot_layout())
    steps = 0
    while steps < 100:
        arena.command(1, 0.2, 0.0)
        outcome = arena.step()
        steps += 1
        if outcome.episode_end:
            break
    end = outcome.episode_end
    assert end["reason"] == "collision" and end["success"] is False
    # The wall is 0.5 - R ahead: the first contact comes after about 20 steps at 0.02 m.
    assert end["static_collisions"] == 1 and end["length"] == steps > 15
    assert [e["type"] for e in outcome.events] == ["collision"]


def test_an_episode_without_arrivals_is_reported_as_strict_json(make_arena):
    cfg = SimConfig(num_robots=2, arena_size=3.0, max_steps=5)
    arena = make_arena(cfg, two_robot_layout())
    end = arena.end_episode("reset")

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    parsed = json.loads(event_json(end), parse_constant=refuse)
    assert parsed["time_to_goal"] is None and parsed["path_efficiency"] is None
    assert parsed["type"] == "episode_end" and parsed["robot"] is None


def test_episode_start_carries_the_obstacles_a_watcher_draws(make_arena):
    from swarm_ops.watch import SwarmWatcher

    base = two_robot_layout()
    obstacles = (Obstacle("cylinder", 0.0, -1.0, radius=0.2), Obstacle("box", -1.0, 1.0, yaw=0.3))
    layout = ArenaLayout(base.arena_size, base.starts, base.goals, obstacles, robot_radius=R)
    arena = make_arena(SimConfig(num_robots=2, arena_size=3.0))
    start = json.loads(event_json(arena.start_episode(layout)))
    end = json.loads(event_json(arena.end_episode("reset")))
    watcher = SwarmWatcher.__new__(SwarmWatcher)  # its recording, without a ROS node
    watcher.events, watcher.tracks, watcher._lock = [start, end], [], contextlib.nullcontext()
    drawn = watcher.recording(start["episode"], R, period=0.1)["layout"]
    assert drawn.obstacles == obstacles


def test_markers_show_walls_obstacles_robots_and_goals(make_arena):
    layout = two_robot_layout()
    layout = ArenaLayout(
        layout.arena_size,
        layout.starts,
        layout.goals,
        (Obstacle("cylinder", 0.0, -1.0, radius=0.2), Obstacle("box", -1.0, 1.0)),
        robot_radius=R,
    )
    arena = make_arena(SimConfig(num_robots=2, arena_size=3.0), layout)
    markers = arena_markers(arena, "odom", Time()).markers
    assert markers[0].action == Marker.DELETEALL  # last episode's obstacles go away
    by_ns = {}
    for m in markers[1:]:
        by_ns.setdefault(m.ns, []).append(m)
        assert m.header.frame_id == "odom"
    assert {ns: len(ms) for ns, ms in by_ns.items()} == {
        "walls": 4,
        "obstacles": 2,
        "goals": 2,
        "robots": 2,
        "headings": 2,
        "labels": 2,
    }
    robot = by_ns["robots"][1]
    assert (robot.pose.position.x, robot.pose.position.y) == pytest.approx((1.0, 1.0))
    assert robot.scale.x == pytest.approx(2 * R)
    assert [m.type for m in by_ns["obstacles"]] == [Marker.CYLINDER, Marker.CUBE]


# --------------------------------------------------------------------------- #
# Lockstep: when the bridge may step (wall times passed in, no clock or DDS).
# --------------------------------------------------------------------------- #


def answer_all(lockstep: Lockstep, num_robots: int = 2, moving: bool = False) -> None:
    for robot in range(num_robots):
        lockstep.answer(robot, moving=moving)


def settle(lockstep: Lockstep, t: float, num_robots: int = 2) -> float:
    """Run an episode's settling with prompt nodes from wall time `t`; the time after
    its GO tick. Checks the phases in order: READY, SETTLE, GO."""
    everyone = np.ones(num_robots, dtype=bool)
    assert lockstep.next_action(t, everyone).action is Action.HOLD
    lockstep.tick(t, stamp=0.0, hold=True)
    answer_all(lockstep, num_robots, moving=True)  # every node can drive
    t += 1.0
    assert lockstep.next_action(t, everyone) == Decision(Action.SETTLE)
    lockstep.tick(t, stamp=0.0, hold=True)
    for _ in range(lockstep.settle_ticks - 1):
        answer_all(lockstep, num_robots)  # zeros: "at goal" at the start pose
        t += 1.0
        assert lockstep.next_action(t, everyone).action is Action.HOLD
        lockstep.tick(t, stamp=0.0, hold=True)
    answer_all(lockstep, num_robots)
    t += 1.0
    assert lockstep.next_action(t, everyone) == Decision(Action.GO)
    lockstep.tick(t, stamp=0.0, hold=True)
    return t


def settled_lockstep(num_robots: int = 2, **kwargs) -> Lockstep:
    """A Lockstep past its first episode's settling and first step, at t=0."""
    kwargs = {"timeout": 1.0, "start_timeout": 30.0, "min_interval": 0.0, **kwargs}
    lockstep = Lockstep(num_robots, **kwargs)
    lockstep.begin_episode(now=-20.0)
    t = settle(lockstep, -20.0, num_robots)
    answer_all(lockstep, num_robots, moving=True)
    assert lockstep.next_action(t + 1.0, np.ones(num_robots, dtype=bool)).action is Action.STEP
    lockstep.tick(0.0, stamp=0.1)
    return lockstep


def test_lockstep_steps_once_every_driving_robot_answered_or_counts_a_miss():
    lockstep = settled_lockstep(timeout=1.0)
    driving = np.array([True, True])
    lockstep.answer(0)
    assert lockstep.next_action(0.5, driving).action is Action.WAIT  # robot 1 may still answer
    lockstep.answer(1)
    assert lockstep.next_action(0.5, driving) == Decision(Action.STEP)
    lockstep.tick(0.5, stamp=0.2)
    lockstep.answer(0)
    # Robot 1 stays silent: after the timeout the world steps without it, one miss.
    assert lockstep.next_action(1.4, driving).action is Action.WAIT
    assert lockstep.next_action(1.5, driving) == Decision(Action.STEP, late=(1,))
    assert lockstep.misses.tolist() == [0, 1] and lockstep.episode_misses == 1
    # A parked robot is not waited for.
    lockstep.tick(1.5, stamp=0.3)
    lockstep.answer(0)
    assert lockstep.next_action(1.5, np.array([True, False])) == Decision(Action.STEP)


def test_lockstep_keeps_the_real_time_factor_as_a_top_speed_and_ignores_stale_stamps():
    lockstep = settled_lockstep(min_interval=0.05)
    driving = np.array([True, True])
    lockstep.answer(0, stamp=0.1)
    lockstep.answer(1, stamp=0.0999999999)  # the same tick, as a float rounds it
    assert lockstep.next_action(0.01, driving).action is Action.WAIT  # too soon
    assert lockstep.next_action(0.05, driving).action is Action.STEP
    lockstep.tick(0.05, stamp=0.2)
    lockstep.answer(0, stamp=0.1)  # computed for the previous tick: not an answer
    lockstep.answer(1, stamp=0.2)
    assert not lockstep.all_answered(driving)
    lockstep.answer(0, stamp=0.0)  # no stamp (a zero from `swarm deploy`): counts
    assert lockstep.all_answered(driving)


def test_each_episode_waits_until_every_robot_can_drive_without_counting_misses():
    lockstep = Lockstep(2, timeout=1.0, start_timeout=10.0, min_interval=0.0)
    everyone = np.ones(2, dtype=bool)
    lockstep.begin_episode(now=0.0)
    # The start readings get a clock tick of their own at once.
    assert lockstep.next_action(0.0, everyone).action is Action.HOLD
    lockstep.tick(0.0, stamp=0.1, hold=True)
    t = 0.0
    # Robot 0 can drive; robot 1's node is still starting (silent), then holding
    # (zeros, as a policy node does before it may drive): the world stays at rest.
    for answer_1 in (None, None, False, False):
        lockstep.answer(0, moving=True)
        if answer_1 is not None:
            lockstep.answer(1, moving=answer_1)
            assert lockstep.next_action(t + 0.1, everyone).action is Action.HOLD
            t += 0.1
        else:
            assert lockstep.next_action(t + 0.5, everyone).action is Action.WAIT
            t += 1.0
            assert lockstep.next_action(t, everyone).action is Action.HOLD
        lockstep.tick(t, stamp=0.1, hold=True)
    answer_all(lockstep, moving=True)
    assert lockstep.next_action(t, everyone) == Decision(Action.SETTLE)
    assert lockstep.misses.tolist() == [0, 0]
    # A robot that never drives delays an episode's start by start_timeout at most.
    lockstep.begin_episode(now=100.0)
    t = 100.0
    while (decision := lockstep.next_action(t, everyone)).action is not Action.STEP:
        if decision.action is not Action.WAIT:
            lockstep.tick(t, stamp=1.0, hold=True)
        lockstep.answer(0, moving=True)
        t += 0.25
    assert 110.0 <= t <= 112.5 and decision.late == (1,)


def test_after_settling_every_episode_starts_with_the_same_ticks():
    lockstep = Lockstep(2, timeout=1.0, start_timeout=30.0, min_interval=0.0)
    lockstep.begin_episode(now=0.0)
    settle(lockstep, 0.0)
    assert lockstep.episode_holds == 2 + lockstep.settle_ticks  # READY, SETTLE..., GO


def test_a_hold_lets_time_pass_with_every_robot_at_rest_and_unscored(make_arena):
    cfg = SimConfig(num_robots=2, arena_size=3.0, max_steps=40)
    arena = make_arena(cfg, two_robot_layout())
    arena.command(0, 0.2, 0.0)
    before, t0 = arena.world.poses().copy(), arena.sim_time
    arena.hold()
    assert arena.sim_time == pytest.approx(t0 + PROFILE.control_period)
    assert np.array_equal(arena.world.poses(), before)
    assert arena.summary()["length"] == 0
    arena.step()  # the command given before the hold still drives the first step
    assert arena.world.poses()[0, 0, 0] == pytest.approx(-1.0 + 0.02)


# --------------------------------------------------------------------------- #
# Parameters.
# --------------------------------------------------------------------------- #


def test_sim_config_file_then_overrides_then_parameters(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(
        yaml.safe_dump({"run": {"name": "x"}, "sim": {"num_robots": 6, "scenario": "circle"}})
    )
    settings = settings_from_parameters(
        {
            "sim_config": str(path),
            "sim_overrides": ["end_on_collision=true", "num_robots=5"],
            "num_robots": 3,
        }
    )
    cfg = build_sim_config(settings)
    assert (cfg.num_robots, cfg.scenario, cfg.end_on_collision) == (3, "circle", True)
    unset = build_sim_config(settings_from_parameters({"sim_config": str(path)}))
    assert (unset.num_robots, unset.scenario) == (6, "circle")


def test_a_bad_scenario_names_the_value_the_choices_and_where_it_came_from():
    with pytest.raises(ConfigError) as err:
        build_sim_config(settings_from_parameters({"scenario": "spiral"}))
    message = str(err.value)
    assert "'spiral'" in message and "circle" in message and "swap" in message
    assert "num_robots" in message  # says which parameters feed the sim config


def test_a_bad_namespace_prefix_is_refused_with_an_example():
    with pytest.raises(ConfigError, match=r"namespace_prefix='/robot 0'.*e\.g\. 'robot_'"):
        BridgeSettings(namespace_prefix="/robot 0")
    assert BridgeSettings(namespace_prefix="fleet/tb3_").robot_namespace(2) == "fleet/tb3_2"


def test_the_sample_params_file_sets_only_real_parameters_and_builds_a_task():
    path = ros_sim_helpers.SAMPLE_PARAMS
    values = yaml.safe_load(path.read_text())["sim_bridge"]["ros__parameters"]
    declared = {spec.name for spec in PARAMETERS}
    assert set(values) <= declared
    for spec in PARAMETERS:
        if spec.name in values:
            assert type(values[spec.name]) is type(spec.default), spec.name
    cfg = build_sim_config(settings_from_parameters(values))
    assert cfg.num_robots == values["num_robots"] and cfg.scenario == values["scenario"]


# --------------------------------------------------------------------------- #
# Frames (REP-105): one odom per robot under a shared map.
# --------------------------------------------------------------------------- #


def test_each_robot_has_its_own_odom_and_base_footprint_under_a_shared_map():
    settings = BridgeSettings(namespace_prefix="tb3_")
    assert settings.per_robot_frames
    assert (settings.map_frame, settings.odom_frame_of(2), settings.base_frame_of(2)) == (
        "map",
        "tb3_2/odom",
        "tb3_2/base_footprint",
    )
    # The compatibility option: every robot in one shared frame.
    shared = BridgeSettings(odom_frame="odom")
    assert not shared.per_robot_frames and shared.odom_frame_of(3) == "odom"
    with pytest.raises(ConfigError, match=r"map_frame='my map'.*e\.g\. 'map'"):
        BridgeSettings(map_frame="my map")


def test_a_robots_odom_starts_at_its_start_pose_so_map_to_odom_is_that_pose():
    starts = two_robot_layout().starts
    origins = odom_origins(starts, per_robot=True)
    assert origins == pytest.approx(starts)
    # At its start a robot is at its odom origin, facing +x of its odom frame.
    assert to_odom(origins, starts) == pytest.approx(np.zeros((2, 3)), abs=1e-6)
    # Robot 1 starts facing +y of map: 0.5 m ahead of it is x=0.5 in its odom.
    assert to_odom(origins[1], [1.0, 1.5]) == pytest.approx([0.5, 0.0], abs=1e-6)
    assert to_map(origins[1], [0.5, 0.0, 0.0]) == pytest.approx([1.0, 1.5, math.pi / 2], abs=1e-6)
    assert odom_origins(starts, per_robot=False) == pytest.approx(np.zeros((2, 3)))


def test_tf_links_map_to_each_odom_and_each_body_to_its_lidar():
    settings = BridgeSettings(namespace_prefix="tb3_")
    origins = odom_origins(two_robot_layout().starts, per_robot=True)
    static = static_transforms(settings, origins, Time())
    pairs = [(t.header.frame_id, t.child_frame_id) for t in static]
    assert pairs == [
        ("map", "tb3_0/odom"),
        ("map", "tb3_1/odom"),
        ("tb3_0/base_footprint", "tb3_0/base_scan"),
        ("tb3_1/base_footprint", "tb3_1/base_scan"),
    ]
    t = static[1].transform
    assert (t.translation.x, t.translation.y) == pytest.approx((1.0, 1.0))
    assert 2 * math.atan2(t.rotation.z, t.rotation.w) == pytest.approx(math.pi / 2)
    moving = transform_msg("tb3_0/odom", "tb3_0/base_footprint", Time(), (0.3, 0.0, 0.1))
    assert moving.transform.translation.x == pytest.approx(0.3)


def test_a_watcher_draws_each_robots_odometry_where_it_is_in_map(make_arena):
    from swarm_ops.watch import OdomTrack, SwarmWatcher

    arena = make_arena(SimConfig(num_robots=2, arena_size=3.0))
    start = json.loads(event_json(arena.start_episode(two_robot_layout())))
    start["map_to_odom"] = odom_origins(two_robot_layout().starts, per_robot=True).tolist()
    arena.step()
    end = json.loads(event_json(arena.end_episode("reset")))
    # One step later each robot is 0.02 m ahead of its start, in its own odom frame.
    tracks = [OdomTrack([start["t"] + 0.1], [(0.02, 0.0, 0.0)]) for _ in range(2)]
    watcher = SwarmWatcher.__new__(SwarmWatcher)  # its recording, without a ROS node
    watcher.events, watcher.tracks, watcher._lock = [start, end], tracks, contextlib.nullcontext()
    poses = watcher.recording(start["episode"], R, period=0.1)["poses"]
    expected = np.array([[-0.98, 0.0, 0.0], [1.0, 1.02, math.pi / 2]])
    assert poses[1] == pytest.approx(expected, abs=1e-5)
