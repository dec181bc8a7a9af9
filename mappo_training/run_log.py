"""Training logs: TensorBoard, a CSV of the same scalars, and a learning-curve PNG.

Key names follow CleanRL (`charts/episodic_return`, `losses/value_loss`,
`charts/SPS`, ...) so runs compare with other PPO code at a glance; we add
`charts/success_rate` and `charts/collision_rate` for the team task.
"""

from __future__ import annotations

import csv
from pathlib import Path

CSV_KEYS = [
    "global_step",
    "update",
    "wall_time",
    "charts/episodic_return",
    "charts/episodic_length",
    "charts/success_rate",
    "charts/collision_rate",
    "charts/arrived_fraction",
    "charts/time_to_goal",
    "charts/SPS",
    "charts/learning_rate",
    "charts/entropy_coef",
    "charts/action_std",
    "losses/policy_loss",
    "losses/value_loss",
    "losses/entropy",
    "losses/approx_kl",
    "losses/old_approx_kl",
    "losses/clipfrac",
    "losses/explained_variance",
    "losses/behaviour_weight",
    "charts/worker_restarts",  # Ray workers replaced so far (swarm train --ray); empty otherwise
    "charts/team_size",  # mean robots of the episodes that ended (sim.team_sizes)
    "charts/curriculum_stage",  # mean curriculum stage they were drawn at (sim.curriculum)
]


class RunLog:
    """Writes one row of scalars per update to TensorBoard and `progress.csv`."""

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        self.csv_path = run_dir / "progress.csv"
        if resume_step is not None and self.csv_path.is_file():
            self._truncate_after(resume_step)
        new_file = not self.csv_path.is_file()
        self._csv_file = open(self.csv_path, "a", newline="")  # noqa: SIM115 - lives with the run
        self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_KEYS, extrasaction="ignore")
        if new_file:
            self._csv.writeheader()
        self._tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=resume_step)
        except ImportError:
            pass  # TensorBoard is optional; the CSV holds the same numbers.

    def _truncate_after(self, step: int) -> None:
        """Drop rows logged after the checkpoint we resume from (they will be redone)."""
        with open(self.csv_path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(float(r["global_step"])) <= step]
        with open(self.csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_KEYS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if self._tb is not None:
            for key, value in scalars.items():
                if key not in ("global_step", "update", "wall_time"):
                    self._tb.add_scalar(key, value, step)
        self._csv.writerow({"global_step": step, **scalars})
        self._csv_file.flush()

    def close(self) -> None:
        self._csv_file.close()
        if self._tb is not None:
            self._tb.close()


def read_progress(csv_path: Path) -> dict[str, list[float]]:
    """Columns of a progress.csv as float lists (empty cells skipped per column)."""
    columns: dict[str, list[tuple[float, float]]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            step = float(row["global_step"])
            for key, value in row.items():
                if value not in ("", None):
                    columns.setdefault(key, []).append((step, float(value)))
    return columns


def plot_learning_curves(csv_path: Path, out_png: Path, title: str = "") -> Path | None:
    """Return, success/collision rates and the main losses against robot-steps."""
    columns = read_progress(csv_path)
    if not columns.get("global_step"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("charts/episodic_return", "team return per episode"),
        (("charts/success_rate", "charts/collision_rate"), "episode success / collision rate"),
        ("losses/value_loss", "value loss"),
        (("losses/approx_kl", "losses/clipfrac"), "approx KL / clip fraction"),
        ("losses/entropy", "policy entropy"),
        ("charts/SPS", "robot-steps per second"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (keys, label) in zip(axes.flat, panels, strict=True):
        for key in (keys,) if isinstance(keys, str) else keys:
            points = columns.get(key, [])
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, label=key.split("/")[-1])
        ax.set_title(label)
        ax.set_xlabel("robot-steps")
        ax.grid(alpha=0.3)
        if not isinstance(keys, str) and ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
