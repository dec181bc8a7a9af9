"""The sim bridge measures at the sim config's fidelity, as training's env does (no DDS)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")
pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

import yaml

from mappo_training.sim import ArenaLayout, SimConfig
from swarm_contract import robot_io
from swarm_ops.sim_bridge import SimulatedArena


@pytest.fixture
def slow_lidar(tmp_path) -> str:
    """The Burger with a 5 Hz lidar, slow acceleration and one step of latency."""
    fields = dataclasses.asdict(robot_io.load_profile())
    fields.update(name="slow", scan_period=0.2, max_angular_accel=4.0, actuation_latency=0.1)
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(fields))
    return str(path)


def one_robot(size: float = 3.0) -> ArenaLayout:
    return ArenaLayout(size, np.array([[0.0, 0.0, 0.0]]), np.array([[1.0, 0.0]]))


def test_nominal_bridge_sends_scans_every_scan_period_and_ramps_the_wheels(slow_lidar):
    cfg = SimConfig(
        num_robots=1, arena_size=3.0, profile=slow_lidar, fidelity={"preset": "nominal"}
    )
    arena = SimulatedArena(cfg, seed=0)
    try:
        arena.start_episode(one_robot())
        assert arena.scan_due.all()  # the episode's first scan
        due, turns = [], []
        for _ in range(6):
            arena.command(0, 0.0, 2.84)
            arena.step()
            due.append(bool(arena.scan_due[0]))
            turns.append(arena.world.velocities()[0, 0, 1])
        assert sum(due) == 3 and all(a != b for a, b in zip(due[:-1], due[1:], strict=True))
        # One step late, then at most max_angular_accel * dt (0.4, x0.9..1.1) a step.
        assert turns[0] == 0.0
        assert 0.3 < turns[1] < 0.5 and np.all(np.diff(turns[1:]) <= 0.45)
        poses, velocities, ranges = arena.readings()
        assert poses.shape == (1, 3) and velocities.shape == (1, 2)
        assert ranges is None or ranges.shape == (1, arena.profile.scan_beams)
    finally:
        arena.close()


def test_ideal_bridge_is_unchanged(slow_lidar):
    cfg = SimConfig(num_robots=1, arena_size=3.0, profile=slow_lidar)
    arena = SimulatedArena(cfg, seed=0)
    try:
        arena.start_episode(one_robot())
        arena.command(0, 0.1, 1.0)
        arena.step()
        assert arena.scan_due.all()
        assert arena.world.velocities()[0, 0].tolist() == [0.1, 1.0]
        poses, velocities, ranges = arena.readings()
        np.testing.assert_array_equal(poses, arena.world.poses()[0])
        expected = arena.world.scan(arena.profile.scan_beams, angle_min=0.0)[0]
        np.testing.assert_array_equal(ranges, expected)
        assert math.isclose(cfg.contract().scan_period, 0.1)
    finally:
        arena.close()
