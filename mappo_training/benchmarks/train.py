"""`swarm bench train`: training throughput against env-only throughput, side by side.

Both numbers come from the same run, the same config, the same worker
processes: first the environment alone (random actions, no learner), then
full training updates (acting, critic values, GAE and the PPO update). Their
ratio says how much of the machine the learning itself costs. A second trainer
with run.overlap flipped is timed after them, so the two ways of sharing the
cores (collect while updating, or in turn) are compared on the same machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

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
