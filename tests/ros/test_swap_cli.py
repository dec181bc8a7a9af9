"""`swarm swap`: one command puts each robot's own file on a running fleet."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

pytest.importorskip(
    "swarm_controller", reason="needs swarm_controller: pip install -e ros2_ws/src/swarm_controller"
)
pytest.importorskip("swarm_ops", reason="needs swarm_ops: pip install -e ros2_ws/src/swarm_ops")

from ros_helpers import RobotWorld, wait_for

from swarm_contract.robot_io import Contract
from swarm_ops.swap import SwapError, agent_index, checked_sha256, policy_file_for


def test_each_robot_gets_the_file_of_its_own_index(policy_models):
    folder = policy_models.root / "fleet"
    for i in (0, 3):
        policy_models.mlp(f"fleet/robot_{i}.onnx", agent_id=i)
    assert policy_file_for(folder, "/robot_3") == (folder / "robot_3.onnx").absolute()
    assert policy_file_for(folder, "/site_a/robot_0") == (folder / "robot_0.onnx").absolute()
    with pytest.raises(
        SwapError, match=r"no robot_1.onnx \(it holds \['robot_0.onnx', 'robot_3.onnx'\]\)"
    ):
        policy_file_for(folder, "/robot_1")
    with pytest.raises(SwapError, match="does not end in robot_<i>"):
        policy_file_for(folder, "/scout")


def test_more_robots_than_files_take_the_file_of_their_index_mod_n(policy_models):
    folder = policy_models.root / "two"
    for i in (0, 1):
        policy_models.mlp(f"two/robot_{i}.onnx", agent_id=i)
    assert policy_file_for(folder, "/robot_5") == (folder / "robot_1.onnx").absolute()
    assert policy_file_for(folder, "/robot_4") == (folder / "robot_0.onnx").absolute()


def test_a_single_shared_model_goes_to_every_robot(policy_models):
    shared = policy_models.mlp("shared/policy.onnx")
    for ns in ("/robot_0", "/robot_7", "/scout"):
        assert policy_file_for(shared.parent, ns) == shared.absolute()
    assert agent_index("/robot_12") == 12 and agent_index("/robot_x") is None


def test_an_expected_sha256_must_be_64_hex_digits():
    digest = hashlib.sha256(b"model").hexdigest()
    assert checked_sha256(f" {digest.upper()}\n") == digest
    for bad in ("", digest[:-1], digest + "0", "g" * 64):
        with pytest.raises(SwapError, match="64 hex digits `sha256sum <model>.onnx` prints"):
            checked_sha256(bad)


def swarm_swap(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    # `python -m swarm_ops.swap` is `swarm swap` without the trainer installed
    # (`ros2 run swarm_ops swap` on a ROS machine), so this runs in a robot venv too.
    return subprocess.run(
        [sys.executable, "-m", "swarm_ops.swap", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.ros
def test_swarm_swap_on_two_running_robots(probe, nodes, policy_models):
    for i in range(2):
        policy_models.reference_controller(f"v1/robot_{i}.onnx", agent_id=i)
        policy_models.reference_controller(f"v2/robot_{i}.onnx", agent_id=i, speed_fraction=0.5)
    policy_models.reference_controller("mixed/robot_0.onnx", speed_fraction=0.75)
    policy_models.reference_controller(
        "mixed/robot_1.onnx", agent_id=1, contract=Contract(num_beams=16)
    )
    root = policy_models.root
    robots = []
    for i in range(2):
        robots.append(RobotWorld(probe, f"/robot_{i}"))
        nodes.start_policy_node(
            f"/robot_{i}",
            policy_path=root / f"v1/robot_{i}.onnx",
            allowed_policy_dirs=[str(root)],
        )
    for robot in robots:
        robot.wait_ready()

    done = swarm_swap("--policy", str(root / "v2"), "--all", "--timeout", "10")
    assert done.returncode == 0, done.stdout + done.stderr
    for i, robot in enumerate(robots):
        assert f"robot_{i}: accepted" in done.stdout
        sha = hashlib.sha256((root / f"v2/robot_{i}.onnx").read_bytes()).hexdigest()
        wait_for(lambda r=robot, s=sha: r.policy_sha256() == s, 3.0, f"robot_{i} on v2")

    mixed = swarm_swap("--policy", str(root / "mixed"), "--robots", "robot_0,robot_1")
    assert mixed.returncode == 1, mixed.stdout + mixed.stderr
    assert "robot_0: accepted" in mixed.stdout
    assert "robot_1: rejected:" in mixed.stdout and "num_beams" in mixed.stdout
    sha_v2 = hashlib.sha256((root / "v2/robot_1.onnx").read_bytes()).hexdigest()
    assert robots[1].policy_sha256() == sha_v2  # robot_1 kept its policy

    # Pinned: the robot takes the reviewed model, then refuses any other file.
    v1 = root / "v1/robot_1.onnx"
    sha_v1 = hashlib.sha256(v1.read_bytes()).hexdigest()
    pinned = swarm_swap("--policy", str(v1), "--robots", "robot_1", "--expected-sha256", sha_v1)
    assert pinned.returncode == 0 and "robot_1: accepted" in pinned.stdout, pinned.stdout
    wait_for(lambda: robots[1].policy_sha256() == sha_v1, 3.0, "robot_1 on the pinned v1")
    other = swarm_swap("--policy", str(root / "v2"), "--robots", "robot_1")
    assert other.returncode == 1 and "robot_1: rejected:" in other.stdout, other.stdout
    assert sha_v1 in other.stdout and sha_v2 in other.stdout  # both hashes named
    # A file here that is not the pinned model is refused before the robot is asked.
    mismatch = swarm_swap(
        "--policy",
        str(root / "v2/robot_1.onnx"),
        "--robots",
        "robot_1",
        "--expected-sha256",
        sha_v1.upper(),
    )
    assert mismatch.returncode == 1, mismatch.stdout
    assert f"has sha256 {sha_v2}, not the expected {sha_v1}; not sent" in mismatch.stdout
    assert robots[1].policy_sha256() == sha_v1


@pytest.mark.ros
def test_swarm_swap_says_when_no_robot_answers(ros_domain, policy_models):
    policy_models.mlp("v1/robot_0.onnx")
    done = swarm_swap(
        "--policy", str(policy_models.root / "v1"), "--robots", "robot_0", "--timeout", "0.5"
    )
    assert done.returncode == 1
    assert "robot_0: rejected: no /robot_0/policy_node/set_parameters service" in done.stdout
