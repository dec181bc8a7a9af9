"""`swarm demo`: the shipped policy driving a simulated swarm through ROS 2, end to end.

By default: 8 robots cross between two furnished rooms joined by a doorway
(the `two_rooms` layout, mappo_training/sim/layouts/), at `nominal` fidelity
(the TurtleBot3's 5 Hz lidar with noise and dropped returns, acceleration
limits, actuation latency, odometry drift: mappo_training/sim/fidelity.py),
with the fleet-wide swap in the middle; --robots, --scenario/--layout and
--fidelity show other situations.

What runs (the same nodes `swarm deploy --sim` and swarm_sim.launch.py start):
the sim bridge (PyBullet robots on robot_<i>/scan, odom, goal, cmd_vel and
/clock) and one policy-node process per robot, each running its ONNX file from
models/default. This process only watches: it waits until every node is up,
starts a fresh episode (/swarm/reset), swaps the whole fleet to a second policy
in the middle of it with the machinery of `swarm swap`, records the robots'
odometry and the bridge's /swarm/events, then stops the nodes (each robot gets
a zero command) and prints a report and writes the pictures. The episode runs
on after a contact, so the swap and the pictures always happen; any collision
still makes it "not a success".

`--controller handwritten` runs the older in-process demo instead: a
hand-written go-to-goal controller (`swarm_ops.baseline`, a baseline to look
at, not a solution) in the simulator, without ROS.

This module is the command: its arguments and the sequence of the main job.
The pieces are elsewhere: `watch` (what this process sees of the swarm),
`sim_task` (the task a policy was trained on), `deploy` (the node processes),
`swap` (the fleet-wide swap), `episode_report` (the report and pictures).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from swarm_ops.episode_report import draw_pictures, print_result

DEFAULT_OUT = Path("out/demo")
DEFAULT_POLICY = Path("models/default")
DEMO_ROBOTS = 8
DEMO_LAYOUT = "two_rooms"
"""A room with furniture that reads at a glance: two rooms, one doorway, every
robot crossing it (so they must take turns)."""
DEMO_FIDELITY = "nominal"
HANDWRITTEN_ROBOTS = 4
HANDWRITTEN_SCENARIO = "circle"
FIDELITIES = ("ideal", "nominal", "harsh")
REAL_TIME_FACTOR = 2.0
"""The demo's simulated seconds per wall second: fast to watch, easy for 2 cores."""
SWAP_TIMEOUT = 15.0


# --------------------------------------------------------------------------- #
# What the fleet swaps to.
# --------------------------------------------------------------------------- #


def swap_target(policy: Path, asked: Path | None, run_dir: Path) -> tuple[Path, str]:
    """The policy the fleet swaps to, and how to describe it.

    Asked for: that one. Otherwise a second shipped policy next to the first
    (models/<name>_b), else a copy of the same policy, which still exercises
    every step of a swap (load, check, atomic switch) on every robot.
    """
    if asked is not None:
        if not asked.exists():
            from swarm_contract.config import ConfigError

            raise ConfigError(f"--swap-to {asked}: no such folder or file; give models/<name>")
        return asked, str(asked)
    sibling = policy.with_name(policy.name + "_b")
    if any(sibling.glob("robot_*.onnx")):
        return sibling, str(sibling)
    copy = run_dir / "models" / f"{policy.name}_copy"
    shutil.copytree(policy, copy)
    return copy, f"a copy of {policy} (no {sibling} shipped)"


# --------------------------------------------------------------------------- #
# The command.
# --------------------------------------------------------------------------- #


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for pictures and logs")
    p.add_argument(
        "--robots",
        type=int,
        help=f"robots in the arena (default {DEMO_ROBOTS}; {HANDWRITTEN_ROBOTS} for"
        " --controller handwritten)",
    )
    p.add_argument(
        "--scenario",
        choices=["random", "circle", "swap", "layout"],
        help="random starts and goals, a circle crossing, two groups swapping sides, or a"
        f" named room layout (--layout) (default: layout {DEMO_LAYOUT};"
        f" {HANDWRITTEN_SCENARIO} for --controller handwritten)",
    )
    p.add_argument(
        "--layout",
        help="named room layout (two_rooms, corridor, crossing, warehouse, or a layout YAML);"
        f" implies --scenario layout (default {DEMO_LAYOUT} when no --scenario is given)",
    )
    p.add_argument(
        "--fidelity",
        choices=FIDELITIES,
        help="how true to the robot the simulator is: ideal (perfect sensors and motion),"
        " nominal (the robot profile's lidar, acceleration, latency, odometry) or harsh"
        f" (default {DEMO_FIDELITY}; ideal for --controller handwritten)",
    )
    p.add_argument("--seed", type=int, default=0, help="scenario seed (same seed, same layout)")
    p.add_argument(
        "--gif", action=argparse.BooleanOptionalAction, default=True, help="also write a GIF"
    )
    p.add_argument(
        "--controller",
        choices=["policy", "handwritten"],
        default="policy",
        help="policy: the ONNX policy in policy-node processes over ROS 2 (default);"
        " handwritten: the in-process hand-written baseline, no ROS",
    )
    p.add_argument(
        "--policy",
        type=Path,
        default=DEFAULT_POLICY,
        help="models/<name> folder to deploy (default models/default)",
    )
    p.add_argument(
        "--swap-to",
        type=Path,
        help="policy the fleet swaps to mid-episode (default: models/<name>_b if shipped,"
        " else a copy of --policy)",
    )
    p.add_argument(
        "--swap",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="swap the fleet's policy in the middle of the episode",
    )
    p.add_argument(
        "--real-time-factor",
        type=float,
        default=REAL_TIME_FACTOR,
        help=f"simulated seconds per wall second (default {REAL_TIME_FACTOR:g})",
    )


def resolve_defaults(args: argparse.Namespace) -> str | None:
    """Fill in robots, scenario, layout and fidelity for the controller asked
    for; the reason they contradict each other, or None."""
    handwritten = args.controller == "handwritten"
    if args.layout and args.scenario not in (None, "layout"):
        return (
            f"--layout {args.layout} with --scenario {args.scenario}: a layout is its own"
            " scenario; drop --scenario or give --scenario layout"
        )
    if args.layout or args.scenario == "layout":
        args.scenario, args.layout = "layout", args.layout or DEMO_LAYOUT
    elif args.scenario is None and not handwritten:
        args.scenario, args.layout = "layout", DEMO_LAYOUT
    elif args.scenario is None:
        args.scenario = HANDWRITTEN_SCENARIO
    if args.robots is None:
        args.robots = HANDWRITTEN_ROBOTS if handwritten else DEMO_ROBOTS
    if args.fidelity is None:
        args.fidelity = "ideal" if handwritten else DEMO_FIDELITY
    return None


def situation(args: argparse.Namespace) -> str:
    """'8 robots, two_rooms layout, nominal fidelity': what the demo shows."""
    where = f"{args.layout} layout" if args.scenario == "layout" else f"{args.scenario} scenario"
    return f"{args.robots} robots, {where}, {args.fidelity} fidelity"


def run(args: argparse.Namespace) -> int:
    problem = resolve_defaults(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.controller == "handwritten":
        from swarm_ops.baseline import run_handwritten

        return run_handwritten(args)
    return run_policy(args)


def run_policy(args: argparse.Namespace) -> int:
    """The main job: deploy the policy on simulated robots over ROS 2, swap, report."""
    from swarm_contract.config import ConfigError
    from swarm_controller.fleet import find_policy, sim_node_specs
    from swarm_ops.deploy import Deployment, new_run_dir
    from swarm_ops.sim_task import task_config, write_sim_task
    from swarm_ops.watch import SwarmWatcher

    started = time.perf_counter()
    if args.real_time_factor <= 0:
        print(f"error: --real-time-factor {args.real_time_factor}: must be > 0", file=sys.stderr)
        return 2
    try:
        import rclpy  # noqa: F401 - fail early with the fix, not deep inside
    except ImportError:
        print(
            "error: rclpy is not installed; run `make setup` (installs the ros extra),"
            " or use `swarm demo --controller handwritten` for the simulator-only demo",
            file=sys.stderr,
        )
        return 2
    run_dir = new_run_dir(args.out / "runs")
    try:
        policy = find_policy(args.policy).resolve()
        target, target_text = swap_target(policy, args.swap_to, run_dir)
        target = target.resolve()
        overrides: dict[str, Any] = {
            "fidelity": {"preset": args.fidelity},
            # The episode goes on after a contact (training may have ended it
            # there) so the swap always happens and the pictures show the
            # whole run; the score still calls any collision a failure.
            "end_on_collision": False,
        }
        if args.scenario == "layout":
            overrides["layout"] = args.layout
        sim = task_config(policy, scenario=args.scenario, robots=args.robots, overrides=overrides)
        sim_task = write_sim_task(run_dir, sim)
        specs = sim_node_specs(
            num_robots=args.robots,
            policy=policy,
            scenario=args.scenario,
            seed=args.seed,
            bridge_parameters={
                "sim_config": str(sim_task),
                # Runs until stopped: the demo's episode is the one it starts
                # with /swarm/reset once every node is up.
                "episodes": 0,
                "real_time_factor": float(args.real_time_factor),
            },
            policy_parameters={
                "allowed_policy_dirs": sorted({str(policy.parent), str(target.parent)})
            },
        )
        profile = _checked_profile(policy, sim_task)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran: leave no empty run folder
        print(f"error: {err}", file=sys.stderr)
        return 2

    print(
        f"demo: {situation(args)}, policy {policy.name}:"
        f" sim bridge + {args.robots} policy-node processes over ROS 2"
        f" (x{args.real_time_factor:g} real time)"
    )
    watcher = SwarmWatcher(args.robots)
    deployment = Deployment(specs, run_dir, say=lambda line: print(f"  {line}"))
    try:
        deployment.start()
        outcome = _run_episode(args, watcher, deployment, target, profile)
    except (TimeoutError, RuntimeError) as err:
        print(f"error: {err}; node logs in {run_dir}", file=sys.stderr)
        return 1
    finally:
        deployment.stop()
        watcher.close()

    recording = watcher.recording(outcome["episode"], profile.radius, profile.control_period)
    print_result(recording["result"], args.robots, profile.control_period)
    _print_swap(outcome, target_text)
    stopped = [n for n in deployment.nodes if n.spec.executable == "policy_node"]
    clean = sum(bool(n.stopped_cleanly) for n in stopped)
    unclean = ", ".join(
        f"{n.spec.label}: exit codes {n.exit_codes}" for n in stopped if not n.stopped_cleanly
    )
    print(
        f"  stopped: {clean}/{len(stopped)} policy nodes exited cleanly after a zero command"
        + (f" (not {unclean})" if unclean else "")
    )
    draw_pictures(recording, args.out, gif=args.gif)
    print(f"  node logs: {run_dir}")
    print(f"  ({time.perf_counter() - started:.1f} s wall time)")
    return 0


def _checked_profile(policy: Path, sim_task: Path):
    """The simulated robots' profile, once they would take the policy: a model
    whose scan stack assumes another lidar period than the bridge's at this
    fidelity (or any other contract mismatch) is refused here, with the
    reason, before nine processes start."""
    from mappo_training.sim.config import load_sim_config
    from swarm_contract.onnx_policy import OnnxPolicy, PolicyRejected
    from swarm_controller.fleet import policy_for_robot

    cfg = load_sim_config(sim_task)
    profile = cfg.robot_profile()
    contract = cfg.contract(profile)
    try:
        OnnxPolicy.load(policy_for_robot(policy, 0), robot_contract=contract)
    except PolicyRejected as err:
        raise PolicyRejected(
            f"{err} (the simulated robots at {cfg.fidelity.preset} fidelity scan every"
            f" {contract.scan_period:g} s; --fidelity picks another)"
        ) from None
    return profile


def _run_episode(args, watcher, deployment, target: Path, profile) -> dict:
    """Bring the fleet up, run one fresh episode with a swap in its middle."""
    from swarm_ops.rosclient import wait_for
    from swarm_ops.swap import swap_policies
    from swarm_ops.watch import deployment_failure

    def node_down() -> str | None:
        return deployment_failure(deployment)

    watcher.wait_until_up(deployment)
    before = watcher.active_policies()
    episode = watcher.reset_episode()
    start = wait_for(lambda: watcher.find("episode_start", episode), 10.0, "the demo's episode")[0]
    outcome: dict[str, Any] = {"episode": episode, "before": before, "swap": None}

    # The middle of the episode: half the time the farthest robot needs at top speed.
    starts = np.asarray(start["starts"])[:, :2]
    farthest = float(np.hypot(*(np.asarray(start["goals"]) - starts).T).max())
    swap_at = float(start["t"]) + 0.5 * farthest / profile.max_linear
    stop_reason = wait_for(
        lambda: watcher.find("episode_end", episode) or watcher.sim_time >= swap_at,
        farthest / profile.max_linear / args.real_time_factor + 60.0,
        "the middle of the episode",
        stop=node_down,
    )
    if args.swap and stop_reason is True:
        t = watcher.sim_time - float(start["t"])
        began = time.perf_counter()
        results = swap_policies(
            watcher.node, watcher.namespaces, target, "policy_node", SWAP_TIMEOUT
        )
        outcome["swap"] = {
            "t": t,
            "seconds": time.perf_counter() - began,
            "results": results,
        }
    limit = int(start.get("max_steps") or 10_000) * profile.control_period
    wait_for(
        lambda: watcher.find("episode_end", episode),
        limit / args.real_time_factor + 60.0,
        "the end of the episode",
        stop=node_down,
    )
    outcome["after"] = watcher.active_policies()
    return outcome


def _print_swap(outcome: dict[str, Any], target_text: str) -> None:
    swap = outcome["swap"]
    if swap is None:
        print("  swap: not done (the episode ended before its middle, or --no-swap)")
        return
    results = swap["results"]
    accepted = [r for r in results if r.accepted]
    after = outcome.get("after", {})
    driving = {
        r.namespace: Path(after.get(r.namespace, {}).get("path", "?")).parent.name for r in accepted
    }
    print(
        f"  swap at t={swap['t']:.1f} s to {target_text}: {len(accepted)}/{len(results)} robots"
        f" accepted in {1e3 * swap['seconds']:.0f} ms (all answers, over ROS 2)"
    )
    for r in results:
        if not r.accepted:
            print(f"    {r.namespace.strip('/')}: kept its policy: {r.reason}")
    if accepted:
        folders = sorted(set(driving.values()))
        print(f"    now driving (from ~/active_policy): {', '.join(folders)}")
