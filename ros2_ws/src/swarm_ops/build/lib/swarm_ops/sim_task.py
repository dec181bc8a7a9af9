"""The simulated task a policy was trained on, as a sim config file for the bridge.

A policy folder's policy.yaml card keeps the training config; its `sim:`
section is the task. The demo and `swarm bench deploy` show a policy on that
task (with a few overrides: robot count, scenario, ...) unless asked otherwise.
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


def write_sim_task(policy: Path, run_dir: Path, **overrides: Any) -> Path:
    """`<run_dir>/sim_task.yaml` for the bridge's sim_config: the policy's training
    task with `overrides` on top."""
    sim = {**trained_sim_config(policy), **overrides}
    path = run_dir / "sim_task.yaml"
    path.write_text(yaml.safe_dump({"sim": sim}, sort_keys=False))
    return path
