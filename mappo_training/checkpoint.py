"""Checkpoints that continue a run exactly: written atomically, checked on load.

A checkpoint holds the learner (weights, optimisers, value normaliser,
schedules), the step counters, every RNG state and, where the environment can
give one, a snapshot of the simulator mid-episode. It is written to a temporary
file and renamed into place, so a crash while saving leaves the previous
checkpoint intact. `load_learner` rebuilds a checkpoint's learner on its own,
without the trainer or an environment, for evaluation and export.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from swarm_contract.config import ConfigError, from_dict

if TYPE_CHECKING:  # the learner imports torch; loading a checkpoint does, lazily
    from mappo_training.algo import MAPPOLearner

FORMAT = "mappo-swarm-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to a different run."""


def rng_states() -> dict[str, Any]:
    import torch

    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write atomically: temp file in the same folder, fsync, rename."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, **payload}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(path: str | Path, expect_config_hash: str | None = None) -> dict[str, Any]:
    """Load and check a checkpoint; every refusal says why and what to do."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # Our own files hold numpy RNG state and config dicts, not only tensors.
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a checkpoint ({type(err).__name__}: {err});"
            " resume from an earlier one in the same folder"
        ) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}, expected {FORMAT!r}")
    if expect_config_hash and data.get("config_hash") != expect_config_hash:
        raise CheckpointError(
            f"checkpoint {path} was written by a run with config hash"
            f" {data.get('config_hash')}, but this run's config hashes to {expect_config_hash};"
            " resume with the run's own config (runs/<name>/config.yaml). If it was"
            " written by an older version of this package, its actor can still seed a"
            f" new run: swarm train run.init_actor_from={path}"
        )
    return data


def resolve_target(target: Path) -> Path:
    """The checkpoint a user means: a run folder's latest.pt, or a .pt file itself."""
    if target.is_dir() and (target / "latest.pt").is_file():
        return target / "latest.pt"
    if target.is_file() and target.suffix == ".pt":
        return target
    raise ConfigError(f"{target} is neither a run folder (with latest.pt) nor a checkpoint (.pt)")


def load_learner(data_or_path: dict[str, Any] | str | Path, device: str = "cpu") -> MAPPOLearner:
    """The checkpoint's learner, rebuilt from what it saved of itself.

    The learner's state holds its layout (each robot's observation width and
    action spec, the state width) and its algo config, which is all its
    networks are built from: no environment is made and nothing of the run's
    trainer is needed. A path is loaded with `load` first.
    """
    from mappo_training.algo import ActionSpec, AlgoConfig, MAPPOLearner

    data = data_or_path if isinstance(data_or_path, dict) else load(data_or_path)
    state = data["learner"]
    layout = state["layout"]
    learner = MAPPOLearner(
        from_dict(AlgoConfig, state["config"], "algo"),
        obs_dims=layout["obs_dims"],
        action_specs=[ActionSpec(**spec) for spec in layout["action_specs"]],
        state_dim=layout["state_dim"],
        device=device,
    )
    learner.load_state_dict(state)
    return learner
