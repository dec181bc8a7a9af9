"""Checkpoints that continue a run exactly: written atomically, loaded safely.

A checkpoint holds the learner (weights, optimisers, value normaliser,
schedules), the step counters, every RNG state and, where the environment can
give one, a snapshot of the simulator mid-episode. It is written to a temporary
file in the same folder, fsynced and renamed into place, so a crash, a SIGKILL
or a full disk while saving leaves the previous checkpoint whole.

It is read with `torch.load(weights_only=True)`, which builds only tensors and
plain containers and never runs code from the file. What else a checkpoint
holds (numpy arrays and scalars, a few of our frozen dataclasses) is stored as
tagged plain data by `_encode` and rebuilt by `_decode`; a dataclass is rebuilt
only if it is in `_DATACLASSES`. Checkpoints of the previous format
(mappo-swarm-checkpoint/1, full pickle) are refused with the command that
converts one the user trusts: `python -m mappo_training.checkpoint upgrade FILE`.

`load_learner` rebuilds a checkpoint's learner on its own, without the trainer
or an environment, for evaluation and export.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import io
import os
import pickle
import random
import sys
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from swarm_contract.config import ConfigError, from_dict

if TYPE_CHECKING:  # the learner imports torch; loading a checkpoint does, lazily
    from mappo_training.algo import MAPPOLearner

FORMAT = "mappo-swarm-checkpoint/2"
PICKLED_FORMAT = "mappo-swarm-checkpoint/1"
"""Written by versions before weights_only loading: numpy and dataclasses pickled."""

# The dataclasses a checkpoint may hold (a snapshot's arena layouts, the
# environment's contract), rebuilt by calling the class with the saved fields,
# so their own validation runs again.
_DATACLASSES = frozenset(
    {
        "swarm_contract.robot_io.Contract",
        "mappo_training.sim.scenarios.ArenaLayout",
        "mappo_training.sim.geometry.Obstacle",
    }
)
_TAG = "__checkpoint_object__"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, belongs to a different run, or cannot be written.

    A ValueError, like ConfigError and a refused model, so every command that
    reports a bad input without a traceback (`swarm eval`, say) reports it too.
    """


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


# --------------------------------------------------------------------------- #
# Writing.
# --------------------------------------------------------------------------- #


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write atomically: temp file in the same folder, fsync, rename, fsync the folder.

    The file is serialised in memory first, so the only disk operations are
    ours and a full disk shows as an OSError here, not inside torch. On any
    failure the temp file is removed and the file already at `path` (the
    previous checkpoint) is untouched; an OSError becomes a CheckpointError
    that names the file and the cause.
    """
    import torch

    path = Path(path)
    blob = io.BytesIO()
    torch.save(_encode({"format": FORMAT, **payload}, "checkpoint"), blob)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(blob.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(
            f"could not write checkpoint {path} ({err.strerror or err});"
            f" the checkpoints already in {path.parent} are untouched"
        ) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def link_latest(checkpoint: Path, latest: Path) -> None:
    """Point `latest` at `checkpoint` atomically: a hard link (no second copy
    to write), or a full copy where the file system has no hard links."""
    import shutil

    tmp = latest.with_name(f".{latest.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(checkpoint, tmp)
        except OSError:
            shutil.copyfile(checkpoint, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, latest)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(
            f"could not update {latest} to {checkpoint.name} ({err.strerror or err});"
            f" {checkpoint} itself is complete"
        ) from err
    _fsync_folder(latest.parent)


def remove_partial_writes(folder: Path) -> list[Path]:
    """Delete temp files a killed save left behind (never a finished checkpoint)."""
    stale = sorted(folder.glob(".*.pt.tmp-*")) if folder.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable across a power cut (not needed against a kill)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename itself is done
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- #
# Reading.
# --------------------------------------------------------------------------- #


def load(path: str | Path, expect_config_hash: str | None = None) -> dict[str, Any]:
    """Load and check a checkpoint; every refusal says why and what to do."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise _damaged(path, err) from err
        raise CheckpointError(
            f"checkpoint {path} holds pickled Python objects, not only tensors and plain"
            f" data ({_first_line(err)}): it was written by a version of this package"
            f" before {FORMAT}, or not by it at all. Loading it could run code stored in"
            " it, so it is refused. If you wrote it yourself, convert it once with"
            f" `python -m mappo_training.checkpoint upgrade {path}`"
        ) from err
    except Exception as err:  # torch raises many kinds for a damaged file
        raise _damaged(path, err) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}, expected {FORMAT!r}")
    data = _decode(data, path)
    if expect_config_hash and data.get("config_hash") != expect_config_hash:
        raise CheckpointError(
            f"checkpoint {path} was written by a run with config hash"
            f" {data.get('config_hash')}, but this run's config hashes to {expect_config_hash};"
            " resume with the run's own config (runs/<name>/config.yaml). If it was"
            " written by an older version of this package, its actor can still seed a"
            f" new run: swarm train run.init_actor_from={path}"
        )
    return data


def _damaged(path: Path, err: BaseException) -> CheckpointError:
    whole = next((p for p in _run_checkpoints(path) if _is_other_whole_file(p, path)), None)
    if whole:
        todo = (
            f"delete it, or use the newest whole one, {whole};"
            " `swarm train --resume <run folder>` skips damaged checkpoints by itself"
        )
    else:
        todo = "delete it and start the run over; no whole checkpoint of this run was found"
    return CheckpointError(
        f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: {_first_line(err)});"
        f" {todo}"
    )


def _run_checkpoints(path: Path) -> list[Path]:
    """The numbered checkpoints of the run `path` belongs to, newest first."""
    folder = path.parent if path.parent.name == "checkpoints" else path.parent / "checkpoints"
    return sorted(folder.glob("update_*.pt"), reverse=True) if folder.is_dir() else []


def _is_other_whole_file(candidate: Path, damaged: Path) -> bool:
    """Another file than `damaged` (latest.pt is a hard link to the newest
    checkpoint) whose zip archive reads back with every CRC right."""
    import zipfile

    try:
        if os.path.samefile(candidate, damaged):
            return False
        with zipfile.ZipFile(candidate) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError):
        return False


def _first_line(err: BaseException, limit: int = 200) -> str:
    """The cause in one short sentence (torch's messages run to paragraphs)."""
    text = str(err).strip().splitlines()
    line = text[0].split(". ")[0] if text else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


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


# --------------------------------------------------------------------------- #
# Plain data that torch's weights_only loader accepts.
# --------------------------------------------------------------------------- #


def _encode(obj: Any, where: str) -> Any:
    """`obj` with numpy values and allowed dataclasses as tagged plain data.

    Containers with nothing to convert are returned as they are, so a torch
    state dict keeps its type and metadata.
    """
    import torch

    if isinstance(obj, np.ndarray | np.generic):  # first: np.float64 is also a float
        return _encode_array(obj, where)
    if obj is None or isinstance(obj, bool | int | float | str | bytes | torch.Tensor):
        return obj
    if isinstance(obj, dict):
        items = {key: _encode(value, f"{where}/{key}") for key, value in obj.items()}
        if all(items[key] is value for key, value in obj.items()):
            return obj
        return OrderedDict(items) if isinstance(obj, OrderedDict) else items
    if isinstance(obj, list | tuple):
        items = [_encode(value, f"{where}[{i}]") for i, value in enumerate(obj)]
        if all(a is b for a, b in zip(items, obj, strict=True)):
            return obj
        return items if isinstance(obj, list) else tuple(items)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        if name in _DATACLASSES:
            fields = {
                f.name: _encode(getattr(obj, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(obj)
                if f.init
            }
            return {_TAG: "dataclass", "type": name, "fields": fields}
    raise TypeError(
        f"a checkpoint cannot hold {type(obj).__module__}.{type(obj).__qualname__} (at {where}):"
        " give tensors, numpy arrays, plain Python values, or add the dataclass to"
        " checkpoint._DATACLASSES"
    )


def _encode_array(value: np.ndarray | np.generic, where: str) -> dict[str, Any]:
    import torch

    arr = np.asarray(value)
    if arr.dtype.hasobject or arr.dtype.fields is not None:
        raise TypeError(f"a checkpoint cannot hold a numpy array of dtype {arr.dtype} (at {where})")
    raw = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    return {
        _TAG: "numpy_scalar" if isinstance(value, np.generic) else "ndarray",
        "dtype": arr.dtype.str,
        "shape": list(arr.shape),
        "bytes": torch.from_numpy(raw.copy()),
    }


def _decode(obj: Any, path: Path) -> Any:
    if isinstance(obj, dict):
        if _TAG in obj:
            return _decode_object(obj, path)
        items = {key: _decode(value, path) for key, value in obj.items()}
        if all(items[key] is value for key, value in obj.items()):
            return obj
        return OrderedDict(items) if isinstance(obj, OrderedDict) else items
    if isinstance(obj, list | tuple):
        items = [_decode(value, path) for value in obj]
        if all(a is b for a, b in zip(items, obj, strict=True)):
            return obj
        return items if isinstance(obj, list) else tuple(items)
    return obj


def _decode_object(tagged: dict[str, Any], path: Path) -> Any:
    kind = tagged[_TAG]
    if kind in ("ndarray", "numpy_scalar"):
        arr = tagged["bytes"].numpy().view(np.dtype(tagged["dtype"])).reshape(tagged["shape"])
        return arr[()] if kind == "numpy_scalar" else arr
    if kind == "dataclass" and tagged["type"] in _DATACLASSES:
        module, _, name = tagged["type"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        return cls(**{key: _decode(value, path) for key, value in tagged["fields"].items()})
    raise CheckpointError(
        f"checkpoint {path} holds a {kind} {tagged.get('type', '')} that this version does not"
        f" load (it loads numpy values and {sorted(_DATACLASSES)})"
    )


# --------------------------------------------------------------------------- #
# `python -m mappo_training.checkpoint upgrade FILE`: the format-1 converter.
# --------------------------------------------------------------------------- #


def upgrade(path: Path) -> Path:
    """Rewrite a format-1 checkpoint (pickled) as this format, in place.

    It unpickles the file, which can run code stored in it: only for files the
    user wrote and trusts, which is why loading never does it by itself.
    """
    import torch

    data = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(data, dict) or data.get("format") != PICKLED_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} has format {found!r}; only {PICKLED_FORMAT!r} is upgraded")
    data.pop("format")
    return save(path, data)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mappo_training.checkpoint",
        description="Convert checkpoints you trust from the pickled format 1 to format 2.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="rewrite format-1 checkpoints in place (unpickles them)")
    up.add_argument("files", type=Path, nargs="+")
    args = p.parse_args(argv)
    for path in args.files:
        try:
            upgrade(path)
        except (CheckpointError, OSError, pickle.UnpicklingError, RuntimeError, TypeError) as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            return 2
        print(f"upgraded {path} to {FORMAT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
