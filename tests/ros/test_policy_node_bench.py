"""`swarm bench node` runs end to end and reports what the issue asks for."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]  # two node start-ups and timed phases: ~6 s


def test_bench_node_reports_latency_and_missed_ticks_as_json(ros_domain):
    pytest.importorskip("onnx")  # the stand-in actor is built with it
    done = subprocess.run(
        [sys.executable, "-m", "mappo_training.cli", "bench", "node", "--json"]
        + ["--messages", "100", "--swaps", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["messages"] == 100
    assert 0 < result["latency_p50_ms"] <= result["latency_p99_ms"] < 1000
    assert 0 < result["floor_p50_ms"] <= result["floor_p99_ms"] < 1000
    assert result["swaps"] == 4 and result["swaps_accepted"] == 4
    assert isinstance(result["missed_ticks"], int) and result["missed_ticks"] >= 0
    assert all(math.isfinite(v) for v in result.values())


def test_bench_node_with_a_refused_policy_fails_and_keeps_the_log_that_says_why(
    ros_domain, tmp_path
):
    broken = tmp_path / "robot_0.onnx"
    broken.write_bytes(b"not an onnx model")
    done = subprocess.run(
        [sys.executable, "-m", "mappo_training.cli", "bench", "node", "--policy", str(broken)]
        # 8 s: the bare echo that runs first must come up within it, also
        # on a loaded machine; the refused policy node never does.
        + ["--messages", "10", "--swaps", "1", "--timeout", "8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "the policy node did not come up within 8 s; see " in last
    log = Path(last.split("; see ")[1])
    assert "refused" in log.read_text()
    shutil.rmtree(log.parent)  # what the bench kept for the reader
