"""The training run's configuration: one typed tree loaded from YAML.

    run:   seeds, budget, batch shape, device, checkpoints
    env:   which environment (our PyBullet swarm, or any PettingZoo ParallelEnv)
    sim:   the swarm simulator's config (mappo_training.sim.SimConfig)
    algo:  MAPPO's knobs (mappo_training.algo.AlgoConfig)

`swarm train --config <yaml> key=value ...` is parsed and validated once, at
the entry (`load_train_config`, or `validate` for a run folder's config.yaml),
into a `TrainConfig`; from there every component takes its typed piece. The
resolved tree is written into the run folder and hashed into every export.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mappo_training.algo.config import AlgoConfig
from mappo_training.sim.config import SimConfig
from swarm_contract.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict

CONFIGS_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = "nav_random_4"


@dataclass
class RunConfig:
    """How much to train and with what batch shape."""

    name: str = ""
    """Run folder name under `runs/`; empty = <config>-<seed>-<timestamp>."""
    seed: int = 1
    """Seeds Python, numpy, torch and the simulator."""
    total_steps: int = 2_000_000
    """Budget in robot-steps (arena steps x robots per arena)."""
    num_arenas: int = 16
    """Arenas simulated side by side (in PyBullet clients of 16 arenas, per worker)."""
    rollout_steps: int = 128
    """Control steps per arena between two updates."""
    workers: int = 2
    """Processes that step the simulator; 0 = step it in the learner's process."""
    device: str = "cpu"
    """Torch device of the learner: cpu, cuda, cuda:1, ..."""
    torch_threads: int = 1
    """Torch intra-op threads while collecting rollouts (small batches: 1 is fastest)."""
    matmul_precision: str = "highest"
    """torch.set_float32_matmul_precision for the run: "highest" (float32), or
    "high" / "medium", which let matrix products round their inputs to tf32 /
    bfloat16 and accumulate in float32 where the hardware does that natively
    (CPUs with AMX or AVX512-BF16, recent GPUs): the update's products then run
    about 1.4x faster. Everything else (LayerNorm, losses, optimiser) stays float32."""
    overlap: bool = True
    """Collect the next rollout (with a frozen copy of the actors) while the PPO
    update runs, so the simulator workers and the learner work at the same time.
    The update then learns from data one update old; PPO's ratio to the
    behaviour policy accounts for it. false = collect, then update, in turn."""
    update_threads: int = 1
    """Torch intra-op threads during the PPO update (the simulator workers idle
    meanwhile). 2 can use both cores of an otherwise idle 2-core machine, but on
    a shared one LayerNorm's threads spin against other work and the update ran
    4x slower here, so the default is 1; `swarm bench train` measures both."""
    checkpoint_every: int = 1
    """Write a checkpoint every this many updates (and always at the end). At 1
    a SIGKILL loses at most the update in progress; a save took 2% of an
    update's time on the packaged configs (40 ms for 9 MB, 110 ms for 18 MB)."""
    keep_checkpoints: int = 5
    """Keep the newest this many checkpoints and delete older ones (a circle
    run's are 18 MB each); 0 = keep every one. Resume falls back to an older
    one when the newest is damaged, so keep more than 1."""
    eval_episodes: int = 50
    """Episodes of deterministic evaluation at the end of training (0 = none)."""
    init_actor_from: str | None = None
    """Warm start: copy actor weights from a checkpoint (.pt), a run folder or an
    exported model folder (its torch_reference.pt) before training; the critic
    starts fresh and the action std restarts at algo.init_std. For curricula,
    e.g. from 4 robots to 8. Empty or null = random init."""

    def __post_init__(self) -> None:
        positive = ("total_steps", "num_arenas", "rollout_steps", "torch_threads", "update_threads")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"run.{key}={getattr(self, key)} must be >= 1")
        if self.workers < 0:
            raise ConfigError(f"run.workers={self.workers} must be >= 0")
        if self.workers and self.num_arenas % self.workers:
            raise ConfigError(
                f"run.num_arenas={self.num_arenas} must be divisible by run.workers={self.workers}"
            )
        if self.keep_checkpoints < 0:
            raise ConfigError(
                f"run.keep_checkpoints={self.keep_checkpoints} must be >= 0 (0 keeps every one)"
            )
        if self.checkpoint_every < 1:
            raise ConfigError(f"run.checkpoint_every={self.checkpoint_every} must be >= 1")
        if self.matmul_precision not in ("highest", "high", "medium"):
            raise ConfigError(
                f"run.matmul_precision={self.matmul_precision!r}: use 'highest', 'high' or 'medium'"
            )
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"run.device={self.device!r}: use 'cpu', 'cuda' or 'cuda:<index>'")


@dataclass
class EnvConfig:
    """Which environment to train in."""

    kind: Literal["swarm", "pettingzoo"] = "swarm"
    """`swarm`: our batched PyBullet simulator (fast path, uses `sim`).
    `pettingzoo`: any cooperative ParallelEnv with state(), built by `factory`."""
    factory: str = ""
    """For kind=pettingzoo: `package.module:function` returning a ParallelEnv."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the factory."""

    def __post_init__(self) -> None:
        if self.kind == "pettingzoo" and ":" not in self.factory:
            raise ConfigError(
                f"env.factory={self.factory!r}: with env.kind=pettingzoo give"
                " 'package.module:function' that returns a PettingZoo ParallelEnv"
            )


@dataclass
class RayConfig:
    """Where the rollout workers run: local processes, or Ray actors (`swarm train --ray`).

    Only where the run executes, never what it learns: none of these keys is in
    the config hash, so a run can resume on another cluster, or without Ray.
    """

    enabled: bool = False
    """Rollout workers (run.workers of them) are Ray actors; the learner stays
    in this process, the driver, on run.device."""
    address: str | None = None
    """Ray cluster to join: "auto" (the cluster this machine belongs to) or
    "ray://host:10001"; null = start Ray locally with this machine's cores."""
    num_cpus_per_worker: float = 1.0
    """CPUs Ray reserves for each rollout worker."""
    worker_resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each worker needs, to pin workers to some nodes
    (e.g. {"rollout": 1} with `ray start --resources='{"rollout": 8}'` on CPU nodes)."""
    max_worker_restarts: int = 3
    """A worker that dies is replaced and its rollout collected again; this many
    replacements in a row without a whole rollout in between stop the run."""

    def __post_init__(self) -> None:
        if self.num_cpus_per_worker <= 0:
            raise ConfigError(f"ray.num_cpus_per_worker={self.num_cpus_per_worker} must be > 0")
        if self.max_worker_restarts < 0:
            raise ConfigError(
                f"ray.max_worker_restarts={self.max_worker_restarts} must be >= 0"
                " (0 stops the run at the first dead worker)"
            )
        if self.address is not None and not (
            self.address in ("auto", "local")
            or self.address.startswith("ray://")
            or ":" in self.address
        ):
            raise ConfigError(
                f"ray.address={self.address!r}: use 'auto', 'ray://host:port', 'host:port'"
                " or null (start Ray on this machine)"
            )
        bad = {k: v for k, v in self.worker_resources.items() if not isinstance(v, int | float)}
        if bad:
            raise ConfigError(f"ray.worker_resources={bad}: each amount must be a number")


@dataclass
class TrainConfig:
    """A whole training run, every section typed and validated."""

    run: RunConfig = field(default_factory=RunConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    """The swarm simulator's task (used with env.kind=swarm)."""
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    """MAPPO's knobs."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Rollout workers on a Ray cluster (swarm train --ray)."""

    def __post_init__(self) -> None:
        if self.ray.enabled and self.run.workers < 1:
            raise ConfigError(
                f"ray.enabled with run.workers={self.run.workers}: Ray runs the rollout"
                " workers, so give run.workers >= 1 (--workers W)"
            )


def config_path(name_or_path: str) -> Path:
    """A config by name (packaged in configs/) or by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    packaged = CONFIGS_DIR / f"{name_or_path}.yaml"
    if not packaged.is_file():
        known = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
        raise ConfigError(f"config {name_or_path!r} not found; packaged configs: {known}")
    return packaged


def load_train_config(name_or_path: str, overrides: list[str] | None = None) -> TrainConfig:
    """Load, override and fully validate a training config (sim and algo too)."""
    data = apply_overrides(load_yaml(config_path(name_or_path)), overrides or [])
    return validate(data)


def validate(data: dict[str, Any]) -> TrainConfig:
    """A config's plain data (YAML, a run's config.yaml) as a validated TrainConfig;
    a wrong key or value is a ConfigError that names it (e.g. `algo.actor_lr`)."""
    return from_dict(TrainConfig, data)


def resolved(cfg: TrainConfig) -> dict[str, Any]:
    """The config with every default filled in: what actually ran.

    A PettingZoo run does not use the simulator: its `sim` section lists only
    the keys that differ from the defaults (usually none).
    """
    data = to_dict(cfg)
    if cfg.env.kind != "swarm":
        data["sim"] = _differences(data["sim"], to_dict(SimConfig()))
    return data


# How a run is kept, not what it learns: changing these never stops a resume.
BOOKKEEPING_KEYS = {
    "run": ("name", "checkpoint_every", "keep_checkpoints", "eval_episodes"),
}
# Whole sections that only say where a run executes.
BOOKKEEPING_SECTIONS = ("ray",)


def config_hash(cfg: TrainConfig) -> str:
    """Fingerprint of what a run learns, to refuse resuming it with another config.

    Keys at their default value are left out, so a key added to a later
    version of this package (at its default) does not orphan older runs; a
    run's config.yaml holds every value, so its meaning cannot drift.
    """
    defaults = resolved(TrainConfig(env=cfg.env))
    data = _differences(resolved(cfg), defaults)
    for section, keys in BOOKKEEPING_KEYS.items():
        for key in keys:
            data.get(section, {}).pop(key, None)
    for section in BOOKKEEPING_SECTIONS:
        data.pop(section, None)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _differences(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        default = defaults.get(key)
        if isinstance(value, dict) and isinstance(default, dict):
            inner = _differences(value, default)
            if inner:
                out[key] = inner
        elif value != default or key not in defaults:
            out[key] = value
    return out
