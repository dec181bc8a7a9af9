"""A tiny real training run that several test modules share the recipe of."""

from __future__ import annotations

from pathlib import Path

from mappo_training.experiment import load_train_config
from mappo_training.train import start

# 2 arenas x 2 robots, 4 updates of 64 steps: a few seconds, a real checkpoint.
TINY_RUN = [
    "run.total_steps=512",
    "run.num_arenas=2",
    "run.rollout_steps=64",
    "run.workers=0",
    "run.eval_episodes=0",
    "sim.num_robots=2",
    "algo.epochs=1",
]


def train_tiny_run(run_dir: Path, *overrides: str) -> Path:
    """Train the tiny run into run_dir (config, checkpoints, latest.pt, curves)."""
    trainer = start(
        load_train_config("nav_random_4", TINY_RUN + list(overrides)), run_dir, quiet=True
    )
    try:
        trainer.run()
    finally:
        trainer.close()
    return run_dir
