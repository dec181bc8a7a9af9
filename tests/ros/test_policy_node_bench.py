"""`swarm bench node` runs end to end and reports what the issue asks for."""

from __future__ import annotations

import json
import math
import subprocess
import sys

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
