"""What each episode of a training run looks like: variants, team sizes, curriculum.

One run can train on many situations at once. `SimConfig.variants` lists sim
overrides (a scenario, a clutter level, a named layout...) and every episode
draws one of them; `SimConfig.team_sizes` lists the team sizes an episode may
have, up to `num_robots` robot slots per arena (the rest sit out, masked).
`SimConfig.curriculum` goes further (MAPPO.md §10.5): its stages each set
those keys, and an env moves to the next stage by itself once its recent
episodes succeed often enough.

    plan = EpisodePlan(cfg)                  # in each env
    cfg_n = plan.draw(rng)                   # the SimConfig of the next episode (num_robots = its team)
    plan.record(success)                     # after each episode: may promote

Each env (each rollout worker) keeps its own curriculum, so no message has to
pass between workers; the stage rides in the env's snapshot, and every
finished episode reports the stage it was drawn at.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mappo_training.sim.config import SimConfig

SHAPE_KEYS = frozenset(
    {
        "num_robots",
        "num_beams",
        "scan_stack",
        "sim_scan_rays",
        "state_mode",
        "profile",
        "reward",
        "max_steps",
        "arena_size",
        "goal_clip",
        "goal_tolerance",
        "end_on_collision",
        "safety_layer",
        "fidelity",
        "curriculum",
    }
)
"""SimConfig keys an episode variant or a curriculum stage may not change:
they fix the shapes of observations and states, the arena's walls, the
episode rules or the reward, which stay the same for a whole run."""


@dataclass
class CurriculumConfig:
    """Stages of sim overrides, taken in order; promotion on success."""

    stages: list[dict[str, Any]] = field(default_factory=list)
    """Each stage: sim overrides for the episodes drawn at that stage, e.g.
    {team_sizes: [2, 4], num_obstacles: 0} then {team_sizes: [2, 4, 8, 16],
    variants: [...]}. Keys that fix shapes (SHAPE_KEYS) are refused."""
    promote_at: float = 0.8
    """Success rate over the last `window` episodes of a stage that moves the
    env to the next stage."""
    window: int = 100
    """Episodes a stage is judged on (the count restarts at each promotion)."""

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("curriculum.stages: give at least one stage (a mapping of sim keys)")
        if not (isinstance(self.promote_at, int | float) and 0.0 < self.promote_at <= 1.0):
            raise ValueError(f"curriculum.promote_at={self.promote_at!r}: must be in (0, 1]")
        if not (isinstance(self.window, int) and self.window >= 1):
            raise ValueError(f"curriculum.window={self.window!r}: must be an integer >= 1")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, dict):
                raise ValueError(f"curriculum.stages[{i}]={stage!r}: must be a mapping of sim keys")
            check_overrides(stage, f"curriculum.stages[{i}]")


def check_overrides(overrides: dict[str, Any], where: str) -> None:
    """Refuse override keys that would change a run's shapes, naming them."""
    fixed = sorted(set(overrides) & SHAPE_KEYS)
    if fixed:
        raise ValueError(
            f"{where}: {fixed} cannot change between episodes (they fix observation"
            " and state shapes, the arena or the rules); set them at the top of sim:"
        )


def variant_configs(cfg: SimConfig, stage: dict[str, Any] | None = None) -> list[SimConfig]:
    """The configs an episode is drawn from at `stage`: one per variant (the
    stage's variants, else cfg's), each with the stage's and variant's overrides."""
    stage = dict(stage or {})
    variants = stage.pop("variants", None) or cfg.variants or [{}]
    base = dataclasses.replace(cfg, curriculum=None, variants=[], **stage)
    out = []
    for i, overrides in enumerate(variants):
        try:
            out.append(dataclasses.replace(base, variants=[], **overrides))
        except (TypeError, ValueError) as err:
            raise ValueError(f"variants[{i}] {overrides}: {err}") from err
    return out


def all_variant_configs(cfg: SimConfig) -> list[SimConfig]:
    """Every config any episode of the run may be drawn from (every stage's
    variants), at full team size: what the arena must be sized for."""
    stages = cfg.curriculum.stages if cfg.curriculum else [None]
    return [v for stage in stages for v in variant_configs(cfg, stage)]


class EpisodePlan:
    """Draws each episode's config (variant and team size) and runs the curriculum."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.curriculum = cfg.curriculum
        self.stage = 0
        self._recent: deque[bool] = deque(maxlen=self.curriculum.window if self.curriculum else 1)
        self._cache: dict[tuple[int, int, int], SimConfig] = {}
        self._load_stage()

    @property
    def varies(self) -> bool:
        """Whether episodes differ from cfg at all (if not, draw() uses no randomness,
        so runs without variants draw exactly the layouts they always did)."""
        return self.curriculum is not None or bool(self.cfg.variants) or bool(self.cfg.team_sizes)

    @property
    def num_stages(self) -> int:
        return len(self.curriculum.stages) if self.curriculum else 1

    def _load_stage(self) -> None:
        stage = self.curriculum.stages[self.stage] if self.curriculum else None
        self._variants = variant_configs(self.cfg, stage)

    def draw(self, rng: np.random.Generator) -> SimConfig:
        """The config of the next episode: num_robots is its team size."""
        if not self.varies:
            return self.cfg
        v = int(rng.integers(len(self._variants))) if len(self._variants) > 1 else 0
        variant = self._variants[v]
        sizes = variant.team_sizes or [self.cfg.num_robots]
        n = int(sizes[rng.integers(len(sizes))]) if len(sizes) > 1 else int(sizes[0])
        key = (self.stage, v, n)
        if key not in self._cache:
            self._cache[key] = dataclasses.replace(variant, num_robots=n, team_sizes=None)
        return self._cache[key]

    def record(self, success: bool) -> bool:
        """Count a finished episode; True when it promoted the env to the next stage."""
        if self.curriculum is None or self.stage == self.num_stages - 1:
            return False
        self._recent.append(bool(success))
        full = len(self._recent) == self._recent.maxlen
        if full and float(np.mean(self._recent)) >= self.curriculum.promote_at:
            self.stage += 1
            self._recent.clear()
            self._load_stage()
            return True
        return False

    def snapshot(self) -> dict[str, Any]:
        return {"stage": self.stage, "recent": list(self._recent)}

    def restore(self, saved: dict[str, Any]) -> None:
        self.stage = int(saved["stage"])
        self._recent.clear()
        self._recent.extend(bool(x) for x in saved["recent"])
        self._load_stage()


def team_size_bounds(cfg: SimConfig) -> tuple[int, int]:
    """Smallest and largest team any episode of the run may have."""
    sizes = [n for v in all_variant_configs(cfg) for n in (v.team_sizes or [v.num_robots])]
    return min(sizes), max(sizes)
