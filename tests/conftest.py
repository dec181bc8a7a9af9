"""Shared fixtures: DDS isolation for ROS tests, and a factory of ONNX policy files.

`ros_domain`  gives the test its own ROS_DOMAIN_ID (localhost discovery, one
              middleware), so parallel test runs and leftover nodes never cross-talk.
`policy_models` writes ONNX policies in exactly the format `swarm export`
              produces, plus deliberately broken variants
              (swarm_ops.onnx_models, which the benchmarks use too).
`probe`       a test-side ROS node on that domain (ros_helpers.RosProbe).
`nodes`       the node processes a test starts (ros_helpers.NodeProcesses),
              all stopped when it ends.
`one_torch_thread`  torch on one intra-op thread for the test.

`reference_controller` is a hand-designed TEST FIXTURE controller, not a
trained policy: it drives toward a goal ahead and slows to a stop when the
front beams see an obstacle. Behaviour tests use it until a trained model
ships in models/.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

# swarm_ops (the domain claimer, the model builder) is imported inside the
# fixtures, so a test run without it skips what needs it instead of failing
# to load this file.
NEEDS_OPS = "needs swarm_ops (test tools): pip install -e ros2_ws/src/swarm_ops"

__all__ = ["exporter_weights_sha256", "write_policy"]


def write_policy(folder: Path, robots: int) -> Path:
    """A models/<name> folder with robot_<i>.onnx files that hold no model: for
    node-spec decisions, which only look at the names."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(robots):
        (folder / f"robot_{i}.onnx").write_bytes(b"onnx")
    return folder


def exporter_weights_sha256(model) -> str:
    """`policy.weights_sha256` by its definition in the export format (numpy bytes
    of each initializer, in graph order), computed with onnx from a ModelProto:
    the oracle for the robot's own dependency-free parser that export stamps with."""
    from onnx import numpy_helper

    digest = hashlib.sha256()
    for init in model.graph.initializer:
        digest.update(np.ascontiguousarray(numpy_helper.to_array(init)).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- #
# DDS isolation.
# --------------------------------------------------------------------------- #


# A lock file per domain id, shared by every test run on this machine: several
# engineers' pytest runs (and `swarm bench node`) share one host, and two runs
# on the same domain would hear each other's robots.
@pytest.fixture
def ros_domain(monkeypatch, tmp_path) -> Iterator[int]:
    """This test's own ROS_DOMAIN_ID (held until it ends); child processes inherit it.

    ROS_HOME moves into tmp_path too: nodes write there (the policy node's
    live-policy record, ROS logs), never under the user's ~/.ros.
    """
    pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")
    domains = pytest.importorskip("swarm_ops.ros_domains", reason=NEEDS_OPS)
    domain, lock = domains.claim_domain_id()
    for name, value in domains.private_domain_environment(domain).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROS_HOME", str(tmp_path / "ros_home"))
    try:
        yield domain
    finally:
        lock.close()


# --------------------------------------------------------------------------- #
# ONNX policy files.
# --------------------------------------------------------------------------- #


@pytest.fixture
def policy_models(tmp_path):
    """A `swarm_ops.onnx_models.PolicyModels` factory writing into tmp_path/models."""
    pytest.importorskip("onnx", reason="needs onnx to build test models: pip install onnx")
    models = pytest.importorskip("swarm_ops.onnx_models", reason=NEEDS_OPS)
    return models.PolicyModels(tmp_path / "models")


# --------------------------------------------------------------------------- #
# A test-side ROS node and real node processes (tests/ros only: ros_helpers
# lives there, and needs rclpy).
# --------------------------------------------------------------------------- #


@pytest.fixture
def probe(ros_domain):
    from ros_helpers import RosProbe

    probe = RosProbe(ros_domain)
    yield probe
    probe.close()


@pytest.fixture
def nodes(tmp_path, ros_domain):
    from ros_helpers import NodeProcesses

    group = NodeProcesses(tmp_path)
    yield group
    group.stop_all()


@pytest.fixture
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
