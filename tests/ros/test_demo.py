"""`swarm demo` (what `make demo` runs): the shipped policy on simulated robots through
ROS 2, a fleet-wide swap in the middle of the episode, a report and pictures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("PIL", reason="needs pillow: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

import numpy as np
from PIL import Image

from mappo_training.cli import main

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "models" / "default"


@pytest.mark.ros
def test_demo_deploys_8_robots_in_two_rooms_at_nominal_fidelity_swaps_and_draws_the_room(
    tmp_path, capsys, ros_domain
):
    if not any(DEFAULT_POLICY.glob("robot_*.onnx")):
        pytest.fail(f"{DEFAULT_POLICY} holds no robot_<i>.onnx: the shipped default is missing")
    assert main(["demo", "--out", str(tmp_path)]) == 0
    report = capsys.readouterr().out

    # What `make demo` shows by default, said in its first line.
    assert "demo: 8 robots, two_rooms layout, nominal fidelity" in report, report
    arrived = re.search(r"(\d+)/8 robots arrived, (\d+) collision steps", report)
    assert arrived, report
    assert report.count("sim bridge + 8 policy-node processes") == 1
    swap = re.search(r"swap at t=([\d.]+) s to (.+): (\d)/8 robots accepted", report)
    assert swap, report
    assert float(swap.group(1)) > 0 and swap.group(3) == "8"
    assert "stopped: 8/8 policy nodes exited cleanly" in report, report
    if int(arrived.group(1)):
        assert "mean time-to-goal" in report

    png, gif = tmp_path / "paths.png", tmp_path / "episode.gif"
    assert f"paths: {png}" in report and f"animation: {gif}" in report
    with Image.open(png) as picture:
        assert picture.size[0] >= 400
        pixels = np.asarray(picture.convert("RGB"))
    # The rooms' dividing wall and furniture are drawn (obstacles are grey 0.6).
    assert np.all(pixels == 153, axis=-1).sum() > 1000
    with Image.open(gif) as animation:
        assert animation.n_frames > 10
    logs = Path(re.search(r"node logs: (\S+)", report).group(1))
    assert {p.name for p in logs.glob("*.log")} == {
        "sim_bridge.log",
        *(f"robot_{i}.policy_node.log" for i in range(8)),
    }
    # Each robot's own log shows the swap it took.
    for i in range(8):
        assert "swapped to" in (logs / f"robot_{i}.policy_node.log").read_text()


def test_demo_refuses_a_layout_with_another_scenario_naming_both(tmp_path, capsys):
    args = ["demo", "--layout", "corridor", "--scenario", "circle", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--layout corridor" in err and "--scenario circle" in err


def test_demo_without_ros_runs_the_handwritten_baseline(tmp_path, capsys):
    args = ["demo", "--controller", "handwritten", "--robots", "2", "--no-gif"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    report = capsys.readouterr().out
    assert "hand-written controller, not a trained policy" in report
    assert (tmp_path / "paths.png").is_file() and not (tmp_path / "episode.gif").exists()


def test_demo_refuses_a_missing_policy_naming_it(tmp_path, capsys):
    assert main(["demo", "--policy", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert str(tmp_path / "nothing") in capsys.readouterr().err
