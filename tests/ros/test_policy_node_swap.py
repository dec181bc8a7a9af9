"""Live policy swap through the standard SetParameters service, as `ros2 param set` does it."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")

from diagnostic_msgs.msg import DiagnosticArray
from ros_helpers import RobotWorld, wait_for

from swarm_contract.robot_io import Contract
from swarm_ops.onnx_models import PolicyModels

pytestmark = pytest.mark.ros

MAX_V = Contract().max_linear


def latest_status(diagnostics, namespace: str) -> dict[str, str]:
    for msg in reversed(diagnostics.messages()):
        for status in msg.status:
            if status.hardware_id == namespace:
                return {kv.key: kv.value for kv in status.values}
    return {}


def test_swap_changes_the_policy_and_bad_swaps_keep_the_old_one_driving(
    probe, nodes, policy_models, tmp_path
):
    models = policy_models
    full_speed = models.reference_controller("full/robot_0.onnx")
    half_speed = models.reference_controller("half/robot_0.onnx", speed_fraction=0.5)
    corrupt = models.corrupt("corrupt/robot_0.onnx")
    wrong_beams = models.reference_controller(
        "beams16/robot_0.onnx", contract=Contract(num_beams=16)
    )
    outside = PolicyModels(tmp_path / "not_allowed").reference_controller(speed_fraction=0.5)

    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node(
        "/robot_0", policy_path=full_speed, allowed_policy_dirs=[str(models.root)]
    )
    robot.wait_ready()
    robot.send_goal(10.0, 0.0)
    robot.feed()
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V, rel=1e-4), 5.0, "at full speed")

    # A good model: accepted, announced on ~/active_policy, and it drives.
    [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(half_speed)})
    assert result.successful, result.reason
    new_sha = hashlib.sha256(half_speed.read_bytes()).hexdigest()
    wait_for(lambda: robot.policy_sha256() == new_sha, 3.0, "active_policy to show the new sha")
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V / 2, rel=1e-4), 3.0, "at half speed")

    # Bad models: refused with the reason, while the half-speed policy keeps driving.
    window_start = time.monotonic()
    refusals = {
        "corrupt": (corrupt, "cannot load it as an ONNX model"),
        "outside allowed dirs": (outside, "outside the allowed policy folders"),
        "wrong beam count": (wrong_beams, "num_beams: model expects 16, robot has 24"),
    }
    for what, (path, reason) in refusals.items():
        [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(path)})
        assert not result.successful, f"{what} was accepted"
        assert reason in result.reason and str(path) in result.reason, result.reason
    time.sleep(0.3)
    window = robot.cmd.times(since=window_start)
    commands = robot.commands(since=window_start)
    assert robot.policy_sha256() == new_sha
    assert commands and all(v == pytest.approx(MAX_V / 2, rel=1e-4) for v, _ in commands)
    gaps = np.diff([window_start, *window, time.monotonic()])
    assert gaps.max() < 0.25, f"cmd_vel paused {gaps.max():.3f} s during the refused swaps"

    def counts():
        status = latest_status(diagnostics, "/robot_0")
        return (
            status.get("swaps_accepted") == "1" and status.get("swaps_rejected") == "3" and status
        )

    status = wait_for(counts, 3.0, "/diagnostics to count 1 accepted and 3 rejected swaps")
    assert "num_beams" in status["last_swap_error"]
    assert status["policy_sha256"] == new_sha
