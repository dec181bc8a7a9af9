"""A PettingZoo run end to end as a user meets it: `swarm train` says what its
budget became, evaluates the env it trained, and `swarm eval` scores it."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("pettingzoo", reason="needs pettingzoo: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from test_pettingzoo_batch import SignalGame

from mappo_training.cli import main as swarm
from mappo_training.experiment import validate
from mappo_training.pettingzoo_eval import EVAL_SEED_BASE, evaluate_pettingzoo
from mappo_training.train import resume, start

# 8 copies x 16 steps x 2 agents = 256 robot-steps an update.
SIGNAL_RUN = [
    "env.kind=pettingzoo",
    f"env.factory={__name__}:SignalGame",
    "run.num_arenas=8",
    "run.rollout_steps=16",
    "run.workers=0",
    "algo.epochs=1",
]


class ScoredSignalGame(SignalGame):
    """SignalGame that says, at the episode's end, whether the mover matched the bit."""

    def step(self, actions):
        obs, rewards, terms, truncs, infos = super().step(actions)
        if not self.agents:
            matched = np.sign(float(actions["mover"][0])) == self._bit * 2.0 - 1.0
            infos = {a: {"is_success": bool(matched)} for a in self.possible_agents}
        return obs, rewards, terms, truncs, infos


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """`swarm train` of SignalGame: 600 robot-steps is 2.34 updates of 256.
    Its folder, exit code and printed lines."""
    runs = tmp_path_factory.mktemp("runs")
    argv = ["train", "--quiet", "--runs-dir", str(runs), *SIGNAL_RUN]
    argv += ["run.total_steps=600", "run.eval_episodes=6", "run.name=signal"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = swarm(argv)
    return runs / "signal", code, out.getvalue()


def test_train_rounds_the_budget_up_says_so_and_evaluates_the_env_it_trained(trained_run):
    run_dir, code, out = trained_run
    assert code == 0
    assert (
        "run.total_steps=600 robot-steps = 2.34 updates of 256 (8 arenas x 16 steps x 2 agents);"
        " training 3 updates = 768 robot-steps (384 env frames)"
    ) in out
    rows = (run_dir / "progress.csv").read_text().strip().splitlines()[1:]
    assert len(rows) == 3, "the budget is met: 3 updates, not 2"
    assert "(robot-step 768 = env frame 384," in out
    with resume(run_dir, quiet=True) as again:
        assert again.update == again.num_updates == 3, "resume counts the updates alike"
    # The end-of-run evaluation played SignalGame, not our swarm task.
    report = yaml.safe_load((run_dir / "eval.yaml").read_text())
    assert report["kind"] == "pettingzoo" and report["episodes"] == 6
    assert report["mean_length"] == 4.0
    assert -8.0 <= report["mean_return_per_agent"] <= 0.0
    assert "success_rate" not in report
    assert "mean return per agent" in out and "success not reported by the env" in out


def test_eval_of_a_pettingzoo_run_reports_the_same_numbers(trained_run, capsys):
    run_dir, _, _ = trained_run
    assert swarm(["eval", str(run_dir), "--episodes", "6", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    at_end = yaml.safe_load((run_dir / "eval.yaml").read_text())
    for key in ("mean_return_per_agent", "return_std", "mean_length", "episodes"):
        assert report[key] == at_end[key]
    assert swarm(["eval", str(run_dir), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert f"{__name__}:SignalGame" in out and "3 episodes" in out
    assert "mean length 4.0 steps, success not reported by the env" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--robots", "3"], "--robots set our swarm task"),
        (["--episodes", "0"], "--episodes 0 must be >= 1"),
        (["--seed", "-1"], "seed=-1"),
    ],
)
def test_every_eval_error_on_a_pettingzoo_run_exits_non_zero(trained_run, capsys, extra, message):
    run_dir, _, _ = trained_run
    assert swarm(["eval", str(run_dir), *extra]) == 2
    assert message in capsys.readouterr().err


def test_evaluation_plays_unseen_seeds_and_reports_success_only_where_the_env_does():
    plain = validate({"env": {"kind": "pettingzoo", "factory": f"{__name__}:SignalGame"}})
    report = evaluate_pettingzoo(plain, "random", episodes=11, seed=0)
    assert report["episodes"] == 11 and report["mean_length"] == 4.0
    first, last = report["episode_seeds"]
    assert first >= EVAL_SEED_BASE, "training's episode seeds start at run.seed"
    assert "success_rate" not in report
    assert evaluate_pettingzoo(plain, "random", episodes=11, seed=0) == report, "seeded"

    scored = validate({"env": {"kind": "pettingzoo", "factory": f"{__name__}:ScoredSignalGame"}})
    report = evaluate_pettingzoo(scored, "random", episodes=40, seed=0)
    # A uniform mover in [-1, 1] matches the bit's sign half the time.
    assert 0.25 <= report["success_rate"] <= 0.75


def test_simple_spread_is_trained_as_categorical_choices_among_its_five_moves(tmp_path):
    """The env of the issue: simple_spread's agents sample all 5 moves, never a
    Gaussian rounded to no-op or left (test_pettingzoo_batch checks the same
    in worker processes on a cheaper env)."""
    pytest.importorskip("mpe2", reason="needs the mpe extra: pip install -e '.[mpe]'")
    data = {
        "run": {"total_steps": 2_000, "num_arenas": 4, "rollout_steps": 10, "workers": 0},
        "env": {
            "kind": "pettingzoo",
            "factory": "mpe2.simple_spread_v3:parallel_env",
            "kwargs": {"N": 2, "max_cycles": 5},
        },
        "algo": {"epochs": 1},
    }
    with start(validate(data), tmp_path, quiet=True) as trainer:
        assert [(s.kind, s.n) for s in trainer.learner.action_specs] == [("discrete", 5)] * 2
        trainer.train_one_update()
        moves = trainer._rollouts[0].buffer.actions[..., 0]
    assert np.array_equal(moves, np.rint(moves)), "whole move indices"
    assert set(np.unique(moves)) == {0, 1, 2, 3, 4}


def test_swarm_eval_exits_non_zero_as_a_process(tmp_path):
    """The exit status a shell sees, not only main()'s return value."""
    done = subprocess.run(
        [sys.executable, "-m", "mappo_training.cli", "eval", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "neither a run folder" in done.stderr
