"""Live policy swap through the standard SetParameters service, as `ros2 param set` does it."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")

from diagnostic_msgs.msg import DiagnosticArray
from ros_helpers import RobotWorld, diagnostic_error, wait_for

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


# --------------------------------------------------------------------------- #
# Faults in the candidate file: refused with the reason, the node lives on.
# --------------------------------------------------------------------------- #


def bad_candidates(models: PolicyModels) -> dict[str, tuple[Path, str]]:
    """Files that once killed the node on a swap, each with the reason it must give."""
    nodes, weights = graph_of(models.reference_controller("template/robot_0.onnx"))
    contract = Contract()

    def with_agent_id(value: str) -> Path:
        folder = value.replace("-", "minus")
        return models.save(
            f"agent_{folder}/robot_0.onnx",
            nodes,
            weights,
            contract,
            metadata={"policy.agent_id": value},
        )

    sparse = models.root / "huge" / "robot_0.onnx"
    sparse.parent.mkdir()
    sparse.touch()
    os.truncate(sparse, 64 * 2**30)  # 64 GiB on paper, nothing on disk
    folder = models.root / "folder" / "robot_0.onnx"
    folder.mkdir(parents=True)
    truncated = models.root / "cut" / "robot_0.onnx"
    truncated.parent.mkdir()
    good = models.root / "template" / "robot_0.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {
        "agent_id Infinity": (with_agent_id("Infinity"), "policy.agent_id='Infinity'"),
        "agent_id NaN": (with_agent_id("NaN"), "policy.agent_id='NaN'"),
        "agent_id 1e999": (with_agent_id("1e999"), "policy.agent_id='1e999'"),
        "agent_id -1": (with_agent_id("-1"), "policy.agent_id='-1'"),
        "300-character name": (models.root / ("r" * 300 + ".onnx"), "too long"),
        "64 GiB sparse file": (sparse, f"holds {64 * 2**30} bytes"),
        "a folder": (folder, "not a regular file (it is a folder)"),
        "truncated ONNX": (truncated, "cannot load it as an ONNX model"),
        "missing file": (models.root / "gone" / "robot_0.onnx", "no such file"),
    }


def graph_of(path: Path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return list(model.graph.node), {
        i.name: numpy_helper.to_array(i) for i in model.graph.initializer
    }


def test_every_faulty_swap_is_refused_and_the_old_policy_keeps_driving(probe, nodes, policy_models):
    models = policy_models
    driving = models.reference_controller("driving/robot_0.onnx", speed_fraction=0.5)
    candidates = bad_candidates(models)
    later = models.reference_controller("later/robot_0.onnx")

    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot = RobotWorld(probe, "/robot_0")
    process = nodes.start_policy_node(
        "/robot_0", policy_path=driving, allowed_policy_dirs=[str(models.root)]
    )
    robot.wait_ready()
    robot.send_goal(10.0, 0.0)
    robot.feed()
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V / 2, rel=1e-4), 5.0, "at half speed")
    driving_sha = robot.policy_sha256()

    window_start = time.monotonic()
    answer_times = {}
    for what, (path, reason) in candidates.items():
        asked = time.monotonic()
        [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(path)})
        answer_times[what] = time.monotonic() - asked
        assert not result.successful, f"{what} was accepted"
        assert str(path) in result.reason and reason in result.reason, (what, result.reason)
        assert process.poll() is None, f"the node exited ({process.returncode}) on {what}"
    time.sleep(0.3)
    print("time to answer a faulty swap (s):", {k: round(t, 4) for k, t in answer_times.items()})

    # Driving on, undisturbed, with the old policy.
    assert process.poll() is None
    assert robot.policy_sha256() == driving_sha
    commands = robot.commands(since=window_start)
    assert commands and all(v == pytest.approx(MAX_V / 2, rel=1e-4) for v, _ in commands)
    gaps = np.diff([window_start, *robot.cmd.times(since=window_start), time.monotonic()])
    assert gaps.max() < 0.25, f"cmd_vel paused {gaps.max():.3f} s during the refused swaps"

    def counts():
        status = latest_status(diagnostics, "/robot_0")
        return status.get("swaps_rejected") == str(len(candidates)) and status

    status = wait_for(counts, 3.0, f"/diagnostics to count {len(candidates)} rejected swaps")
    assert "no such file" in status["last_swap_error"]

    # And a good swap still works afterwards.
    [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(later)})
    assert result.successful, result.reason
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V, rel=1e-4), 3.0, "at full speed")


@pytest.mark.skipif(
    os.geteuid() == 0, reason="runs as root, which chmod does not stop from reading a folder"
)
def test_swap_to_an_unreadable_folder_is_refused(probe, nodes, policy_models):
    driving = policy_models.reference_controller("driving/robot_0.onnx")
    locked = policy_models.reference_controller("locked/robot_0.onnx", speed_fraction=0.5)
    robot = RobotWorld(probe, "/robot_0")
    process = nodes.start_policy_node("/robot_0", policy_path=driving)
    robot.wait_ready()
    locked.parent.chmod(0)
    try:
        [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(locked)})
    finally:
        locked.parent.chmod(0o755)
    assert not result.successful and "permission denied" in result.reason, result.reason
    assert process.poll() is None


def test_a_faulty_first_policy_leaves_the_node_up_and_unconfigured(probe, nodes, policy_models):

    candidates = bad_candidates(policy_models)
    good = policy_models.reference_controller("good/robot_0.onnx")
    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot = RobotWorld(probe, "/robot_0")
    first, reason = candidates["agent_id Infinity"]
    process = nodes.start_policy_node("/robot_0", policy_path=first)

    message = wait_for(
        lambda: diagnostic_error(diagnostics, "/robot_0"),
        10.0,
        "/diagnostics to report the refused policy",
    )
    assert "configure failed" in message and reason in message, message
    for path, reason in (candidates["64 GiB sparse file"], candidates["300-character name"]):
        [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(path)})
        assert not result.successful and reason in result.reason, result.reason
    assert process.poll() is None
    assert robot.commands() and set(robot.commands()) == {(0.0, 0.0)}, "unconfigured: zeros only"

    [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(good)})
    assert result.successful, result.reason
    robot.wait_ready()
    robot.send_goal(10.0, 0.0)
    robot.feed()
    robot.wait_command(lambda v, w: v == pytest.approx(MAX_V, rel=1e-4), 5.0, "driving")
