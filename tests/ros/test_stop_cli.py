"""`swarm stop`: the operator's e-stop halts a driving robot, and `--release` lets it drive."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

pytest.importorskip(
    "swarm_controller", reason="needs swarm_controller: pip install -e ros2_ws/src/swarm_controller"
)
pytest.importorskip("swarm_ops", reason="needs swarm_ops: pip install -e ros2_ws/src/swarm_ops")

from ros_helpers import RobotWorld

from swarm_ops.stop import targets_from_args


def swarm_stop(*args: str) -> subprocess.CompletedProcess:
    # `python -m swarm_ops.stop` is `swarm stop` (and `ros2 run swarm_ops stop`).
    return subprocess.run(
        [sys.executable, "-m", "swarm_ops.stop", *args], capture_output=True, text=True, timeout=60
    )


def test_stop_targets_the_robots_named_or_those_of_a_fleet_file(tmp_path):
    fleet = tmp_path / "fleet.yaml"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "robot_0.onnx").write_bytes(b"onnx")
    fleet.write_text("policy: m\nrobots: [{namespace: tb3_0}, {namespace: site/tb3_1}]\n")
    chosen = targets_from_args(SimpleNamespace(robots=None, fleet=fleet))
    assert [t.topic for t in chosen] == ["/tb3_0/estop", "/site/tb3_1/estop"]
    named = targets_from_args(SimpleNamespace(robots="robot_3, /robot_1/", fleet=None))
    assert [(t.name, t.topic) for t in named] == [
        ("robot_3", "/robot_3/estop"),
        ("robot_1", "/robot_1/estop"),
    ]
    assert targets_from_args(SimpleNamespace(robots=None, fleet=None)) is None  # /swarm/estop


@pytest.mark.ros
def test_swarm_stop_halts_a_driving_robot_and_release_lets_it_drive_again(
    probe, nodes, policy_models
):
    policy = policy_models.reference_controller("v1/robot_0.onnx")
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node(
        "/robot_0", policy_path=policy, allowed_policy_dirs=[str(policy_models.root)]
    )
    robot.wait_ready()
    robot.send_goal(10.0, 0.0)
    robot.feed()
    robot.wait_command(lambda v, w: v > 0.1, 10.0, "driving towards the goal")

    def stopped() -> None:
        """Once the stop is in, only zeros, and they keep coming (the base must hear one)."""
        robot.wait_command(lambda v, w: v == 0.0 and w == 0.0, 5.0, "a zero")
        settled = time.monotonic()
        time.sleep(0.5)
        after = robot.commands(settled)
        assert len(after) >= 3 and set(after) == {(0.0, 0.0)}, after

    # One robot by name; a robot that is not there is named as unconfirmed.
    done = swarm_stop("--robots", "robot_0,robot_9", "--timeout", "4")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "robot_0: e-stopped (/robot_0/estop)" in done.stdout
    assert "robot_9: did not confirm within 4 s" in done.stdout
    stopped()
    # The node keeps the e-stop after the command exited; release it.
    released = swarm_stop("--robots", "robot_0", "--release")
    assert released.returncode == 0 and "robot_0: released" in released.stdout, released.stdout
    robot.wait_command(lambda v, w: v > 0.1, 5.0, "driving again after the release")

    # The whole fleet, through /swarm/estop.
    fleet = swarm_stop("--timeout", "6")
    assert fleet.returncode == 0, fleet.stdout + fleet.stderr
    assert "robot_0: e-stopped (/swarm/estop)" in fleet.stdout
    stopped()
    fleet_released = swarm_stop("--release", "--timeout", "6")
    assert fleet_released.returncode == 0, fleet_released.stdout + fleet_released.stderr
    robot.wait_command(lambda v, w: v > 0.1, 5.0, "driving again after the fleet release")
