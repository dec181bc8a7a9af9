"""`swarm demo`: the shipped policy driving a simulated swarm through ROS 2, end to end.

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
hand-written go-to-goal controller (`demo_go_to_goal`, a baseline to look at,
not a solution) in the simulator, without ROS.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT = Path("out/demo")
DEFAULT_POLICY = Path("models/default")
REAL_TIME_FACTOR = 2.0
"""The demo's simulated seconds per wall second: fast to watch, easy for 2 cores."""
NODES_UP_TIMEOUT = 60.0
SWAP_TIMEOUT = 15.0


# --------------------------------------------------------------------------- #
# Watching a simulated swarm over ROS 2 (also used by `swarm bench deploy`).
# --------------------------------------------------------------------------- #


@dataclass
class OdomTrack:
    """One robot's odometry samples: simulated time and pose, in arrival order."""

    stamps: list[float] = field(default_factory=list)
    poses: list[tuple[float, float, float]] = field(default_factory=list)


class SwarmWatcher:
    """A node in this process that follows the sim bridge and the policy nodes.

    Records /swarm/events, every robot's odom and each policy node's latched
    ~/active_policy, and can reset the bridge's episode. It spins its own
    rclpy context on a background thread; `close()` ends it.
    """

    def __init__(self, num_robots: int, prefix: str = "robot_", *, odometry: bool = True) -> None:
        import rclpy
        from nav_msgs.msg import Odometry
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import (
            DurabilityPolicy,
            QoSProfile,
            ReliabilityPolicy,
            qos_profile_sensor_data,
        )
        from rclpy.signals import SignalHandlerOptions
        from std_msgs.msg import String

        from swarm_contract.robot_io import yaw_from_quaternion

        self.num_robots = num_robots
        self.namespaces = [f"/{prefix}{i}" for i in range(num_robots)]
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.active: dict[str, dict[str, Any]] = {}
        self.tracks = [OdomTrack() for _ in range(num_robots)]
        self.sim_time = 0.0

        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("swarm_demo_watcher", context=self.context)
        # The bridge keeps a history of events and the nodes latch their policy:
        # match their QoS so a late subscriber still gets them.
        history = QoSProfile(
            depth=100,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.node.create_subscription(String, "/swarm/events", self._on_event, history)
        for i, ns in enumerate(self.namespaces):
            self.node.create_subscription(
                String, f"{ns}/policy_node/active_policy", self._on_active_policy, latched
            )
            if odometry:

                def on_odom(msg, robot=i) -> None:
                    p, q = msg.pose.pose.position, msg.pose.pose.orientation
                    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                    yaw = yaw_from_quaternion(q.x, q.y, q.z, q.w)
                    with self._lock:
                        self.tracks[robot].stamps.append(stamp)
                        self.tracks[robot].poses.append((p.x, p.y, yaw))
                        self.sim_time = max(self.sim_time, stamp)

                self.node.create_subscription(
                    Odometry, f"{ns}/odom", on_odom, qos_profile_sensor_data
                )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="watcher-spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if self._running and self.context.ok():
                    raise
                return

    def _on_event(self, msg) -> None:
        event = json.loads(msg.data)
        with self._lock:
            self.events.append(event)
            self.sim_time = max(self.sim_time, float(event.get("t") or 0.0))

    def _on_active_policy(self, msg) -> None:
        info = json.loads(msg.data)
        with self._lock:
            self.active[str(info.get("robot", "")).rstrip("/")] = info

    # -- queries ------------------------------------------------------------ #

    def find(self, kind: str, episode: int | None = None) -> list[dict[str, Any]]:
        """Events of type `kind` (of one episode, when given), in order."""
        with self._lock:
            return [
                e
                for e in self.events
                if e["type"] == kind and (episode is None or e.get("episode") == episode)
            ]

    def policies_up(self) -> bool:
        with self._lock:
            return all(ns in self.active for ns in self.namespaces)

    def active_policies(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.active)

    def wait(self, predicate, timeout: float, what: str, stop=None):
        """Poll predicate() until truthy; TimeoutError naming `what` after `timeout` s.

        `stop()`, when given, is polled too: a true value aborts with RuntimeError
        (e.g. a node process died).
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            problem = stop() if stop else None
            if problem:
                raise RuntimeError(f"while waiting for {what}: {problem}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {what} within {timeout:g} s")
            time.sleep(0.05)

    def reset_episode(self, timeout: float = 10.0) -> int:
        """Ask the bridge to end its episode and start the next one (/swarm/reset);
        returns the new episode's number."""
        from std_srvs.srv import Trigger

        client = self.node.create_client(Trigger, "/swarm/reset")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"no /swarm/reset service within {timeout:g} s")
            future = client.call_async(Trigger.Request())
            done = threading.Event()
            future.add_done_callback(lambda _f: done.set())
            if not done.wait(timeout) or future.result() is None:
                raise TimeoutError(f"/swarm/reset gave no answer within {timeout:g} s")
            if not future.result().success:
                raise RuntimeError(f"/swarm/reset refused: {future.result().message}")
            started = re.search(r"episode (\d+) started", future.result().message)
            if started is None:
                raise RuntimeError(f"/swarm/reset answered {future.result().message!r}")
            return int(started.group(1))
        finally:
            self.node.destroy_client(client)

    def recording(self, episode: int, robot_radius: float, period: float) -> dict[str, Any]:
        """Episode `episode` as a recording dict (see sim/recording.py) for the pictures.

        Poses come from odometry, one per control step (the sample stamped at
        that step; the previous pose where a best-effort sample was lost).
        """
        from mappo_training.sim.scenarios import ArenaLayout

        start = self.find("episode_start", episode)[0]
        end = self.find("episode_end", episode)[0]
        t0, length = float(start["t"]), int(end["length"])
        starts = np.asarray(start["starts"], dtype=np.float64)
        layout = ArenaLayout(
            arena_size=float(start["arena_size"]),
            starts=starts,
            goals=np.asarray(start["goals"], dtype=np.float64),
            obstacles=_obstacles(start.get("obstacles", [])),
            robot_radius=robot_radius,
            goal_tolerance=float(start.get("goal_tolerance", 0.15)),
        )
        poses = np.repeat(starts[None], length + 1, axis=0)
        with self._lock:
            tracks = [(list(t.stamps), list(t.poses)) for t in self.tracks]
        for robot, (stamps, samples) in enumerate(tracks):
            seen: set[int] = set()
            for stamp, pose in zip(stamps, samples, strict=True):
                step = round((stamp - t0) / period)
                # Samples stamped like the start may be the previous episode's
                # last pose, and at the last step the bridge also publishes the
                # next episode's start under the same stamp: step 0 is the
                # layout's start, and otherwise the first sample wins.
                if 0 < step <= length and step not in seen:
                    seen.add(step)
                    poses[step, robot] = pose
            for step in range(1, length + 1):
                if step not in seen:
                    poses[step, robot] = poses[step - 1, robot]

        def steps_of(kind: str) -> list[tuple[int, int]]:
            return [
                (max(1, round((float(e["t"]) - t0) / period)), int(e["robot"]))
                for e in self.find(kind, episode)
            ]

        return {
            "layout": layout,
            "poses": poses,
            "collisions": steps_of("collision"),
            "arrivals": steps_of("arrival"),
            "period": period,
            "result": end,
        }

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def _obstacles(items: list[dict[str, Any]]) -> tuple:
    from mappo_training.sim.geometry import Obstacle
    from swarm_contract.config import from_dict

    return tuple(from_dict(Obstacle, o, f"obstacles[{i}]") for i, o in enumerate(items))


# --------------------------------------------------------------------------- #
# The simulated task a policy was trained on.
# --------------------------------------------------------------------------- #


def trained_sim_config(policy: Path) -> dict[str, Any]:
    """The `sim:` section the policy was trained with (from its policy.yaml), or {}."""
    import yaml

    card = policy / "policy.yaml"
    if not card.is_file():
        return {}
    data = yaml.safe_load(card.read_text()) or {}
    return dict(((data.get("training") or {}).get("config") or {}).get("sim") or {})


def write_sim_task(policy: Path, run_dir: Path, **overrides: Any) -> Path:
    """A sim config file for the bridge: the policy's training task with overrides."""
    import yaml

    sim = {**trained_sim_config(policy), **overrides}
    path = run_dir / "sim_task.yaml"
    path.write_text(yaml.safe_dump({"sim": sim}, sort_keys=False))
    return path


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
    p.add_argument("--robots", type=int, default=4, help="robots in the arena (default 4)")
    p.add_argument(
        "--scenario",
        choices=["random", "circle", "swap"],
        help="random starts and goals, a circle crossing, or two groups swapping sides"
        " (default: the policy's training scenario; circle for --controller handwritten)",
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


def run(args: argparse.Namespace) -> int:
    if args.controller == "handwritten":
        return run_handwritten(args)
    return run_policy(args)


def run_policy(args: argparse.Namespace) -> int:
    """The main job: deploy the policy on simulated robots over ROS 2, swap, report."""
    from swarm_contract.config import ConfigError
    from swarm_controller.fleet import find_policy, sim_node_specs
    from swarm_ops.deploy import Deployment, new_run_dir

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
        # A policy is shown on the task it learned unless asked otherwise.
        scenario = args.scenario or str(trained_sim_config(policy).get("scenario", "random"))
        # The episode goes on after a contact (training may have ended it
        # there) so the swap always happens and the pictures show the whole
        # run; the score still calls any collision a failure.
        sim_task = write_sim_task(
            policy, run_dir, num_robots=args.robots, scenario=scenario, end_on_collision=False
        )
        specs = sim_node_specs(
            num_robots=args.robots,
            policy=policy,
            scenario=scenario,
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
        profile = _profile_of(sim_task)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran: leave no empty run folder
        print(f"error: {err}", file=sys.stderr)
        return 2

    print(
        f"demo: {args.robots} robots, {scenario} scenario, policy {policy.name}:"
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
    _print_report(recording["result"], args.robots, profile.control_period)
    _print_swap(outcome, target_text)
    stopped = [n for n in deployment.nodes if n.spec.executable == "policy_node"]
    clean = sum(bool(n.stopped_cleanly) for n in stopped)
    print(f"  stopped: {clean}/{len(stopped)} policy nodes exited cleanly after a zero command")
    from mappo_training.sim import render

    png = render.episode_png(recording, args.out / "paths.png")
    print(f"  paths: {png}")
    if args.gif:
        print(f"  animation: {render.episode_gif(recording, args.out / 'episode.gif')}")
    print(f"  node logs: {run_dir}")
    print(f"  ({time.perf_counter() - started:.1f} s wall time)")
    return 0


def _profile_of(sim_task: Path):
    from mappo_training.sim.config import load_sim_config

    return load_sim_config(sim_task).robot_profile()


def _run_episode(args, watcher: SwarmWatcher, deployment, target: Path, profile) -> dict:
    """Bring the fleet up, run one fresh episode with a swap in its middle."""
    from swarm_ops.swap import swap_policies

    def node_down() -> str | None:
        down = deployment.poll()
        return f"{down[0].spec.label} exited (see {down[0].log_path})" if down else None

    watcher.wait(
        lambda: watcher.policies_up() and watcher.find("episode_start"),
        NODES_UP_TIMEOUT,
        f"all {args.robots} policy nodes active",
        stop=node_down,
    )
    before = watcher.active_policies()
    episode = watcher.reset_episode()
    start = watcher.wait(
        lambda: watcher.find("episode_start", episode), 10.0, "the demo's episode"
    )[0]
    outcome: dict[str, Any] = {"episode": episode, "before": before, "swap": None}

    # The middle of the episode: half the time the farthest robot needs at top speed.
    starts = np.asarray(start["starts"])[:, :2]
    farthest = float(np.hypot(*(np.asarray(start["goals"]) - starts).T).max())
    swap_at = float(start["t"]) + 0.5 * farthest / profile.max_linear
    stop_reason = watcher.wait(
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
    watcher.wait(
        lambda: watcher.find("episode_end", episode),
        limit / args.real_time_factor + 60.0,
        "the end of the episode",
        stop=node_down,
    )
    outcome["after"] = watcher.active_policies()
    return outcome


def _print_report(result: dict[str, Any], n: int, period: float) -> None:
    arrived = round(result["arrived_fraction"] * n)
    print(
        f"  {'success' if result['success'] else 'not a success'}:"
        f" {arrived}/{n} robots arrived, {result['collisions']} collision steps"
        f" ({result['robot_collisions']} robot-robot, {result['static_collisions']} wall/obstacle),"
        f" {result['length']} steps ({result['length'] * period:.1f} s simulated)"
    )
    if arrived:
        print(
            f"  mean time-to-goal {result['time_to_goal']:.1f} s,"
            f" path efficiency {result['path_efficiency']:.2f}"
        )


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


# --------------------------------------------------------------------------- #
# The hand-written baseline (no ROS, no trained policy).
# --------------------------------------------------------------------------- #


def demo_go_to_goal(obs: np.ndarray, contract) -> np.ndarray:
    """Actions (..., 2) in [-1, 1] from observations (..., obs_dim) of `contract`'s layout.

    Heads for the free beam closest to the goal's bearing (a beam is free when
    it and its neighbours are clear for CLEAR_M, or past the goal), preferring
    to pass obstacles on the right, and slows down when something is ahead.
    """
    beams = contract.num_beams
    goal = beams * contract.scan_stack
    scan = contract.range_min + obs[..., :beams] * (contract.range_max - contract.range_min)
    distance = obs[..., goal] * contract.goal_clip
    bearing = np.arctan2(obs[..., goal + 2], obs[..., goal + 1])

    angles = -np.pi + 2 * np.pi * np.arange(beams) / beams  # beam centres, robot frame
    needed = np.minimum(distance + 0.1, CLEAR_M)[..., None]
    clear = scan > needed
    clear &= np.roll(clear, 1, axis=-1) & np.roll(clear, -1, axis=-1)
    off_course = np.abs(np.angle(np.exp(1j * (angles - bearing[..., None]))))
    # Keep right: a detour to the left costs more, so robots meeting head-on
    # both swerve right and pass each other.
    cost = off_course + KEEP_RIGHT * (angles > bearing[..., None])
    cost = np.where(clear, cost, np.inf)
    heading = np.where(np.isfinite(cost).any(axis=-1), angles[cost.argmin(axis=-1)], -np.pi / 2)

    front = scan[..., beams // 2 - 1 : beams // 2 + 2].min(axis=-1)
    caution = np.clip((front - 0.25) / 0.4, 0.0, 1.0)
    speed = np.clip(np.cos(heading), 0.0, 1.0) * caution * np.clip(distance / 0.4, 0.3, 1.0)
    turn = np.clip(heading / (np.pi / 4), -1.0, 1.0)
    return np.stack([speed, turn], axis=-1).astype(np.float32)


CLEAR_M = 0.7
"""How far a beam must be free (metres) for the demo controller to head along it."""
KEEP_RIGHT = 0.4
"""Extra cost (radians) of passing an obstacle on the left."""


def run_handwritten(args: argparse.Namespace) -> int:
    """One episode in the simulator driven by demo_go_to_goal, with pictures."""
    from mappo_training.sim import BatchedSwarmEnv, EpisodeRecorder, SimConfig, render

    started = time.perf_counter()
    try:
        cfg = SimConfig(num_robots=args.robots, scenario=args.scenario or "circle")
    except ValueError as err:
        print(f"error: --robots/--scenario: {err}", file=sys.stderr)
        return 2
    with BatchedSwarmEnv(cfg, num_arenas=1, seed=args.seed) as env:
        obs, _ = env.reset(seed=args.seed)
        recorder = EpisodeRecorder(env, arena=0)
        while not recorder.done:
            obs, _, _, _, _, info = env.step(demo_go_to_goal(obs, env.contract))
            recorder.add(info)
        recording = recorder.recording()
        arena = env.arena_size
        period = env.profile.control_period

    print(
        f"demo: {cfg.scenario} scenario, {cfg.num_robots} robots in a {arena:.1f} m arena,"
        " driven by demo_go_to_goal (a hand-written controller, not a trained policy)"
    )
    _print_report(recording["result"], cfg.num_robots, period)
    png = render.episode_png(recording, args.out / "paths.png")
    print(f"  paths: {png}")
    if args.gif:
        gif = render.episode_gif(recording, args.out / "episode.gif")
        print(f"  animation: {gif}")
    print(f"  ({time.perf_counter() - started:.1f} s wall time)")
    return 0
