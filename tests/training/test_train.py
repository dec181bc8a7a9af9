"""The training loop as a user meets it: configs, run folders, checkpoints, resume."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

import torch
from training_fixtures import straight_and_resumed

from mappo_training import checkpoint as ckpt
from mappo_training.cli import main as swarm
from mappo_training.experiment import load_train_config
from mappo_training.train import resume, start
from swarm_contract.config import ConfigError

TINY = [
    "run.total_steps=768",  # 3 updates of 2 arenas x 2 robots x 64 steps
    "run.num_arenas=2",
    "run.rollout_steps=64",
    "run.workers=0",
    "run.checkpoint_every=1",
    "run.eval_episodes=0",
    "sim.num_robots=2",
    "algo.epochs=2",
    "algo.num_minibatches=2",
]


def tiny_config(*extra: str):
    return load_train_config("nav_random_4", TINY + list(extra))


def learner_params(trainer) -> list[torch.Tensor]:
    out = []
    for i in range(trainer.num_robots):
        out += [p.detach().clone() for p in trainer.learner.actor_for(i).parameters()]
    return out


@pytest.mark.parametrize(
    ("overlap", "workers"),
    [(True, 0), (False, 0), (True, 2)],
    ids=["overlap", "in-turn", "workers"],
)
def test_resume_reproduces_the_uninterrupted_run(tmp_path, overlap, workers):
    """With overlap the checkpoint also carries the rollout collected during the
    last update; resuming must learn from exactly that one. With workers, each
    worker acts for its arenas with its own RNG, whose state the checkpoint keeps."""
    cfg = tiny_config(f"run.overlap={str(overlap).lower()}", f"run.workers={workers}")
    expected, got, _ = straight_and_resumed(cfg, tmp_path, learner_params)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b), "resumed run diverged from the uninterrupted one"


def test_full_run_writes_logs_checkpoints_and_curves(tmp_path):
    code = swarm(
        ["train", "--quiet", "--runs-dir", str(tmp_path), "--config", "nav_random_4", "run.name=r"]
        + TINY
    )
    assert code == 0
    run_dir = tmp_path / "r"
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "latest.pt").is_file()
    assert (run_dir / "learning_curves.png").stat().st_size > 10_000
    lines = (run_dir / "progress.csv").read_text().splitlines()
    assert lines[0].startswith("global_step,update")
    assert len(lines) == 1 + 3, "one CSV row per update"
    assert "losses/value_loss" in lines[0] and "charts/success_rate" in lines[0]


def test_corrupt_checkpoint_is_refused_and_an_older_one_used(tmp_path):
    with start(tiny_config(), tmp_path, quiet=True) as trainer:
        trainer.train_one_update()
        trainer.save_checkpoint()
        trainer.train_one_update()
        newest = trainer.save_checkpoint()
    newest.write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.load(newest)
    with resume(tmp_path, quiet=True) as again:
        assert again.update == 1, "falls back to the newest readable checkpoint"


def test_checkpoint_of_another_config_is_refused(tmp_path):
    with start(tiny_config(), tmp_path, quiet=True) as trainer:
        trainer.train_one_update()
        path = trainer.save_checkpoint()
    with pytest.raises(ckpt.CheckpointError, match="config hash") as refused:
        ckpt.load(path, expect_config_hash="0000000000000000")
    # ... and says how to keep what it learned.
    assert f"run.init_actor_from={path}" in str(refused.value)


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    with start(tiny_config("run.keep_checkpoints=2"), tmp_path, quiet=True) as trainer:
        for _ in range(3):
            trainer.train_one_update()
            trainer.save_checkpoint()
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("update_*.pt"))
    assert kept == ["update_000002.pt", "update_000003.pt"]
    assert (tmp_path / "latest.pt").is_file()


@pytest.mark.parametrize(
    ("config", "expected"),
    [("nav_random_4", "97d453d2a0a02f79"), ("nav_circle_8", "9069d9d6f9e06a28")],
)
def test_packaged_configs_keep_their_config_hash(config, expected):
    """Every run folder and exported model carries this hash, and resume refuses
    a checkpoint whose hash differs: a change in how configs are parsed or
    hashed must not change it, or existing runs can no longer be continued."""
    from mappo_training.experiment import config_hash

    assert config_hash(load_train_config(config)) == expected


def test_config_hash_follows_what_is_learned_not_how_the_run_is_kept():
    from mappo_training.experiment import config_hash, resolved, validate

    base = tiny_config()
    assert config_hash(tiny_config("run.keep_checkpoints=0", "run.name=x")) == config_hash(base)
    assert config_hash(tiny_config("algo.clip_coef=0.1")) != config_hash(base)
    # A run's config.yaml spells out every default: it hashes like the config
    # it came from, so it can be resumed by a later version that adds keys.
    assert config_hash(validate(resolved(base))) == config_hash(base)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("run.num_arenas=0", "run.num_arenas"),
        ("run.rollout_steps=abc", "run.rollout_steps"),
        ("algo.no_such_knob=1", "algo.no_such_knob"),
        ("sim.num_robots=-3", "num_robots"),
        ("run.workers=3", "run.workers"),
        ("run.keep_checkpoints=-1", "run.keep_checkpoints"),
    ],
)
def test_bad_config_values_are_named(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_train_config("nav_random_4", [override])


def test_scientific_notation_is_a_number_as_users_type_it():
    cfg = load_train_config("nav_random_4", ["algo.actor_lr=5e-5", "algo.critic_lr=1E-4"])
    assert cfg.algo.actor_lr == 5e-5 and cfg.algo.critic_lr == 1e-4
    with pytest.raises(ConfigError, match=r"algo\.actor_lr"):
        load_train_config("nav_random_4", ["algo.actor_lr=fast"])


def test_cli_reports_config_errors_without_traceback(tmp_path, capsys):
    code = swarm(["train", "--runs-dir", str(tmp_path), "run.total_steps=-1"])
    assert code == 2
    assert "run.total_steps" in capsys.readouterr().err


def test_warm_start_copies_actor_weights_from_a_run_or_an_exported_model(tmp_path):
    with start(tiny_config(), tmp_path / "source", quiet=True) as source:
        source.train_one_update()
        source.save_checkpoint()
        expected = {
            name: p.detach().clone() for name, p in source.learner.actor_for(0).named_parameters()
        }
    assert swarm(["export", str(tmp_path / "source"), "--out", str(tmp_path / "model")]) == 0
    for origin in (tmp_path / "source", tmp_path / "model"):
        # Twice the robots: the shared actor carries over, the critic starts fresh.
        cfg = tiny_config("sim.num_robots=4", f"run.init_actor_from={origin}", "algo.init_std=0.5")
        with start(cfg, tmp_path / f"warm-{origin.name}", quiet=True) as warm:
            actor = warm.learner.actor_for(0)
            got = {name: p.detach() for name, p in actor.named_parameters()}
            std = actor.action_std().detach()
        assert got.keys() == expected.keys()
        for name in got.keys() - {"log_std"}:
            assert torch.equal(got[name], expected[name]), name
        # The std is the new config's starting std, not the source's.
        torch.testing.assert_close(std, torch.full_like(std, 0.5))


def test_warm_start_adds_the_agent_id_without_changing_how_robots_drive(tmp_path):
    """A policy trained without the agent id can seed one with it (to break the
    symmetry of identical robots): at the start every id drives like the source."""
    with start(tiny_config(), tmp_path / "source", quiet=True) as source:
        source.train_one_update()
        source.save_checkpoint()
        obs = torch.randn(5, source.learner.slot_for(0).obs_dim)
        with torch.no_grad():
            expected = source.learner.actor_for(0)(source.learner.agent_input(0, obs))
    cfg = tiny_config("algo.agent_id=onehot", f"run.init_actor_from={tmp_path / 'source'}")
    with start(cfg, tmp_path / "warm", quiet=True) as warm:
        learner = warm.learner
        assert learner.slot_for(0).in_dim == learner.slot_for(0).obs_dim + 2
        with torch.no_grad():
            for robot in range(2):
                got = learner.actor_for(robot)(learner.agent_input(robot, obs))
                torch.testing.assert_close(got, expected)
        # ... and the id inputs are free to learn from there.
        warm.train_one_update()
        first = learner.actor_for(0).trunk[0].weight
        assert first[:, -2:].abs().sum() > 0


def test_warm_start_from_another_observation_layout_is_refused(tmp_path):
    with start(tiny_config(), tmp_path / "source", quiet=True) as source:
        source.save_checkpoint()
    cfg = tiny_config("sim.num_beams=36", f"run.init_actor_from={tmp_path / 'source'}")
    with pytest.raises(ConfigError, match="does not fit actor 0"):
        start(cfg, tmp_path / "warm", quiet=True)


def test_bench_train_reports_training_against_env_only_throughput(capsys):
    code = swarm(["bench", "train", "--json", "--updates", "1", *TINY])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["train_steps_per_s"] > 0 and report["env_steps_per_s"] > 0
    assert report["ratio"] == pytest.approx(
        report["train_steps_per_s"] / report["env_steps_per_s"], rel=1e-2
    )
    assert report["overlap"] is True, "the packaged config overlaps collection and update"
    assert report["other_mode_train_steps_per_s"] > 0


def test_bench_update_times_the_learner_on_cpu_and_the_device(capsys):
    code = swarm(["bench", "update", "--device", "cpu", "--json", "--updates", "1", *TINY])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # TINY: 64 steps x 2 arenas x 2 robots in each update.
    assert report["samples_per_update"] == 256
    assert report["cpu_s_per_update"] > 0 and report["device_s_per_update"] > 0
    assert report["speedup"] == pytest.approx(
        report["cpu_s_per_update"] / report["device_s_per_update"], rel=0.05
    )


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_asking_for_cuda_without_a_gpu_says_how_to_run_on_cpu(tmp_path, capsys):
    assert swarm(["train", "--runs-dir", str(tmp_path), "--device", "cuda", *TINY]) == 2
    assert "--device cpu" in capsys.readouterr().err
    assert swarm(["bench", "update", "--device", "cuda", *TINY]) == 2
    assert "--device cpu" in capsys.readouterr().err


def test_train_check_validates_and_prints_without_training(tmp_path, capsys):
    code = swarm(["train", "--check", "--runs-dir", str(tmp_path), "algo.clip_coef=0.1"])
    assert code == 0
    assert "clip_coef: 0.1" in capsys.readouterr().out
    assert not any(tmp_path.iterdir()), "no run folder"
    assert swarm(["train", "--check", "algo.clip_coef=wide"]) == 2
