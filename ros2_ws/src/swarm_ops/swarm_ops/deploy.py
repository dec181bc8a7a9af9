"""`swarm deploy`: start a deployment's ROS 2 nodes as processes, without a ROS distro.

It starts exactly the node specs the launch files start (`swarm_controller.fleet`
decides them), each as `python -m <package>.<node> --ros-args ...` through
`node_processes`, with one log file per process in a run folder. A policy node that dies is started
again after its respawn delay (like launch's `respawn=True`); meanwhile its
robot gets a zero command every control period from here (`command_guard`),
until the respawned node announces its policy. Ctrl-C (SIGINT) or SIGTERM
stops the deployment in order: policy nodes first, each sending its robot a
zero command on the way out, then the sim bridge; a robot whose node could
not say goodbye itself (it was killed) gets a zero command from here.

A respawned policy node resumes the policy last swapped in live, from a
record under its ROS_HOME (the node's `live_policy_record`). A fleet's nodes
keep the ROS_HOME they inherit, so a restarted deployment of an unchanged
fleet file resumes it too; a simulated swarm's nodes get the run folder as
ROS_HOME, so every simulated run starts from the policy it was given (a
demo's swap must not carry over into the next run).

    swarm deploy --sim --robots 4 --policy models/default
    swarm deploy --sim --robots 2 --lockstep --real-time-factor 3
    swarm deploy --fleet launch/fleet_example.yaml
    swarm deploy --sim --robots 2 --record        # the run as a rosbag2: <run folder>/bag
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from swarm_contract.config import ConfigError
from swarm_controller.fleet import POLICY_NODE, RESPAWN_MAX_RETRIES, SIM_BRIDGE, NodeSpec
from swarm_ops.node_processes import NodeLauncher, node_environment, stop_processes

if TYPE_CHECKING:
    from swarm_ops.command_guard import CommandGuard

DEFAULT_RUNS = Path("out/deploy")
STOP_TIMEOUT = 10.0
"""Seconds a node gets to exit after SIGINT before it is killed. 5 s was once
too short in a fresh clone's test run: a policy node had sent its zero
command and was still tearing down DDS when it was killed."""
LOCKSTEP_BRIDGE = {"lockstep": True, "cmd_vel_stamped": True}
"""Bridge parameters of a lockstep closed loop (see swarm_ops.lockstep). Stamped
commands (the nodes get cmd_vel_stamped too) let the bridge tell a command
computed for the current step from a late one for the step before."""
RECORD_IN_RUN_DIR = Path("<run folder>/bag")
"""--record without a folder: the run folder's bag/."""
MAX_RESTARTS = RESPAWN_MAX_RETRIES
"""A node that crashes more often than this is left down (something is wrong);
the launch files' respawn_max_retries is the same number."""


@dataclass
class NodeProcess:
    """One supervised node: its spec, its current process and its log."""

    spec: NodeSpec
    log_path: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    restart_at: float | None = None
    """Monotonic time at which a crashed node is started again."""
    finished: bool = False
    """Ended and will not be restarted."""
    stopped_cleanly: bool | None = None
    """After stop(): whether the node exited by itself with code 0."""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Deployment:
    """Runs node specs as supervised processes: start, respawn, ordered stop.

    Use as a context manager; `poll()` regularly (it restarts crashed nodes
    that may respawn and returns the nodes that ended for good). While a
    policy node is down, its robot gets zero commands (`command_guard`).
    """

    def __init__(
        self,
        specs: list[NodeSpec],
        run_dir: Path,
        *,
        python: str = sys.executable,
        say: Callable[[str], None] = print,
        max_restarts: int = MAX_RESTARTS,
    ) -> None:
        labels = [s.label for s in specs]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise ConfigError(f"two nodes would run as {duplicates}; namespaces must differ")
        self.run_dir = Path(run_dir)
        simulated = any(s.executable == SIM_BRIDGE for s in specs)
        env = node_environment(
            # ROS file logs go into the run folder too, instead of ~/.ros/log.
            log_dir=self.run_dir / "ros_logs",
            ros_home=self.run_dir if simulated else None,
        )
        self.launcher = NodeLauncher(self.run_dir, env=env, python=python)
        self.say = say
        self.max_restarts = max_restarts
        self.nodes = [NodeProcess(s, self.launcher.log_path(s)) for s in specs]
        self.stopping = False
        self.guard: CommandGuard | None = None

    # -- start ---------------------------------------------------------------- #

    def __enter__(self) -> Deployment:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Write the run folder's node list and start every node."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        listing = [
            f"{n.spec.label}: {' '.join(self.launcher.command(n.spec))}\n  log: {n.log_path}"
            for n in self.nodes
        ]
        (self.run_dir / "nodes.txt").write_text("\n".join(listing) + "\n")
        self._start_guard()
        # The bridge first, so the first scans are there when policy nodes come up.
        for node in sorted(self.nodes, key=lambda n: n.spec.executable != SIM_BRIDGE):
            self._spawn(node)

    def _start_guard(self) -> None:
        """The zero-command publisher for robots whose node is down; made before the
        nodes start, so it is matched on every cmd_vel by the time it is needed."""
        policies = [n for n in self.nodes if n.spec.executable == POLICY_NODE]
        if not policies:
            return
        from swarm_ops.command_guard import CommandGuard

        try:
            self.guard = CommandGuard(policies, say=self.say)
        except ImportError as err:  # rclpy missing: the nodes cannot run either
            self.say(f"no zero commands for robots whose node dies: {err}")

    def _spawn(self, node: NodeProcess) -> None:
        which = f"restart {node.restarts}" if node.restarts else "start"
        node.process = self.launcher.start(node.spec, note=which)
        node.restart_at = None

    # -- supervise -------------------------------------------------------------- #

    def poll(self) -> list[NodeProcess]:
        """Restart crashed nodes that respawn; return nodes that are down for good."""
        now = time.monotonic()
        down = []
        for node in self.nodes:
            if node.process is None or node.finished or self.stopping:
                continue
            code = node.process.poll()
            if code is None:
                continue
            if node.restart_at is None:
                node.exit_codes.append(code)
                if node.spec.respawn and node.restarts < self.max_restarts:
                    node.restart_at = now + node.spec.respawn_delay
                    self.say(
                        f"{node.spec.label} exited (code {code}); restarting in"
                        f" {node.spec.respawn_delay:g} s (see {node.log_path})"
                    )
                else:
                    if node.spec.respawn:
                        self.say(
                            f"{node.spec.label} exited (code {code}) after"
                            f" {node.restarts} restarts; leaving it down (see {node.log_path})"
                        )
                    down.append(node)
                    node.finished = True
                    continue
            if node.restart_at is not None and now >= node.restart_at:
                node.restarts += 1
                self._spawn(node)
                self.say(f"{node.spec.label} restarted (pid {node.pid})")
        return down

    def node(self, label: str) -> NodeProcess:
        for n in self.nodes:
            if n.spec.label == label:
                return n
        raise KeyError(f"no node {label!r}; running: {[n.spec.label for n in self.nodes]}")

    # -- stop ------------------------------------------------------------------ #

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Policy nodes first (each sends a zero command), then everything else."""
        if self.stopping:
            return
        self.stopping = True
        if self.guard is not None:
            self.guard.pause()  # nodes exiting now are stopped on purpose
        policies = [n for n in self.nodes if n.spec.executable == POLICY_NODE]
        others = [n for n in self.nodes if n.spec.executable != POLICY_NODE]
        try:
            self._stop_group(policies, timeout)
            unclean = [n.spec for n in policies if n.stopped_cleanly is False]
            if unclean and self.guard is not None:
                self.guard.send_zeros(unclean)
            elif unclean:
                self.say(f"could not send zero commands to {[s.label for s in unclean]}")
            self._stop_group(others, timeout)
        finally:
            if self.guard is not None:
                self.guard.close()

    def _stop_group(self, nodes: list[NodeProcess], timeout: float) -> None:
        live = [n for n in nodes if n.running]
        for n in nodes:
            if not n.running:
                # A node that crashed (or waits to respawn) never sent its zero.
                ended = n.process is not None and n.process.returncode == 0
                n.stopped_cleanly = ended and n.restart_at is None
        codes = stop_processes([n.process for n in live], timeout)
        for n, code in zip(live, codes, strict=True):
            if code is None:
                self.say(f"{n.spec.label} did not stop within {timeout:g} s; killing it")
            n.stopped_cleanly = code == 0
            n.exit_codes.append(n.process.returncode)


@contextlib.contextmanager
def stop_requests() -> Iterator[list[str]]:
    """Turn SIGINT/SIGTERM into an entry in the yielded list (instead of an exception),
    so a supervisor loop can stop its nodes in order."""
    requests: list[str] = []

    def request(signum, _frame) -> None:
        requests.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, request) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requests
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def new_run_dir(root: Path = DEFAULT_RUNS) -> Path:
    """out/deploy/<date-time>[-k]: a fresh folder per deployment."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        path = root / (stamp if k == 0 else f"{stamp}-{k}")
        if not path.exists():
            path.mkdir(parents=True)
            return path
    raise RuntimeError(f"could not create a run folder under {root}")


def known_policy_parameters() -> set[str]:
    """The policy node's parameter names (a fleet file's typo is an error, not ignored)."""
    from swarm_controller.parameters import NAMES

    return set(NAMES) | {"use_sim_time"}


# --------------------------------------------------------------------------- #
# The command.
# --------------------------------------------------------------------------- #


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--fleet", type=Path, help="fleet YAML: one entry per real robot")
    what.add_argument(
        "--sim", action="store_true", help="a simulated swarm: the sim bridge + a node per robot"
    )
    p.add_argument("--robots", type=int, default=4, help="--sim: number of robots (default 4)")
    p.add_argument(
        "--policy",
        type=Path,
        default=Path("models/default"),
        help="--sim: models/<name> folder (default models/default)",
    )
    p.add_argument(
        "--scenario", default="random", help="--sim: random, circle or swap (default random)"
    )
    p.add_argument("--seed", type=int, default=0, help="--sim: layout seed")
    p.add_argument(
        "--episodes", type=int, default=0, help="--sim: stop after this many episodes (0: never)"
    )
    p.add_argument(
        "--real-time-factor",
        type=float,
        default=1.0,
        help="--sim: simulated seconds per wall second (nodes follow /clock)",
    )
    p.add_argument(
        "--lockstep",
        action="store_true",
        help="--sim: step only once every robot's command arrived (the same episodes under"
        " any CPU load; the real-time factor becomes the top speed); commands are"
        " TwistStamped, matched to their step by the stamp",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="where run folders go")
    p.add_argument(
        "--record",
        nargs="?",
        type=Path,
        const=RECORD_IN_RUN_DIR,
        metavar="BAG_DIR",
        help="write the run as a rosbag2 (MCAP) into BAG_DIR (default: the run folder's"
        " bag/): scans, odom, goals, cmd_vel, events, diagnostics, tf if present;"
        " look back with `swarm replay BAG_DIR`",
    )


def specs_from_args(args: argparse.Namespace) -> list[NodeSpec]:
    """The node specs `swarm deploy` was asked for (the same the launch files build)."""
    from swarm_controller import fleet

    if args.fleet is not None:
        return fleet.fleet_node_specs(fleet.load_fleet(args.fleet), known_policy_parameters())
    if args.real_time_factor <= 0:
        raise ConfigError(f"--real-time-factor {args.real_time_factor}: must be > 0")
    if args.episodes < 0:
        raise ConfigError(f"--episodes {args.episodes}: must be >= 0 (0: run until stopped)")
    return fleet.sim_node_specs(
        num_robots=args.robots,
        policy=args.policy,
        scenario=args.scenario,
        seed=args.seed,
        bridge_parameters={
            "episodes": args.episodes,
            "real_time_factor": float(args.real_time_factor),
            **(LOCKSTEP_BRIDGE if args.lockstep else {}),
        },
    )


def bag_path(args: argparse.Namespace, run_dir: Path) -> Path | None:
    """Where `--record` writes the bag (None: not recording); ConfigError before
    anything starts when it cannot."""
    if args.record is None:
        return None
    path = run_dir / "bag" if args.record == RECORD_IN_RUN_DIR else args.record
    if path.exists():
        raise ConfigError(f"--record {path}: exists already; give a new folder for the bag")
    try:
        import rosbags  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"--record needs the rosbags package: pip install rosbags ({err})"
        ) from err
    return path


def start_recording(path: Path, specs: list[NodeSpec]):
    """A BagRecorder writing to `path` (see swarm_ops.recorder), already listening."""
    import os

    from swarm_ops.recorder import BagRecorder, recorded_topics, tf_available

    tf = tf_available()
    recorder = BagRecorder(
        path, recorded_topics(specs, tf=tf), node_name=f"swarm_deploy_recorder_{os.getpid()}"
    )
    print(f"recording to {path} (rosbag2, MCAP){'' if tf else '; no /tf (tf2_msgs missing)'}")
    return recorder


def describe(deployment: Deployment) -> str:
    """What runs where, for the user."""
    lines = [f"deployment: {len(deployment.nodes)} nodes, run folder {deployment.run_dir}"]
    for n in deployment.nodes:
        s = n.spec
        what = Path(s.parameters["policy_path"]).name if "policy_path" in s.parameters else ""
        remaps = ", ".join(f"{a}->{b}" for a, b in s.remappings)
        detail = "  ".join(x for x in (what, remaps) if x)
        lines.append(f"  {s.label:<28} pid {n.pid or '-':<7} {detail}  log {n.log_path.name}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        specs = specs_from_args(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_dir = new_run_dir(args.runs)
    bag = bag_path(args, run_dir)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    recorder = None
    with stop_requests() as requests:
        deployment = Deployment(specs, run_dir)
        try:
            deployment.start()
            # Right after the node processes start, not before: Fast DDS made
            # a listener that existed before the sim bridge wait up to its next
            # announcement (seconds) to hear it, while one made after hears the
            # bridge at once. Latched topics (goals, events) come either way.
            recorder = start_recording(bag, specs) if bag is not None else None
            print(describe(deployment))
            print("Ctrl-C stops every node (robots get a zero command first).", flush=True)
            status = 0
            while not requests:
                for node in deployment.poll():
                    if node.spec.executable != SIM_BRIDGE:
                        # One robot down for good must not stop the others.
                        if not any(n.running or n.restart_at for n in deployment.nodes):
                            requests.append("every node is down")
                            status = 1
                    elif node.exit_codes[-1] == 0:
                        print(f"{node.spec.label}: all episodes done")
                        requests.append("episodes done")
                    else:
                        # Without the simulator the robots have no world.
                        print(f"{node.spec.label} failed (see {node.log_path})")
                        requests.append("the sim bridge failed")
                        status = 1
                if deadline is not None and time.monotonic() >= deadline:
                    requests.append(f"--duration {args.duration:g} s")
                time.sleep(0.1)
            print(f"stopping ({requests[0]}) ...", flush=True)
        finally:
            try:
                deployment.stop()
            finally:
                if recorder is not None:
                    # After the stop, so the robots' last (zero) commands are in it.
                    recorder.close()
    for n in deployment.nodes:
        verdict = "clean" if n.stopped_cleanly else "forced"
        print(f"  {n.spec.label}: stopped ({verdict}), restarts {n.restarts}")
    print(f"logs: {run_dir}")
    if recorder is not None:
        print(f"bag: {recorder.path} (look back: swarm replay {recorder.path})")
        print(recorder.summary())
    return status


def main(argv: list[str] | None = None) -> int:
    """`ros2 run swarm_ops deploy` / `python -m swarm_ops.deploy`: the same as `swarm deploy`."""
    from swarm_ops.command import command_main

    return command_main(sys.modules[__name__], "swarm deploy", argv)


if __name__ == "__main__":
    sys.exit(main())
