"""`swarm eval`: deterministic scores and pictures for a run, at any robot count."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

import numpy as np
from training_fixtures import train_tiny_run

from mappo_training.cli import main as swarm
from mappo_training.evaluate import Policy, run_episodes, stop_zone_numbers, summarize


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("run"))


def test_eval_reports_the_team_numbers_as_json(run_dir, capsys):
    assert swarm(["eval", str(run_dir), "--episodes", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["episodes"] == 3
    assert report["robots"] == 2
    for key in ("success_rate", "collision_rate", "time_to_goal_s", "path_efficiency"):
        assert key in report
    assert report["safety_layer"] is True, "robots drive through the robot's safety layer"
    assert 0.0 <= report["stop_zone_episode_share"] <= 1.0
    assert report["stop_zone_cuts_per_robot_episode"] >= 0.0
    assert report["stop_zone_cuts_per_1000_steps"] >= 0.0


def test_eval_without_the_safety_layer_says_the_bare_policy_drove(run_dir, capsys):
    assert swarm(["eval", str(run_dir), "--episodes", "2", "--no-safety-layer"]) == 0
    out = capsys.readouterr().out
    assert "2 episodes: success" in out
    assert "safety layer: off" in out and "stop zone cut" not in out


class StraightAhead(Policy):
    """Full speed ahead, whatever the lidar shows."""

    num_robots_trained = 4

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.array([1.0, 0.0], np.float32), obs.shape[:2] + (2,))


def test_the_stop_zone_keeps_a_policy_that_ignores_obstacles_from_hitting_them():
    sim = {"num_robots": 4, "scenario": "random"}
    bare, _ = run_episodes(StraightAhead(), sim, 2, seed=1, safety_layer=False)
    assert summarize(bare)["collision_rate"] == 1.0
    guarded, _ = run_episodes(StraightAhead(), sim, 2, seed=1)
    assert summarize(guarded)["collision_rate"] == 0.0
    fired = stop_zone_numbers(guarded)
    assert fired["stop_zone_episode_share"] == 1.0, "a policy that leans on the stop zone shows"
    assert fired["stop_zone_cuts_per_1000_steps"] > 100


def test_shared_actor_drives_more_robots_than_trained_and_draws_them(run_dir, tmp_path, capsys):
    picture = tmp_path / "circle.png"
    code = swarm(
        [
            "eval",
            str(run_dir),
            "--episodes",
            "2",
            "--robots",
            "6",
            "--scenario",
            "circle",
            "--render",
            str(picture),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "circle x 6 robots, 2 episodes" in out
    assert "note:" not in out, "an id-free shared actor drives any number of robots"
    assert picture.stat().st_size > 5_000


def test_a_shared_actor_trained_on_4_robots_drives_a_team_of_1(tmp_path, capsys):
    """Fewer robots than half the trained ones (a nav_teams checkpoint has 16 slots,
    a team of 4 is a matrix cell): the trained count is filled with copies."""
    run = train_tiny_run(tmp_path / "run", "sim.num_robots=4")
    args = ["eval", str(run), "--episodes", "1", "--robots", "1", "--json"]
    assert swarm(args) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["robots"] == 1 and report["episodes"] == 1


def test_a_policy_trained_with_robot_indices_says_so_at_another_robot_count(tmp_path, capsys):
    """A shared actor with each robot's index as input: at 3 robots two share one."""
    run = train_tiny_run(tmp_path / "run", "algo.agent_id=onehot")
    model = tmp_path / "models" / "indexed"
    assert swarm(["export", str(run), "--out", str(model)]) == 0
    args = ["eval", str(model), "--episodes", "1", "--json"]
    assert swarm([*args, "--robots", "3"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "trained for 2 robots" in report["note"] and "--robots 2" in report["note"]
    assert swarm(args) == 0
    assert "note" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_of_something_that_is_not_a_run_says_so(tmp_path, capsys):
    assert swarm(["eval", str(tmp_path)]) == 2
    assert "neither a run folder" in capsys.readouterr().err


def test_a_curriculum_run_is_scored_on_its_last_stage_and_says_it_is_a_mix():
    """A fresh simulator starts a curriculum at its first (easiest) stage: the
    end-of-run eval of nav_teams once reported 83% as "random x 16 robots"
    while it played teams of 2 and 4 (the matrix's random x 16: 3%)."""
    from mappo_training.evaluate import task, training_mix

    sim = {
        "scenario": "random",
        "num_robots": 16,
        "team_sizes": [2, 4, 8, 16],
        "variants": [{"scenario": "random"}, {"scenario": "circle"}],
        "curriculum": {
            "stages": [{"team_sizes": [2, 4], "variants": [{"scenario": "random"}]}, {}],
        },
    }
    scored = task(sim, scenario=None, robots=None)
    assert "curriculum" not in scored
    assert scored["team_sizes"] == [2, 4, 8, 16] and len(scored["variants"]) == 2
    assert training_mix(scored) == {"variants": 2, "team_sizes": [2, 4, 8, 16]}

    last_stage_narrows = dict(sim, curriculum={"stages": [{}, {"team_sizes": [8, 16]}]})
    assert task(last_stage_narrows, None, None)["team_sizes"] == [8, 16]

    one_team = task(sim, scenario="circle", robots=8)
    assert training_mix(one_team) is None and one_team["num_robots"] == 8
