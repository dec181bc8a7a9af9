"""`swarm bench deploy`: the ROS 2 closed loop and the simulator, scored side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
    # Both sides at the robot's own fidelity (5 Hz lidar, acceleration limits, ...).
    args += ["--fidelity", "nominal"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["episodes"] == 2 and result["robots"] == 2
    assert result["fidelity"] == "nominal" and "at nominal fidelity" in lines[0], lines[0]
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
    # ... and as rates that compare: per command the nodes sent (in lockstep one
    # per robot-step at least; diagnostics may miss the last second's), per
    # robot-step in the simulator.
    assert result["ros_commands"] >= sum(e["ros_steps"] for e in result["per_episode"])
    assert result["stop_zone_cuts_per_1000_commands"] >= 0, result
    assert result["sim_stop_zone_cuts_per_1000_steps"] >= 0, result
    assert any(line.strip().startswith("stop zone cut") for line in lines[:-1])


def test_bench_deploy_refuses_zero_episodes(capsys):
    assert main(["bench", "deploy", "--episodes", "0"]) == 2
    assert "--episodes 0" in capsys.readouterr().err


def test_both_sides_draw_the_same_fidelity_effects_in_the_same_episodes():
    """At nominal fidelity each episode draws its robots' noise, latency,
    acceleration and odometry drift: the simulator side must replay the
    bridge's draws, or the two scores compare different robots."""
    pytest.importorskip("rclpy", reason="needs rclpy: pip install -e '.[ros]'")
    from mappo_training.sim import BatchedSwarmEnv, SimConfig
    from swarm_contract.config import from_dict
    from swarm_ops.benchmarks.deploy import bridge_episodes, draw_like_the_bridge
    from swarm_ops.sim_bridge import SimulatedArena

    sim = {"num_robots": 4, "scenario": "layout", "layout": "two_rooms"}
    cfg = from_dict(SimConfig, {**sim, "fidelity": {"preset": "nominal"}}, "sim")
    arena = SimulatedArena(cfg, seed=3)
    bridge = []
    for _ in range(3):
        start = arena.start_episode()
        bridge.append((start["starts"], arena.fidelity.snapshot()))
    arena.close()

    episodes = bridge_episodes(cfg, 3, 3)
    env = BatchedSwarmEnv(cfg, num_arenas=3, seed=0)
    draw_like_the_bridge(env, [state for _, state in episodes])
    env.reset(layouts=[layout for layout, _ in episodes])
    drawn = env.snapshot()["fidelity"]
    env.close()
    for k, (starts, effects) in enumerate(bridge):
        assert np.allclose(episodes[k][0].starts, starts, atol=1e-3)
        for key in ("_delay", "_noise_scale", "_dropout", "_accel", "_odom_scale", "_scan_clock"):
            assert np.allclose(drawn[key][k], effects[key][0]), (k, key)
    # Not every episode alike: the effects are drawn afresh each time.
    assert not np.allclose(drawn["_accel"][0], drawn["_accel"][1])
