"""`swarm bench deploy`: the ROS 2 closed loop and the simulator, scored side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.cli import main

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "models" / "default"


@pytest.mark.ros
def test_bench_deploy_scores_both_sides_on_the_same_episodes(tmp_path, capsys, ros_domain):
    if not any(DEFAULT_POLICY.glob("robot_*.onnx")):
        pytest.fail(f"{DEFAULT_POLICY} holds no robot_<i>.onnx: the shipped default is missing")
    args = ["bench", "deploy", "--policy", str(DEFAULT_POLICY), "--episodes", "2"]
    args += ["--robots", "2", "--real-time-factor", "1", "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["episodes"] == 2 and result["robots"] == 2
    for key in ("sim_success", "ros_success", "eval_success", "same_outcome"):
        assert result[key] in (0.0, 0.5, 1.0), (key, result)
    # Both sides played the bridge's layouts: no warning that they differ.
    assert not any("other layouts" in line for line in lines)
    # The policy nodes kept up with the bridge's simulated clock.
    assert result["missed_tick_fraction"] < 0.25, result
    assert any("ROS 2 closed loop" in line for line in lines[:-1])
    # In lockstep every step waited for every robot's own command, however busy
    # the machine was.
    assert result["lockstep"] is True and result["lockstep_misses"] == 0, result
    # How often the safety layer's stop zone cut a command shows on both sides.
    assert result["stop_zone_cuts"] >= 0 and result["sim_stop_zone_cuts"] >= 0
    assert any(line.strip().startswith("stop zone cut") for line in lines[:-1])


def test_bench_deploy_refuses_zero_episodes(capsys):
    assert main(["bench", "deploy", "--episodes", "0"]) == 2
    assert "--episodes 0" in capsys.readouterr().err
