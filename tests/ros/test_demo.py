"""`swarm demo` (what `make demo` runs): the shipped policy on simulated robots through
ROS 2, a fleet-wide swap in the middle of the episode, a report and pictures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("PIL", reason="needs pillow: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from PIL import Image

from mappo_training.cli import main

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "models" / "default"


@pytest.mark.ros
def test_demo_deploys_the_default_policy_swaps_mid_episode_and_draws_the_paths(
    tmp_path, capsys, ros_domain
):
    if not any(DEFAULT_POLICY.glob("robot_*.onnx")):
        pytest.fail(f"{DEFAULT_POLICY} holds no robot_<i>.onnx: the shipped default is missing")
    assert main(["demo", "--out", str(tmp_path)]) == 0
    report = capsys.readouterr().out

    arrived = re.search(r"(\d+)/4 robots arrived, (\d+) collision steps", report)
    assert arrived, report
    assert report.count("sim bridge + 4 policy-node processes") == 1
    swap = re.search(r"swap at t=([\d.]+) s to (.+): (\d)/4 robots accepted", report)
    assert swap, report
    assert float(swap.group(1)) > 0 and swap.group(3) == "4"
    assert "stopped: 4/4 policy nodes exited cleanly" in report
    if int(arrived.group(1)):
        assert "mean time-to-goal" in report

    png, gif = tmp_path / "paths.png", tmp_path / "episode.gif"
    assert f"paths: {png}" in report and f"animation: {gif}" in report
    with Image.open(png) as picture:
        assert picture.size[0] >= 400
    with Image.open(gif) as animation:
        assert animation.n_frames > 10
    logs = Path(re.search(r"node logs: (\S+)", report).group(1))
    assert {p.name for p in logs.glob("*.log")} == {
        "sim_bridge.log",
        *(f"robot_{i}.policy_node.log" for i in range(4)),
    }
    # Each robot's own log shows the swap it took.
    for i in range(4):
        assert "swapped to" in (logs / f"robot_{i}.policy_node.log").read_text()


def test_demo_without_ros_runs_the_handwritten_baseline(tmp_path, capsys):
    args = ["demo", "--controller", "handwritten", "--robots", "2", "--no-gif"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    report = capsys.readouterr().out
    assert "hand-written controller, not a trained policy" in report
    assert (tmp_path / "paths.png").is_file() and not (tmp_path / "episode.gif").exists()


def test_demo_refuses_a_missing_policy_naming_it(tmp_path, capsys):
    assert main(["demo", "--policy", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert str(tmp_path / "nothing") in capsys.readouterr().err
