"""The packaged simple_spread config as a user runs it: it trains on mpe2, the
benchmark scores the run against random and scripted play, and the scripted
reference it is compared with is clearly better than random."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("mpe2", reason="needs mpe2, the `mpe` extra: pip install -e '.[mpe]'")

from mappo_training.cli import main as swarm
from mappo_training.experiment import load_train_config
from mappo_training.mpe_reference import SpreadReference, assign_landmarks
from mappo_training.pettingzoo_eval import evaluate_pettingzoo

# 2 copies x 25 steps x 3 agents = 150 robot-steps an update: two updates.
TINY = ["run.total_steps=300", "run.num_arenas=2", "run.rollout_steps=25", "run.eval_episodes=2"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`swarm train --config simple_spread` cut to 2 updates: its folder and output."""
    runs = tmp_path_factory.mktemp("runs")
    argv = ["train", "--quiet", "--config", "simple_spread", "--runs-dir", str(runs)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = swarm([*argv, *TINY, "run.name=spread"])
    assert code == 0, out.getvalue()
    return runs / "spread", out.getvalue()


def test_packaged_config_trains_simple_spread_with_discrete_actions(tiny_run):
    run_dir, out = tiny_run
    cfg = load_train_config("simple_spread")
    assert cfg.env.kind == "pettingzoo"
    assert cfg.env.kwargs == {"N": 3, "max_cycles": 25, "continuous_actions": False}
    assert cfg.run.total_steps == 600_000 * 3, "600k env frames of 3 agents"
    assert "training 2 updates = 300 robot-steps (100 env frames)" in out
    rows = (run_dir / "progress.csv").read_text().strip().splitlines()[1:]
    assert len(rows) == 2
    assert "mean return per agent" in out, "the end-of-run eval played simple_spread"


def test_bench_scores_trained_random_and_scripted_on_the_same_episodes(tiny_run):
    run_dir, _ = tiny_run
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = swarm(["bench", "pettingzoo", str(run_dir), "--episodes", "3", "--json"])
    assert code == 0
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["env_frames"] == 100 and result["agents"] == 3
    policies = result["policies"]
    assert set(policies) == {"trained", "random", "scripted"}
    seeds = {tuple(p["episode_seeds"]) for p in policies.values()}
    assert len(seeds) == 1, "every policy plays the same episodes"
    assert all(p["episodes"] == 3 for p in policies.values())


def test_scripted_reference_beats_random_play():
    cfg = load_train_config("simple_spread")
    scripted = evaluate_pettingzoo(cfg, SpreadReference(3), episodes=16, seed=0)
    random = evaluate_pettingzoo(cfg, "random", episodes=16, seed=0)
    # About -8 against -26 on 200 episodes; 16 leave a wide margin.
    assert scripted["mean_return_per_agent"] > random["mean_return_per_agent"] + 8.0


def test_scripted_reference_plays_continuous_actions_as_it_plays_discrete_ones():
    discrete = load_train_config("simple_spread")
    continuous = load_train_config("simple_spread", ["env.kwargs.continuous_actions=true"])
    one = evaluate_pettingzoo(discrete, SpreadReference(3), episodes=4, seed=1)
    other = evaluate_pettingzoo(continuous, SpreadReference(3, continuous=True), episodes=4, seed=1)
    assert other["mean_return_per_agent"] == pytest.approx(one["mean_return_per_agent"])


def test_every_agent_finds_the_same_matching_from_its_own_frame():
    import numpy as np

    rng = np.random.default_rng(3)
    agents, landmarks = rng.uniform(-1, 1, (3, 2)), rng.uniform(-1, 1, (3, 2))
    matchings = {
        tuple(assign_landmarks(agents - agents[j], landmarks - agents[j])) for j in range(3)
    }
    assert len(matchings) == 1
    assert sorted(matchings.pop()) == [0, 1, 2], "one agent per landmark"
