"""MAPPO's knobs (`AlgoConfig`), and `ActionSpec` from the environment interface.

A plain dataclass with no torch import, so a run's config can be validated
(and read back from a run folder) on a machine without the training extra.
Every trick of the algorithm is a field here, so its effect can be measured by
flipping one key: `swarm train algo.value_norm=false`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from mappo_training.batched_env import ActionSpec
from swarm_contract.config import ConfigError

AGENT_ID_CHOICES = ("onehot", "none")
CRITIC_INPUT_CHOICES = ("state", "local")

__all__ = ["AGENT_ID_CHOICES", "CRITIC_INPUT_CHOICES", "ActionSpec", "AlgoConfig"]


@dataclass
class AlgoConfig:
    """Hyperparameters of the MAPPO update. Defaults follow MAPPO.md's table."""

    # -- returns -------------------------------------------------------------
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 = one-step TD targets, 1 = Monte Carlo returns."""

    # -- losses --------------------------------------------------------------
    clip_coef: float = 0.2
    """PPO ratio clip epsilon: the policy ratio is clipped to [1 - eps, 1 + eps]."""
    value_coef: float = 0.5
    """Scale of the critic's loss (the critic has its own optimizer, so this
    mostly matters through gradient-norm clipping)."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus in the actor loss."""
    value_clip: float | None = 0.2
    """Clip the new value prediction to old +- this (in the critic's output
    space, i.e. normalised units when value_norm is on); null = no clipping."""
    huber_delta: float | None = 10.0
    """Huber loss threshold for the critic; null = plain 0.5 * squared error."""
    norm_adv: bool = True
    """Normalise advantages to mean 0, std 1 over the whole batch (active robots only)."""
    death_mask: bool = True
    """Robots that finished (`active` false) are left out of every loss and statistic;
    false = every stored transition counts."""
    value_norm: bool = True
    """Critic learns normalised returns (running mean/std); GAE sees denormalised values."""

    # -- optimisation --------------------------------------------------------
    actor_lr: float = 3e-4
    """Adam learning rate of every actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic."""
    adam_eps: float = 1e-5
    """Adam epsilon (1e-5 as in CleanRL and the MAPPO code, not torch's 1e-8)."""
    max_grad_norm: float = 0.5
    """Clip each network's gradient to this global norm."""
    epochs: int = 10
    """Passes over each batch."""
    num_minibatches: int = 4
    """Minibatches per epoch. 4 keeps a gradient step near MAPPO.md's 2048
    robot-steps for the default batch (16 arenas x 128 steps x 4 robots = 8192)
    while still taking 40 steps per batch; 1 (the paper's MPE setting) learns
    slower per sample on our longer navigation episodes."""
    target_kl: float | None = None
    """Stop the update early once the approximate KL of a minibatch exceeds
    this (checked before that minibatch's step); null = always run every epoch."""

    # -- schedules (driven by MAPPOLearner.set_progress) ---------------------
    anneal_lr: bool = True
    """Decay both learning rates linearly to 0 over training (CleanRL's default)."""
    anneal_entropy: bool = False
    """Decay the entropy coefficient linearly to 0 over training."""
    std_decay: float | None = None
    """Final action std: the Gaussian std may not exceed a ceiling that falls
    linearly from init_std to this; null = the std is free."""

    # -- networks ------------------------------------------------------------
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Widths of the hidden layers of every actor and of the critic."""
    layer_norm: bool = True
    """LayerNorm after each hidden Linear (MAPPO's stability trick)."""
    ortho_init: bool = True
    """Orthogonal init: gain sqrt(2) hidden, 0.01 policy head, 1 value head."""
    init_std: float = 1.0
    """Initial std of the Gaussian policies (log_std starts at log of this)."""
    share_actor: bool = True
    """One actor for all robots of the same obs/action shape (with agent_id);
    false = one actor and one optimizer per robot."""
    agent_id: Literal["onehot", "none"] = "onehot"
    """Append a one-hot robot index to the input of a shared actor and of the
    critic, so one network can still behave per robot. The generic default is
    onehot, the MAPPO paper's choice for agents with different roles; the price
    is a policy tied to exactly the trained robot count. The packaged navigation
    configs choose per task: nav_random_4 sets none (identical robots doing the
    same job, and an id-free actor drives any number of them); nav_circle_8 sets
    onehot, because on its exactly symmetric starts identical id-free robots see
    identical scans and move in lockstep into a standoff."""
    critic_input: Literal["state", "local"] = "state"
    """`state`: the centralised critic sees the global state (MAPPO);
    `local`: it sees the robot's own observation (IPPO, for comparison)."""
    critic: Literal["mlp", "attention"] = "mlp"
    """`mlp`: one MLP over the whole state (its width fixes the robot count);
    `attention`: the state read as the robot's own observation plus one row
    per robot slot (sim.state_mode=relative), each row embedded by one shared
    layer and pooled by attention from the own observation, masked to the
    robots present: the value does not depend on the order of the robots,
    and one critic serves every team size up to the slots (MAPPO.md §10.4)."""
    critic_slot_features: int = 11
    """Width of one robot slot's row in the state, for critic=attention
    (the swarm env's RELATIVE_FEATURES); the last two of a row must be the
    present and is-self flags."""

    def __post_init__(self) -> None:
        def bad(key: str, valid: str) -> ConfigError:
            return ConfigError(f"algo.{key}={getattr(self, key)!r} is invalid: {valid}")

        if not 0.0 < self.gamma <= 1.0:
            raise bad("gamma", "use a discount in (0, 1], e.g. 0.99")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise bad("gae_lambda", "use a value in [0, 1], e.g. 0.95")
        positive = ("clip_coef", "actor_lr", "critic_lr", "adam_eps", "max_grad_norm", "init_std")
        for key in positive:
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise bad(key, "must be a finite number > 0")
        for key in ("value_coef", "entropy_coef"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise bad(key, "must be a finite number >= 0")
        for key in ("value_clip", "huber_delta", "target_kl", "std_decay"):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise bad(key, "must be a number > 0, or null to switch it off")
        if self.std_decay is not None and self.std_decay > self.init_std:
            raise bad("std_decay", f"the final std must not exceed init_std={self.init_std}")
        for key in ("epochs", "num_minibatches"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(key, "must be an integer >= 1")
        sizes = self.hidden_sizes
        if not sizes or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in sizes):
            raise bad(
                "hidden_sizes", "give a non-empty list of positive layer widths, e.g. [256, 256]"
            )
        if self.agent_id not in AGENT_ID_CHOICES:
            raise bad("agent_id", f"choose one of {list(AGENT_ID_CHOICES)}")
        if self.critic_input not in CRITIC_INPUT_CHOICES:
            raise bad("critic_input", f"choose one of {list(CRITIC_INPUT_CHOICES)}")
        if self.critic not in ("mlp", "attention"):
            raise bad("critic", "choose 'mlp' or 'attention'")
        if self.critic == "attention" and (self.critic_input != "state" or self.agent_id != "none"):
            raise bad(
                "critic",
                "attention reads the state of every robot slot without an index:"
                " it needs critic_input=state and agent_id=none",
            )
