"""A real policy node and the lidar's scan period: stacking models of another lidar
rate are refused, a lidar at another rate is reported, a turned lidar is compensated."""

from __future__ import annotations

import math
import time

import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")

import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from ros_helpers import RobotWorld, diagnostic_error, wait_for

from swarm_contract.robot_io import Contract, load_profile

pytestmark = pytest.mark.ros

MAX_V = Contract().max_linear


def test_a_model_stacking_scans_of_another_lidar_period_is_refused_at_configure(
    probe, nodes, policy_models
):
    """No robot_contract: the robot's side is the TurtleBot3 profile the model names."""
    burger = load_profile("turtlebot3_burger")
    wrong = policy_models.reference_controller(
        "fast_lidar/robot_0.onnx",
        contract=Contract(scan_stack=3, scan_period=round(burger.lidar_period / 2, 3)),
    )
    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    nodes.start_policy_node("/robot_0", policy_path=wrong)
    message = wait_for(
        lambda: diagnostic_error(diagnostics, "/robot_0"),
        10.0,
        "/diagnostics to report the refused policy",
    )
    assert "configure failed" in message and "scan_period: model stacks 3 scans" in message
    assert "turtlebot3_burger" in message


def test_a_turned_lidar_at_another_rate_warns_and_a_mismatched_swap_is_refused(
    probe, nodes, policy_models, tmp_path
):
    # A custom robot: its lidar sends a scan every 0.2 s, mounted turned 90 degrees left.
    profile = tmp_path / "turned_lidar_bot.yaml"
    profile.write_text(yaml.safe_dump({"scan_period": 0.2, "mount_yaw": math.pi / 2}))
    matching = policy_models.reference_controller(
        "lidar_5hz/robot_0.onnx", contract=Contract(scan_stack=3, scan_period=0.2)
    )
    wrong = policy_models.reference_controller(
        "lidar_10hz/robot_0.onnx", contract=Contract(scan_stack=3, scan_period=0.1)
    )
    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot = RobotWorld(probe, "/robot_0")
    # 0.2 m at scan angle 0: to the robot's left, not ahead, once the mount is
    # compensated (else the policy's front beams and the stop zone would stop it).
    robot.obstacle_ahead_m = 0.2
    nodes.start_policy_node(
        "/robot_0",
        policy_path=matching,
        robot_profile=profile,
        allowed_policy_dirs=[str(policy_models.root)],
    )
    robot.wait_ready()
    robot.send_goal(10.0, 0.0)
    robot.feed(rate_hz=20.0)  # a scan every 0.05 s, not the 0.2 s the model learned
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 5.0, "driving past the wall to its left")

    def period_warning():
        for msg in reversed(diagnostics.messages()):
            for status in msg.status:
                if status.hardware_id == "/robot_0" and "scan_period:" in status.message:
                    return status
        return None

    status = wait_for(period_warning, 6.0, "/diagnostics to warn about the scan period")
    assert status.level == DiagnosticStatus.WARN
    assert "3 scans 0.2 s apart" in status.message and "every 0.05" in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values["scan_period"].endswith("model 0.2 s")
    assert values["lifecycle_state"] == "active"  # it warns; it does not hold

    since = time.monotonic()
    [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(wrong)})
    assert not result.successful
    assert "scan_period: model stacks 3 scans 0.1 s apart" in result.reason, result.reason
    assert "one every 0.2 s" in result.reason
    time.sleep(0.3)
    commands = robot.commands(since=since)
    assert commands and all(v > 0.9 * MAX_V for v, _ in commands), commands
