"""Hosted CI: a simulated fleet under `ros2 launch` reaches its goals and stops with zeros.

    python3 .ci/sim_launch_check.py --robots 2 [--timeout 240] [-- COMMAND ...]

Starts COMMAND (default: `ros2 launch swarm_controller swarm_sim.launch.py
num_robots:=<robots> policy:=<repo>/models/default`), listens on the sim
bridge's /swarm/events and every robot_<i>/cmd_vel, and waits until each robot
has an `arrival` event. Then it sends SIGINT to the whole process group (what
Ctrl-C in a terminal does), waits for COMMAND to exit, and checks that every
robot drove (some command was not zero) and that the last command each robot
got is a zero. Exit status 0 when all of that holds; otherwise 1, with the
reason and the tail of COMMAND's output.

Needs only rclpy and the standard message packages, so the same script checks
`swarm deploy --sim --robots 2` on a machine without a ROS distro:

    python3 .ci/sim_launch_check.py --robots 2 -- swarm deploy --sim --robots 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVENTS_TOPIC = "/swarm/events"
TWIST = "geometry_msgs/msg/Twist"
TWIST_STAMPED = "geometry_msgs/msg/TwistStamped"


class FleetProbe:
    """A node that records arrivals and each robot's commands (v, w), in order."""

    def __init__(self, robots: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        rclpy.init()
        self.node = rclpy.create_node("ci_sim_launch_check")
        self.robots = robots
        self.arrived: set[int] = set()
        self.commands: dict[int, list[tuple[float, float]]] = {i: [] for i in range(robots)}
        self._lock = threading.Lock()
        self._subscribed: set[int] = set()
        # The bridge's events are latched (reliable, transient local, depth 100).
        events_qos = QoSProfile(
            depth=100,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.node.create_subscription(String, EVENTS_TOPIC, self._on_event, events_qos)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _on_event(self, msg) -> None:
        event = json.loads(msg.data)
        if event.get("type") == "arrival" and event.get("robot") is not None:
            with self._lock:
                self.arrived.add(int(event["robot"]))

    def subscribe_commands(self) -> None:
        """Subscribe to each robot's cmd_vel once its publisher shows its type
        (Twist or TwistStamped, whichever the fleet uses)."""
        from geometry_msgs.msg import Twist, TwistStamped

        types = dict(self.node.get_topic_names_and_types())
        for i in range(self.robots):
            topic = f"/robot_{i}/cmd_vel"
            if i in self._subscribed or topic not in types:
                continue
            stamped = TWIST_STAMPED in types[topic]
            self.node.create_subscription(
                TwistStamped if stamped else Twist,
                topic,
                lambda msg, i=i, stamped=stamped: self._on_command(i, msg, stamped),
                50,
            )
            self._subscribed.add(i)

    def _on_command(self, robot: int, msg, stamped: bool) -> None:
        twist = msg.twist if stamped else msg
        with self._lock:
            self.commands[robot].append((twist.linear.x, twist.angular.z))

    def all_arrived(self) -> bool:
        with self._lock:
            return self.arrived >= set(range(self.robots))

    def close(self) -> None:
        import rclpy

        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def default_command(robots: int) -> list[str]:
    return [
        "ros2",
        "launch",
        "swarm_controller",
        "swarm_sim.launch.py",
        f"num_robots:={robots}",
        f"policy:={REPO / 'models' / 'default'}",
    ]


def problems_after_stop(probe: FleetProbe) -> list[str]:
    """What is wrong with the commands each robot got, once the fleet stopped."""
    problems = []
    for robot, commands in probe.commands.items():
        if not commands:
            problems.append(f"robot_{robot}: no command on /robot_{robot}/cmd_vel")
        elif not any(v != 0.0 or w != 0.0 for v, w in commands):
            problems.append(f"robot_{robot}: never drove (only zero commands)")
        elif commands[-1] != (0.0, 0.0):
            problems.append(f"robot_{robot}: last command {commands[-1]} is not a zero")
    return problems


def run_check(
    command: list[str], robots: int, timeout: float, log_path: Path
) -> tuple[list[str], dict[int, int]]:
    """Run `command` until every robot arrived, stop it with SIGINT; the problems
    found and how many commands each robot got."""
    probe = FleetProbe(robots)
    problems = check_fleet(probe, command, timeout, log_path)
    return problems, {i: len(c) for i, c in probe.commands.items()}


def check_fleet(probe: FleetProbe, command: list[str], timeout: float, log_path: Path) -> list[str]:
    robots = probe.robots
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while not probe.all_arrived():
                if process.poll() is not None:
                    return [
                        f"{command[0]} exited ({process.returncode}) before every robot arrived"
                    ]
                if time.monotonic() > deadline:
                    missing = sorted(set(range(robots)) - probe.arrived)
                    return [f"robots {missing} did not reach their goals within {timeout:g} s"]
                probe.subscribe_commands()
                time.sleep(0.2)
            os.killpg(process.pid, signal.SIGINT)
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                return [f"{command[0]} did not exit within 60 s of SIGINT"]
            time.sleep(1.0)  # the last zeros in flight
            problems = problems_after_stop(probe)
            if code != 0:
                problems.append(f"{command[0]} exited with {code} after SIGINT (expected 0)")
            return problems
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            probe.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = []
    if "--" in argv:
        command = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to reach goals")
    parser.add_argument("--log", type=Path, default=None, help="COMMAND's output (default: tmp)")
    args = parser.parse_args(argv)
    command = command or default_command(args.robots)
    log_path = args.log or Path(tempfile.mkdtemp(prefix="sim_launch_check_")) / "command.log"
    print("running:", " ".join(command), f"(output: {log_path})", flush=True)
    problems, counts = run_check(command, args.robots, args.timeout, log_path)
    print("commands heard per robot:", counts)
    if problems:
        print("FAILED:", *problems, sep="\n  ")
        print(f"--- last lines of {log_path} ---")
        print("\n".join(log_path.read_text(errors="replace").splitlines()[-60:]))
        return 1
    print(f"ok: {args.robots} robots reached their goals and got a zero command at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
