"""`swarm bench deploy`: does the policy drive as well through ROS 2 as in the simulator?

Two scores of the same policy on the very same episodes, side by side:

- ros: the deployed system, as `swarm deploy --sim` runs it: the sim bridge and
  one policy-node process per robot, talking over DDS on simulated time (the
  bridge may run faster than real time; every node follows /clock). The
  bridge runs in lockstep (swarm_ops.lockstep): it steps once every robot's
  command has arrived, so the score does not depend on CPU load; the commands
  it had to step without are reported as lockstep misses (`--no-lockstep`:
  step on the wall clock, as the demo does);
- sim: `swarm eval`'s path (onnxruntime per robot, robot_io clamping, the
  simulator stepped in lock-step) on the layouts the bridge played, drawn from
  the same seed, so the difference measures deployment, not luck of the draw.

Also reported: `swarm eval` on its own seeds (eval_success), whether the
policy nodes kept up (the control ticks they missed, from their /diagnostics),
and how often their stop zone cut a command (stop_zone_cuts on /diagnostics),
so a policy that leans on the safety layer shows.
The last line is one JSON object with `sim_success` and `ros_success`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_EPISODES = 20
DEFAULT_REAL_TIME_FACTOR = 3.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy", type=Path, default=Path("models/default"), help="models/<name> folder"
    )
    p.add_argument(
        "--episodes",
        type=int,
        default=DEFAULT_EPISODES,
        help=f"episodes scored on each side (default {DEFAULT_EPISODES})",
    )
    p.add_argument("--robots", type=int, help="robots per episode (default: as trained)")
    p.add_argument("--scenario", help="random, circle or swap (default: as trained)")
    p.add_argument("--seed", type=int, default=0, help="seed of the layouts both sides play")
    p.add_argument(
        "--real-time-factor",
        type=float,
        default=DEFAULT_REAL_TIME_FACTOR,
        help=f"simulated seconds per wall second on the ROS side (default"
        f" {DEFAULT_REAL_TIME_FACTOR:g})",
    )
    p.add_argument(
        "--lockstep",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ROS side: step once every robot's command arrived (default; the same episodes"
        " under any CPU load); --no-lockstep steps on the wall clock",
    )
    p.add_argument("--out", type=Path, default=Path("out/bench_deploy"), help="node logs")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")


# --------------------------------------------------------------------------- #
# The simulator side: the bridge's layouts, scored like `swarm eval`.
# --------------------------------------------------------------------------- #


def bridge_layouts(cfg, seed: int, count: int) -> list:
    """The first `count` layouts a sim bridge with this config and seed plays, in order
    (it draws one per episode from numpy's default_rng(seed))."""
    from mappo_training.sim.scenarios import draw_layout, fitted_arena_size

    profile = cfg.robot_profile()
    size = fitted_arena_size(cfg, profile)
    rng = np.random.default_rng(seed)
    return [draw_layout(rng, cfg, size, profile.radius) for _ in range(count)]


def score_layouts(policy_dir: Path, cfg, layouts: list) -> list[dict[str, Any]]:
    """One episode per layout, all arenas stepped together, every robot through the
    robot's safety layer as in `swarm eval`; the episode dicts (with their
    stop-zone cuts) in order."""
    from mappo_training.evaluate import ExportedPolicy, SimSafety
    from mappo_training.sim import BatchedSwarmEnv

    policy = ExportedPolicy(policy_dir, cfg.contract())
    results: list[dict[str, Any] | None] = [None] * len(layouts)
    env = BatchedSwarmEnv(cfg, num_arenas=len(layouts), seed=0)
    try:
        safety = SimSafety(env)
        obs, _ = env.reset(layouts=layouts)
        while any(r is None for r in results):
            obs, _, _, _, _, info = env.step(safety.apply(policy.act(obs)))
            for episode in info["episodes"]:
                numbers = safety.end_episode(episode["arena"])
                # Arenas restart by themselves; only each one's first episode counts.
                if results[episode["arena"]] is None:
                    results[episode["arena"]] = {**episode, **numbers}
    finally:
        env.close()
    return results


# --------------------------------------------------------------------------- #
# The ROS 2 side.
# --------------------------------------------------------------------------- #


class DiagnosticsTally:
    """The newest /diagnostics values of each policy node (commands, ticks, stop-zone cuts)."""

    def __init__(self, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self._lock = threading.Lock()
        self.latest: dict[str, dict[str, str]] = {}
        self.subscription = node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diagnostics, 50
        )

    def _on_diagnostics(self, msg) -> None:
        with self._lock:
            for status in msg.status:
                self.latest[status.hardware_id] = {kv.key: kv.value for kv in status.values}

    def total(self, key: str) -> int:
        with self._lock:
            return sum(int(v.get(key, 0) or 0) for v in self.latest.values())


def run_ros_episodes(args, policy: Path, sim_task: Path, robots: int, run_dir: Path) -> dict:
    """Deploy the bridge + policy nodes and collect `args.episodes` fresh episodes."""
    from swarm_controller.fleet import sim_node_specs
    from swarm_ops.deploy import LOCKSTEP_BRIDGE, Deployment
    from swarm_ops.watch import SwarmWatcher, deployment_failure

    specs = sim_node_specs(
        num_robots=robots,
        policy=policy,
        seed=args.seed,
        scenario=args.scenario_used,
        bridge_parameters={
            "sim_config": str(sim_task),
            # Runs until stopped; the scored episodes start with the
            # /swarm/reset sent once every node is up.
            "episodes": 0,
            "real_time_factor": float(args.real_time_factor),
            **(LOCKSTEP_BRIDGE if args.lockstep else {}),
            # Markers are for people; nobody watches them here.
            "marker_rate": 0.0,
        },
    )
    watcher = SwarmWatcher(robots, odometry=False)
    tally = DiagnosticsTally(watcher.node)
    deployment = Deployment(specs, run_dir, say=lambda line: print(f"  {line}"))
    began = time.perf_counter()
    try:
        deployment.start()
        watcher.wait_until_up(deployment)
        first = watcher.reset_episode()
        ticks_before, missed_before = tally.total("ticks"), tally.total("missed_ticks")
        cuts_before = tally.total("stop_zone_cuts")
        loop_started = time.perf_counter()

        def scored() -> list[dict]:
            return [e for e in watcher.find("episode_end") if e["episode"] >= first]

        last_count, last_progress = 0, time.monotonic()
        while len(scored()) < args.episodes:
            problem = deployment_failure(deployment)
            if problem:
                raise RuntimeError(problem)
            if len(scored()) != last_count:
                last_count, last_progress = len(scored()), time.monotonic()
            elif time.monotonic() - last_progress > 120.0:
                raise TimeoutError(f"no episode ended for 120 s ({last_count} done)")
            time.sleep(0.1)
        loop_wall = time.perf_counter() - loop_started
        ends = scored()[: args.episodes]
        starts = {e["episode"]: e for e in watcher.find("episode_start") if e["episode"] >= first}
        ticks = tally.total("ticks") - ticks_before
        missed = tally.total("missed_ticks") - missed_before
        # Diagnostics come once a second: counted up to the last report, which
        # may miss the final second's cuts.
        cuts = tally.total("stop_zone_cuts") - cuts_before
    finally:
        deployment.stop()
        watcher.close()
    return {
        "ends": ends,
        "starts": starts,
        "wall_s": time.perf_counter() - began,
        "loop_wall_s": loop_wall,
        "missed_tick_fraction": round(missed / max(1, ticks + missed), 4),
        "stop_zone_cuts": cuts,
        "robot_steps": sum(int(e["length"]) for e in ends) * robots,
    }


def _same_layout(event: dict, layout) -> bool:
    return np.allclose(np.asarray(event["starts"]), layout.starts, atol=1e-3) and np.allclose(
        np.asarray(event["goals"]), layout.goals, atol=1e-3
    )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def run(args: argparse.Namespace) -> int:
    from mappo_training.evaluate import evaluate
    from mappo_training.sim import SimConfig
    from mappo_training.sim.episodes import summarize
    from swarm_contract.config import ConfigError, from_dict
    from swarm_controller.fleet import find_policy
    from swarm_ops.deploy import new_run_dir
    from swarm_ops.sim_task import trained_sim_config, write_sim_task

    if args.episodes < 1:
        print(f"error: --episodes {args.episodes}: must be >= 1", file=sys.stderr)
        return 2
    if args.real_time_factor <= 0:
        print(f"error: --real-time-factor {args.real_time_factor}: must be > 0", file=sys.stderr)
        return 2
    try:
        policy = find_policy(args.policy).resolve()
        trained = trained_sim_config(policy)
        robots = args.robots or int(trained.get("num_robots", 4))
        args.scenario_used = args.scenario or str(trained.get("scenario", "random"))
        run_dir = new_run_dir(args.out)
        sim_task = write_sim_task(policy, run_dir, num_robots=robots, scenario=args.scenario_used)
        cfg = from_dict(
            SimConfig, {**trained, "num_robots": robots, "scenario": args.scenario_used}, "sim"
        )
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    print(
        f"bench deploy: {policy.name}, {args.scenario_used} x {robots} robots, {args.episodes}"
        f" episodes per side, ROS side at x{args.real_time_factor:g} real time"
        f"{' at most, in lockstep' if args.lockstep else ''}"
    )
    try:
        ros = run_ros_episodes(args, policy, sim_task, robots, run_dir)
    except (TimeoutError, RuntimeError) as err:
        print(f"error: {err}; node logs in {run_dir}", file=sys.stderr)
        return 1

    indices = [int(e["episode"]) for e in ros["ends"]]
    layouts = bridge_layouts(cfg, args.seed, max(indices) + 1)
    mismatched = [
        i for i in indices if i in ros["starts"] and not _same_layout(ros["starts"][i], layouts[i])
    ]
    if mismatched:
        print(
            f"warning: the bridge played other layouts than drawn here for episodes"
            f" {mismatched}; the sim side scores the drawn ones"
        )
    began = time.perf_counter()
    sim = score_layouts(policy, cfg, [layouts[i] for i in indices])
    sim_wall = time.perf_counter() - began
    evaluated = evaluate(
        policy,
        episodes=args.episodes,
        scenario=args.scenario_used,
        robots=robots,
        sim_base=trained,
    )

    # The bridge's episode_end events carry the same scores as the simulator's episodes.
    sim_scores, ros_scores = summarize(sim), summarize(ros["ends"])
    report = {
        "policy": str(policy),
        "scenario": args.scenario_used,
        "robots": robots,
        "episodes": args.episodes,
        "sim_success": _rounded(sim_scores["success_rate"], 4),
        "ros_success": _rounded(ros_scores["success_rate"], 4),
        "eval_success": evaluated["success_rate"],
        "sim_time_to_goal_s": _rounded(sim_scores["time_to_goal_s"], 3),
        "ros_time_to_goal_s": _rounded(ros_scores["time_to_goal_s"], 3),
        "sim_collision_rate": _rounded(sim_scores["collision_rate"], 4),
        "ros_collision_rate": _rounded(ros_scores["collision_rate"], 4),
        "same_outcome": round(
            float(
                np.mean(
                    [a["success"] == b["success"] for a, b in zip(sim, ros["ends"], strict=True)]
                )
            ),
            4,
        ),
        "real_time_factor": args.real_time_factor,
        "missed_tick_fraction": ros["missed_tick_fraction"],
        "lockstep": bool(args.lockstep),
        "lockstep_misses": sum(int(e.get("lockstep_misses", 0)) for e in ros["ends"]),
        "stop_zone_cuts": ros["stop_zone_cuts"],
        "sim_stop_zone_cuts": sum(sum(e["stop_zone_cuts"]) for e in sim),
        "ros_wall_s": round(ros["wall_s"], 1),
        "sim_wall_s": round(sim_wall, 1),
    }
    gap = 100 * (report["ros_success"] - report["sim_success"])
    pct = lambda x: f"{100 * x:5.1f}%"  # noqa: E731
    print(f"  same {args.episodes} layouts (seed {args.seed}):")
    print(
        f"    simulator (swarm eval's path)  success {pct(report['sim_success'])}"
        f"  collisions {pct(report['sim_collision_rate'])}"
        f"  time-to-goal {report['sim_time_to_goal_s']} s  ({sim_wall:.1f} s wall)"
    )
    print(
        f"    ROS 2 closed loop              success {pct(report['ros_success'])}"
        f"  collisions {pct(report['ros_collision_rate'])}"
        f"  time-to-goal {report['ros_time_to_goal_s']} s  ({ros['loop_wall_s']:.1f} s wall)"
    )
    print(
        f"  difference {gap:+.1f} points; {100 * report['same_outcome']:.0f}% of episodes"
        f" ended the same way; swarm eval on its own seeds: {pct(report['eval_success'])}"
    )
    print(
        f"  policy nodes missed {100 * report['missed_tick_fraction']:.1f}% of their control"
        f" ticks (simulated time; 0% = they kept up); node logs {run_dir}"
    )
    if args.lockstep:
        print(
            f"  lockstep: {report['lockstep_misses']} of {ros['robot_steps']} robot-steps went"
            " without the robot's command (the bridge waited for every other one)"
        )
    print(
        f"  stop zone cut {report['stop_zone_cuts']} commands of {ros['robot_steps']}"
        f" robot-steps on ROS, {report['sim_stop_zone_cuts']} in the simulator (the safety"
        " layer, not the policy, kept a robot clear)"
    )
    if args.json:
        print(json.dumps(report))
    return 0
