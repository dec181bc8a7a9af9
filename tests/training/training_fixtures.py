"""A tiny real training run that several test modules share the recipe of."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mappo_training.experiment import load_train_config
from mappo_training.train import Trainer, resume, start

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
    with start(
        load_train_config("nav_random_4", TINY_RUN + list(overrides)), run_dir, quiet=True
    ) as trainer:
        trainer.run()
    return run_dir


def straight_and_resumed(
    cfg: Any, tmp_path: Path, params: Callable[[Trainer], list]
) -> tuple[list, list, Trainer]:
    """`params` of a run trained 3 updates straight (a checkpoint after the first),
    and of a copy of its folder holding only that checkpoint, resumed and trained
    the 2 updates more; and the resumed (closed) trainer."""
    with start(cfg, tmp_path / "straight", quiet=True) as straight:
        straight.train_one_update()
        straight.save_checkpoint()
        # Two more: the second learns from the rollout collected (with the
        # restored RNGs) during the first.
        straight.train_one_update()
        straight.train_one_update()
        expected = params(straight)

    resumed_dir = tmp_path / "resumed"
    shutil.copytree(tmp_path / "straight", resumed_dir)
    for extra in sorted((resumed_dir / "checkpoints").glob("update_*.pt"))[1:]:
        extra.unlink()
    with resume(resumed_dir, quiet=True) as again:
        assert again.update == 1
        again.train_one_update()
        again.train_one_update()
        got = params(again)
    return expected, got, again
