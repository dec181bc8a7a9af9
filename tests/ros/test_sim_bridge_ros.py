"""The sim bridge over real DDS: a bridge process, and this test as another ROS node.

One bridge serves most tests: 3 robots in the circle scenario, close to the
centre of a large arena (so most lidar rays see nothing), 5x real time.
Tests that drive a robot start a fresh episode through /swarm/reset first, so
they do not depend on each other. Times in assertions are simulated seconds
from message stamps, so a slow machine changes how long a test takes, not
whether it passes.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")
pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy, qos_profile_sensor_data
from ros_helpers import RosProbe, latched_qos, wait_for
from ros_sim_helpers import (
    SAMPLE_PARAMS,
    BridgeProcess,
    EventLog,
    drive_towards,
    hold_command,
    isolated_ros_env,
    odom_pose,
    stamp_seconds,
)
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan

from swarm_contract.robot_io import load_profile, wrap_angle
from swarm_controller.frames import to_map, to_odom

pytestmark = pytest.mark.ros

PROFILE = load_profile()
RTF = 5.0
NUM_ROBOTS = 3
CIRCLE_RADIUS = 0.6
ARENA = 8.4  # walls 4.2 m from the centre: beyond the 3.5 m lidar from every start
BRIDGE_PARAMS = {
    "num_robots": NUM_ROBOTS,
    "scenario": "circle",
    "sim_overrides": [f"circle_radius={CIRCLE_RADIUS}"],
    "arena_size": ARENA,
    "seed": 5,
    "real_time_factor": RTF,
    "publish_clock": True,
    "cmd_timeout": 0.5,
}
LATCHED = latched_qos()


class Swarm:
    """What the test node hears from the bridge."""

    def __init__(self, probe: RosProbe) -> None:
        self.events = EventLog(probe)
        self.odom = [
            probe.record(Odometry, f"/robot_{i}/odom", qos_profile_sensor_data)
            for i in range(NUM_ROBOTS)
        ]
        self.scan_1 = probe.record(LaserScan, "/robot_1/scan", qos_profile_sensor_data, keep=20)
        self.clock = probe.record(Clock, "/clock", 10, keep=50)

    def current_episode(self) -> dict:
        return max(self.events.events(type="episode_start"), key=lambda e: e["episode"])

    def map_pose(self, robot: int) -> tuple[float, float, float]:
        """Robot's last odometry pose moved from its own odom frame into map."""
        origin = self.current_episode()["map_to_odom"][robot]
        return tuple(to_map(origin, odom_pose(self.odom[robot].last())))

    def in_odom(self, robot: int, point) -> tuple[float, float]:
        """A map point in the robot's odom frame of the current episode."""
        return tuple(to_odom(self.current_episode()["map_to_odom"][robot], point))


@pytest.fixture(scope="module")
def domain():
    with isolated_ros_env() as domain_id:
        yield domain_id


@pytest.fixture(scope="module")
def bridge(domain, tmp_path_factory):
    process = BridgeProcess(BRIDGE_PARAMS, tmp_path_factory.mktemp("bridge"), SAMPLE_PARAMS)
    yield process
    process.stop()
    assert "Traceback" not in process.output(), process.output()


@pytest.fixture(scope="module")
def probe(domain, bridge):
    node = RosProbe(domain)
    yield node
    node.close()


@pytest.fixture(scope="module")
def swarm(probe, bridge) -> Swarm:
    swarm = Swarm(probe)
    try:
        swarm.events.wait_for(20.0, type="episode_start")
        swarm.odom[0].wait_for_count(1, 10.0, "/robot_0/odom")
    except AssertionError:
        bridge.check_alive()
        raise
    return swarm


def new_episode(probe: RosProbe, swarm: Swarm) -> dict:
    """Reset through the service; the new episode_start once robot 0's odom shows it."""
    previous = swarm.current_episode()["episode"]
    answer = probe.call_trigger("/swarm/reset")
    assert answer.success, answer.message
    start = swarm.events.wait_for(5.0, type="episode_start", episode=previous + 1)
    # Each episode's start is the origin of the robot's odom frame (REP-105:
    # odometry starts where the robot was switched on).
    assert start["map_to_odom"][0] == pytest.approx(start["starts"][0], abs=1e-4)

    def robot_0_at_start():
        msg = swarm.odom[0].last()
        return msg is not None and math.dist(odom_pose(msg)[:2], (0.0, 0.0)) < 1e-3

    wait_for(robot_0_at_start, 5.0, "robot 0's odom at its new start (its odom origin)")
    return start


def odom_after(recorder, since: int) -> list:
    return recorder.messages()[-(recorder.count - since) :] if recorder.count > since else []


def odom_while_driving(probe: RosProbe, swarm: Swarm, linear: float, angular: float) -> list:
    """Robot 0's odom in a fresh episode while one command is held, then zero."""
    new_episode(probe, swarm)
    since = swarm.odom[0].count
    hold_command(probe, "/robot_0/cmd_vel", linear, angular, seconds=0.5)
    hold_command(probe, "/robot_0/cmd_vel", 0.0, 0.0, seconds=0.05)
    return odom_after(swarm.odom[0], since)


# --------------------------------------------------------------------------- #
# Topics.
# --------------------------------------------------------------------------- #


def test_each_robot_has_scan_odom_goal_and_cmd_vel_under_its_namespace(probe, swarm):
    types = {
        "scan": "sensor_msgs/msg/LaserScan",
        "odom": "nav_msgs/msg/Odometry",
        "goal": "geometry_msgs/msg/PoseStamped",
    }
    node = probe.node

    def bridge_endpoints(topic: str, publishers: bool) -> list:
        info = (
            node.get_publishers_info_by_topic
            if publishers
            else node.get_subscriptions_info_by_topic
        )
        return [e for e in info(topic) if e.node_name == "sim_bridge"]

    for i in range(NUM_ROBOTS):
        for name, type_name in types.items():
            topic = f"/robot_{i}/{name}"
            [endpoint] = wait_for(
                lambda topic=topic: bridge_endpoints(topic, True), 5.0, f"the bridge on {topic}"
            )
            assert endpoint.topic_type == type_name
            qos = endpoint.qos_profile
            assert qos.reliability == ReliabilityPolicy.RELIABLE  # REP-2003, drivers too
            if name == "goal":
                assert qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
            else:
                assert qos.durability == DurabilityPolicy.VOLATILE
        [command] = bridge_endpoints(f"/robot_{i}/cmd_vel", False)
        assert command.topic_type == "geometry_msgs/msg/Twist"
    assert not bridge_endpoints(f"/robot_{NUM_ROBOTS}/scan", True)


def test_a_scan_has_360_rays_inf_where_nothing_is_hit_and_sees_the_others(swarm):
    scan = swarm.scan_1.wait_for_count(1, 5.0, "/robot_1/scan")[-1]
    increment = 2 * math.pi / 360
    assert scan.header.frame_id == "robot_1/base_scan"
    assert len(scan.ranges) == 360
    assert scan.angle_min == 0.0
    assert scan.angle_increment == pytest.approx(increment)
    assert scan.angle_max == pytest.approx(2 * math.pi - increment)
    assert (scan.range_min, scan.range_max) == pytest.approx((PROFILE.range_min, PROFILE.range_max))
    ranges = np.asarray(scan.ranges)
    # Walls are out of range: REP-117 says +inf ("no return"), not range_max or 0.
    assert np.isposinf(ranges).sum() > 300
    assert not np.isnan(ranges).any()
    # Robot 2 (never driven) shows up where the LaserScan convention puts it:
    # ray k at angle_min + k * increment, counter-clockwise from straight ahead.
    swarm.odom[1].wait_for_count(1, 5.0, "/robot_1/odom")
    swarm.odom[2].wait_for_count(1, 5.0, "/robot_2/odom")
    x1, y1, yaw1 = swarm.map_pose(1)
    x2, y2, _ = swarm.map_pose(2)
    bearing = float(wrap_angle(math.atan2(y2 - y1, x2 - x1) - yaw1)) % (2 * math.pi)
    ray = round(bearing / increment) % 360
    assert ranges[ray] == pytest.approx(math.dist((x1, y1), (x2, y2)) - PROFILE.radius, abs=0.03)


def test_a_late_subscriber_still_gets_the_goal_in_the_robots_own_odom_frame(probe, swarm):
    start = swarm.current_episode()
    goals = probe.record(PoseStamped, "/robot_2/goal", LATCHED)
    goal = goals.wait_for_count(1, 5.0, "the latched /robot_2/goal")[0]
    assert (goal.pose.position.x, goal.pose.position.y) == pytest.approx(
        swarm.in_odom(2, start["goals"][2]), abs=1e-4
    )
    odom = swarm.odom[2].last()
    assert goal.header.frame_id == odom.header.frame_id == "robot_2/odom"
    assert odom.child_frame_id == "robot_2/base_footprint"
    # Events and markers stay in the shared map frame; each robot's odom hangs off it.
    assert start["map_frame"] == "map"
    assert start["odom_frames"] == [f"robot_{i}/odom" for i in range(NUM_ROBOTS)]


def test_without_tf2_msgs_the_bridge_says_once_that_tf_is_off_and_why(bridge, swarm):
    try:
        import tf2_msgs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tf2_msgs is importable here: the bridge publishes TF")
    assert bridge.output().count("TF off: tf2_msgs is not importable") == 1, bridge.output()


def test_clock_advances_at_the_real_time_factor(swarm):
    swarm.clock.wait_for_count(2, 5.0, "/clock")
    first, wall_first = stamp_seconds(swarm.clock.last()), time.monotonic()
    time.sleep(1.0)
    last, wall_last = stamp_seconds(swarm.clock.last()), time.monotonic()
    rate = (last - first) / (wall_last - wall_first)
    assert 0.5 * RTF < rate < 1.2 * RTF
    # Sensor stamps are simulated time too, so use_sim_time nodes can judge their age.
    assert abs(stamp_seconds(swarm.odom[0].last()) - last) < 1.0


# --------------------------------------------------------------------------- #
# Driving.
# --------------------------------------------------------------------------- #


def test_forward_command_moves_the_robot_ahead_at_the_commanded_speed(probe, swarm):
    odom = odom_while_driving(probe, swarm, 0.15, 0.0)
    moving = [m for m in odom if m.twist.twist.linear.x > 0]
    assert len(moving) >= 5, "robot 0 hardly moved"
    assert {round(m.twist.twist.linear.x, 6) for m in moving} == {0.15}
    (x0, y0, yaw), (x1, y1, _) = odom_pose(moving[0]), odom_pose(moving[-1])
    elapsed = stamp_seconds(moving[-1]) - stamp_seconds(moving[0])
    assert math.hypot(x1 - x0, y1 - y0) / elapsed == pytest.approx(0.15, rel=0.02)
    assert math.atan2(y1 - y0, x1 - x0) == pytest.approx(yaw, abs=0.01)  # straight ahead


def test_turn_command_turns_counter_clockwise(probe, swarm):
    odom = odom_while_driving(probe, swarm, 0.0, 1.0)
    turning = [m for m in odom if m.twist.twist.angular.z > 0]
    assert len(turning) >= 5, "robot 0 hardly turned"
    yaws = np.unwrap([odom_pose(m)[2] for m in turning])
    elapsed = stamp_seconds(turning[-1]) - stamp_seconds(turning[0])
    assert (yaws[-1] - yaws[0]) / elapsed == pytest.approx(1.0, rel=0.02)  # positive: CCW
    assert math.dist(odom_pose(turning[0])[:2], odom_pose(turning[-1])[:2]) < 1e-6


def test_robot_stops_cmd_timeout_after_the_last_command(probe, swarm):
    new_episode(probe, swarm)
    hold_command(probe, "/robot_0/cmd_vel", 0.1, 0.0, seconds=0.3)
    last_seen = stamp_seconds(swarm.odom[0].last())
    since = swarm.odom[0].count

    def first_stopped():
        later = odom_after(swarm.odom[0], since)
        return next((m for m in later if m.twist.twist.linear.x == 0.0), None)

    stopped = wait_for(first_stopped, 5.0, "robot 0 to stop without commands")
    drove_on = stamp_seconds(stopped) - last_seen
    # cmd_timeout is 0.5 s; the last command reached the bridge within a step
    # or two of the odom stamp we had seen when we stopped sending.
    assert 0.45 <= drove_on <= 1.0
    parked_at = odom_pose(stopped)[:2]
    time.sleep(0.3)
    assert math.dist(odom_pose(swarm.odom[0].last())[:2], parked_at) < 1e-6


def test_driving_into_a_wall_reports_a_collision(probe, swarm):
    start = new_episode(probe, swarm)
    x, y = start["starts"][0][:2]
    outward = (x / math.hypot(x, y), y / math.hypot(x, y))
    beyond_the_wall = (x + 10 * outward[0], y + 10 * outward[1])
    [event] = drive_towards(
        probe,
        swarm.odom[0],
        "/robot_0/cmd_vel",
        swarm.in_odom(0, beyond_the_wall),
        done=lambda: swarm.events.events(type="collision", robot=0, episode=start["episode"]),
        timeout=20.0,
    )
    assert event["with"] == "static"
    x, y, _ = swarm.map_pose(0)
    assert max(abs(x), abs(y)) == pytest.approx(ARENA / 2 - PROFILE.radius, abs=0.05)


def test_driving_to_the_goal_reports_an_arrival_and_the_robot_parks(probe, swarm):
    start = new_episode(probe, swarm)
    goal = swarm.in_odom(0, start["goals"][0])
    [event] = drive_towards(
        probe,
        swarm.odom[0],
        "/robot_0/cmd_vel",
        goal,
        done=lambda: swarm.events.events(type="arrival", robot=0, episode=start["episode"]),
        timeout=15.0,
    )
    # It starts facing its goal 1.2 m away and arrives goal_tolerance short of it.
    shortest = (2 * CIRCLE_RADIUS - start["goal_tolerance"]) / PROFILE.max_linear
    assert shortest <= event["time_to_goal"] < shortest + 2.0
    hold_command(probe, "/robot_0/cmd_vel", 0.2, 0.0, seconds=0.3)
    parked = swarm.odom[0].last()
    assert parked.twist.twist.linear.x == 0.0
    assert math.dist(odom_pose(parked)[:2], goal) < 0.15


def test_reset_ends_the_episode_with_a_summary_and_publishes_new_goals(probe, swarm):
    goals = probe.record(PoseStamped, "/robot_1/goal", LATCHED)
    goals.wait_for_count(1, 5.0, "the latched /robot_1/goal")
    old = swarm.current_episode()
    start = new_episode(probe, swarm)
    [end] = swarm.events.events(type="episode_end", episode=old["episode"])
    assert end["reason"] == "reset" and end["success"] is False
    assert end["length"] > 0 and 0.0 <= end["arrived_fraction"] < 1.0
    assert {"collisions", "time_to_goal", "path_efficiency"} <= set(end)
    assert math.dist(start["goals"][1], old["goals"][1]) > 1e-3
    new_goal = swarm.in_odom(1, start["goals"][1])

    def new_goal_received():
        return any(
            math.dist((m.pose.position.x, m.pose.position.y), new_goal) < 1e-4
            for m in goals.messages()
        )

    wait_for(new_goal_received, 5.0, "robot 1's new goal")


# --------------------------------------------------------------------------- #
# Start-up and shutdown.
# --------------------------------------------------------------------------- #


def test_bridge_with_stamped_commands_exits_cleanly_on_sigint(tmp_path):
    params = {
        "num_robots": 1,
        "cmd_vel_stamped": True,
        "publish_clock": False,
        "marker_rate": 0.0,
    }
    with isolated_ros_env() as domain:
        bridge = BridgeProcess(params, tmp_path)
        probe = RosProbe(domain, name="sigint_probe")
        try:
            events = EventLog(probe)
            odom = probe.record(Odometry, "/robot_0/odom", qos_profile_sensor_data)
            events.wait_for(20.0, type="episode_start")
            probe.wait_for_subscriber("/robot_0/cmd_vel")
            command = TwistStamped()
            command.twist.linear.x = 0.1

            def moving():
                probe.publish("/robot_0/cmd_vel", command)
                msg = odom.last()
                return msg is not None and msg.twist.twist.linear.x > 0

            wait_for(moving, 5.0, "robot 0 driven by TwistStamped", poll=0.05)
            # Without /clock, stamps are wall-clock time.
            assert abs(stamp_seconds(odom.last()) - time.time()) < 5.0

            started = time.monotonic()
            assert bridge.interrupt(timeout=5.0) == 0, bridge.output()
            assert time.monotonic() - started < 5.0
            shutdown = events.wait_for(2.0, type="shutdown")
            assert shutdown["reason"] == "SIGINT"
            assert events.events(type="episode_end", reason="shutdown")
            assert odom.last().twist.twist.linear.x == 0.0  # the robot was stopped
            assert "Traceback" not in bridge.output()
        finally:
            probe.close()
            bridge.stop()


def test_in_lockstep_the_world_waits_for_each_command_and_counts_the_missing_ones(tmp_path):
    timeout = 0.25
    params = {
        "num_robots": 1,
        "cmd_vel_stamped": True,
        "lockstep": True,
        "lockstep_timeout": timeout,
        "lockstep_start_timeout": 1.0,
        "real_time_factor": 100.0,
        "marker_rate": 0.0,
        "seed": 3,
    }
    with isolated_ros_env() as domain:
        bridge = BridgeProcess(params, tmp_path)
        probe = RosProbe(domain, name="lockstep_probe")
        try:
            events = EventLog(probe)
            odom = probe.record(Odometry, "/robot_0/odom", qos_profile_sensor_data, keep=1000)
            answering = [True]

            def answer(clock: Clock) -> None:
                # A controller that answers each tick, stamped with it, as a policy node does.
                if answering[0]:
                    command = TwistStamped()
                    command.header.stamp = clock.clock
                    command.twist.linear.x = 0.1
                    probe.publish("/robot_0/cmd_vel", command)

            probe.node.create_subscription(Clock, "/clock", answer, 10)
            events.wait_for(20.0, type="episode_start")
            probe.wait_for_subscriber("/robot_0/cmd_vel")
            odom.wait_for_count(40, 20.0, "40 steps of /robot_0/odom")
            driving = [m for m in odom.messages() if m.twist.twist.linear.x > 0]
            # Every step after settling was driven by the command of its own tick.
            steps = [round(stamp_seconds(m) / PROFILE.control_period) for m in driving]
            assert steps == list(range(steps[0], steps[0] + len(steps))), steps
            xy = np.array([odom_pose(m)[:2] for m in driving])
            moved = np.linalg.norm(np.diff(xy, axis=0), axis=1)
            assert moved == pytest.approx(0.1 * PROFILE.control_period, abs=1e-6)

            # Silence: the world moves on only at each timeout, one miss per step.
            answering[0] = False
            time.sleep(0.3)
            silent_from, wall_from = stamp_seconds(odom.last()), time.monotonic()
            time.sleep(1.0)
            ticks = (stamp_seconds(odom.last()) - silent_from) / PROFILE.control_period
            assert 1 <= ticks <= (time.monotonic() - wall_from) / timeout + 1
            assert probe.call_trigger("/swarm/reset").success
            [end] = events.events(type="episode_end", episode=0)
            assert end["reason"] == "reset" and end["lockstep_misses"] >= round(ticks)
            assert "Traceback" not in bridge.output()
        finally:
            probe.close()
            bridge.stop()


def run_to_its_exit(params: dict, log_dir) -> tuple[int, str]:
    """A bridge that should stop by itself: its exit code and output."""
    with isolated_ros_env():
        bridge = BridgeProcess(params, log_dir)
        try:
            code = bridge.process.wait(timeout=20.0)
        finally:
            bridge.stop()
    return code, bridge.output()


def test_bridge_runs_the_requested_episodes_then_exits_by_itself(tmp_path):
    params = {"num_robots": 2, "episodes": 2, "max_steps": 20, "real_time_factor": 20.0}
    code, output = run_to_its_exit(params, tmp_path)
    assert code == 0, output
    assert "episode 1 ended (timeout)" in output and "episode 2" not in output
    assert "stopped (episodes_done)" in output and "Traceback" not in output


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"num_robots": 100}, ["num_robots", "Max: 64", "100"]),
        ({"scenario": "spiral"}, ["'spiral'", "'circle'", "scenario"]),
        ({"arena_size": 5}, ["arena_size", "DOUBLE", "5.0"]),
        ({"use_sim_time": True}, ["use_sim_time=true", "/clock"]),
    ],
    ids=["out-of-range", "unknown-scenario", "wrong-type", "own-clock"],
)
def test_bad_parameters_stop_the_bridge_with_a_message(params, expected, tmp_path):
    code, output = run_to_its_exit(params, tmp_path)
    assert code == 2, output
    for text in expected:
        assert text in output
    assert "Traceback" not in output
