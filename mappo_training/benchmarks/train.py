"""`swarm bench train`: training throughput against env-only throughput, side by side.

Both numbers come from the same run, the same config, the same worker
processes: first the environment alone (random actions, no learner), then
full training updates (acting, critic values, GAE and the PPO update). Their
ratio says how much of the machine the learning itself costs. A second trainer
with run.overlap flipped is timed after them, so the two ways of sharing the
cores (collect while updating, or in turn) are compared on the same machine.

With `--ray` it measures scale-out instead (`swarm bench train --ray
--workers 1,2 --json`): training robot-steps/s with the rollout workers as Ray
actors, for each worker count, and local training (worker processes; one
worker trains in-process, as `run.workers=1` does) at the same counts. Every
trainer is built first, all on one Ray, then timed one update each in turn,
the order rotated every round, so the machine's load drifts over all of them
alike. The last line is then

    {"steps_per_s": {"1": ..., "2": ...},        # on Ray, per worker count
     "local_steps_per_s": {"1": ..., "2": ...},  # local, per worker count
     "ray_overhead": {"1": ..., "2": ...},       # local / Ray - 1: 0.05 = Ray 5% slower
     "speedup": {"1": 1.0, "2": ...},            # on Ray, against the fewest workers
     "updates": ..., "steps_per_update": ..., "overlap": ..., "ray_address": ...,
     "load_average": [before, after]}           # the machine's, while timing

(the issue's `steps_per_s` and `local_steps_per_s` keys, the latter per worker
count rather than one number, since local training scales too).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Env-only phases of this many rollouts' worth of steps (about 2 s each here):
# a single rollout's 0.4 s varied by 30% between runs.
ENV_ROLLOUTS = 5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="nav_random_4", help="training config (name or YAML)")
    p.add_argument(
        "--updates", type=int, default=6, help="timed training updates (after one warm-up)"
    )
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    p.add_argument(
        "--ray",
        action="store_true",
        help="rollout workers as Ray actors: robot-steps/s per worker count, against local",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to join: auto or ray://host:port (implies --ray; default: Ray here)",
    )
    p.add_argument(
        "--workers",
        default=None,
        help="with --ray: worker counts to compare, comma-separated (default 1,2)",
    )
    p.add_argument("overrides", nargs="*", help="config overrides key=value")


def env_only_steps_per_s(env, steps: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    shape = (env.num_arenas, env.num_robots, env.action_dim)
    actions = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(16)]
    env.step(actions[0])  # warm-up
    start = time.perf_counter()
    for t in range(steps):
        env.step(actions[t % 16])
    return steps * env.num_arenas * env.num_robots / (time.perf_counter() - start)


def training_steps_per_s(cfg, updates: int, measure_env: bool = False) -> tuple[float, float]:
    """(training robot-steps/s, env-only robot-steps/s or nan) of a fresh trainer."""
    from mappo_training.train import start

    run_dir = Path(tempfile.mkdtemp(prefix="bench-train-"))
    trainer = start(cfg, run_dir, quiet=True)
    env_steps = ENV_ROLLOUTS * cfg.run.rollout_steps
    try:
        env_before = env_sps_after = float("nan")
        if measure_env:
            env_before = env_only_steps_per_s(trainer.env, env_steps)
        trainer.train_one_update()  # warm-up: first-call allocations (and the first rollout)
        t0 = time.perf_counter()
        for _ in range(updates):
            trainer.train_one_update()
        train_sps = updates * trainer.steps_per_update / (time.perf_counter() - t0)
        if measure_env:
            env_sps_after = env_only_steps_per_s(trainer.env, env_steps)
    finally:
        trainer.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    # Env-only timed before and after the training updates: on a shared machine
    # the load drifts, and the bracket's mean matches the training window better.
    return train_sps, (env_before + env_sps_after) / 2


def run(args: argparse.Namespace) -> int:
    from mappo_training.experiment import load_train_config

    if args.ray or args.ray_address:
        return run_ray(args)
    if args.workers is not None:
        from swarm_contract.config import ConfigError

        raise ConfigError(
            f"--workers {args.workers}: worker counts are compared with --ray;"
            f" without it set the workers as a config override (run.workers=2)"
        )
    cfg = load_train_config(args.config, ["run.eval_episodes=0", *args.overrides])
    # The other way of using the cores, measured alongside so the choice of
    # run.overlap can be checked on this machine.
    other = load_train_config(
        args.config,
        ["run.eval_episodes=0", *args.overrides, f"run.overlap={str(not cfg.run.overlap).lower()}"],
    )
    train_sps, env_sps = training_steps_per_s(cfg, args.updates, measure_env=True)
    other_sps, _ = training_steps_per_s(other, args.updates)
    ratio = train_sps / env_sps
    mode = "overlapped" if cfg.run.overlap else "in turn"
    other_mode = "in turn" if cfg.run.overlap else "overlapped"
    print(
        f"{cfg.run.num_arenas} arenas x {cfg.sim.num_robots} robots,"
        f" {cfg.run.workers} workers, {cfg.run.rollout_steps} steps/rollout,"
        f" {cfg.algo.epochs} epochs"
    )
    print(f"env only:  {env_sps:10.0f} robot-steps/s")
    print(f"training:  {train_sps:10.0f} robot-steps/s (collect and update {mode}: run.overlap)")
    print(f"           {other_sps:10.0f} robot-steps/s (collect and update {other_mode})")
    print(f"ratio:     {ratio:10.2f}")
    if args.json:
        print(
            json.dumps(
                {
                    "train_steps_per_s": round(train_sps, 1),
                    "env_steps_per_s": round(env_sps, 1),
                    "ratio": round(ratio, 3),
                    "overlap": cfg.run.overlap,
                    "other_mode_train_steps_per_s": round(other_sps, 1),
                }
            )
        )
    return 0


# --------------------------------------------------------------------------- #
# --ray: Ray actors against local workers, per worker count.
# --------------------------------------------------------------------------- #


def worker_counts(text: str | None) -> list[int]:
    """`--workers 1,2` as [1, 2]."""
    from swarm_contract.config import ConfigError

    try:
        counts = [int(part) for part in (text or "1,2").split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise ConfigError(
            f"--workers {text!r}: give distinct worker counts >= 1, comma-separated (--workers 1,2)"
        )
    return counts


def interleaved_steps_per_s(trainers: dict[str, Any], rounds: int) -> dict[str, float]:
    """Training robot-steps/s of each trainer, timed one update each in turn."""
    for trainer in trainers.values():
        trainer.train_one_update()  # warm-up: the first rollout, first-call allocations
    names = list(trainers)
    seconds = dict.fromkeys(names, 0.0)
    for r in range(rounds):
        # Rotated each round: none is always the one timed right after another.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            trainers[name].train_one_update()
            seconds[name] += time.perf_counter() - t0
    return {n: rounds * trainers[n].steps_per_update / seconds[n] for n in names}


def start_ray(address: str | None, cpus_needed: float) -> bool:
    """Ray for the bench: joined at `address`, or started here; False if this
    process already had one (then it is left running)."""
    from mappo_training.ray_pool import require_ray
    from swarm_contract.config import ConfigError

    ray = require_ray()
    owned = not ray.is_initialized()
    if owned:
        # Every worker count's actors live at once, but only one pool works at
        # a time: locally, Ray is told of enough CPUs to place them all.
        local_cpus = max(os.cpu_count() or 1, int(-(-cpus_needed // 1)))
        ray.init(
            address=address,
            num_cpus=None if address else local_cpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    have = ray.cluster_resources().get("CPU", 0.0)
    if have < cpus_needed:
        if owned:
            ray.shutdown()
        raise ConfigError(
            f"the Ray cluster has {have:g} CPUs; the bench keeps every worker count's actors"
            f" at once ({cpus_needed:g} CPUs at ray.num_cpus_per_worker): add nodes, compare"
            " fewer counts, or lower ray.num_cpus_per_worker"
        )
    return owned


def run_ray(args: argparse.Namespace) -> int:
    from mappo_training.experiment import load_train_config
    from mappo_training.ray_pool import require_ray
    from mappo_training.train import start
    from swarm_contract.config import ConfigError

    counts = worker_counts(args.workers)
    base = ["run.eval_episodes=0", *args.overrides]
    on_ray = {
        w: load_train_config(args.config, [*base, f"run.workers={w}", "ray.enabled=true"])
        for w in counts
    }
    local = {
        w: load_train_config(args.config, [*base, f"run.workers={w}", "ray.enabled=false"])
        for w in counts
    }
    cfg = on_ray[counts[0]]  # each count's config checked that it splits run.num_arenas
    owned = start_ray(args.ray_address, sum(counts) * cfg.ray.num_cpus_per_worker)
    root = Path(tempfile.mkdtemp(prefix="bench-train-ray-"))
    trainers: dict[str, Any] = {}
    try:
        for w in counts:
            trainers[f"ray{w}"] = start(on_ray[w], root / f"ray{w}", quiet=True)
            trainers[f"local{w}"] = start(local[w], root / f"local{w}", quiet=True)
        short = [n for n, t in trainers.items() if t.num_updates < args.updates + 1]
        if short:
            raise ConfigError(
                f"run.total_steps={cfg.run.total_steps} gives {trainers[short[0]].num_updates}"
                f" update(s); the bench needs {args.updates + 1}: raise run.total_steps"
            )
        # Other work on the machine shares the cores: its load is reported alongside.
        load_before = os.getloadavg()[0]
        sps = interleaved_steps_per_s(trainers, args.updates)
        load_after = os.getloadavg()[0]
        steps_per_update = trainers[f"ray{counts[0]}"].steps_per_update
    finally:
        for trainer in trainers.values():
            trainer.close()
        shutil.rmtree(root, ignore_errors=True)
        if owned:
            require_ray().shutdown()
    ray_sps = {str(w): sps[f"ray{w}"] for w in counts}
    local_sps = {str(w): sps[f"local{w}"] for w in counts}
    overhead = {w: local_sps[w] / ray_sps[w] - 1 for w in ray_sps}
    speedup = {w: ray_sps[w] / ray_sps[str(counts[0])] for w in ray_sps}
    mode = "overlapped" if cfg.run.overlap else "in turn"
    print(
        f"{cfg.run.num_arenas} arenas x {trainers[f'ray{counts[0]}'].num_robots} robots,"
        f" {cfg.run.rollout_steps} steps/rollout, {cfg.algo.epochs} epochs, collect and"
        f" update {mode}; {args.updates} timed updates each, in turn"
    )
    print("workers  Ray robot-steps/s  local robot-steps/s  Ray overhead  Ray speed-up")
    for w in ray_sps:
        print(
            f"{w:>7}  {ray_sps[w]:17.0f}  {local_sps[w]:19.0f}  {overhead[w]:+12.1%}"
            f"  {speedup[w]:11.2f}x"
        )
    if 1 in counts:
        print("(local, 1 worker: the simulator in the learner's process, as run.workers=1 trains)")
    print(
        f"machine load (1-min average): {load_before:.1f} before, {load_after:.1f} after,"
        f" on {os.cpu_count()} cores"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "steps_per_s": {w: round(v, 1) for w, v in ray_sps.items()},
                    "local_steps_per_s": {w: round(v, 1) for w, v in local_sps.items()},
                    "ray_overhead": {w: round(v, 3) for w, v in overhead.items()},
                    "speedup": {w: round(v, 3) for w, v in speedup.items()},
                    "updates": args.updates,
                    "steps_per_update": steps_per_update,
                    "overlap": cfg.run.overlap,
                    "ray_address": args.ray_address,
                    "load_average": [round(load_before, 2), round(load_after, 2)],
                }
            )
        )
    return 0
