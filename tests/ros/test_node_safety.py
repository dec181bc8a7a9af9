"""The policy node fails safe: e-stops, the safety layer, pinned models, a respawn that resumes.

Each test runs real node processes over DDS, as a robot would run them. Times
are measured on the wall clock with loose bounds, so a loaded machine does not
fail them; the printed figures go to docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import RobotWorld, wait_for
from std_msgs.msg import Bool

from swarm_contract.robot_io import Contract
from swarm_ops.rosclient import latched_qos

pytestmark = pytest.mark.ros

MAX_V = Contract().max_linear
PERIOD = Contract().control_period
# An e-stop is answered at once, not at the next tick; this bound leaves room
# for a loaded machine's DDS delivery and still means "within one tick or so".
ESTOP_BOUND_S = 2 * PERIOD
# A node process's start (Python, rclpy, onnxruntime) takes 1-3 s, far longer
# on a machine busy with other test runs; how long is not what is tested here.
START_S = 90.0  # a respawn once took over 40 s with both cores kept busy by other processes


def latest_status(diagnostics, since: float = 0.0) -> DiagnosticStatus | None:
    for msg in reversed(diagnostics.messages(since)):
        for status in msg.status:
            if status.hardware_id == "/robot_0":
                return status
    return None


def status_values(diagnostics, since: float = 0.0) -> dict[str, str]:
    status = latest_status(diagnostics, since)
    return {kv.key: kv.value for kv in status.values} if status else {}


def only_zeros(robot: RobotWorld, since: float, seconds: float) -> list[tuple[float, float]]:
    """Wait `seconds`; assert cmd_vel carried zeros only, at least one per two periods."""
    time.sleep(seconds)
    commands = robot.commands(since)
    assert set(commands) <= {(0.0, 0.0)}, commands
    assert len(commands) >= seconds / (2 * PERIOD), f"{len(commands)} zeros in {seconds} s"
    return commands


def first_zero_after(robot: RobotWorld, since: float, timeout: float, what: str) -> float:
    """Seconds from `since` to the first zero cmd_vel."""
    robot.wait_command(lambda v, w: (v, w) == (0.0, 0.0), timeout, what)
    pairs = zip(robot.cmd.times(since), robot.commands(since), strict=False)
    return next(t for t, c in pairs if c == (0.0, 0.0)) - since


def test_fleet_and_robot_estops_stop_a_driving_robot_at_once_and_release_resumes(
    probe, nodes, policy_models
):
    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    fleet = probe.publisher(Bool, "/swarm/estop", latched_qos())
    own = probe.publisher(Bool, "/robot_0/estop", latched_qos())
    # `ros2 topic pub` without QoS options: a publisher that does not latch.
    plain = probe.publisher(
        Bool, "/robot_0/estop", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    )
    fleet.publish(Bool(data=True))  # latched before the node exists
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node("/robot_0", policy_path=policy_models.reference_controller())
    robot.wait_ready()
    robot.send_goal(3.0, 0.0)
    robot.feed()

    held = time.monotonic()
    only_zeros(robot, held, 1.0)
    wait_for(
        lambda: latest_status(diagnostics, held).message == "holding: e-stop (fleet)",
        3.0,
        "/diagnostics to say the fleet e-stop holds the robot",
    )
    assert latest_status(diagnostics, held).level == DiagnosticStatus.WARN

    fleet.publish(Bool(data=False))
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 3.0, "driving once the fleet e-stop is off")

    delays = {}
    for what, publisher in (("robot e-stop, latched", own), ("robot e-stop, plain", plain)):
        pressed = time.monotonic()
        publisher.publish(Bool(data=True))
        delays[what] = first_zero_after(robot, pressed, 2.0, f"a zero after the {what}")
        only_zeros(robot, pressed + delays[what], 0.5)
        assert latest_status(diagnostics).message == "holding: e-stop (robot)"
        publisher.publish(Bool(data=False))
        robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 3.0, f"driving after the {what}")
    print("e-stop publish -> first zero cmd_vel (s):", {k: round(t, 4) for k, t in delays.items()})
    assert max(delays.values()) < ESTOP_BOUND_S, delays
    values = wait_for(
        lambda: (v := status_values(diagnostics)).get("estop_engagements") == "3" and v,
        3.0,
        "/diagnostics to count three e-stop engagements",
    )
    assert values["estop"] == ""


def test_commands_ramp_up_at_the_acceleration_limit_and_the_stop_zone_cuts_motion(
    probe, nodes, policy_models
):
    """A policy that always asks for full speed ahead, whatever it sees."""
    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot = RobotWorld(probe, "/robot_0")
    accel = 0.5  # m/s^2: 0.05 m/s per 0.1 s tick, so the ramp takes a few ticks
    nodes.start_policy_node(
        "/robot_0",
        policy_path=policy_models.constant("forward/robot_0.onnx", MAX_V, 0.0),
        max_linear_accel=accel,
    )
    robot.wait_ready()
    started = time.monotonic()
    robot.send_goal(3.0, 0.0)
    robot.feed()
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V), 5.0, "full speed")
    speeds = [v for v, _ in robot.commands(started)]
    first_moving = next(i for i, v in enumerate(speeds) if v > 0)
    step = accel * PERIOD + 1e-6
    assert speeds[first_moving] <= step, f"from standstill: {speeds[first_moving]}"
    ramp = [0.0, *speeds[first_moving:]]  # zeros went out before the goal arrived
    assert max(b - a for a, b in zip(ramp, ramp[1:], strict=False)) <= step, ramp
    values = status_values(diagnostics)
    assert values["accel_limits"] == "0.5 m/s^2, 3.2 rad/s^2"
    assert values["stop_zone"] == "on, margin 0.05 m"

    robot.obstacle_ahead_m = 0.15
    blocked = time.monotonic()
    robot.wait_command(lambda v, w: v == 0.0, 1.0, "the stop zone cutting linear motion")
    time.sleep(0.5)
    assert all(v == 0.0 for v, _ in robot.commands(blocked + 0.2)), "drove into the stop zone"

    def cuts() -> int:
        return int(status_values(diagnostics).get("stop_zone_cuts", "0"))

    first = wait_for(cuts, 3.0, "/diagnostics to count stop zone cuts")
    wait_for(lambda: cuts() > first, 3.0, "stop_zone_cuts to keep growing while blocked")

    robot.obstacle_ahead_m = None
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V), 3.0, "full speed once clear")


@pytest.mark.xfail(
    strict=False,
    reason="open flake: in about 1 full-suite run in 5 the node restarted after kill -9"
    " is never heard on cmd_vel within 90 s, with Fast DDS over UDP only too",
)
def test_a_pinned_sha256_guards_swaps_and_a_respawn_resumes_the_live_policy(
    probe, nodes, policy_models, tmp_path
):
    """kill -9, then the same command line (as `swarm deploy` respawns): the live swap
    is back, from the record under $ROS_HOME (the fixture points it into tmp_path)."""
    launch = policy_models.reference_controller("launch/robot_0.onnx")
    live = policy_models.reference_controller("live/robot_0.onnx", speed_fraction=0.5)
    live_sha = hashlib.sha256(live.read_bytes()).hexdigest()
    launch_sha = hashlib.sha256(launch.read_bytes()).hexdigest()
    record = tmp_path / "ros_home" / "swarm" / "robot_0" / "live_policy.json"

    robot = RobotWorld(probe, "/robot_0")
    process = nodes.start_policy_node("/robot_0", policy_path=launch)
    robot.wait_ready()
    robot.send_goal(10.0, 0.0)
    robot.feed()
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V, rel=1e-4), 5.0, "launch policy")

    # policy_path first, then its hash, in one request: checked against the new hash.
    [refused, _] = probe.set_parameters(
        robot.node_fqn, {"policy_path": str(live), "expected_sha256": launch_sha}
    )
    assert not refused.successful
    assert live_sha in refused.reason and launch_sha in refused.reason, refused.reason
    assert not record.exists(), "a refused swap is not recorded"
    results = probe.set_parameters(
        robot.node_fqn, {"policy_path": str(live), "expected_sha256": live_sha}
    )
    assert all(r.successful for r in results), [r.reason for r in results]
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V / 2, rel=1e-4), 3.0, "live policy")
    saved = json.loads(record.read_text())
    assert (saved["launch_policy_path"], saved["live_policy_path"], saved["sha256"]) == (
        str(launch),
        str(live),
        live_sha,
    )

    process.kill()
    process.wait(5.0)
    restarted = time.monotonic()
    process = nodes.start_policy_node("/robot_0", policy_path=launch)
    zero_after = first_zero_after(robot, restarted, START_S, "the new node's first zero")
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V / 2, rel=1e-4), START_S, "resumed")
    resumed_after = time.monotonic() - restarted
    print(
        f"node start -> first zero {zero_after:.2f} s, -> first command of the resumed live"
        f" policy {resumed_after:.2f} s"
    )
    assert max(v for v, _ in robot.commands(restarted)) < 0.51 * MAX_V, "launch policy drove"
    assert f"resumed live-swapped policy {live} (launch file says {launch})" in nodes.log(
        "/robot_0"
    )
    wait_for(lambda: robot.policy_sha256() == live_sha, 3.0, "active_policy to show the live sha")

    # The live file changed since the swap: not resumed, the launch policy drives, and why.
    process.kill()
    process.wait(5.0)
    live.write_bytes(policy_models.reference_controller("other.onnx").read_bytes())
    nodes.start_policy_node("/robot_0", policy_path=launch)
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V, rel=1e-4), START_S, "launch policy")
    log = nodes.log("/robot_0").rsplit("\n--- ", 1)[-1]  # this start's lines
    assert f"did not resume live-swapped policy {live}" in log, log
    assert f"expected_sha256 is {live_sha}" in log, "the recorded hash is named"
