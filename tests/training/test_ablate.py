"""`swarm ablate`: variants x seeds as training runs, scored as rliable does."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from mappo_training import ablate
from mappo_training.ablation_stats import iqm, percent_of_full, percent_of_full_ci
from mappo_training.cli import main as swarm

# 2 arenas x 2 robots, 2 updates and one short evaluation episode per run.
TINY = [
    "run.total_steps=256",
    "run.num_arenas=2",
    "run.rollout_steps=64",
    "run.workers=0",
    "run.eval_episodes=1",
    "sim.num_robots=2",
    "sim.max_steps=40",
    "algo.epochs=1",
]


# -- statistics -------------------------------------------------------------- #


def test_iqm_drops_the_outer_quarters_and_is_the_mean_below_four_seeds():
    assert iqm([1, 2, 3, 4]) == 2.5
    assert iqm([0, 10, 10, 100]) == 10  # one lucky and one unlucky seed ignored
    assert iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == 4.5
    assert iqm([0.2, 0.5, 0.8]) == pytest.approx(0.5)  # n=3: nothing dropped
    assert math.isnan(iqm([]))


def test_percent_of_full_measures_from_the_floor():
    # Negative returns: a variant halfway from random (-60) to full (-20) is 50%.
    assert percent_of_full(-40, -20, floor=-60) == pytest.approx(50)
    assert percent_of_full(0.45, 0.9) == pytest.approx(50)
    assert math.isnan(percent_of_full(0.3, 0.0))  # full never succeeded: no scale


def test_bootstrap_ci_holds_the_estimate_and_narrows_with_more_seeds():
    rng = np.random.default_rng(3)
    full = lambda n: rng.normal(0.8, 0.1, n)  # noqa: E731
    variant = lambda n: rng.normal(0.6, 0.1, n)  # noqa: E731
    few = percent_of_full_ci(variant(3), full(3))
    many = percent_of_full_ci(variant(40), full(40))
    for ci in (few, many):
        assert ci.low <= ci.value <= ci.high
    assert many.high - many.low < (few.high - few.low) / 2
    assert 60 < many.value < 90
    # The same scores always give the same interval.
    assert percent_of_full_ci([0.5, 0.6, 0.7], [0.8, 0.9, 1.0]) == percent_of_full_ci(
        [0.5, 0.6, 0.7], [0.8, 0.9, 1.0]
    )


# -- the runner -------------------------------------------------------------- #


@pytest.fixture(scope="module")
def tiny_ablation(tmp_path_factory):
    """full, no_layer_norm and a variant that fails at run time, one seed each,
    all at once."""
    out = tmp_path_factory.mktemp("ablate") / "abl"
    argv = ["ablate", "--config", "nav_random_4", "--only", "no_layer_norm", "--seeds", "1"]
    argv += ["--variant", "broken:run.init_actor_from=/nonexistent/actor.pt"]
    argv += ["--out", str(out), "--parallel", "3", *TINY]
    return out, argv, swarm(argv)


def test_ablation_runs_every_variant_and_writes_table_and_plot(tiny_ablation, capsys):
    out, _, code = tiny_ablation
    assert code == 1  # the broken run failed; the others were scored
    for variant in ("full", "no_layer_norm"):
        run = out / variant / "seed_1"
        assert (run / "eval.yaml").is_file() and (run / "latest.pt").is_file()
        assert yaml.safe_load((run / "config.yaml").read_text())["run"]["seed"] == 1
    assert (
        yaml.safe_load((out / "no_layer_norm/seed_1/config.yaml").read_text())["algo"]["layer_norm"]
        is False
    )
    table = (out / "ablation.md").read_text()
    assert "| no_layer_norm | `algo.layer_norm=false` | 1/1 |" in table
    assert "| 75% |" in table  # MAPPO.md's reference for it
    assert (out / "ablation.png").stat().st_size > 5000
    assert "| broken | `run.init_actor_from=/nonexistent/actor.pt` | 0/1 |" in table
    assert "broken/seed_1/train.log" in table  # under "Failed runs"
    results = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in results["runs"]] == ["full", "no_layer_norm", "broken"]
    assert all(r["score"] is not None and r["wall_s"] > 0 for r in results["runs"][:2])
    assert "/nonexistent/actor.pt" in (out / "broken/seed_1/train.log").read_text()


def test_a_second_call_skips_finished_runs_and_resumes_an_unfinished_one(tiny_ablation, capsys):
    out, argv, _ = tiny_ablation
    capsys.readouterr()
    # Killed during its end-of-run evaluation: checkpoints, no eval.yaml.
    (out / "full/seed_1/eval.yaml").unlink()
    checkpoints = sorted((out / "full/seed_1/checkpoints").glob("*.pt"))
    assert swarm(argv) == 1  # broken fails again, named with its log
    captured = capsys.readouterr()
    printed = captured.out
    assert "done already: no_layer_norm seed 1" in printed
    assert "resume full seed 1" in printed
    assert "start full" not in printed and "start no_layer_norm" not in printed
    assert "FAILED broken seed 1" in printed
    assert "1 run(s) failed: broken seed 1 (" in captured.err
    assert (out / "full/seed_1/eval.yaml").is_file()
    # Resumed, not retrained: no new update was needed.
    assert sorted((out / "full/seed_1/checkpoints").glob("*.pt")) == checkpoints
    assert "swarm train --quiet --resume" in (out / "full/seed_1/train.log").read_text()


def test_scores_of_finished_runs_become_percentages_of_full(tmp_path, capsys):
    # Finished runs (eval.yaml only) are not run again: the table comes straight from them.
    scores = {"full": [0.8, 0.9, 0.7], "no_adv_norm": [0.4, 0.45, 0.35]}
    for variant, values in scores.items():
        for seed, value in enumerate(values, 1):
            run = tmp_path / variant / f"seed_{seed}"
            run.mkdir(parents=True)
            (run / "eval.yaml").write_text(yaml.safe_dump({"success_rate": value}))
    argv = ["ablate", "--config", "nav_random_4", "--only", "no_adv_norm", "--seeds", "3"]
    assert swarm([*argv, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| full | – | 3/3 | 80.0% | 100% [" in printed
    assert "| no_adv_norm | `algo.norm_adv=false` | 3/3 | 40.0% | 50% [" in printed


def test_a_bad_variant_key_is_refused_before_any_run_starts(tmp_path, capsys):
    argv = ["ablate", "--config", "nav_random_4", "--seeds", "1", "--out", str(tmp_path / "a")]
    code = swarm([*argv, "--variant", "wide:algo.hidden_sizes=[8,8],algo.layer_nrom=false"])
    assert code == 2
    err = capsys.readouterr().err
    assert "variant 'wide'" in err and "algo.layer_nrom" in err
    assert not (tmp_path / "a").exists()
    assert swarm([*argv, "--variant", "again:run.seed=4"]) == 2
    assert "run.seed is set by `swarm ablate`" in capsys.readouterr().err


def test_a_trick_the_config_already_lacks_is_ablated_the_other_way_round(capsys):
    variants = ablate.load_variants("mappo_tricks")
    kept, configs = ablate.resolve_variants("nav_random_4", ["algo.share_actor=false"], variants)
    names = [v.name for v in kept]
    assert "param_sharing" in names and "no_param_sharing" not in names
    assert configs["param_sharing"].algo.share_actor is True
    assert "no_param_sharing' becomes 'param_sharing'" in capsys.readouterr().out
    assert names[0] == "full" and len(names) == 8
