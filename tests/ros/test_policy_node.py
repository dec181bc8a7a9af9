"""A real policy node in its own process, driven over DDS like a robot would drive it."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")

from lifecycle_msgs.msg import Transition
from ros_helpers import RobotWorld, change_state, diagnostic_error, velocity, wait_for

pytestmark = pytest.mark.ros

MAX_V = 0.22  # the default contract's (TurtleBot3) top speed, which the fixture controller uses
PERIOD = 0.1  # the default contract's control period: while holding, one zero per period
# Zeros counted over a hold of `seconds` must reach this share of one per
# period: a loose bound, so a loaded machine's late ticks do not fail it.
MIN_ZERO_SHARE = 0.5


def assert_zeros_keep_coming(robot: RobotWorld, since: float, until: float, what: str) -> None:
    """Between since and until, cmd_vel carried only zeros, about one per control period."""
    window = [
        velocity(m)
        for t, m in zip(robot.cmd.times(since), robot.cmd.messages(since), strict=False)
        if t <= until
    ]
    assert set(window) <= {(0.0, 0.0)}, f"{what}: non-zero commands {window}"
    wanted = MIN_ZERO_SHARE * (until - since) / PERIOD
    assert len(window) >= wanted, f"{what}: {len(window)} zeros in {until - since:.2f} s"


def test_drives_toward_a_goal_ahead_stops_for_an_obstacle_and_on_ctrl_c(
    probe, nodes, policy_models
):
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node("/robot_0", policy_path=policy_models.reference_controller())
    assert robot.wait_ready()["name"] == "reference-fixture-controller"

    robot.send_goal(3.0, 0.0)
    robot.feed()
    v, w = robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 5.0, "driving forward")[0]
    assert v <= MAX_V and w == pytest.approx(0.0, abs=1e-3)

    robot.obstacle_ahead_m = 0.25
    robot.wait_command(lambda v, w: v == 0.0, 3.0, "stopping for the wall")
    time.sleep(0.4)
    blocked = robot.commands(since=time.monotonic() - 0.35)
    assert blocked and all(v == 0.0 for v, _ in blocked), blocked

    robot.obstacle_ahead_m = None
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 3.0, "driving again once the way is clear")
    # Ctrl-C while driving on fresh data: the last word is a zero command.
    assert nodes.interrupt("/robot_0") == 0
    time.sleep(0.2)
    robot.stop_feed()
    commands = robot.commands()
    assert commands[-1] == (0.0, 0.0), f"last commands after Ctrl-C: {commands[-5:]}"
    assert commands[-2][0] > 0.9 * MAX_V, "the robot was not driving right before Ctrl-C"


def test_holds_without_goal_or_fresh_sensors_and_resumes(probe, nodes, policy_models):
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node(
        "/robot_0",
        policy_path=policy_models.reference_controller(),
        autostart=False,
        sensor_timeout=0.3,
    )
    assert change_state(probe, "/robot_0/policy_node", Transition.TRANSITION_CONFIGURE)
    robot.feed()
    assert change_state(probe, "/robot_0/policy_node", Transition.TRANSITION_ACTIVATE)
    robot.wait_ready()  # ~/active_policy is a lifecycle publisher: it speaks once active

    # Sensors but no goal: zeros at the control rate (a base may hold the last command).
    since = time.monotonic()
    time.sleep(1.0)
    assert_zeros_keep_coming(robot, since, time.monotonic(), "holding without a goal")

    robot.send_goal(3.0, 0.0)
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 3.0, "driving once a goal arrives")

    # Sensors go quiet: driving until the timeout, then zeros at the control rate.
    robot.stop_feed()
    stopped = time.monotonic()
    time.sleep(1.5)
    after = robot.commands(since=stopped)
    times = robot.cmd.times(since=stopped)
    first_zero = after.index((0.0, 0.0))
    assert all(v > 0 for v, _ in after[:first_zero]), after
    assert times[first_zero] - stopped < 0.3 + 0.4, "the zero came long after the sensor timeout"
    assert_zeros_keep_coming(robot, times[first_zero], time.monotonic(), "stale sensors")
    gaps = np.diff(times[first_zero:])
    print(
        f"stale sensors: {len(gaps) + 1} zeros, median gap {np.median(gaps) * 1e3:.1f} ms,"
        f" max {gaps.max() * 1e3:.1f} ms"
    )

    robot.feed()
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 3.0, "resuming with fresh sensors")

    # Deactivate: zeros only, still at the control rate, although sensors keep coming.
    assert change_state(probe, "/robot_0/policy_node", Transition.TRANSITION_DEACTIVATE)
    time.sleep(0.1)
    deactivated = time.monotonic()
    time.sleep(0.6)
    assert_zeros_keep_coming(robot, deactivated, time.monotonic(), "inactive")


def nan_midway_model(policy_models):
    """Finite on the loader's warm-up probes, NaN once the goal is 0.25-4.75 m away."""
    import numpy as np
    from onnx import helper

    from swarm_contract.robot_io import Contract

    c = Contract()
    n = helper.make_node
    weights = {
        "dist_idx": np.array([c.num_beams * c.scan_stack], np.int64),
        "lo": np.float32(0.05),
        "hi": np.float32(0.95),
        "half": np.float32(-0.5),
        "w_zero": np.zeros((1, 1), np.float32),
    }
    nodes = [
        n("Gather", ["obs", "dist_idx"], ["d"], axis=1),
        n("Sub", ["d", "lo"], ["a"]),
        n("Sub", ["hi", "d"], ["b"]),
        n("Mul", ["a", "b"], ["ab"]),
        n("Mul", ["ab", "half"], ["neg"]),  # < 0 between lo and hi
        n("Sqrt", ["neg"], ["v"]),  # NaN there
        n("MatMul", ["d", "w_zero"], ["w"]),
        n("Concat", ["v", "w"], ["cmd_vel"], axis=1),
    ]
    return policy_models.save("nan_midway.onnx", nodes, weights, c)


def test_a_policy_output_of_nan_never_reaches_cmd_vel(probe, nodes, policy_models):
    import math

    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node("/robot_0", policy_path=nan_midway_model(policy_models))
    robot.wait_ready()
    robot.send_goal(3.0, 0.0)
    robot.feed()
    time.sleep(0.8)
    commands = robot.commands()
    assert len(commands) >= 4, f"the node should keep commanding (stop): {commands}"
    assert all(math.isfinite(v) and math.isfinite(w) for v, w in commands), commands
    assert all(c == (0.0, 0.0) for c in commands)


def test_a_refused_first_policy_leaves_the_robot_still_until_a_good_one_is_set(
    probe, nodes, policy_models, tmp_path
):
    """robot_contract pins the robot's sensors; a model for 16 beams never drives it."""
    import yaml
    from diagnostic_msgs.msg import DiagnosticArray

    from swarm_contract.robot_io import Contract

    contract_file = tmp_path / "robot_contract.yaml"
    contract_file.write_text(yaml.safe_dump({"num_beams": 24}))
    wrong = policy_models.reference_controller("b16/robot_0.onnx", contract=Contract(num_beams=16))
    good = policy_models.reference_controller("b24/robot_0.onnx")

    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node("/robot_0", policy_path=wrong, robot_contract=contract_file)

    message = wait_for(
        lambda: diagnostic_error(diagnostics, "/robot_0"),
        10.0,
        "/diagnostics to report the refused policy",
    )
    assert "configure failed" in message and "num_beams: model expects 16, robot has 24" in message
    robot.send_goal(3.0, 0.0)
    robot.feed()
    since = time.monotonic()
    time.sleep(0.6)
    assert_zeros_keep_coming(robot, since, time.monotonic(), "unconfigured")

    [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(wrong)})
    assert not result.successful and "num_beams" in result.reason
    [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(good)})
    assert result.successful, result.reason
    robot.wait_ready()
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 5.0, "driving with the good policy")


# --------------------------------------------------------------------------- #
# Faults: a broken lidar, unusable scan fields, limits widened at run time.
# --------------------------------------------------------------------------- #


class ScanFeed:
    """Publishes scan + odom at 20 Hz; `scan` makes each scan (swap it to inject a fault)."""

    def __init__(self, probe, robot: RobotWorld) -> None:
        from ros_helpers import odom_msg, scan_msg

        self.scan = scan_msg

        def publish() -> None:
            robot.scan_pub.publish(self.scan())
            robot.odom_pub.publish(odom_msg())

        self.timer = probe.node.create_timer(0.05, publish)


def wait_diagnostic(diagnostics, since: float, level: int, text: str, timeout: float = 3.0):
    """The first /robot_0 status after `since` at `level` whose message holds `text`."""

    def find():
        for msg in diagnostics.messages(since):
            for status in msg.status:
                ours = status.hardware_id == "/robot_0" and status.level == level
                if ours and text in status.message:
                    return status
        return None

    return wait_for(find, timeout, f"/diagnostics saying {text!r}")


def time_to_zero(robot: RobotWorld, since: float, timeout: float, what: str) -> float:
    """Seconds from `since` to the first zero cmd_vel; asserts only zeros follow, at the
    control rate."""
    robot.wait_command(lambda v, w: (v, w) == (0.0, 0.0), timeout, what)
    zero_at = next(
        t
        for t, m in zip(robot.cmd.times(since), robot.cmd.messages(since), strict=False)
        if velocity(m) == (0.0, 0.0)
    )
    time.sleep(0.5)
    assert_zeros_keep_coming(robot, zero_at, time.monotonic(), what)
    return zero_at - since


def driving_at_full_speed(probe, nodes, policy_models, what: str) -> tuple[RobotWorld, ScanFeed]:
    """/robot_0's node with a goal ahead and fed scans, once it drives near full speed."""
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node("/robot_0", policy_path=policy_models.reference_controller())
    robot.wait_ready()
    robot.send_goal(3.0, 0.0)
    feed = ScanFeed(probe, robot)
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 5.0, what)
    return robot, feed


def broken_scan(valid_rays: int, fill: float):
    """A scan whose rays read `fill` (NaN, -1.0: invalid) except `valid_rays` +inf ones."""
    from ros_helpers import scan_msg

    def make():
        msg = scan_msg()
        msg.ranges = [math.inf] * valid_rays + [fill] * (360 - valid_rays)
        return msg

    return make


def test_a_broken_lidar_stops_the_robot_says_why_and_driving_resumes(probe, nodes, policy_models):
    """REP-117: NaN is an erroneous reading, not open space (min_valid_ray_fraction 0.5)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from ros_helpers import scan_msg

    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot, feed = driving_at_full_speed(probe, nodes, policy_models, "driving on a healthy lidar")

    for valid, fill, reason in (
        (3, math.nan, "lidar invalid (3 of 360 rays valid, need 50%)"),
        (0, -1.0, "lidar invalid (0 of 360 rays valid, need 50%)"),
    ):
        broke = time.monotonic()
        feed.scan = broken_scan(valid, fill)
        delay = time_to_zero(robot, broke, 2.0, f"zero once the lidar reads {fill}")
        # The next control tick (0.1 s) after the first broken scan (up to 0.05 s).
        assert delay < 0.3, f"the zero came {delay:.3f} s after the lidar broke"
        status = wait_diagnostic(diagnostics, broke, DiagnosticStatus.ERROR, reason)
        assert status.message == f"holding: {reason}"
        assert reason in nodes.log("/robot_0")
        feed.scan = scan_msg
        robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 3.0, "driving once valid scans return")


def test_a_scan_with_unusable_fields_is_refused_by_name_and_never_drives(
    probe, nodes, policy_models
):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from ros_helpers import scan_msg

    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot, feed = driving_at_full_speed(probe, nodes, policy_models, "driving on good scans")

    def with_field(field: str, value: float):
        def make():
            msg = scan_msg()
            setattr(msg, field, value)
            return msg

        return make

    for field, value, named in (
        ("angle_min", math.nan, "angle_min=nan must be a finite angle in radians"),
        ("angle_increment", 0.0, "angle_increment=0.0 must be a finite angle > 0 in radians"),
        ("range_max", math.inf, "range_max=inf must be a finite distance > range_min"),
    ):
        bad = time.monotonic()
        feed.scan = with_field(field, value)
        # A refused scan voids the last good one: the next tick (0.1 s) stops the
        # robot, without waiting for sensor_timeout (0.5 s).
        delay = time_to_zero(robot, bad, 2.0, f"zero while scans carry {field}={value}")
        assert delay < 0.3, f"the zero came {delay:.3f} s after the scans went bad"
        wait_diagnostic(diagnostics, bad, DiagnosticStatus.ERROR, named)
        feed.scan = scan_msg
        robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 3.0, "driving on good scans again")
    log = nodes.log("/robot_0")
    assert "scan refused: angle_min=nan must be a finite angle in radians" in log
    assert "argument must have no negative elements" not in log, "a numpy message leaked"


def test_speed_limits_and_policy_folders_cannot_be_widened(probe, nodes, policy_models):
    """A fleet file's 5 m/s on a 0.22 m/s Burger is capped; a running node refuses changes."""
    from diagnostic_msgs.msg import DiagnosticArray

    models = policy_models.reference_controller().parent
    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node(
        "/robot_0",
        policy_path=policy_models.reference_controller(),
        max_linear=5.0,
        allowed_policy_dirs=[str(models)],
    )
    robot.wait_ready()
    assert (
        "max_linear=5 is above what the robot profile 'turtlebot3_burger' allows; capped to 0.22"
        in nodes.log("/robot_0")
    )
    robot.send_goal(3.0, 0.0)
    robot.feed()
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 5.0, "driving")

    for name, value in (("max_linear", 5.0), ("allowed_policy_dirs", ["/tmp"])):
        [result] = probe.set_parameters(robot.node_fqn, {name: value})
        assert not result.successful and "read-only" in result.reason, (name, result.reason)
    since = time.monotonic()
    time.sleep(0.5)
    assert max(v for v, _ in robot.commands(since)) <= MAX_V

    def limits():
        for msg in reversed(diagnostics.messages(since)):
            for status in msg.status:
                if status.hardware_id == "/robot_0":
                    return {kv.key: kv.value for kv in status.values}["speed_limits"]
        return None

    assert wait_for(limits, 3.0, "/diagnostics") == "0.22 m/s, 2.84 rad/s"
