"""While a robot's policy node is down, `swarm deploy` commands that robot: zero, at the control rate.

A base that hears no new command may keep driving with the last one (a
TurtleBot3 does), and a killed node sends no goodbye. So a deployment holds a
publisher on every robot's cmd_vel from the start (matched long before it is
needed, so the first zero is not lost to discovery), watches the policy node
processes on a thread of its own, and from the moment one has exited
publishes zero on that robot's cmd_vel every control period, until it hears
the respawned node command the robot itself on that topic. (A policy node
commands from its start: zero while it is not driving.) The node's
announcement on its latched ~/active_policy is not enough: it can come
seconds before the node's first command gets through discovery. Each outage
is logged: how many zeros went out over how long, and which policy the node
came back with (a respawned node may resume a policy that was swapped in
live; the log says so when it differs from the fleet file's).

rclpy is imported when a guard is made.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm_contract.robot_io import load_profile
from swarm_controller.fleet import NodeSpec

WATCH_INTERVAL = 0.02
"""Seconds between looks at the node processes: bounds the delay to the first zero."""


def _mark(twist) -> None:
    """Mark a zero command as the guard's own: linear.z = -0.0. It is zero in value
    (every base reads it as zero), but its sign tells the guard, which hears its
    own messages on the topic, that this one is not from the respawned node."""
    twist.linear.z = -0.0


def _is_marked(twist) -> bool:
    return math.copysign(1.0, twist.linear.z) < 0.0


@dataclass
class Outage:
    """One stretch of time a robot's node was down."""

    process: Any
    """The process that ended."""
    exit_code: int
    noticed_at: float
    zeros: int = 0
    last_zero_at: float = 0.0
    ended_at: float | None = None
    """When the respawned node's own command was heard."""


class _Robot:
    """One watched policy node: its process holder, cmd_vel publisher, and announcements."""

    def __init__(self, holder: Any, publisher: Any, message: Callable[[], Any]) -> None:
        self.holder = holder
        """An object with `.spec` (NodeSpec) and `.process` (Popen or None), read live."""
        self.publisher = publisher
        self.message = message
        self.outage: Outage | None = None
        self.last_outage: Outage | None = None
        self.unannounced: Outage | None = None
        """An outage that ended before the node announced its policy."""
        self.announced_at = 0.0
        self.announcement: dict[str, Any] = {}
        self.heard_at = 0.0
        """When a command not from the guard was last heard on cmd_vel."""

    @property
    def spec(self) -> NodeSpec:
        return self.holder.spec


class CommandGuard:
    """Publishes zero for robots whose policy node is down, until it is back.

    `holders`: objects with `.spec` and `.process` (deploy's NodeProcess), read
    on every look, so a respawn that replaces `.process` is seen. `say` gets one
    line per outage start and end (from the guard's thread).
    """

    def __init__(
        self,
        holders: Iterable[Any],
        *,
        say: Callable[[str], None] = print,
        period: float | None = None,
    ) -> None:
        from geometry_msgs.msg import Twist, TwistStamped
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        from swarm_ops.rosclient import BackgroundNode, latched_qos

        self.say = say
        # The robots' control period (10 Hz for a TurtleBot3): what a base
        # expects from a live commander.
        self.period = period if period is not None else load_profile().control_period
        self.ros = BackgroundNode(f"swarm_deploy_guard_{os.getpid()}")
        node = self.ros.node
        command_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # Best effort hears reliable and best-effort publishers alike.
        listen_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        self._robots: list[_Robot] = []
        for holder in holders:
            spec = holder.spec
            if spec.parameters.get("cmd_vel_stamped", False):
                frame = str(spec.parameters.get("base_frame", "base_link"))

                def message(frame=frame) -> TwistStamped:
                    msg = TwistStamped()
                    msg.header.frame_id = frame
                    msg.header.stamp = node.get_clock().now().to_msg()
                    _mark(msg.twist)
                    return msg

                msg_type = TwistStamped
            else:

                def message() -> Twist:
                    msg = Twist()
                    _mark(msg)
                    return msg

                msg_type = Twist
            topic = spec.topic("cmd_vel")
            robot = _Robot(holder, node.create_publisher(msg_type, topic, command_qos), message)
            node.create_subscription(
                msg_type,
                topic,
                lambda msg, robot=robot: self._on_command(robot, msg),
                listen_qos,
            )
            node.create_subscription(
                String,
                f"{spec.namespace.rstrip('/')}/{spec.name}/active_policy",
                lambda msg, robot=robot: self._on_active_policy(robot, msg),
                latched_qos(),
            )
            self._robots.append(robot)
        self._paused = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="command-guard", daemon=True)
        self._thread.start()

    # -- the watch ------------------------------------------------------------ #

    def _on_command(self, robot: _Robot, msg) -> None:
        if not _is_marked(getattr(msg, "twist", msg)):
            robot.heard_at = time.monotonic()

    def _on_active_policy(self, robot: _Robot, msg) -> None:
        try:
            robot.announcement = json.loads(msg.data)
        except ValueError:
            robot.announcement = {}
        robot.announced_at = time.monotonic()

    def _watch(self) -> None:
        while not self._closing.wait(WATCH_INTERVAL):
            if self._paused.is_set():
                continue
            now = time.monotonic()
            for robot in self._robots:
                outage = robot.outage
                process = robot.holder.process
                if outage is None:
                    seen = robot.last_outage is not None and robot.last_outage.process is process
                    code = process.poll() if process is not None and not seen else None
                    if code is not None:
                        robot.outage = robot.last_outage = Outage(process, code, now)
                        self._send_zero(robot, now)
                        self.say(
                            f"{robot.spec.label} is down (exit code {code}): zero on"
                            f" {robot.spec.topic('cmd_vel')} every {self.period:g} s until it"
                            " is back"
                        )
                elif (
                    robot.heard_at > outage.noticed_at
                    and process not in (None, outage.process)
                    and process.poll() is None
                ):
                    robot.outage = None
                    outage.ended_at = now
                    if robot.announced_at <= outage.noticed_at:
                        robot.unannounced = outage  # its policy line comes later
                    self.say(self._back_line(robot, outage))
                elif now - outage.last_zero_at >= self.period - WATCH_INTERVAL / 2:
                    self._send_zero(robot, now)
                ended = robot.unannounced
                if ended is not None and robot.announced_at > ended.noticed_at:
                    robot.unannounced = None
                    self.say(self._policy_line(robot))

    def _send_zero(self, robot: _Robot, now: float) -> None:
        robot.publisher.publish(robot.message())
        robot.outage.zeros += 1
        robot.outage.last_zero_at = now

    def _back_line(self, robot: _Robot, outage: Outage) -> str:
        line = (
            f"{robot.spec.label} is back: it commands the robot again after"
            f" {outage.ended_at - outage.noticed_at:.2f} s and {outage.zeros} zero commands"
            " from here"
        )
        if robot.unannounced is outage:
            return f"{line} (no policy announced yet)"
        return f"{line}; {self._policy_line(robot)}"

    def _policy_line(self, robot: _Robot) -> str:
        spec = robot.spec
        info = robot.announcement
        path = str(info.get("path", "?"))
        line = f"{spec.label} drives {Path(path).name} (sha256 {str(info.get('sha256', ''))[:12]})"
        launched = spec.parameters.get("policy_path")
        if launched and path != "?" and Path(path).resolve() != Path(launched).resolve():
            line += f": it resumed the policy swapped in live ({path}), not the fleet's {launched}"
        return line

    # -- control ---------------------------------------------------------------- #

    def pause(self) -> None:
        """Stop watching (the deployment is stopping its nodes on purpose)."""
        self._paused.set()

    def send_zeros(self, specs: Iterable[NodeSpec], repeats: int = 5) -> None:
        """A few zero commands to each of these robots now (nodes that could not say
        goodbye themselves at shutdown); repeated so a late subscriber still gets one."""
        labels = {s.label for s in specs}
        robots = [r for r in self._robots if r.spec.label in labels]
        for k in range(repeats):
            for robot in robots:
                robot.publisher.publish(robot.message())
            if k < repeats - 1:
                time.sleep(0.05)
        if robots:
            self.say(f"sent zero commands to {[r.spec.topic('cmd_vel') for r in robots]}")

    def close(self) -> None:
        """Stop the watch and leave the ROS graph; safe to call twice."""
        self._closing.set()
        self._thread.join(timeout=1.0)
        self.ros.close()
