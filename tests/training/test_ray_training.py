"""`swarm train --ray`: rollout workers as Ray actors, the learner on the driver.

Every test here shares one local Ray (2 CPUs) started once for the module; its
workers can import this folder's modules (EchoGame below), as a cluster's
nodes must import a run's env factory.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("ray", reason="needs Ray: pip install -e '.[ray]'")

import ray
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from mappo_training import checkpoint as ckpt
from mappo_training import train
from mappo_training.cli import main as swarm
from mappo_training.experiment import config_hash, load_train_config, validate
from mappo_training.ray_pool import RayWorkerPool
from mappo_training.train import make_swarm_env, resume, start
from mappo_training.vec_env import WorkerError, WorkerPool
from swarm_contract.config import ConfigError

# Idle, each test takes under 10 s; with both cores held by other work
# (two `yes` processes, 2026-12-01) Ray's actor start-ups stretched them to
# 100-180 s, too near the suite's 300 s default, so these get more room.
pytestmark = pytest.mark.timeout(900)

# 2 arenas x 2 robots x 8 steps = 32 robot-steps per update.
TINY = [
    "run.num_arenas=2",
    "run.rollout_steps=8",
    "run.total_steps=96",  # 3 updates
    "run.eval_episodes=0",
    "run.checkpoint_every=1",
    "sim.num_robots=2",
]


def tiny_config(*extra: str):
    return load_train_config("nav_random_4", TINY + list(extra))


def all_params(trainer) -> list[torch.Tensor]:
    out = []
    for i in range(trainer.num_robots):
        out += [p.detach().clone() for p in trainer.learner.actor_for(i).parameters()]
    out += [p.detach().clone() for p in trainer.learner.critic.parameters()]
    return out


def progress_rows(run_dir) -> list[dict]:
    with open(run_dir / "progress.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def local_ray():
    path = [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, path))}},
    )
    yield ray
    ray.shutdown()


class EchoGame(ParallelEnv):
    """Two agents each see a sign, new every step, and score -|action - sign|
    (team mean): random play loses about 4 an episode, saying it back almost 0."""

    metadata = {"name": "echo_v0"}

    def __init__(self, max_cycles: int = 4):
        self.possible_agents = ["left", "right"]
        self.max_cycles = max_cycles
        self.state_space = spaces.Box(-1, 1, (2,), np.float32)
        self._rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return spaces.Box(-1, 1, (2,), np.float32)

    def action_space(self, agent):
        return spaces.Box(-1, 1, (1,), np.float32)

    def state(self):
        return self._signs.astype(np.float32)

    def _observe(self):
        progress = self._t / self.max_cycles
        return {
            agent: np.array([sign, progress], np.float32)
            for agent, sign in zip(self.possible_agents, self._signs, strict=True)
        }

    def reset(self, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._t = 0
        self._signs = self._rng.choice([-1.0, 1.0], size=2)
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        misses = [
            abs(float(actions[agent][0]) - sign)
            for agent, sign in zip(self.possible_agents, self._signs, strict=True)
        ]
        reward = -float(np.mean(misses))
        self._t += 1
        self._signs = self._rng.choice([-1.0, 1.0], size=2)
        done = self._t >= self.max_cycles
        obs = self._observe()
        if done:
            self.agents = []
        agents = self.possible_agents
        return (
            obs,
            {a: reward for a in agents},
            {a: False for a in agents},
            {a: done for a in agents},
            {a: {} for a in agents},
        )


def echo_config(updates: int):
    # 8 copies x 2 agents x 16 steps = 256 robot-steps per update.
    return validate(
        {
            "run": {
                "total_steps": 256 * updates,
                "num_arenas": 8,
                "rollout_steps": 16,
                "workers": 2,
                "eval_episodes": 0,
                "checkpoint_every": 1000,
                "seed": 3,
            },
            "env": {"kind": "pettingzoo", "factory": f"{__name__}:EchoGame"},
            "algo": {"epochs": 4, "actor_lr": 3e-3, "critic_lr": 3e-3},
            "ray": {"enabled": True},
        }
    )


def test_two_ray_workers_train_a_tiny_task_and_its_return_improves(local_ray, tmp_path):
    with start(echo_config(updates=5), tmp_path, quiet=True) as trainer:
        assert isinstance(trainer.env, RayWorkerPool) and trainer.env.num_workers == 2
        returns = []
        while trainer.update < trainer.num_updates:
            trainer.train_one_update()
            summary = trainer.stats.summary()  # empty after the last: it starts no rollout
            if summary:
                returns.append(summary["charts/episodic_return"])
            trainer.stats.clear()
    assert len(returns) == 4
    # Random play scores about -4; four updates on Ray win back more than 1 of it.
    assert np.mean(returns[-2:]) > returns[0] + 1.0, returns


def test_one_ray_worker_learns_the_first_update_exactly_as_one_local_worker(
    local_ray, tmp_path, monkeypatch
):
    """Same seed, one worker: the Ray actor collects what a local worker process
    collects (run.workers=1 locally steps in-process, with other noise, so the
    comparable local path is a pool of one process), and the update is the same."""
    with monkeypatch.context() as patch:
        patch.setattr(
            train,
            "make_env",
            lambda cfg: WorkerPool(
                make_swarm_env, 1, cfg.run.num_arenas, cfg.run.seed, sim=cfg.sim
            ),
        )
        with start(tiny_config("run.workers=1"), tmp_path / "local", quiet=True) as local:
            local_metrics = local.train_one_update()
            local_params = all_params(local)
    with start(
        tiny_config("run.workers=1", "ray.enabled=true"), tmp_path / "ray", quiet=True
    ) as on_ray:
        assert isinstance(on_ray.env, RayWorkerPool)
        ray_metrics = on_ray.train_one_update()
        ray_params = all_params(on_ray)
    for key in ("losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl"):
        assert ray_metrics[key] == pytest.approx(local_metrics[key], rel=1e-6, abs=1e-9), key
    assert len(ray_params) == len(local_params)
    for a, b in zip(ray_params, local_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_a_worker_killed_mid_rollout_is_replaced_and_the_run_resumes_exactly(
    local_ray, tmp_path, capsys, monkeypatch
):
    """A worker actor killed while collecting is replaced, collects the same
    rollout again, and the run trains on, logging it. Then the run's folder,
    cut back to its first checkpoint, resumes on Ray to the same weights: the
    replacement's rollout was the lost one, and resume is exact."""
    cfg = tiny_config("run.workers=2", "ray.enabled=true")
    straight = start(cfg, tmp_path / "straight", quiet=True)
    try:
        straight.train_one_update()
        straight.save_checkpoint()
        pool = straight.env
        start_rollouts = pool.start_rollouts

        def start_then_lose_a_worker(requests):
            start_rollouts(requests)
            ray.kill(pool.actors[0])  # dies while its rollout is in flight
            pool.start_rollouts = start_rollouts

        pool.start_rollouts = start_then_lose_a_worker
        straight.run()
        expected = all_params(straight)
        assert straight.update == 3
        assert "rollout worker 0 died" in capsys.readouterr().err
        restarts = [
            float(r["charts/worker_restarts"]) for r in progress_rows(tmp_path / "straight")
        ]
        assert restarts == [1.0, 1.0]

        resumed_dir = tmp_path / "resumed"
        shutil.copytree(tmp_path / "straight", resumed_dir)
        for extra in sorted((resumed_dir / "checkpoints").glob("update_*.pt"))[1:]:
            extra.unlink()
        # The driver starts again; to keep the test short its new pool is the
        # same actors, whose envs resume puts back from the checkpoint.
        monkeypatch.setattr(train, "make_env", lambda cfg: pool)
        with resume(resumed_dir, quiet=True) as again:
            assert again.cfg.ray.enabled, "a Ray run resumes on Ray"
            assert again.update == 1
            again.run()
            got = all_params(again)
    finally:
        straight.close()
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b), "the replaced worker's rollout or the resume differed"


def test_workers_dying_past_the_restart_limit_stop_the_run_with_its_checkpoint(
    local_ray, tmp_path, capsys
):
    cfg = tiny_config("run.workers=1", "ray.enabled=true", "ray.max_worker_restarts=1")
    with start(cfg, tmp_path, quiet=True) as trainer:
        trainer.train_one_update()
        trainer.save_checkpoint()
        pool = trainer.env
        spawn = pool._spawn

        def spawn_a_doomed_worker(w):
            actor = spawn(w)
            ray.kill(actor)
            return actor

        pool._spawn = spawn_a_doomed_worker
        ray.kill(pool.actors[0])
        with pytest.raises(WorkerError, match=r"ray\.max_worker_restarts=1"):
            trainer.run()
    assert "continue from the last checkpoint" in capsys.readouterr().err
    assert ckpt.load(tmp_path / "latest.pt")["update"] == 1, "the last checkpoint is intact"


def test_without_ray_installed_ray_fails_in_one_line_naming_the_extra(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code = swarm(["train", "--ray", "--workers", "2", "--runs-dir", str(tmp_path), *TINY])
    assert code == 2
    assert capsys.readouterr().err == "error: --ray needs Ray: pip install -e '.[ray]'\n"
    assert not any(tmp_path.iterdir()), "no run folder is made"


def test_ray_keys_are_typed_and_do_not_change_what_a_run_learns(capsys):
    assert swarm(["train", "--check", "--ray", "--ray-address", "auto", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "ray:\n  enabled: true\n  address: auto\n" in printed
    assert "  workers: 2\n" in printed
    with pytest.raises(ConfigError, match=r"ray\.adress"):
        tiny_config("ray.adress=auto")
    with pytest.raises(ConfigError, match=r"ray\.max_worker_restarts=-1"):
        tiny_config("ray.max_worker_restarts=-1")
    with pytest.raises(ConfigError, match=r"run\.workers >= 1"):
        tiny_config("ray.enabled=true", "run.workers=0")
    on_ray = tiny_config("ray.enabled=true", "ray.address=auto", "ray.num_cpus_per_worker=2")
    assert config_hash(on_ray) == config_hash(tiny_config())


def test_default_training_never_imports_ray():
    script = textwrap.dedent(
        f"""
        import sys, tempfile, pathlib
        import mappo_training.train as train
        from mappo_training.experiment import load_train_config
        cfg = load_train_config("nav_random_4", {TINY + ["run.workers=0", "run.total_steps=32"]!r})
        with train.start(cfg, pathlib.Path(tempfile.mkdtemp()), quiet=True) as trainer:
            trainer.run()
        print("ray" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_bench_train_on_ray_names_worker_counts_it_cannot_compare(capsys):
    code = swarm(["bench", "train", "--ray", "--workers", "1,3", *TINY])
    assert code == 2
    assert "run.num_arenas=2 must be divisible by run.workers=3" in capsys.readouterr().err
    assert swarm(["bench", "train", "--workers", "1,2", *TINY]) == 2
    assert "worker counts are compared with --ray" in capsys.readouterr().err
