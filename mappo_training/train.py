"""`swarm train`: the MAPPO training loop, top to bottom.

    collect a rollout (K arenas x T steps, actions from the actors, values
    from the centralised critic) -> GAE -> epochs x minibatches of PPO ->
    log -> checkpoint

The algorithm (losses, networks, normalisers) lives in `mappo_training.algo`;
this module owns collection, logging, checkpoints and resume.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mappo_training import checkpoint as ckpt
from mappo_training.batched_env import BatchedEnv
from mappo_training.experiment import (
    DEFAULT_CONFIG,
    TrainConfig,
    config_hash,
    load_train_config,
    resolved,
    validate,
)
from mappo_training.rollout import (
    ActingSpec,
    BackgroundUpdate,
    Rollout,
    actor_weights,
    collect,
    compute_targets,
)
from mappo_training.sim.config import SimConfig
from mappo_training.sim.episodes import summarize
from mappo_training.vec_env import RolloutPool, WorkerError, WorkerPool
from swarm_contract.config import ConfigError

RUNS_DIR = Path("runs")


class TrainingDiverged(RuntimeError):
    """A rollout, loss, gradient or weight went NaN or inf; the run stopped without saving it."""


class NonFiniteRollout(FloatingPointError):
    """The environment gave a NaN or inf reward or observation."""


# --------------------------------------------------------------------------- #
# Environment construction (top-level functions so worker processes can pickle them).
# --------------------------------------------------------------------------- #


def make_swarm_env(sim: SimConfig, num_arenas: int, seed: int) -> BatchedEnv:
    from mappo_training.sim import BatchedSwarmEnv

    return BatchedSwarmEnv(sim, num_arenas=num_arenas, seed=seed)


def make_pettingzoo_env(factory: str, kwargs: dict, num_arenas: int, seed: int) -> BatchedEnv:
    from mappo_training.pettingzoo_batch import ParallelEnvBatch

    return ParallelEnvBatch(factory, kwargs, num_copies=num_arenas, seed=seed)


def make_env(
    cfg: TrainConfig, num_arenas: int | None = None, workers: int | None = None
) -> BatchedEnv:
    """The training environment: in-process, split over worker processes, or
    (ray.enabled) over Ray actors."""
    num_arenas = cfg.run.num_arenas if num_arenas is None else num_arenas
    workers = cfg.run.workers if workers is None else workers
    if cfg.env.kind == "swarm":
        factory, kw = make_swarm_env, {"sim": cfg.sim}
    else:
        factory, kw = make_pettingzoo_env, {"factory": cfg.env.factory, "kwargs": cfg.env.kwargs}
    if cfg.ray.enabled:
        from mappo_training.ray_pool import RayWorkerPool  # imports Ray: only for --ray

        return RayWorkerPool(
            factory, workers, num_arenas // workers, cfg.run.seed, ray_cfg=cfg.ray, **kw
        )
    if workers <= 1 or num_arenas % workers:
        return factory(num_arenas=num_arenas, seed=cfg.run.seed, **kw)
    return WorkerPool(factory, workers, num_arenas // workers, cfg.run.seed, **kw)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def warm_start_actors(learner, source: Path) -> None:
    """Load actor weights from a checkpoint, run folder or exported model folder.

    Every actor of this learner gets the source's (first) actor; shapes must
    match (same observation layout and network), and an error says which
    differs. The action std restarts at algo.init_std, and optimiser state is
    not copied: the new task starts its own.
    """
    import torch

    from mappo_training.algo.networks import GaussianActor

    if source.is_dir() and (source / "torch_reference.pt").is_file():
        reference = source / "torch_reference.pt"
        try:
            data = torch.load(reference, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many kinds for a damaged or foreign file
            raise ConfigError(
                f"run.init_actor_from={str(source)!r}: {reference} is truncated, corrupt or"
                f" holds more than tensors ({type(err).__name__}); export the model again"
                " with `swarm export`, or start from a run folder or checkpoint instead"
            ) from err
        weights = {
            k.removeprefix("actor."): v
            for k, v in data["state_dict"].items()
            if k.startswith("actor.")
        }
    else:
        path = source / "latest.pt" if source.is_dir() else source
        weights = ckpt.load(path)["learner"]["actors"][0]
    for k, actor in enumerate(learner.actors):
        mine = actor.state_dict()
        weights = _widen_for_agent_id(weights, mine, learner.slots[k])
        bad = [
            f"{name}: source {tuple(weights[name].shape) if name in weights else 'missing'},"
            f" here {tuple(value.shape)}"
            for name, value in mine.items()
            if name not in weights or weights[name].shape != value.shape
        ]
        if bad:
            raise ConfigError(
                f"run.init_actor_from={str(source)!r} does not fit actor {k}: "
                + "; ".join(bad[:3])
                + " (the source must have the same observation layout and network)"
            )
        actor.load_state_dict({name: weights[name] for name in mine})
        if isinstance(actor, GaussianActor):
            # The new task explores from algo.init_std: a source trained down to
            # a small std makes every early step of a fresh Adam a large change
            # in probability (approx_kl 0.7 per step from a source at std 0.08,
            # even with a lower learning rate and algo.target_kl=0.02).
            with torch.no_grad():
                actor.log_std.fill_(math.log(learner.cfg.init_std))


def _widen_for_agent_id(weights: dict, mine: dict, slot) -> dict:
    """A source without the agent id, loaded into an actor with one: the first
    layer gets zero weights for the id inputs, so the actor starts out driving
    exactly like the source and learns what each id should do differently."""
    import torch

    first = "trunk.0.weight"
    if not slot.with_id or first not in weights or first not in mine:
        return weights
    have, want = weights[first], mine[first]
    if have.shape[0] != want.shape[0] or have.shape[1] + slot.num_agents != want.shape[1]:
        return weights
    pad = torch.zeros(have.shape[0], slot.num_agents, dtype=have.dtype)
    return {**weights, first: torch.cat([have, pad], dim=1)}


# --------------------------------------------------------------------------- #
# Episode statistics.
# --------------------------------------------------------------------------- #


EPISODE_LOG_KEYS = {
    "charts/episodic_return": "episodic_return",
    "charts/episodic_length": "episode_length",
    "charts/success_rate": "success_rate",
    "charts/collision_rate": "collision_rate",
    "charts/arrived_fraction": "arrived_fraction",
    "charts/time_to_goal": "time_to_goal_s",
}
"""The training log's name for each of sim.episodes.summarize's numbers."""


@dataclass
class EpisodeStats:
    """Finished episodes since the last log line."""

    episodes: list[dict] = field(default_factory=list)

    def add(self, finished: list[dict]) -> None:
        self.episodes.extend(finished)

    def summary(self) -> dict[str, float]:
        """The episode scalars of the training log; NaN where no episode had the
        value (no robot arrived, say), nothing at all without episodes."""
        if not self.episodes:
            return {}
        scores = summarize(self.episodes)
        out = {
            log_key: math.nan if scores[key] is None else scores[key]
            for log_key, key in EPISODE_LOG_KEYS.items()
        }
        # Runs over many teams and a curriculum: which team sizes and stages
        # the finished episodes had (mean), so a curve's dip can be read.
        for log_key, key in (("charts/team_size", "robots"), ("charts/curriculum_stage", "stage")):
            values = [e[key] for e in self.episodes if key in e]
            if values:
                out[log_key] = float(np.mean(values))
        return out

    def clear(self) -> None:
        self.episodes = []


# --------------------------------------------------------------------------- #
# The loop.
# --------------------------------------------------------------------------- #


class Trainer:
    """One training run: owns the env, the learner, the run folder and its logs."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, *, quiet: bool = False) -> None:
        import torch

        self.cfg = cfg
        self.run_dir = run_dir
        self.quiet = quiet
        self.hash = config_hash(cfg)
        torch.set_num_threads(cfg.run.torch_threads)
        # Process-wide in torch: put back by close(), so that evaluation and
        # export after training run in full float32.
        self._matmul_precision_before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision(cfg.run.matmul_precision)
        seed_everything(cfg.run.seed)
        self.env = make_env(cfg)
        try:
            self._build(cfg)
        except BaseException:
            # A bad warm-start source, say: stop the workers, put torch back.
            self.close()
            raise

    def _build(self, cfg: TrainConfig) -> None:
        import torch

        self.num_arenas = self.env.num_arenas
        self.num_robots = self.env.num_robots
        from mappo_training.algo import MAPPOLearner, RolloutBuffer

        self.learner = MAPPOLearner(
            cfg.algo,
            obs_dims=self.env.obs_dims,
            action_specs=self.env.action_specs,
            state_dim=self.env.state_dim,
            device=cfg.run.device,
        )
        # Two rollouts: with run.overlap one fills while the other is learned from.
        self._rollouts = [
            Rollout(
                RolloutBuffer(
                    cfg.run.rollout_steps,
                    self.num_arenas,
                    self.num_robots,
                    obs_dim=self.env.obs_dim,
                    state_dim=self.env.state_dim,
                    act_dim=self.env.action_dim,
                )
            )
            for _ in range(2 if cfg.run.overlap else 1)
        ]
        # A collected rollout whose update has not run yet (overlap only).
        self.pending: Rollout | None = None
        # Simulator workers (local processes or Ray actors) act for their own
        # arenas (rollout.remote_rollout), each drawing its action noise from
        # its own RNG, whose state lives here.
        self._workers = self.env if isinstance(self.env, RolloutPool) else None
        self._worker_rngs: list[np.ndarray] = []
        if self._workers is not None:
            self._acting_spec = ActingSpec(
                cfg.algo,
                self.env.obs_dims,
                self.env.action_specs,
                self.env.state_dim,
                cfg.run.matmul_precision,
            )
            self._worker_rngs = [
                torch.Generator().manual_seed(cfg.run.seed * 1000 + w).get_state().numpy()
                for w in range(self._workers.num_workers)
            ]
        self._mid_update = False
        # The newest checkpoint this trainer wrote or resumed from, and its update.
        self.last_checkpoint: Path | None = None
        self._saved_update: int | None = None
        self._resumed_log_row: dict[str, float] | None = None
        if cfg.run.init_actor_from:
            warm_start_actors(self.learner, Path(cfg.run.init_actor_from))
        self.steps_per_update = cfg.run.rollout_steps * self.num_arenas * self.num_robots
        # Rounded up: the run trains at least run.total_steps (budget_line says so).
        self.num_updates = max(1, -(-cfg.run.total_steps // self.steps_per_update))
        self.update = 0
        self.global_step = 0
        self.wall_time = 0.0
        self.obs, self.state = self.env.reset(seed=cfg.run.seed)
        self.stats = EpisodeStats()
        self._stop_requested = False

    def budget_line(self) -> str:
        """What run.total_steps became in whole updates, said once at the start:
        the budget is rounded up, and a PettingZoo run's robot-steps are its
        env frames times its agents."""
        run, per = self.cfg.run, self.steps_per_update
        pettingzoo = self.cfg.env.kind == "pettingzoo"
        who = "agents" if pettingzoo else "robots"
        exact = f"{run.total_steps / per:,.2f}".rstrip("0").rstrip(".")
        total = self.num_updates * per
        frames = f" ({total // self.num_robots:,} env frames)" if pettingzoo else ""
        return (
            f"run.total_steps={run.total_steps:,} robot-steps = {exact} updates of {per:,}"
            f" ({self.num_arenas} arenas x {run.rollout_steps} steps x {self.num_robots} {who});"
            f" training {self.num_updates:,} updates = {total:,} robot-steps{frames}"
        )

    # -- checkpoints -------------------------------------------------------- #

    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / f"update_{self.update:06d}.pt"

    def save_checkpoint(self, log_row: dict[str, float] | None = None) -> Path:
        """Write this update's checkpoint, point latest.pt at it, prune old ones.

        log_row: this update's progress.csv row, kept to be logged on resume if
        the run is killed between saving and logging it.

        A failed write (a full disk) leaves every earlier checkpoint whole and
        raises a CheckpointError that says where the run can continue from.
        """
        snapshot = self.env.snapshot() if self.env.supports_snapshot else None
        try:
            path = self._write_checkpoint(snapshot, log_row)
        except ckpt.CheckpointError as err:
            written = sorted((self.run_dir / "checkpoints").glob("update_*.pt"))
            since = (
                f"`swarm train --resume {self.run_dir}` continues from {written[-1].name}"
                if written
                else "no checkpoint of this run was written yet"
            )
            raise ckpt.CheckpointError(
                f"{err}. Training stopped after update {self.update}: free disk space"
                f" (or lower run.keep_checkpoints); {since}"
            ) from err
        self.last_checkpoint, self._saved_update = path, self.update
        self._prune_checkpoints()
        return path

    def _write_checkpoint(self, snapshot, log_row: dict[str, float] | None) -> Path:
        path = ckpt.save(
            self.checkpoint_path(),
            {
                "config": resolved(self.cfg),
                "config_hash": self.hash,
                "update": self.update,
                "global_step": self.global_step,
                "wall_time": self.wall_time,
                "learner": self.learner.state_dict(),
                "rng": ckpt.rng_states(),
                "env_snapshot": snapshot,
                "obs": self.obs,
                "state": self.state,
                "pending_rollout": None if self.pending is None else self.pending.state_dict(),
                "worker_rngs": self._worker_rngs,
                "obs_dims": self.env.obs_dims,
                "action_dim": self.env.action_dim,
                "state_dim": self.env.state_dim,
                "contract": self.env.contract,
                "log_row": log_row,
            },
        )
        ckpt.link_latest(path, self.run_dir / "latest.pt")
        return path

    def _prune_checkpoints(self) -> None:
        """Delete all but the newest run.keep_checkpoints (after a good save)."""
        keep = self.cfg.run.keep_checkpoints
        if keep:
            written = sorted((self.run_dir / "checkpoints").glob("update_*.pt"))
            for old in written[:-keep]:
                old.unlink(missing_ok=True)

    def restore(self, data: dict) -> None:
        self.learner.load_state_dict(data["learner"])
        self.update = data["update"]
        self.global_step = data["global_step"]
        self.wall_time = data["wall_time"]
        self._resumed_log_row = data.get("log_row")
        if data.get("env_snapshot") is not None:
            self.env.restore(data["env_snapshot"])
            self.obs, self.state = data["obs"], data["state"]
        else:
            # Without a simulator snapshot the run continues from fresh episodes.
            self.obs, self.state = self.env.reset(seed=self.cfg.run.seed + self.update)
        if data.get("pending_rollout") is not None and data.get("env_snapshot") is not None:
            self.pending = self._rollouts[0]
            self.pending.load_state_dict(data["pending_rollout"])
        if self._workers is not None and len(data.get("worker_rngs") or []) == len(
            self._worker_rngs
        ):
            self._worker_rngs = data["worker_rngs"]
        ckpt.restore_rng_states(data["rng"])

    # -- one update --------------------------------------------------------- #

    def collect(self, rollout: Rollout, actors=None) -> Rollout:
        """Fill `rollout` with T steps of every arena, here, acting with the
        learner's actors or, given, a frozen copy of them (the rollout is then stale)."""
        self.obs, self.state = collect(
            self.env,
            self.learner,
            rollout,
            self.obs,
            self.state,
            actors,
            self.stats.add,
            stale=actors is not None,
        )
        return rollout

    def start_remote_collect(self, workers: RolloutPool, *, stale: bool) -> None:
        """Each simulator worker starts a rollout of its arenas with the actors
        as they are now (their weights travel by value)."""
        weights = actor_weights(self.learner)
        requests = [
            {
                "spec": self._acting_spec,
                "actors": weights,
                "rng": rng,
                "obs": obs,
                "state": state,
                "steps": self.cfg.run.rollout_steps,
                "stale": stale,
            }
            for rng, obs, state in zip(
                self._worker_rngs, workers.split(self.obs), workers.split(self.state), strict=True
            )
        ]
        workers.start_rollouts(requests)

    def finish_remote_collect(self, workers: RolloutPool, rollout: Rollout) -> Rollout:
        replies = workers.finish_rollouts()
        offsets = workers.arena_offsets
        rollout.load_parts([r["rollout"] for r in replies], offsets)
        self._worker_rngs = [r["rng"] for r in replies]
        for reply, offset in zip(replies, offsets, strict=True):
            self.stats.add([dict(ep, arena=ep["arena"] + offset) for ep in reply["episodes"]])
        self.obs, self.state = rollout.last_obs, rollout.last_state
        return rollout

    def train_one_update(self) -> dict[str, float]:
        """One PPO update on a freshly collected rollout.

        With run.overlap the next rollout is collected, by the actors as they
        were before this update, while this update runs; the following update
        then learns from data one update old (the learner's decoupled PPO
        accounts for it). Simulator workers collect it by themselves; without
        them the update runs in a thread while this one collects.
        """
        start = time.perf_counter()
        self._mid_update = True
        self.learner.set_progress(self.update / self.num_updates)
        workers = self._workers
        if self.pending is None:
            if workers is not None:
                self.start_remote_collect(workers, stale=False)
                self.pending = self.finish_remote_collect(workers, self._rollouts[0])
            else:
                self.pending = self.collect(self._rollouts[0])
        batch, self.pending = self.pending, None
        spare = next((r for r in self._rollouts if r is not batch), None)
        overlap = self.cfg.run.overlap and self.update + 1 < self.num_updates
        try:
            if overlap and workers is not None:
                self.start_remote_collect(workers, stale=True)
                metrics = self._update(batch)
                self.pending = self.finish_remote_collect(workers, spare)
            elif overlap:
                frozen = self.learner.frozen_actors()
                with BackgroundUpdate(lambda: self._update(batch)) as job:
                    self.pending = self.collect(spare, frozen)
                metrics = job.result()
            else:
                metrics = self._update(batch)
        except FloatingPointError as err:  # the learner's NonFiniteLoss (torch-free import)
            raise TrainingDiverged(self._divergence_report(err)) from err
        elapsed = time.perf_counter() - start
        self.update += 1
        self.global_step += self.steps_per_update
        self.wall_time += elapsed
        self._mid_update = False
        metrics["charts/SPS"] = self.steps_per_update / elapsed
        if workers is not None:
            metrics.update(workers.fault_metrics())
        return metrics

    def _divergence_report(self, err: FloatingPointError) -> str:
        """What went non-finite, where, what is still good, and what to try."""
        kept = (
            f"{self.last_checkpoint} (update {self._saved_update}) is the last good checkpoint"
            if self.last_checkpoint
            else "no checkpoint was written before it"
        )
        algo = self.cfg.algo
        if isinstance(err, NonFiniteRollout):
            hint = (
                "The environment produced them: check its reward terms (sim.reward.*) and"
                " observations, e.g. with `swarm eval` on the last good checkpoint."
            )
        else:
            hint = (
                f"Try lower learning rates (algo.actor_lr={algo.actor_lr:g},"
                f" algo.critic_lr={algo.critic_lr:g}), check the reward scale (sim.reward.*)"
                " and keep algo.max_grad_norm set; a new run can start from the last good"
                " actor with run.init_actor_from=<checkpoint>."
            )
        return (
            f"training stopped at update {self.update + 1} of {self.num_updates}: {err}."
            f" Nothing of this update was saved; {kept}. {hint}"
        )

    def _update(self, rollout: Rollout) -> dict[str, float]:
        """Value targets with the current critic, then the PPO update."""
        import torch

        algo = self.cfg.algo
        _require_finite_rollout(rollout)
        compute_targets(self.learner, rollout, algo.gamma, algo.gae_lambda)
        torch.set_num_threads(self.cfg.run.update_threads)
        try:
            return self.learner.update(rollout.buffer, stale=rollout.stale)
        finally:
            torch.set_num_threads(self.cfg.run.torch_threads)

    # -- the run ------------------------------------------------------------ #

    def _request_stop(self, signum, frame) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True

    def run(self) -> dict[str, float]:
        from mappo_training.run_log import RunLog, plot_learning_curves

        log = RunLog(self.run_dir, resume_step=self.global_step if self.update else None)
        if self._resumed_log_row and _last_logged_step(log.csv_path) != self.global_step:
            log.write(self.global_step, self._resumed_log_row)
        bar = _progress_bar(self.num_updates, self.update, self.quiet)
        previous = signal.signal(signal.SIGINT, self._request_stop)
        last: dict[str, float] = {}
        faulted = False
        try:
            while self.update < self.num_updates and not self._stop_requested:
                metrics = self.train_one_update()
                for notice in self._workers.take_notices() if self._workers else []:
                    bar.write(notice, file=sys.stderr)
                row = {
                    **metrics,
                    **self.stats.summary(),
                    "update": self.update,
                    "wall_time": self.wall_time,
                }
                self.stats.clear()
                # Saved, with its log row, before it is logged: every update in
                # progress.csv is on disk, so a kill at any moment loses at most
                # the update in progress, and resume writes a row the kill cut off.
                if self.update % self.cfg.run.checkpoint_every == 0:
                    self.save_checkpoint(log_row=row)
                log.write(self.global_step, row)
                last.update(row)
                bar.update(1)
                bar.set_postfix(_postfix(last), refresh=False)
        except (TrainingDiverged, ckpt.CheckpointError):
            # The learner went non-finite or the disk is full: the newest
            # checkpoint on disk is the last good one, and stays so.
            faulted = True
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
            bar.close()
            log.close()
            if not faulted:
                self._save_on_exit()
        curves = plot_learning_curves(
            self.run_dir / "progress.csv", self.run_dir / "learning_curves.png", self.run_dir.name
        )
        if curves and not self.quiet:
            print(f"learning curves: {curves}")
        return last

    def _save_on_exit(self) -> None:
        if self._mid_update:
            # Stopped inside an update (a second Ctrl-C, an error): the learner
            # and the simulator may be halfway through it, so the newest
            # checkpoint on disk stays the last consistent one.
            print(
                f"stopped mid-update: continue from the last checkpoint with"
                f" `swarm train --resume {self.run_dir}`",
                file=sys.stderr,
            )
            return
        if self._saved_update == self.update and self.last_checkpoint is not None:
            path = self.last_checkpoint
        else:
            path = self.save_checkpoint()
        if self._stop_requested:
            print(f"interrupted: saved {path}; continue with `swarm train --resume {self.run_dir}`")

    def close(self) -> None:
        import torch

        self.env.close()
        torch.set_float32_matmul_precision(self._matmul_precision_before)

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _require_finite_rollout(rollout: Rollout) -> None:
    """Refuse to learn from NaN or inf rewards or observations, naming the first."""
    buf = rollout.buffer
    # Observations only of robots still driving: a finished robot's row is never learned from.
    for name, bad in (
        ("rewards", ~np.isfinite(buf.rewards)),
        ("observations", ~np.isfinite(buf.obs) & buf.active[..., None]),
    ):
        if bad.any():
            step, arena, robot = np.argwhere(bad)[0][:3].tolist()
            raise NonFiniteRollout(
                f"the rollout holds {int(bad.sum())} non-finite {name} (the first at"
                f" step {step}, arena {arena}, robot {robot})"
            )


def _last_logged_step(csv_path: Path) -> int | None:
    """global_step of progress.csv's last row (None without rows)."""
    if not csv_path.is_file():
        return None
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return int(float(rows[-1]["global_step"])) if rows else None


def _progress_bar(total: int, done: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=done,
        unit="update",
        disable=quiet,
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} updates [{elapsed}<{remaining}{postfix}]",
    )


def _postfix(m: dict[str, float]) -> dict[str, str]:
    out = {"SPS": f"{m.get('charts/SPS', 0):.0f}"}
    if "charts/episodic_return" in m:
        out["return"] = f"{m['charts/episodic_return']:.2f}"
    if math.isfinite(m.get("charts/success_rate", math.nan)):  # NaN: the env reports none
        out["success"] = f"{100 * m['charts/success_rate']:.0f}%"
    return out


# --------------------------------------------------------------------------- #
# Run folders and the CLI.
# --------------------------------------------------------------------------- #


def new_run_dir(cfg: TrainConfig, config_name: str, root: Path = RUNS_DIR) -> Path:
    name = cfg.run.name or (
        f"{Path(config_name).stem}-s{cfg.run.seed}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    )
    run_dir = root / name
    if (run_dir / "latest.pt").exists():
        raise ConfigError(
            f"run folder {run_dir} already holds a run; continue it with"
            f" `swarm train --resume {run_dir}` or pick another run.name"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def start(cfg: TrainConfig, run_dir: Path, *, command: str = "", quiet: bool = False) -> Trainer:
    """A fresh run: write its resolved config, return its trainer."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved(cfg), sort_keys=False))
    if command:
        (run_dir / "command.txt").write_text(command + "\n")
    return Trainer(cfg, run_dir, quiet=quiet)


def resume(run_dir: Path, *, quiet: bool = False, where: list[str] | None = None) -> Trainer:
    """Continue a run from its newest readable checkpoint.

    where: `ray.*` overrides (e.g. ray.enabled=true, ray.address=auto): a run
    may continue on another cluster, or with or without Ray, since where it
    runs is not part of what it learns; without them it runs as it did.
    """
    from swarm_contract.config import apply_overrides, load_yaml

    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.yaml)")
    cfg = validate(apply_overrides(load_yaml(run_dir / "config.yaml"), where or []))
    if cfg.ray.enabled:
        _require_ray()
    # A save killed mid-write leaves only its temp file; the checkpoint before it is whole.
    ckpt.remove_partial_writes(run_dir / "checkpoints")
    ckpt.remove_partial_writes(run_dir)
    candidates = sorted((run_dir / "checkpoints").glob("update_*.pt"), reverse=True)
    if not candidates:
        raise ckpt.CheckpointError(
            f"{run_dir} has no checkpoints to resume from (it stopped before its first"
            " update was saved); start the run again without --resume"
        )
    trainer = Trainer(cfg, run_dir, quiet=quiet)
    try:
        path, data, skipped = _newest_readable(candidates, trainer.hash)
        trainer.restore(data)
    except BaseException:
        trainer.close()
        raise
    for msg in skipped:
        print(f"skipped: {msg}", file=sys.stderr)
    trainer.last_checkpoint, trainer._saved_update = path, trainer.update
    if not quiet:
        print(f"resuming {run_dir} from {path.name} (robot-step {trainer.global_step})")
    return trainer


def _newest_readable(candidates: list[Path], config_hash: str) -> tuple[Path, dict, list[str]]:
    """The newest checkpoint that loads, and why each newer one did not."""
    skipped = []
    for path in candidates:
        try:
            return path, ckpt.load(path, expect_config_hash=config_hash), skipped
        except ckpt.CheckpointError as err:
            if "config hash" in str(err):
                raise
            skipped.append(str(err))
    raise ckpt.CheckpointError(
        f"no readable checkpoint in {candidates[0].parent} (start the run over without"
        " --resume): " + " | ".join(skipped)
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help=f"packaged config name or YAML path (default: {DEFAULT_CONFIG})",
    )
    p.add_argument("--resume", type=Path, help="continue the run in this folder")
    p.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="where run folders go")
    p.add_argument("--device", help="learner device (cpu, cuda); overrides run.device")
    p.add_argument(
        "--workers",
        type=int,
        metavar="W",
        help="rollout workers (processes, or Ray actors with --ray); overrides run.workers",
    )
    p.add_argument(
        "--ray",
        action="store_true",
        help="rollout workers as Ray actors, the learner here (needs the [ray] extra)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join: auto or ray://host:port (implies --ray;"
        " default: start Ray on this machine with its cores)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--check",
        action="store_true",
        help="validate the config and overrides, print the resolved config, train nothing",
    )
    p.add_argument("overrides", nargs="*", help="config overrides: key=value (e.g. run.seed=3)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.resume:
            if args.overrides or getattr(args, "workers", None) is not None:
                raise ConfigError(
                    "--resume continues a run with its own config: drop the overrides"
                )
            trainer = resume(args.resume, quiet=args.quiet, where=_ray_overrides(args))
        else:
            overrides = list(args.overrides)
            if args.device:
                overrides.append(f"run.device={args.device}")
            if getattr(args, "workers", None) is not None:
                overrides.append(f"run.workers={args.workers}")
            overrides += _ray_overrides(args)
            cfg = load_train_config(args.config, overrides)
            if args.check:
                print(yaml.safe_dump(resolved(cfg), sort_keys=False), end="")
                return 0
            check_device(cfg.run.device)
            if cfg.ray.enabled:
                _require_ray()
            run_dir = new_run_dir(cfg, args.config, args.runs_dir)
            command = "swarm train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else ""
            trainer = start(cfg, run_dir, command=command, quiet=args.quiet)
            print(f"run folder: {run_dir}")
            print(trainer.budget_line())
    except (ConfigError, ckpt.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with trainer:
        try:
            trainer.run()
        except (TrainingDiverged, ckpt.CheckpointError, WorkerError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    frames = (
        f" = env frame {trainer.global_step // trainer.num_robots}"
        if trainer.cfg.env.kind == "pettingzoo"
        else ""
    )
    print(
        f"done: {trainer.run_dir} (robot-step {trainer.global_step}{frames},"
        f" {trainer.wall_time:.0f} s)"
    )
    if trainer.cfg.run.eval_episodes and not trainer._stop_requested:
        from mappo_training.evaluate import evaluate, print_report

        report = evaluate(trainer.run_dir / "latest.pt", episodes=trainer.cfg.run.eval_episodes)
        print_report(report)
        (trainer.run_dir / "eval.yaml").write_text(yaml.safe_dump(report, sort_keys=False))
    return 130 if trainer._stop_requested else 0


def _ray_overrides(args: argparse.Namespace) -> list[str]:
    """--ray / --ray-address as ray.* config overrides."""
    address = getattr(args, "ray_address", None)
    if not (getattr(args, "ray", False) or address):
        return []
    return ["ray.enabled=true"] + ([f"ray.address={json.dumps(address)}"] if address else [])


def _require_ray() -> None:
    """Fail before any run folder is made when Ray is missing (one line, naming the extra)."""
    from mappo_training.ray_pool import require_ray

    require_ray()


def check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} requested but torch sees no CUDA GPU; use --device cpu"
            )
