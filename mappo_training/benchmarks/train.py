"""`swarm bench train`: training throughput against env-only throughput, side by side.

Both numbers come from the same run, the same config, the same worker
processes: first the environment alone (random actions, no learner), then
full training updates (acting, critic values, GAE and the PPO update). Their
ratio says how much of the machine the learning itself costs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="nav_random_4", help="training config (name or YAML)")
    p.add_argument(
        "--updates", type=int, default=4, help="timed training updates (after one warm-up)"
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


def run(args: argparse.Namespace) -> int:
    from mappo_training.experiment import load_train_config
    from mappo_training.train import start

    cfg = load_train_config(args.config, ["run.eval_episodes=0", *args.overrides])
    run_dir = Path(tempfile.mkdtemp(prefix="bench-train-"))
    trainer = start(cfg, run_dir, quiet=True)
    try:
        env_sps = env_only_steps_per_s(trainer.env, cfg.run.rollout_steps * args.updates)
        trainer.train_one_update()  # warm-up: first-call allocations
        t0 = time.perf_counter()
        for _ in range(args.updates):
            trainer.train_one_update()
        train_sps = args.updates * trainer.steps_per_update / (time.perf_counter() - t0)
    finally:
        trainer.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    ratio = train_sps / env_sps
    print(
        f"{cfg.run.num_arenas} arenas x {cfg.sim.get('num_robots', 4)} robots,"
        f" {cfg.run.workers} workers, {cfg.run.rollout_steps} steps/rollout"
    )
    print(f"env only:  {env_sps:10.0f} robot-steps/s")
    print(f"training:  {train_sps:10.0f} robot-steps/s (acting, values, GAE, PPO update)")
    print(f"ratio:     {ratio:10.2f}")
    if args.json:
        print(
            json.dumps(
                {
                    "train_steps_per_s": round(train_sps, 1),
                    "env_steps_per_s": round(env_sps, 1),
                    "ratio": round(ratio, 3),
                }
            )
        )
    return 0
