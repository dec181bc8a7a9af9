"""sim.safety_layer: robots train behind the safety layer they drive behind on the robot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.sim import ArenaLayout, BatchedSwarmEnv, SimConfig

FULL_AHEAD = np.array([1.0, 0.0], dtype=np.float32)


def head_on(env: BatchedSwarmEnv) -> list[ArenaLayout]:
    """Two robots 0.8 m apart facing each other, each goal behind the other."""
    starts = np.array([[-0.4, 0.0, 0.0], [0.4, 0.0, np.pi]])
    goals = np.array([[1.2, 0.0], [-1.2, 0.0]])
    return [ArenaLayout(env.arena_size, starts, goals, robot_radius=0.105)]


def drive_ahead(safety_layer: bool, steps: int = 60) -> tuple[list[dict], float]:
    """Both robots commanded full ahead; the ended episodes and the closest gap (m)."""
    cfg = SimConfig(num_robots=2, end_on_collision=True, safety_layer=safety_layer)
    with BatchedSwarmEnv(cfg, num_arenas=1, seed=0) as env:
        env.reset(layouts=head_on(env))
        actions = np.broadcast_to(FULL_AHEAD, (1, 2, 2))
        ended, closest = [], np.inf
        for _ in range(steps):
            *_, info = env.step(actions)
            ended += info["episodes"]
            if ended:
                break
            poses = env.poses()[0]
            closest = min(closest, float(np.linalg.norm(poses[0, :2] - poses[1, :2])))
        return ended, closest - 2 * 0.105


def test_without_the_layer_robots_driving_head_on_collide():
    ended, _ = drive_ahead(safety_layer=False)
    assert ended and ended[0]["robot_collisions"] > 0


def test_with_the_layer_they_stop_short_and_the_episode_counts_the_cuts():
    ended, gap = drive_ahead(safety_layer=True, steps=60)
    assert not ended, "no collision ended the episode: the stop zone held both robots"
    assert 0.0 < gap < 0.5, f"they closed in and stopped short ({gap:.3f} m apart)"

    cfg = SimConfig(num_robots=2, safety_layer=True, max_steps=30)
    with BatchedSwarmEnv(cfg, num_arenas=1, seed=0) as env:
        env.reset(layouts=head_on(env))
        episodes = []
        while not episodes:
            *_, info = env.step(np.broadcast_to(FULL_AHEAD, (1, 2, 2)))
            episodes = info["episodes"]
    (episode,) = episodes
    assert episode["robot_collisions"] == 0
    assert min(episode["stop_zone_cuts"]) > 0, "each robot's stop zone cut its command"
    assert sum(episode["driving_steps"]) == 2 * 30


def test_a_variant_may_not_switch_the_layer():
    with pytest.raises(ValueError, match="safety_layer"):
        SimConfig(variants=[{"safety_layer": True}])


def test_a_robot_is_held_where_its_odometry_says_it_is_at_its_goal():
    """As the policy node's gate: zero commands once the odometry puts the robot
    within the hold tolerance, whatever the simulator's true-pose arrival says."""
    from mappo_training.sim.safety import SimSafety
    from swarm_contract.safety_layer import DEFAULT_GOAL_HOLD

    def final_gap(hold: float) -> float:
        # Arrival on the true pose only within 1 cm: the hold is what stops it.
        cfg = SimConfig(num_robots=1, goal_tolerance=0.01, max_steps=60)
        with BatchedSwarmEnv(cfg, num_arenas=1, seed=0) as env:
            start = np.array([[0.0, 0.0, 0.0]])
            env.reset(layouts=[ArenaLayout(env.arena_size, start, np.array([[0.5, 0.0]]))])
            safety = SimSafety(env, goal_tolerance=hold)
            for _ in range(40):
                env.step(safety.apply(np.broadcast_to(FULL_AHEAD, (1, 1, 2))))
            return float(env.believed_goal_distance[0, 0])

    held = final_gap(DEFAULT_GOAL_HOLD)
    assert DEFAULT_GOAL_HOLD - 0.03 <= held <= DEFAULT_GOAL_HOLD, f"stopped {held:.3f} m short"
    assert final_gap(0.0) > 0.3, "without a hold it drives on past the goal"


def test_the_policy_node_holds_at_the_same_tolerance_by_default():
    import yaml

    from swarm_contract.safety_layer import DEFAULT_GOAL_HOLD

    pytest.importorskip("swarm_controller", reason="needs the robot-side package")
    from swarm_controller.parameters import PARAMETERS

    spec = next(p for p in PARAMETERS if p.name == "goal_tolerance")
    assert spec.default == DEFAULT_GOAL_HOLD
    package = Path(__file__).resolve().parents[2] / "ros2_ws/src/swarm_controller"
    params = yaml.safe_load((package / "config/policy_node.yaml").read_text())
    (section,) = params.values()
    assert section["ros__parameters"]["goal_tolerance"] == DEFAULT_GOAL_HOLD
