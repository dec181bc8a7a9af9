"""Score a policy on a PettingZoo run's own env: mean episode return per agent.

`swarm eval` and the end of `swarm train` use this for env.kind=pettingzoo
runs (our swarm task has its own scoring in evaluate.py). The env is built
from the run's `env.factory` and `env.kwargs` through ParallelEnvBatch, in
this process, and plays exactly the episodes asked for, each on an env seed
that training never uses:

    episode seeds = EVAL_SEED_BASE + seed * EVAL_SEED_STRIDE + 0, 1, 2, ...

Training's episodes are seeded from run.seed upwards, one seed per episode
(worker w from run.seed + w * 104,729): a run would have to play about a
billion episodes to reach EVAL_SEED_BASE.

    report = evaluate_pettingzoo(cfg, "random", episodes=200, seed=0)
    report = evaluate_pettingzoo(cfg, policy.act, episodes=200, seed=0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mappo_training.experiment import TrainConfig
    from mappo_training.pettingzoo_batch import ParallelEnvBatch

EVAL_SEED_BASE = 1_000_000_000
"""First env seed of evaluation episodes, far above any seed training reaches."""
EVAL_SEED_STRIDE = 10_000
"""Env seeds between two evaluation seeds (`seed` and `seed + 1`)."""
MAX_SEED = 100_000
"""Evaluation seeds run from 0 to this (excluded), so every env seed stays
below 2**31 (envs that seed numpy's legacy RNG take no more than 2**32 - 1)."""
MAX_COPIES = 8
"""Env copies stepped side by side (as many as episodes, up to this)."""

Actor = Callable[[np.ndarray], np.ndarray]
"""(E, N, obs_dim) observations -> (E, N, action_dim) actions, ParallelEnvBatch's
format: a discrete action is its index in column 0."""


def evaluate_pettingzoo(cfg: TrainConfig, act: str | Actor, *, episodes: int, seed: int) -> dict:
    """Play `episodes` episodes of cfg.env with `act` and report their numbers.

    act: "random" (each agent samples uniformly from its own action space,
    from an RNG seeded with `seed`) or an `Actor`, e.g. a checkpoint's
    deterministic actors.

    The report (plain Python values): kind "pettingzoo", env (the factory),
    agents, episodes, episode_seeds (first and last seed a counted episode
    started from), mean_return_per_agent (the mean over episodes of each
    episode's return: the sum over its steps of the mean reward of the agents
    that acted, i.e. each agent's summed reward averaged over the agents when
    all act to the end, as `charts/episodic_return` in training), return_std
    (over episodes), mean_length (steps), and success_rate only where the env
    reports success in its infos (pettingzoo_batch.reported_success); then it
    is the share of episodes that succeeded.
    """
    from mappo_training.pettingzoo_batch import ParallelEnvBatch

    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed={seed}: evaluation seeds run from 0 to {MAX_SEED - 1}")
    if isinstance(act, str) and act != "random":
        raise ValueError(f"act={act!r}: give 'random' or a callable")
    first_seed = EVAL_SEED_BASE + seed * EVAL_SEED_STRIDE
    copies = min(MAX_COPIES, episodes)
    # A fixed quota per copy: short episodes are not over-represented.
    quota = [episodes // copies + (1 if c < episodes % copies else 0) for c in range(copies)]
    batch = ParallelEnvBatch(cfg.env.factory, cfg.env.kwargs, num_copies=copies, seed=first_seed)
    try:
        policy = random_actor(batch, seed) if isinstance(act, str) else act
        results = _play(batch, policy, quota, first_seed)
    finally:
        batch.close()
    label = act if isinstance(act, str) else "policy"
    return _report(cfg, results, batch.num_robots, policy_label=label)


def _play(batch: ParallelEnvBatch, act: Actor, quota: list[int], first_seed: int) -> list[dict]:
    """Run the copies until each has finished its quota of episodes."""
    copies = batch.num_arenas
    started = {c: first_seed + c for c in range(copies)}
    next_seed = first_seed + copies
    done = [0] * copies
    results: list[dict] = []
    obs, _ = batch.reset(seed=first_seed)
    while sum(done) < sum(quota):
        obs, _, _, _, _, info = batch.step(act(obs))
        for ep in info["episodes"]:
            c = ep["arena"]
            if done[c] < quota[c]:
                results.append(dict(ep, seed=started[c]))
                done[c] += 1
            # The batch reset this copy with the next seed in turn.
            started[c], next_seed = next_seed, next_seed + 1
    return results


def _report(
    cfg: TrainConfig, results: list[dict], agents: int, policy_label: str
) -> dict[str, Any]:
    returns = np.array([ep["return"] for ep in results], dtype=float)
    seeds = [ep["seed"] for ep in results]
    report: dict[str, Any] = {
        "kind": "pettingzoo",
        "env": cfg.env.factory,
        "policy": policy_label,
        "agents": agents,
        "episodes": len(results),
        "episode_seeds": [min(seeds), max(seeds)],
        "mean_return_per_agent": round(float(returns.mean()), 4),
        "return_std": round(float(returns.std()), 4),
        "mean_length": round(float(np.mean([ep["length"] for ep in results])), 4),
    }
    successes = [ep["success"] for ep in results if ep.get("success") is not None]
    if successes:
        # Episodes whose env said nothing count as failures, as in training's logs.
        report["success_rate"] = round(len([s for s in successes if s]) / len(results), 4)
    return report


def random_actor(batch: ParallelEnvBatch, seed: int) -> Actor:
    """Each agent's action drawn uniformly from its own space (seeded): an index
    for a Discrete agent, a point of the box for a Box agent (gymnasium's own
    sampling where the box is unbounded)."""
    rng = np.random.default_rng(seed)
    spaces = [batch.envs[0].action_space(agent) for agent in batch.agents]
    for i, space in enumerate(spaces):
        space.seed(seed * 1_000 + i)

    def act(obs: np.ndarray) -> np.ndarray:
        e = obs.shape[0]
        actions = np.zeros((e, batch.num_robots, batch.action_dim), np.float32)
        for i, (spec, space) in enumerate(zip(batch.action_specs, spaces, strict=True)):
            if spec.kind == "discrete":
                actions[:, i, 0] = rng.integers(spec.n, size=e)
            else:
                actions[:, i, : spec.dim] = [np.ravel(space.sample()) for _ in range(e)]
        return actions

    return act


def print_report(report: dict) -> None:
    """`swarm eval`'s lines for a PettingZoo run."""
    success = report.get("success_rate")
    first, last = report["episode_seeds"]
    print(
        f"{report['env']} ({report['policy']}), {report['agents']} agents,"
        f" {report['episodes']} episodes"
        f" (env seeds {first}-{last}): mean return per agent"
        f" {report['mean_return_per_agent']:.3f} (std {report['return_std']:.3f}),"
        f" mean length {report['mean_length']:.1f} steps, success "
        + ("not reported by the env" if success is None else f"{100 * success:.1f}%")
    )
