"""The simulated task a policy was trained on, as a sim config file for the bridge.

A policy folder's policy.yaml card keeps the training config; its `sim:`
section is the task. The demo and `swarm bench deploy` show a policy on that
task with a few changes (robot count, scenario or named layout, fidelity, ...)
made the way `swarm eval` makes them (mappo_training.evaluate.task): a run
trained on a mix (episode variants, team sizes, a curriculum) is shown on
exactly the scenario and team asked for, and a fidelity preset asked for
replaces the training's randomisation ranges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def trained_sim_config(policy: Path) -> dict[str, Any]:
    """The `sim:` section the policy was trained with (from its policy.yaml), or {}."""
    card = policy / "policy.yaml"
    if not card.is_file():
        return {}
    data = yaml.safe_load(card.read_text()) or {}
    return dict(((data.get("training") or {}).get("config") or {}).get("sim") or {})


def task_config(
    policy: Path,
    *,
    scenario: str | None = None,
    robots: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `sim:` mapping to show `policy` on: its training task with the
    scenario, robot count and further sim keys (`overrides`, e.g. {"layout":
    "two_rooms"} or {"fidelity": {"preset": "nominal"}}) set as `swarm eval` sets them."""
    from mappo_training.evaluate import task

    sim = task(trained_sim_config(policy), scenario, robots, None, overrides)
    # The bridge plays one scenario with one team: a training mix (variants,
    # team sizes, a curriculum) leaves its top-level scenario at num_robots.
    for key in ("variants", "team_sizes", "curriculum"):
        sim.pop(key, None)
    if sim.get("scenario") != "layout":
        sim.pop("layout", None)  # a layout name only means something with scenario layout
    return sim


def write_sim_task(run_dir: Path, sim: dict[str, Any]) -> Path:
    """`<run_dir>/sim_task.yaml` holding `sim` (from `task_config`), for the bridge's sim_config."""
    path = run_dir / "sim_task.yaml"
    path.write_text(yaml.safe_dump({"sim": sim}, sort_keys=False))
    return path
