"""The trainer takes any cooperative PettingZoo ParallelEnv with state(), not only ours."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("pettingzoo", reason="needs pettingzoo: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv
from training_fixtures import straight_and_resumed

from mappo_training import checkpoint as ckpt
from mappo_training.experiment import validate
from mappo_training.pettingzoo_batch import ParallelEnvBatch
from mappo_training.train import resume, start
from swarm_contract.config import ConfigError

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


class SignalGame(ParallelEnv):
    """Two different agents: a 'speaker' (discrete, `signals` words) sees a bit, a
    'mover' (continuous, different observation size) must output +1 or -1 to
    match it. Team reward."""

    metadata = {"name": "signal_game_v0"}

    def __init__(self, max_cycles: int = 4, signals: int = 2):
        self.possible_agents = ["speaker", "mover"]
        self.max_cycles = max_cycles
        self.signals = signals
        self._obs = {
            "speaker": spaces.Box(-1, 1, (2,), np.float32),
            "mover": spaces.Box(-1, 1, (3,), np.float32),
        }
        self._act = {
            "speaker": spaces.Discrete(signals),
            "mover": spaces.Box(-1, 1, (1,), np.float32),
        }
        self.state_space = spaces.Box(-1, 1, (1,), np.float32)
        self._rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def state(self):
        return np.array([self._bit * 2.0 - 1.0], np.float32)

    def _observe(self):
        said = 0.0 if self._said is None else self._said * 2.0 / (self.signals - 1) - 1.0
        return {
            "speaker": np.array([self._bit * 2.0 - 1.0, 0.0], np.float32),
            "mover": np.array([said, 0.0, self._t / self.max_cycles], np.float32),
        }

    def reset(self, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._bit = int(self._rng.integers(2))
        self._said = None
        self._t = 0
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        self._said = int(actions["speaker"])
        target = self._bit * 2.0 - 1.0
        reward = -abs(float(actions["mover"][0]) - target)
        self._t += 1
        done = self._t >= self.max_cycles
        obs = self._observe()
        rewards = {a: reward for a in self.agents}
        terms = {a: False for a in self.agents}
        truncs = {a: done for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terms, truncs, {a: {} for a in self.possible_agents}


def test_heterogeneous_discrete_and_continuous_agents_batch_into_arrays():
    batch = ParallelEnvBatch(SignalGame, {}, num_copies=3, seed=0)
    assert batch.obs_dims == [2, 3] and batch.obs_dim == 3
    assert [s.kind for s in batch.action_specs] == ["discrete", "box"]
    obs, state = batch.reset(seed=1)
    assert obs.shape == (3, 2, 3) and state.shape == (3, 2, 1)
    assert np.all(obs[:, 0, 2] == 0), "the smaller observation is zero-padded"
    ended = []
    for _ in range(4):
        actions = np.zeros((3, 2, 1), np.float32)
        obs, state, reward, term, trunc, info = batch.step(actions)
        ended += info["episodes"]
    assert trunc.all() and not term.any(), "time limit is a truncation, not a termination"
    assert len(ended) == 3 and all(e["length"] == 4 for e in ended)


def signal_config(
    device: str = "cpu",
    total_steps: int = 12_000,
    game: str = "SignalGame",
    workers: int = 0,
    signals: int = 2,
):
    return validate(
        {
            "run": {
                "total_steps": total_steps,
                "num_arenas": 8,
                "rollout_steps": 16,
                "workers": workers,
                "eval_episodes": 0,
                "checkpoint_every": 1,
                "seed": 3,
                "device": device,
            },
            "env": {
                "kind": "pettingzoo",
                "factory": f"{__name__}:{game}",
                "kwargs": {"signals": signals},
            },
            "algo": {"agent_id": "onehot", "epochs": 4, "actor_lr": 1e-3, "critic_lr": 1e-3},
        }
    )


def test_trainer_runs_a_pettingzoo_env_and_learns_the_signal(tmp_path):
    # CPU only: on CUDA the noise comes from another RNG stream, and this small
    # coordination game then fails for about one seed in ten (the speaker
    # settles on saying nothing); test_algo_learner checks that a CUDA update
    # equals the CPU one instead.
    with start(signal_config(), tmp_path, quiet=True) as trainer:
        first = trainer.train_one_update()
        returns = []
        while trainer.update < trainer.num_updates:
            trainer.train_one_update()
            # An overlapped run's last update collects nothing: no episodes end.
            summary = trainer.stats.summary()
            if summary:
                returns.append(summary["charts/episodic_return"])
            trainer.stats.clear()
    assert "losses/value_loss" in first
    # Random play loses ~1 per step (4 per episode); learning the signal beats it clearly.
    assert np.mean(returns[-3:]) > np.mean(returns[:3]) + 1.0


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_a_run_resumes_on_its_device_where_it_stopped(tmp_path, device):
    """Optimiser moments, the value normaliser and the sampling RNG live on the
    learner's device; a checkpoint is read on the CPU, so each must find its
    way back there for the resumed update to match the uninterrupted one."""
    cfg = signal_config(device, total_steps=2_000)

    def params(trainer):
        return [p.detach().cpu().clone() for p in trainer.learner.actor_for(1).parameters()]

    expected, got, again = straight_and_resumed(cfg, tmp_path, params)
    assert again.learner.device.type == device
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


class UnpicklableSignalGame(SignalGame):
    """As if it held a simulator handle: a checkpoint cannot carry its episodes."""

    def __init__(self, max_cycles: int = 4, signals: int = 2):
        super().__init__(max_cycles, signals)
        self.handle = lambda: None


def test_an_env_that_cannot_be_pickled_resumes_from_fresh_episodes(tmp_path):
    with start(
        signal_config(total_steps=2_000, game="UnpicklableSignalGame"), tmp_path, quiet=True
    ) as trainer:
        assert not trainer.env.supports_snapshot
        trainer.train_one_update()
        trainer.save_checkpoint()
    with resume(tmp_path, quiet=True) as again:
        assert again.update == 1
        again.train_one_update()
        assert again.update == 2


def test_a_checkpoint_rebuilds_its_learner_without_the_env(tmp_path):
    """Evaluation and export take a run's learner from its checkpoint alone: the
    discrete speaker and the continuous mover come back acting as trained."""
    with start(signal_config(total_steps=2_000), tmp_path, quiet=True) as trainer:
        trainer.train_one_update()
        path = trainer.save_checkpoint()
        obs, _ = trainer.env.reset(seed=5)
        expected, _ = trainer.learner.act(obs, deterministic=True)
    learner = ckpt.load_learner(path)
    assert [spec.kind for spec in learner.action_specs] == ["discrete", "box"]
    got, _ = learner.act(obs, deterministic=True)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("workers", [0, 2])
def test_each_agent_keeps_its_own_action_space_in_and_out_of_worker_processes(tmp_path, workers):
    """Split over simulator workers or not, the speaker chooses among its 5
    words (a categorical over Discrete(5), not a Gaussian rounded to 0 or 1)
    and the mover moves continuously."""
    cfg = signal_config(total_steps=2_000, workers=workers, signals=5)
    with start(cfg, tmp_path, quiet=True) as trainer:
        assert getattr(trainer.env, "num_workers", 0) == workers
        assert [(s.kind, s.n) for s in trainer.learner.action_specs] == [
            ("discrete", 5),
            ("box", 0),
        ]
        assert trainer.env.obs_dims == [2, 3]
        metrics = trainer.train_one_update()
        actions = trainer._rollouts[0].buffer.actions
    assert np.isfinite(metrics["losses/value_loss"])
    words, moves = actions[..., 0, 0], actions[..., 1, 0]
    assert set(np.unique(words)) == {0, 1, 2, 3, 4}, "every word is said"
    assert not np.array_equal(moves, np.rint(moves)), "the mover's actions are continuous"


def test_factory_that_cannot_be_imported_is_named():
    with pytest.raises(ConfigError, match="no_such_module"):
        ParallelEnvBatch("no_such_module:make", {}, num_copies=1)
