"""Shared fixtures: DDS isolation for ROS tests, and a factory of ONNX policy files.

`ros_domain`  gives the test its own ROS_DOMAIN_ID (localhost discovery, one
              middleware), so parallel test runs and leftover nodes never cross-talk.
`policy_models` writes ONNX policies in exactly the format `swarm export`
              produces, plus deliberately broken variants
              (swarm_ops.onnx_models, which the benchmarks use too).

`reference_controller` is a hand-designed TEST FIXTURE controller, not a
trained policy: it drives toward a goal ahead and slows to a stop when the
front beams see an obstacle. Behaviour tests use it until a trained model
ships in models/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from swarm_ops.onnx_models import PolicyModels, exporter_weights_sha256
from swarm_ops.ros_domains import claim_domain_id, private_domain_environment

__all__ = ["PolicyModels", "exporter_weights_sha256"]


# --------------------------------------------------------------------------- #
# DDS isolation.
# --------------------------------------------------------------------------- #


# A lock file per domain id, shared by every test run on this machine: several
# engineers' pytest runs (and `swarm bench node`) share one host, and two runs
# on the same domain would hear each other's robots.
@pytest.fixture
def ros_domain(monkeypatch) -> Iterator[int]:
    """This test's own ROS_DOMAIN_ID (held until it ends); child processes inherit it."""
    pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")
    domain, lock = claim_domain_id()
    for name, value in private_domain_environment(domain).items():
        monkeypatch.setenv(name, value)
    try:
        yield domain
    finally:
        lock.close()


# --------------------------------------------------------------------------- #
# ONNX policy files.
# --------------------------------------------------------------------------- #


@pytest.fixture
def policy_models(tmp_path) -> PolicyModels:
    """A `PolicyModels` factory writing into this test's tmp folder (tmp_path/models)."""
    pytest.importorskip("onnx", reason="needs onnx to build test models: pip install onnx")
    return PolicyModels(tmp_path / "models")
