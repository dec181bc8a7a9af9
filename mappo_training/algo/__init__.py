"""MAPPO: actors, a centralised critic, rollout buffer, GAE, value normalisation, the update.

    from mappo_training.algo import AlgoConfig, MAPPOLearner, RolloutBuffer, ActionSpec

The config, buffer, GAE and value normaliser are numpy-only; the torch parts
(`MAPPOLearner`, `ActorSlot`) load on first use, so validating a run's config
does not import torch.
"""

from __future__ import annotations

from typing import Any

from mappo_training.algo.buffer import RolloutBuffer
from mappo_training.algo.config import ActionSpec, AlgoConfig
from mappo_training.algo.gae import compute_gae
from mappo_training.algo.value_norm import ValueNormalizer

_TORCH_NAMES = {"MAPPOLearner", "ActorSlot", "NonFiniteLoss"}

__all__ = [
    "ActionSpec",
    "ActorSlot",
    "AlgoConfig",
    "MAPPOLearner",
    "NonFiniteLoss",
    "RolloutBuffer",
    "ValueNormalizer",
    "compute_gae",
]


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from mappo_training.algo import learner

        return getattr(learner, name)
    raise AttributeError(f"module 'mappo_training.algo' has no attribute {name!r}")
