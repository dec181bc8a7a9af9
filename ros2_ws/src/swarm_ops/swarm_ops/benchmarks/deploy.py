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

Both sides play the same task: the policy's training task with --robots,
--scenario/--layout, --num-obstacles and --fidelity set as `swarm eval` sets
them (mappo_training.evaluate.task; the bridge gets it as its sim_config).
At nominal or harsh fidelity every episode draws its robots' effects (noise
and dropout levels, latency, acceleration limits, odometry drift, lidar
phase); the simulator side replays each episode from the bridge's random
state, so both sides draw the same effects for the same episode. What still
differs: the per-scan noise itself (the bridge's lidar has the profile's
rays, the simulator's sim_scan_rays) and the lidar phase after lockstep's
settling steps at an episode's start, in which the bridge's lidar keeps turning.

Also reported: `swarm eval` on its own seeds (eval_success), whether the
policy nodes kept up (the control ticks they missed, from their /diagnostics),
and how often their stop zone cut a command (stop_zone_cuts on /diagnostics),
so a policy that leans on the safety layer shows.
The last line is one JSON object with `sim_success` and `ros_success`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
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
    p.add_argument("--scenario", help="random, circle, swap or layout (default: as trained)")
    p.add_argument(
        "--layout",
        help="named room layout (two_rooms, corridor, crossing, warehouse, or a layout YAML);"
        " implies --scenario layout",
    )
    p.add_argument(
        "--num-obstacles",
        type=int,
        help="random clutter (cylinders and boxes) per episode (default: as trained)",
    )
    p.add_argument(
        "--fidelity",
        choices=["ideal", "nominal", "harsh"],
        help="simulator fidelity preset on both sides (default: as trained); nominal: the"
        " robot profile's 5 Hz lidar, noise, acceleration limits, latency, odometry drift",
    )
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


def bridge_episodes(cfg, seed: int, count: int) -> list[tuple[Any, dict]]:
    """The first `count` episodes a sim bridge with this config and seed plays:
    each one's layout and the state of the bridge's generator right after it,
    from which the bridge then draws the episode's fidelity effects.

    The bridge (SimulatedArena.start_episode) draws, per episode, the layout
    and then the fidelity effects from one default_rng(seed); so does this."""
    from mappo_training.sim.fidelity import Fidelity
    from mappo_training.sim.scenarios import draw_layout, fitted_arena_size

    profile = cfg.robot_profile()
    size = fitted_arena_size(cfg, profile)
    rng = np.random.default_rng(seed)
    # What the bridge's Fidelity draws per episode depends on the robot
    # count and the config, not on the lidar's rays.
    fidelity = Fidelity(
        cfg.fidelity, profile, cfg.contract(profile), 1, cfg.num_robots, profile.scan_beams
    )
    episodes = []
    for _ in range(count):
        layout = draw_layout(rng, cfg, size, profile.radius)
        episodes.append((layout, copy.deepcopy(rng.bit_generator.state)))
        fidelity.start_episode(0, rng, np.asarray(layout.starts, dtype=np.float64))
    return episodes


def score_layouts(
    policy_dir: Path, cfg, layouts: list, draw_states: list[dict] | None = None
) -> list[dict[str, Any]]:
    """One episode per layout, all arenas stepped together, every robot through the
    robot's safety layer as in `swarm eval`; the episode dicts (with their
    stop-zone cuts) in order.

    draw_states: per layout, the random state its fidelity effects are drawn
    from (bridge_episodes'), so each arena's robots get the effects the
    bridge's robots had in that episode."""
    from mappo_training.evaluate import ExportedPolicy, SimSafety
    from mappo_training.sim import BatchedSwarmEnv

    policy = ExportedPolicy(policy_dir, cfg.contract())
    results: list[dict[str, Any] | None] = [None] * len(layouts)
    # SimSafety below is the robots' one layer, even for a policy trained with
    # sim.safety_layer (whose env would add a second).
    env = BatchedSwarmEnv(
        dataclasses.replace(cfg, safety_layer=False), num_arenas=len(layouts), seed=0
    )
    try:
        if draw_states is not None:
            draw_like_the_bridge(env, draw_states)
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


def draw_like_the_bridge(env, draw_states: list[dict]) -> None:
    """Before env.reset(layouts=...): arena k draws its episode's fidelity
    effects from draw_states[k] (bridge_episodes'), as the bridge did: the env
    draws an arena's effects from that arena's generator when it starts the layout."""
    env.set_generator_states(draw_states)


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
        commands_before = tally.total("commands")
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
        commands = tally.total("commands") - commands_before
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
        "commands": commands,
        "robot_steps": sum(int(e["length"]) for e in ends) * robots,
    }


def task_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The sim keys --layout, --num-obstacles and --fidelity set, on both sides."""
    overrides: dict[str, Any] = {}
    if args.layout:
        overrides["layout"] = args.layout
    if args.num_obstacles is not None:
        overrides["num_obstacles"] = args.num_obstacles
    if args.fidelity:
        overrides["fidelity"] = {"preset": args.fidelity}
    return overrides


def _same_layout(event: dict, layout) -> bool:
    return np.allclose(np.asarray(event["starts"]), layout.starts, atol=1e-3) and np.allclose(
        np.asarray(event["goals"]), layout.goals, atol=1e-3
    )


def per_1000(count: int, total: int) -> float | None:
    """`count` per 1000 of `total`, or None when there was nothing to count."""
    return round(1000 * count / total, 2) if total else None


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def run(args: argparse.Namespace) -> int:
    from mappo_training.evaluate import ExportedPolicy, evaluate, stop_zone_numbers
    from mappo_training.sim import SimConfig
    from mappo_training.sim.episodes import summarize
    from swarm_contract.config import ConfigError, from_dict
    from swarm_contract.onnx_policy import PolicyRejected
    from swarm_controller.fleet import find_policy
    from swarm_ops.deploy import new_run_dir
    from swarm_ops.sim_task import task_config, trained_sim_config, write_sim_task

    if args.episodes < 1:
        print(f"error: --episodes {args.episodes}: must be >= 1", file=sys.stderr)
        return 2
    if args.real_time_factor <= 0:
        print(f"error: --real-time-factor {args.real_time_factor}: must be > 0", file=sys.stderr)
        return 2
    if args.layout and args.scenario not in (None, "layout"):
        print(
            f"error: --layout {args.layout} with --scenario {args.scenario}: a layout is its"
            " own scenario; drop --scenario or give --scenario layout",
            file=sys.stderr,
        )
        return 2
    if args.num_obstacles is not None and args.num_obstacles < 0:
        print(f"error: --num-obstacles {args.num_obstacles}: must be >= 0", file=sys.stderr)
        return 2
    overrides = task_overrides(args)
    try:
        policy = find_policy(args.policy).resolve()
        trained = trained_sim_config(policy)
        robots = args.robots or int(trained.get("num_robots", 4))
        args.scenario_used = (
            "layout" if args.layout else args.scenario or str(trained.get("scenario", "random"))
        )
        task = task_config(policy, scenario=args.scenario_used, robots=robots, overrides=overrides)
        cfg = from_dict(SimConfig, task, "sim")
        # The simulator side's check, before minutes on the ROS side: a model
        # whose scan stack assumes another lidar period than this fidelity's is
        # refused here with the reason.
        try:
            ExportedPolicy(policy, cfg.contract())
        except PolicyRejected as err:
            raise PolicyRejected(
                f"{err} (simulated at {cfg.fidelity.preset} fidelity, lidar every"
                f" {cfg.contract().scan_period:g} s; --fidelity picks another)"
            ) from None
        run_dir = new_run_dir(args.out)
        sim_task = write_sim_task(run_dir, task)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    where = f"{cfg.layout} layout" if cfg.scenario == "layout" else cfg.scenario
    clutter = f" + {cfg.num_obstacles} obstacles" if cfg.num_obstacles else ""
    print(
        f"bench deploy: {policy.name}, {where}{clutter} x {robots} robots at"
        f" {cfg.fidelity.preset} fidelity, {args.episodes}"
        f" episodes per side, ROS side at x{args.real_time_factor:g} real time"
        f"{' at most, in lockstep' if args.lockstep else ''}"
    )
    try:
        ros = run_ros_episodes(args, policy, sim_task, robots, run_dir)
    except (TimeoutError, RuntimeError) as err:
        print(f"error: {err}; node logs in {run_dir}", file=sys.stderr)
        return 1

    indices = [int(e["episode"]) for e in ros["ends"]]
    episodes = bridge_episodes(cfg, args.seed, max(indices) + 1)
    layouts = [layout for layout, _ in episodes]
    mismatched = [
        i for i in indices if i in ros["starts"] and not _same_layout(ros["starts"][i], layouts[i])
    ]
    if mismatched:
        print(
            f"warning: the bridge played other layouts than drawn here for episodes"
            f" {mismatched}; the sim side scores the drawn ones"
        )
    began = time.perf_counter()
    sim = score_layouts(
        policy, cfg, [layouts[i] for i in indices], [episodes[i][1] for i in indices]
    )
    sim_wall = time.perf_counter() - began
    evaluated = evaluate(
        policy,
        episodes=args.episodes,
        scenario=args.scenario_used,
        robots=robots,
        sim_base=trained,
        overrides=overrides,
    )

    # The bridge's episode_end events carry the same scores as the simulator's episodes.
    sim_scores, ros_scores = summarize(sim), summarize(ros["ends"])
    report = {
        "policy": str(policy),
        "scenario": args.scenario_used,
        "layout": cfg.layout,
        "num_obstacles": cfg.num_obstacles,
        "fidelity": cfg.fidelity.preset,
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
        # Per layout, both sides: where they part, which side's robots did not arrive.
        "per_episode": [
            {
                "episode": i,
                "sim_arrived": _rounded(a["arrived_fraction"], 4),
                "ros_arrived": _rounded(b["arrived_fraction"], 4),
                "sim_steps": int(a["length"]),
                "ros_steps": int(b["length"]),
            }
            for i, a, b in zip(indices, sim, ros["ends"], strict=True)
        ],
        "real_time_factor": args.real_time_factor,
        "missed_tick_fraction": ros["missed_tick_fraction"],
        "lockstep": bool(args.lockstep),
        "lockstep_misses": sum(int(e.get("lockstep_misses", 0)) for e in ros["ends"]),
        "stop_zone_cuts": ros["stop_zone_cuts"],
        "ros_commands": ros["commands"],
        "sim_stop_zone_cuts": sum(sum(e["stop_zone_cuts"]) for e in sim),
        # As rates: a node commands on its own clock (and between episodes),
        # the simulator once per robot-step, so the counts alone do not compare.
        "stop_zone_cuts_per_1000_commands": per_1000(ros["stop_zone_cuts"], ros["commands"]),
        "sim_stop_zone_cuts_per_1000_steps": stop_zone_numbers(sim)[
            "stop_zone_cuts_per_1000_steps"
        ],
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
        f"  stop zone cut {report['stop_zone_cuts']} of {ros['commands']} commands on ROS"
        f" ({report['stop_zone_cuts_per_1000_commands']} per 1000),"
        f" {report['sim_stop_zone_cuts']} in the simulator"
        f" ({report['sim_stop_zone_cuts_per_1000_steps']} per 1000 robot-steps): the safety"
        " layer, not the policy, kept a robot clear"
    )
    if args.json:
        print(json.dumps(report))
    return 0
