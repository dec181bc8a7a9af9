"""`swarm bench pettingzoo <run>`: a PettingZoo run against random and scripted play.

Scores three policies on the run's own env (its env.factory and env.kwargs),
on the same evaluation episodes (env seeds training never uses, from
pettingzoo_eval):

- trained: the run's checkpoint, deterministic actors (as `swarm eval`);
- random: every agent samples uniformly from its own action space;
- scripted: a hand-written reference where the project has one (MPE
  simple_spread: mpe_reference.SpreadReference).

One table, with what the run cost: env frames and training wall time from its
checkpoint. `--plot PNG` also draws the run's learning curve (training return
against env frames, from progress.csv) with the random and scripted scores as
horizontal lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_SEED = 12345
"""`swarm eval`'s default evaluation seed, so `trained` matches the run's eval.yaml."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="a PettingZoo run folder (or a checkpoint .pt)")
    p.add_argument("--episodes", type=int, default=200, help="evaluation episodes per policy")
    p.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"evaluation seed, 0-99999 (default {DEFAULT_SEED}, as swarm eval)",
    )
    p.add_argument("--plot", type=Path, help="write the learning curve with both baselines (PNG)")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")


def scripted_reference(env: Any):
    """The scripted actor for this env, or (None, why not)."""
    factory = env.factory.rsplit(":", 1)[0]
    if not factory.endswith("simple_spread_v3"):
        return None, f"no scripted reference for {env.factory}"
    from mappo_training.mpe_reference import MAX_AGENTS, SpreadReference

    # Partial observability reorders the observation nearest-first, which the
    # reference does not read.
    partial = [k for k in ("num_agent_neighbors", "num_landmark_neighbors") if env.kwargs.get(k)]
    if partial:
        return None, f"the reference reads full observations; this env sets {', '.join(partial)}"
    agents = int(env.kwargs.get("N", 3))
    if agents > MAX_AGENTS:
        return None, f"the reference tries every matching and stops at N={MAX_AGENTS}"
    continuous = bool(env.kwargs.get("continuous_actions", False))
    return SpreadReference(agents, continuous=continuous), ""


def benchmark(run: Path, *, episodes: int, seed: int) -> dict[str, Any]:
    """Score trained, random and scripted play on the same episodes of the run's env."""
    from mappo_training import checkpoint as ckpt
    from mappo_training.evaluate import CheckpointPolicy
    from mappo_training.experiment import validate
    from mappo_training.pettingzoo_eval import evaluate_pettingzoo
    from swarm_contract.config import ConfigError

    target = ckpt.resolve_target(run)
    data = ckpt.load(target)
    cfg = validate(data["config"])
    if cfg.env.kind != "pettingzoo":
        raise ConfigError(
            f"{run} trained env.kind={cfg.env.kind}: this benchmark scores PettingZoo runs;"
            " score a swarm run with `swarm eval`"
        )
    scripted, why_not = scripted_reference(cfg.env)
    actors = {"trained": CheckpointPolicy(data).act, "random": "random", "scripted": scripted}
    rows: dict[str, Any] = {}
    for name, act in actors.items():
        if act is None:
            rows[name] = {"skipped": why_not}
            continue
        t0 = time.perf_counter()
        report = evaluate_pettingzoo(cfg, act, episodes=episodes, seed=seed)
        report["eval_s"] = round(time.perf_counter() - t0, 2)
        rows[name] = report
    agents = rows["random"]["agents"]
    return {
        "run": str(run),
        "env": cfg.env.factory,
        "env_kwargs": dict(cfg.env.kwargs),
        "agents": agents,
        "robot_steps": int(data["global_step"]),
        "env_frames": int(data["global_step"]) // agents,
        "train_wall_s": round(float(data["wall_time"]), 1),
        "episodes": episodes,
        "episode_seeds": rows["random"]["episode_seeds"],
        "policies": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    first, last = result["episode_seeds"]
    print(
        f"{result['run']}: {result['env']} {result['env_kwargs']}, {result['agents']} agents;"
        f" trained {result['env_frames']:,} env frames ({result['robot_steps']:,} robot-steps)"
        f" in {result['train_wall_s']:.0f} s"
    )
    print(f"{result['episodes']} episodes per policy, the same env seeds {first}-{last}")
    print(f"{'policy':<10} {'mean return/agent':>18} {'std':>7} {'length':>7} {'success':>8}")
    for name, row in result["policies"].items():
        if "skipped" in row:
            print(f"{name:<10} {'-':>18}   ({row['skipped']})")
            continue
        success = row.get("success_rate")
        success_text = "-" if success is None else f"{100 * success:.1f}%"
        print(
            f"{name:<10} {row['mean_return_per_agent']:>18.3f} {row['return_std']:>7.3f}"
            f" {row['mean_length']:>7.1f} {success_text:>8}"
        )


def plot_curve(run: Path, result: dict[str, Any], out: Path) -> Path:
    """Training return (stochastic policy) against env frames, baselines as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mappo_training.run_log import read_progress

    run_dir = run if run.is_dir() else run.parent
    points = read_progress(run_dir / "progress.csv").get("charts/episodic_return", [])
    if not points:
        raise ValueError(f"{run_dir}/progress.csv has no charts/episodic_return to plot")
    agents = result["agents"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    xs = [step / agents for step, _ in points]
    ax.plot(xs, [ret for _, ret in points], lw=1, alpha=0.45, label="training (sampled actions)")
    window = 10
    if len(points) > window:
        ys = [ret for _, ret in points]
        smooth = [sum(ys[i - window : i]) / window for i in range(window, len(ys) + 1)]
        ax.plot(xs[window - 1 :], smooth, lw=2, color="C0", label=f"training, mean of {window}")
    policies = result["policies"]
    styles = {"scripted": ("C2", "--"), "random": ("C3", ":")}
    for name, (color, style) in styles.items():
        row = policies.get(name, {})
        if "mean_return_per_agent" in row:
            ax.axhline(row["mean_return_per_agent"], color=color, ls=style, label=name)
    final = policies["trained"]["mean_return_per_agent"]
    ax.plot([result["env_frames"]], [final], "o", color="C1", label="trained, deterministic")
    ax.set_xlabel("env frames")
    ax.set_ylabel("episode return per agent")
    ax.set_title(f"{result['env'].rsplit(':', 1)[0]}: {result['episodes']} eval episodes each")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def run(args: argparse.Namespace) -> int:
    from mappo_training.checkpoint import CheckpointError
    from swarm_contract.config import ConfigError

    if args.episodes < 1:
        print(f"error: --episodes {args.episodes} must be >= 1", file=sys.stderr)
        return 2
    try:
        result = benchmark(args.run, episodes=args.episodes, seed=args.seed)
        print_table(result)
        if args.plot:
            print(f"learning curve: {plot_curve(args.run, result, args.plot)}")
    except (ConfigError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    return 0
