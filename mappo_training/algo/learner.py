"""The MAPPO learner: actors and a centralised critic, acting and the PPO update.

Who drives which robot is explicit in `ActorSlot`s. With `share_actor` (the
default) robots of the same observation size and action space share one actor,
whose input is their observation, followed, with `agent_id: onehot`, by a one-hot
robot index. onehot is AlgoConfig's generic default (the MAPPO paper's, for
agents with different roles); the packaged navigation configs set it per task:
none for nav_random_4, whose identical robots then run at any count, onehot for
nav_circle_8, whose exactly symmetric starts need the index to break the tie.
Robots of another shape (heterogeneous fleets) get their own shared actor.
Without `share_actor` every robot has its own actor and optimizer. One critic
serves every robot; it is a separate network with its own optimizer, so no
actor gradient ever reaches it.

Array layout everywhere: E arenas, N robots, observations (E, N, D) with
D >= max obs dim (a robot with a smaller obs dim reads its first obs_dims[i]
columns), actions (E, N, A) with A = widest action (discrete: index in column 0).
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mappo_training.algo import schedules
from mappo_training.algo.buffer import RolloutBuffer
from mappo_training.algo.config import ActionSpec, AlgoConfig
from mappo_training.algo.losses import (
    clipped_policy_loss,
    explained_variance,
    masked_mean,
    value_loss,
)
from mappo_training.algo.networks import (
    Actor,
    AttentionCritic,
    Critic,
    GaussianActor,
    build_actor,
)
from mappo_training.algo.value_norm import ValueNormalizer

STATE_FORMAT = "mappo-learner/1"
# Config keys that change the shape of the networks: a checkpoint only loads
# into a learner built with the same ones.
_ARCHITECTURE_KEYS = ("hidden_sizes", "layer_norm", "share_actor", "agent_id", "critic_input")


class NonFiniteLoss(FloatingPointError):
    """A loss, gradient norm or weight of the update is NaN or inf.

    Raised before the optimiser steps with it, so no weight takes the bad
    value; the update is abandoned and the learner is not fit to be saved.
    """

    def __init__(self, quantity: str, value: float, where: str) -> None:
        self.quantity, self.value, self.where = quantity, value, where
        super().__init__(f"{quantity} is {value} ({where})")


@dataclass(frozen=True)
class ActorSlot:
    """One actor and the robots it drives.

    Its input for robot i is obs[..., :obs_dim], followed, when `with_id`, by
    the one-hot of i over all N robots (width N).
    """

    agents: tuple[int, ...]
    obs_dim: int
    spec: ActionSpec
    with_id: bool
    num_agents: int

    @property
    def in_dim(self) -> int:
        return self.obs_dim + (self.num_agents if self.with_id else 0)


def plan_actor_slots(
    obs_dims: list[int], action_specs: list[ActionSpec], share_actor: bool, agent_id: str
) -> list[ActorSlot]:
    """Group robots into actors: by (obs dim, action spec) when sharing, else one each."""
    n = len(obs_dims)
    with_id = share_actor and agent_id == "onehot"
    groups: dict[Any, list[int]] = {}
    for i, (dim, spec) in enumerate(zip(obs_dims, action_specs, strict=True)):
        key = (dim, spec) if share_actor else i
        groups.setdefault(key, []).append(i)
    return [
        ActorSlot(tuple(agents), obs_dims[agents[0]], action_specs[agents[0]], with_id, n)
        for agents in groups.values()
    ]


class MAPPOLearner:
    """Acts for every robot during rollouts and runs the MAPPO update on a full buffer."""

    def __init__(
        self,
        cfg: AlgoConfig,
        obs_dims: list[int],
        action_specs: list[ActionSpec],
        state_dim: int,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        """seed: weights and the learner's own sampling/shuffling RNGs; None draws
        it from torch's global RNG, so a globally seeded run stays reproducible."""
        _check_layout(obs_dims, action_specs, state_dim)
        self.cfg = cfg
        self.obs_dims = [int(d) for d in obs_dims]
        self.action_specs = list(action_specs)
        self.state_dim = int(state_dim)
        self.num_agents = len(self.obs_dims)
        self.obs_dim = max(self.obs_dims)
        self.act_dim = max(spec.width for spec in self.action_specs)
        self.device = _resolve_device(device)

        self.slots = plan_actor_slots(
            self.obs_dims, self.action_specs, cfg.share_actor, cfg.agent_id
        )
        self._slot_of_agent = [0] * self.num_agents
        for k, slot in enumerate(self.slots):
            for i in slot.agents:
                self._slot_of_agent[i] = k
        self._critic_base_dim = self.state_dim if cfg.critic_input == "state" else self.obs_dim
        self._critic_with_id = cfg.agent_id == "onehot"
        critic_in = self._critic_base_dim + (self.num_agents if self._critic_with_id else 0)

        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        # Networks are built on the CPU under their own seed, then moved: the
        # same seed gives the same initial weights on CPU and CUDA, and the
        # caller's global RNG stream is left alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actors = nn.ModuleList(
                build_actor(
                    slot.in_dim,
                    slot.spec,
                    cfg.hidden_sizes,
                    layer_norm=cfg.layer_norm,
                    ortho=cfg.ortho_init,
                    init_std=cfg.init_std,
                )
                for slot in self.slots
            ).to(self.device)
            self.critic = self._build_critic(critic_in).to(self.device)
        self.actor_optimizers = [
            torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr, eps=cfg.adam_eps)
            for actor in self.actors
        ]
        self.critic_optimizer = torch.optim.Adam(
            self.critic.parameters(), lr=cfg.critic_lr, eps=cfg.adam_eps
        )
        self.value_normalizer = ValueNormalizer()
        # Own RNGs: action noise on the learner's device, minibatch shuffles on
        # the CPU. Both go into state_dict, so a resumed update is identical.
        self._sample_rng = torch.Generator(device=self.device)
        self._sample_rng.manual_seed(seed + 1)
        self._shuffle_rng = torch.Generator()
        self._shuffle_rng.manual_seed(seed + 2)

        self._eye = torch.eye(self.num_agents, device=self.device)
        self._slot_index = [
            torch.tensor(slot.agents, device=self.device, dtype=torch.long) for slot in self.slots
        ]
        self._slot_is_everyone = [
            slot.agents == tuple(range(self.num_agents)) for slot in self.slots
        ]
        self.progress = 0.0
        self.entropy_coef = cfg.entropy_coef
        self.set_progress(0.0)

    # ------------------------------------------------------------------ #
    # The mapping the exporter relies on.
    # ------------------------------------------------------------------ #

    def actor_for(self, i: int) -> Actor:
        """The module that drives robot i; its forward(agent_input(i, obs)) is the
        deterministic action (Gaussian mean, or discrete index as float (..., 1))."""
        return self.actors[self._slot_of_agent[self._check_agent(i)]]

    def slot_for(self, i: int) -> ActorSlot:
        return self.slots[self._slot_of_agent[self._check_agent(i)]]

    def agent_input(self, i: int, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Exactly what robot i's actor consumes, from robot i's own observation(s).

        obs: (..., D) padded or (..., obs_dims[i]). Result (..., in_dim) =
        obs[..., :obs_dims[i]] followed, for a shared actor, by the one-hot of i.
        Pure torch ops, so `actor_for(i)(agent_input(i, x))` traces into ONNX
        with the robot index baked in as a constant. The result stays on obs's
        device (the CPU for numpy input): export a CPU copy of the actor.
        """
        slot = self.slot_for(i)
        x = torch.as_tensor(obs, dtype=torch.float32)
        if x.shape[-1] < slot.obs_dim:
            raise ValueError(
                f"agent_input: robot {i} needs {slot.obs_dim} observation columns,"
                f" got shape {tuple(x.shape)}"
            )
        x = x[..., : slot.obs_dim]
        if slot.with_id:
            one_hot = self._eye[i].to(x.device).expand(*x.shape[:-1], self.num_agents)
            x = torch.cat([x, one_hot], dim=-1)
        return x

    # ------------------------------------------------------------------ #
    # Rollouts.
    # ------------------------------------------------------------------ #

    def frozen_actors(self) -> nn.ModuleList:
        """A copy of the actors as they are now, to act with while the learner
        updates the originals in another thread (one update of policy lag)."""
        with torch.no_grad():
            frozen = copy.deepcopy(self.actors)
        return frozen.requires_grad_(False)

    def act(
        self,
        obs: np.ndarray,
        deterministic: bool = False,
        actors: nn.ModuleList | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions (E, N, A) float32 (raw samples; the env clips) and their log-probs (E, N).

        actors: a `frozen_actors()` copy to act with instead of the live ones.
        generator: RNG of the action noise instead of the learner's own.
        """
        if actors is None:
            actors = self.actors
        if generator is None:
            generator = self._sample_rng
        with torch.inference_mode():
            obs_t = self._tensor(obs, "obs", self.obs_dim)
            lead = obs_t.shape[:-2]
            if len(self.slots) == 1 and self.slots[0].spec.width == self.act_dim:
                actions, logp = actors[0].sample(
                    self._actor_input(0, obs_t), generator, deterministic
                )
            else:
                actions = torch.zeros(*lead, self.num_agents, self.act_dim, device=self.device)
                logp = torch.zeros(*lead, self.num_agents, device=self.device)
                for k, actor in enumerate(actors):
                    a, lp = actor.sample(self._actor_input(k, obs_t), generator, deterministic)
                    index = self._slot_index[k]
                    actions[..., index, : a.shape[-1]] = a
                    logp[..., index] = lp
            return actions.cpu().numpy(), logp.cpu().numpy()

    def value(self, state: np.ndarray, obs: np.ndarray | None = None) -> np.ndarray:
        """Denormalised V for every robot, (E, N) float32.

        state (E, N, S), or (E, S) when every robot shares it; obs (E, N, D) is
        needed only with critic_input="local".
        """
        with torch.inference_mode():
            state_t = self._state_tensor(state)
            obs_t = None if obs is None else self._tensor(obs, "obs", self.obs_dim)
            out = self.critic(self._critic_input(state_t, obs_t)).cpu().numpy()
        return self.value_normalizer.denormalize(out) if self.cfg.value_norm else out

    # ------------------------------------------------------------------ #
    # Schedules.
    # ------------------------------------------------------------------ #

    def set_progress(self, fraction_done: float) -> None:
        """Move the LR / entropy / std schedules to this point of training (0..1).

        Call it before collecting each rollout: a lowered std ceiling then
        applies to the actions that are sampled, not only to the update.
        """
        self.progress = schedules.check_fraction(fraction_done)
        actor_lr, critic_lr = schedules.learning_rates(self.cfg, self.progress)
        for opt in self.actor_optimizers:
            for group in opt.param_groups:
                group["lr"] = actor_lr
        for group in self.critic_optimizer.param_groups:
            group["lr"] = critic_lr
        self.entropy_coef = schedules.entropy_coef(self.cfg, self.progress)
        self._project_std()

    def _project_std(self) -> None:
        ceiling = schedules.max_log_std(self.cfg, self.progress)
        if ceiling is None:
            return
        with torch.no_grad():
            for actor in self.actors:
                if isinstance(actor, GaussianActor):
                    actor.log_std.clamp_(max=ceiling)

    # ------------------------------------------------------------------ #
    # The update.
    # ------------------------------------------------------------------ #

    def update(self, buf: RolloutBuffer, stale: bool = False) -> dict[str, float]:
        """Epochs x minibatches of PPO on a buffer whose returns are computed.

        stale: the buffer was collected by an older copy of the actors (the
        trainer's overlap: one update old). The update is then decoupled PPO
        (Hilton et al., 2022): the clip is anchored on the actors as they are
        now, the proximal policy, and each sample is weighted by
        pi_prox / pi_behaviour, truncated at 1. Plain PPO here, clipping
        against the old behaviour policy, starts with many samples already
        outside the clip range and stopped learning on the signal-game test.
        """
        batch = self._prepare_batch(buf, stale)
        cfg = self.cfg
        num_rows = batch["critic_x"].shape[0]
        if num_rows < cfg.num_minibatches:
            raise ValueError(
                f"algo.num_minibatches={cfg.num_minibatches} exceeds the {num_rows} (step, arena)"
                " rows of the batch; lower it or collect more steps"
            )
        logs: dict[str, list[torch.Tensor]] = {}
        early_stopped, epochs_done, steps_done = False, 0, 0
        for epoch in range(cfg.epochs):
            order = torch.randperm(num_rows, generator=self._shuffle_rng).to(self.device)
            for minibatch, rows in enumerate(torch.tensor_split(order, cfg.num_minibatches)):
                where = f"epoch {epoch + 1}, minibatch {minibatch + 1}"
                stats, stop = self._minibatch_step(batch, rows, where)
                for key, value in stats.items():
                    logs.setdefault(key, []).append(value)
                if stop:
                    early_stopped = True
                    break
                steps_done += 1
            if early_stopped:
                break
            epochs_done += 1
        self._require_finite_weights()

        metrics = {key: torch.stack(vals).mean().item() for key, vals in logs.items()}
        metrics["losses/explained_variance"] = batch["explained_variance"]
        metrics.update(self._chart_metrics())
        metrics["charts/epochs_done"] = float(epochs_done)
        metrics["charts/minibatch_steps"] = float(steps_done)
        metrics["charts/early_stopped"] = float(early_stopped)
        return metrics

    def _prepare_batch(self, buf: RolloutBuffer, stale: bool = False) -> dict[str, Any]:
        """Flatten (T, E) into rows, normalise, move to the device once."""
        self._check_buffer(buf)
        cfg = self.cfg
        rows = buf.num_steps * buf.num_envs
        n = self.num_agents
        mask = buf.active.reshape(rows, n) if cfg.death_mask else np.ones((rows, n), bool)
        returns = buf.returns.reshape(rows, n)
        values = buf.values.reshape(rows, n)
        advantages = buf.advantages.reshape(rows, n).astype(np.float32)

        if cfg.value_norm:
            self.value_normalizer.update(returns[mask])
            # Old predictions go through the updated statistics too, so value
            # clipping compares the new prediction with the old one in the
            # same units as this update's targets.
            targets = self.value_normalizer.normalize(returns)
            old_values = self.value_normalizer.normalize(values)
        else:
            targets, old_values = returns, values
        if cfg.norm_adv and mask.any():
            active_adv = advantages[mask]
            advantages = (advantages - active_adv.mean()) / (active_adv.std() + 1e-8)

        # Rows of finished robots may hold anything (stale observations, huge
        # log-probs of ignored actions); zero them so they cannot turn into
        # inf/NaN gradients, since the losses only select them away.
        def clean(x: np.ndarray) -> torch.Tensor:
            m = mask.reshape(mask.shape + (1,) * (x.ndim - 2))
            return torch.as_tensor(np.where(m, x, 0).astype(np.float32), device=self.device)

        obs = clean(buf.obs.reshape(rows, n, -1))
        state = clean(buf.state.reshape(rows, n, -1))
        actions = clean(buf.actions.reshape(rows, n, -1))
        old_logp = clean(buf.logp.reshape(rows, n))
        adv_t = clean(advantages)
        batch: dict[str, Any] = {
            "mask": torch.as_tensor(mask, device=self.device),
            "critic_x": self._critic_input(state, obs),
            "old_values": clean(old_values),
            "targets": clean(targets),
            "explained_variance": explained_variance(values[mask], returns[mask]),
            "slots": [],
        }
        for k, slot in enumerate(self.slots):
            pick = slice(None) if self._slot_is_everyone[k] else self._slot_index[k]
            data = {
                "x": self._actor_input(k, obs),
                "actions": actions[:, pick, : slot.spec.width],
                "old_logp": old_logp[:, pick],
                "advantages": adv_t[:, pick],
                "mask": batch["mask"][:, pick],
                "weights": None,
            }
            if stale:
                with torch.no_grad():
                    prox_logp, _ = self.actors[k].evaluate(data["x"], data["actions"])
                prox_logp = torch.where(data["mask"], prox_logp, 0.0)
                # Truncated at 1, as IMPALA truncates its importance weights:
                # where the behaviour policy made an action much less likely
                # than the current one does, an untruncated weight let a few
                # samples steer the whole update (approx_kl 1e5 in a warm
                # start that kept its source's std of 0.08).
                data["weights"] = (prox_logp - data["old_logp"]).exp().clamp(max=1.0)
                data["old_logp"] = prox_logp
            batch["slots"].append(data)
        return batch

    def _minibatch_step(
        self, batch: dict[str, Any], rows: torch.Tensor, where: str = "minibatch"
    ) -> tuple[dict[str, torch.Tensor], bool]:
        """One gradient step of every actor and the critic; (stats, stop early?).

        Raises NonFiniteLoss, naming the loss, before a NaN or inf loss or
        gradient reaches an optimiser step.
        """
        cfg = self.cfg
        actor_losses, counts, actor_terms = [], [], []
        totals = {"policy_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0}
        totals.update(old_approx_kl=0.0, clipfrac=0.0)
        for actor, data in zip(self.actors, batch["slots"], strict=True):
            mask = data["mask"][rows]
            logp, entropy = actor.evaluate(data["x"][rows], data["actions"][rows])
            weights = None if data["weights"] is None else data["weights"][rows]
            pg_loss, kl_stats = clipped_policy_loss(
                logp, data["old_logp"][rows], data["advantages"][rows], cfg.clip_coef, mask, weights
            )
            entropy_mean = masked_mean(entropy, mask)
            actor_losses.append(pg_loss - self.entropy_coef * entropy_mean)
            actor_terms.append({"losses/policy_loss": pg_loss, "losses/entropy": entropy_mean})
            # Diagnostics are weighted by active robots, as if all slots were one batch.
            count = mask.sum()
            counts.append(count)
            for key, value in (
                ("policy_loss", pg_loss),
                ("entropy", entropy_mean),
                *kl_stats.items(),
            ):
                totals[key] = totals[key] + value.detach() * count
            if weights is not None:
                # How stale the data is: 1 = the behaviour policy was as likely
                # to act so as the current one; lower = those samples count less.
                weight = masked_mean(weights, mask).detach() * count
                totals["behaviour_weight"] = totals.get("behaviour_weight", 0.0) + weight
        active = torch.stack(counts).sum().clamp(min=1)
        stats = {f"losses/{key}": value / active for key, value in totals.items()}

        if cfg.target_kl is not None and stats["losses/approx_kl"].item() > cfg.target_kl:
            return stats, True

        grad_norms = []
        for k, (actor, opt, loss, count) in enumerate(
            zip(self.actors, self.actor_optimizers, actor_losses, counts, strict=True)
        ):
            if count.item() == 0:
                continue  # no active robot of this actor here: Adam's momentum alone would move it
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(actor.parameters(), cfg.max_grad_norm)
            terms = {**actor_terms[k], "the actor's gradient norm": norm}
            _require_finite(terms, f"actor {k}, {where}")
            grad_norms.append(norm)
            opt.step()
        self._project_std()

        values = self.critic(batch["critic_x"][rows])
        v_loss = value_loss(
            values,
            batch["old_values"][rows],
            batch["targets"][rows],
            batch["mask"][rows],
            value_clip=cfg.value_clip,
            huber_delta=cfg.huber_delta,
        )
        self.critic_optimizer.zero_grad(set_to_none=True)
        (cfg.value_coef * v_loss).backward()
        critic_norm = nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
        terms = {"losses/value_loss": v_loss, "the critic's gradient norm": critic_norm}
        _require_finite(terms, f"critic, {where}")
        self.critic_optimizer.step()

        stats["losses/value_loss"] = v_loss.detach()
        stats["losses/critic_grad_norm"] = critic_norm.detach()
        if grad_norms:
            stats["losses/actor_grad_norm"] = torch.stack(grad_norms).mean().detach()
        return stats, False

    def _require_finite_weights(self) -> None:
        """Finite losses and gradients can still step a weight to inf (a huge
        learning rate): one check of every weight after the update."""
        modules = [(f"actor {k}", actor) for k, actor in enumerate(self.actors)]
        modules.append(("critic", self.critic))
        finite = torch.stack(
            [torch.isfinite(p).all() for _, module in modules for p in module.parameters()]
        )
        if bool(finite.all()):
            return
        for name, module in modules:
            for pname, p in module.named_parameters():
                if not bool(torch.isfinite(p).all()):
                    bad = p.detach()[~torch.isfinite(p.detach())].flatten()[0].item()
                    raise NonFiniteLoss(f"weight {pname}", bad, f"{name}, after the update")

    def _chart_metrics(self) -> dict[str, float]:
        actor_lr, critic_lr = schedules.learning_rates(self.cfg, self.progress)
        stds = [a.action_std().mean().item() for a in self.actors if isinstance(a, GaussianActor)]
        return {
            "charts/learning_rate": actor_lr,
            "charts/critic_learning_rate": critic_lr,
            "charts/entropy_coef": self.entropy_coef,
            # NaN when every robot acts discretely: there is no std to report.
            "charts/action_std": float(np.mean(stds)) if stds else float("nan"),
            "charts/value_norm_mean": self.value_normalizer.mean,
            "charts/value_norm_std": self.value_normalizer.std,
        }

    # ------------------------------------------------------------------ #
    # Checkpoints.
    # ------------------------------------------------------------------ #

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimisers, value
        normaliser, schedule position and the learner's RNG states."""
        return {
            "format": STATE_FORMAT,
            "layout": self._layout(),
            "config": asdict(self.cfg),
            "actors": [actor.state_dict() for actor in self.actors],
            "critic": self.critic.state_dict(),
            "actor_optimizers": [opt.state_dict() for opt in self.actor_optimizers],
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "value_normalizer": self.value_normalizer.state_dict(),
            "progress": self.progress,
            "rng": {
                "sample": self._sample_rng.get_state(),
                "shuffle": self._shuffle_rng.get_state(),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; refuses one made for other robots or networks."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"learner state has format {found!r}, expected {STATE_FORMAT!r}")
        problems = []
        layout = self._layout()
        for key, mine in layout.items():
            if state["layout"].get(key) != mine:
                problems.append(f"{key}: saved {state['layout'].get(key)}, here {mine}")
        for key in _ARCHITECTURE_KEYS:
            saved = state["config"].get(key)
            if saved != getattr(self.cfg, key):
                problems.append(f"algo.{key}: saved {saved!r}, here {getattr(self.cfg, key)!r}")
        if problems:
            raise ValueError(
                "learner state does not fit this learner (" + "; ".join(problems) + ");"
                " build the learner with the run's own config and environment"
            )
        for actor, saved in zip(self.actors, state["actors"], strict=True):
            actor.load_state_dict(saved)
        self.critic.load_state_dict(state["critic"])
        for opt, saved in zip(self.actor_optimizers, state["actor_optimizers"], strict=True):
            opt.load_state_dict(saved)
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.value_normalizer.load_state_dict(state["value_normalizer"])
        _restore_generator(self._sample_rng, state["rng"]["sample"].cpu())
        self._shuffle_rng.set_state(state["rng"]["shuffle"].cpu())
        self.set_progress(state["progress"])

    def _build_critic(self, in_dim: int) -> nn.Module:
        cfg = self.cfg
        if cfg.critic == "mlp":
            return Critic(in_dim, cfg.hidden_sizes, layer_norm=cfg.layer_norm, ortho=cfg.ortho_init)
        slots, rest = divmod(in_dim - self.obs_dim, cfg.critic_slot_features)
        if slots < 1 or rest:
            raise ValueError(
                f"algo.critic=attention: a state of width {in_dim} is not the observation"
                f" ({self.obs_dim}) plus whole robot slots of critic_slot_features="
                f"{cfg.critic_slot_features}; use sim.state_mode=relative"
            )
        return AttentionCritic(
            self.obs_dim,
            slots,
            cfg.critic_slot_features,
            cfg.hidden_sizes,
            layer_norm=cfg.layer_norm,
            ortho=cfg.ortho_init,
        )

    def _layout(self) -> dict[str, Any]:
        return {
            "obs_dims": list(self.obs_dims),
            "action_specs": [asdict(spec) for spec in self.action_specs],
            "state_dim": self.state_dim,
        }

    # ------------------------------------------------------------------ #
    # Inputs.
    # ------------------------------------------------------------------ #

    def _actor_input(self, k: int, obs: torch.Tensor) -> torch.Tensor:
        """Slot k's input for its robots: (..., n_k, in_dim) from obs (..., N, D)."""
        slot = self.slots[k]
        if not self._slot_is_everyone[k]:
            obs = obs[..., self._slot_index[k], :]
        if obs.shape[-1] != slot.obs_dim:
            obs = obs[..., : slot.obs_dim]
        if not slot.with_id:
            return obs
        one_hot = self._eye[self._slot_index[k]].expand(*obs.shape[:-1], self.num_agents)
        return torch.cat([obs, one_hot], dim=-1)

    def _critic_input(self, state: torch.Tensor, obs: torch.Tensor | None) -> torch.Tensor:
        if self.cfg.critic_input == "state":
            base = state
        elif obs is None:
            raise ValueError("value(): algo.critic_input='local' needs obs (E, N, D) too")
        else:
            base = obs
        if not self._critic_with_id:
            return base
        one_hot = self._eye.expand(*base.shape[:-1], self.num_agents)
        return torch.cat([base, one_hot], dim=-1)

    def _tensor(self, arr: np.ndarray, name: str, width: int) -> torch.Tensor:
        shape = np.shape(arr)
        if len(shape) < 2 or shape[-2] != self.num_agents or shape[-1] < width:
            raise ValueError(
                f"{name} has shape {shape}; expected (E, {self.num_agents}, >= {width})"
                f" for {self.num_agents} robots"
            )
        return torch.as_tensor(np.asarray(arr, dtype=np.float32), device=self.device)

    def _state_tensor(self, state: np.ndarray) -> torch.Tensor:
        state = np.asarray(state, dtype=np.float32)
        if state.ndim == 2 and state.shape[1] == self.state_dim:
            # One global state per arena: every robot's critic input starts with it.
            state = np.broadcast_to(
                state[:, None, :], (state.shape[0], self.num_agents, self.state_dim)
            )
        if state.ndim != 3 or state.shape[1:] != (self.num_agents, self.state_dim):
            raise ValueError(
                f"state has shape {state.shape}; expected (E, {self.num_agents},"
                f" {self.state_dim}) or (E, {self.state_dim})"
            )
        return torch.as_tensor(np.ascontiguousarray(state), device=self.device)

    def _check_agent(self, i: int) -> int:
        if not 0 <= i < self.num_agents:
            raise IndexError(f"robot index {i} outside [0, {self.num_agents})")
        return i

    def _check_buffer(self, buf: RolloutBuffer) -> None:
        if not buf.ready:
            raise RuntimeError(
                "update(): the buffer has no returns yet; call"
                " buf.compute_returns_and_advantages(last_values, gamma, lam) first"
            )
        expected = {
            "num_agents": self.num_agents,
            "state_dim": self.state_dim,
            "act_dim": self.act_dim,
        }
        for key, want in expected.items():
            if getattr(buf, key) != want:
                raise ValueError(f"update(): buffer {key}={getattr(buf, key)}, learner has {want}")
        if buf.obs_dim < self.obs_dim:
            raise ValueError(
                f"update(): buffer obs_dim={buf.obs_dim} is smaller than the widest"
                f" observation ({self.obs_dim})"
            )


def _check_layout(obs_dims: list[int], action_specs: list[ActionSpec], state_dim: int) -> None:
    if not obs_dims:
        raise ValueError("MAPPOLearner: obs_dims is empty; give one observation size per robot")
    if len(action_specs) != len(obs_dims):
        raise ValueError(
            f"MAPPOLearner: {len(obs_dims)} obs_dims but {len(action_specs)} action_specs;"
            " give one of each per robot"
        )
    for i, dim in enumerate(obs_dims):
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise ValueError(f"MAPPOLearner: obs_dims[{i}]={dim!r} must be an integer >= 1")
    for i, spec in enumerate(action_specs):
        if not isinstance(spec, ActionSpec):
            raise ValueError(
                f"MAPPOLearner: action_specs[{i}] is {type(spec).__name__}; use"
                " ActionSpec(kind='box', dim=2) or ActionSpec(kind='discrete', n=5)"
            )
    if isinstance(state_dim, bool) or not isinstance(state_dim, int | np.integer) or state_dim < 1:
        raise ValueError(f"MAPPOLearner: state_dim={state_dim!r} must be an integer >= 1")


def _require_finite(terms: dict[str, torch.Tensor], where: str) -> None:
    """Raise NonFiniteLoss naming the first of `terms` that is NaN or inf
    (one device sync for all of them: the update's hot path)."""
    values = torch.stack([t.detach().float().reshape(()) for t in terms.values()])
    if bool(torch.isfinite(values).all()):
        return
    for name, value in zip(terms, values.tolist(), strict=True):
        if not math.isfinite(value):
            raise NonFiniteLoss(name, value, where)


def _restore_generator(generator: torch.Generator, saved: torch.Tensor) -> None:
    """Put a saved RNG state back; one saved on another kind of device (a run
    trained on CUDA, evaluated or exported on a CPU) has another layout, and
    seeds this generator from its bytes instead: the stream then differs from
    the original's, as the kernels' arithmetic would anyway."""
    try:
        generator.set_state(saved)
    except RuntimeError:
        digest = hashlib.sha256(saved.numpy().tobytes()).digest()
        generator.manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
    return dev
