"""`swarm goal`: send a goal to one robot, to a whole fleet, or cancel one.

    swarm goal --robot tb3_0 --x 1.0 --y 2.0             # in map (the default frame)
    swarm goal --robot tb3_0 --x 0.5 --y 0 --frame tb3_0/odom --yaw 1.57
    swarm goal --robot tb3_0 --cancel                     # the robot holds where it is
    swarm goal --assign goals.yaml                        # every robot in the file

An assignment file maps robots to [x, y] or [x, y, yaw] (metres, radians) in
`frame` (default map):

    frame: map
    goals:
      tb3_0: [1.0, 0.5]
      tb3_1: [-0.5, 1.0, 3.14]

Each goal is a geometry_msgs/PoseStamped on <robot>/goal, stamped now,
published latched (RELIABLE + TRANSIENT_LOCAL) once that robot's policy node
has subscribed; the command then waits (at most --timeout) until the node
acknowledged it, prints one line per robot and exits 0, or 1 naming the
robots that did not confirm. A cancel is a goal with an empty frame_id: the
node drops its goal and holds. The node takes goals in its own odom frame or
in map (through TF, or its map_to_odom parameter where there is no TF) and
refuses other frames on /diagnostics (see `swarm status`).

The goal lives in the node, not in this command: once delivered it stays
until the next goal or cancel, and a node that restarts later does not get it
again. rclpy is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm_contract.config import ConfigError, load_yaml
from swarm_ops.swap import DEFAULT_NODE_NAME, normalise_namespace

GOAL_TOPIC = "goal"
"""A robot's goal topic, relative to its namespace."""
DEFAULT_FRAME = "map"
ACK_POLL = 0.05
_FRAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_/]*$")
_NAMESPACE = re.compile(r"^/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*/?$")


@dataclass(frozen=True)
class Goal:
    """One robot's goal (or, with frame "", its cancel)."""

    robot: str
    """The robot's namespace, e.g. /tb3_0."""
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    frame: str = DEFAULT_FRAME
    """frame_id of the goal; empty: cancel the robot's goal."""

    @property
    def cancel(self) -> bool:
        return not self.frame

    @property
    def topic(self) -> str:
        return f"{self.robot.rstrip('/')}/{GOAL_TOPIC}"

    @property
    def name(self) -> str:
        return self.robot.strip("/")

    def describe(self) -> str:
        if self.cancel:
            return "cancel"
        return f"goal x={self.x:.3f} y={self.y:.3f} yaw={self.yaw:.3f} in {self.frame}"


@dataclass
class Delivery:
    """What became of one goal."""

    goal: Goal
    confirmed: bool = False
    subscribed: bool = False


def check_robot(name: str, where: str) -> str:
    """A robot name as a namespace (/tb3_0), or a ConfigError naming it."""
    if not isinstance(name, str) or not _NAMESPACE.match(name.strip()):
        raise ConfigError(
            f"{where}: {name!r} is not a robot namespace (letters, digits and _, e.g. tb3_0)"
        )
    return normalise_namespace(name)


def check_frame(frame: str, where: str) -> str:
    if not _FRAME.match(frame):
        raise ConfigError(
            f"{where}={frame!r}: not a frame id; use map or the robot's odom frame (e.g. tb3_0/odom)"
        )
    return frame


def make_goal(robot: str, values: Any, frame: str, where: str) -> Goal:
    """A Goal from [x, y] or [x, y, yaw]; ConfigError naming `where` otherwise."""
    if (
        not isinstance(values, list | tuple)
        or len(values) not in (2, 3)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        or not all(math.isfinite(v) for v in values)
    ):
        raise ConfigError(
            f"{where}: {values!r} is not a goal; give [x, y] or [x, y, yaw] in metres and"
            " radians, e.g. [1.0, 0.5]"
        )
    x, y, *rest = (float(v) for v in values)
    return Goal(check_robot(robot, where), x, y, rest[0] if rest else 0.0, frame)


def goals_from_assignment(path: str | Path, frame: str | None = None) -> list[Goal]:
    """The goals of an assignment file (see the module docstring); `frame` overrides its own."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of robot -> [x, y], e.g. tb3_0: [1.0, 0.5]")
    # Either `goals:` (with `frame:` beside it) or the robots at the top level.
    table = data["goals"] if "goals" in data else {k: v for k, v in data.items() if k != "frame"}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: goals: expected robot -> [x, y], e.g. tb3_0: [1.0, 0.5]")
    frame = check_frame(
        str(data.get("frame", DEFAULT_FRAME)) if frame is None else frame, f"{path}: frame"
    )
    goals = [
        make_goal(str(robot), values, frame, f"{path}: {robot}") for robot, values in table.items()
    ]
    if not goals:
        raise ConfigError(f"{path}: no goals in it; add lines like `tb3_0: [1.0, 0.5]`")
    return goals


def pose_message(goal: Goal, stamp):
    """The PoseStamped for `goal`, stamped `stamp` (builtin_interfaces/Time)."""
    from geometry_msgs.msg import PoseStamped

    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = goal.frame
    msg.pose.position.x, msg.pose.position.y = goal.x, goal.y
    msg.pose.orientation.z = math.sin(goal.yaw / 2.0)
    msg.pose.orientation.w = math.cos(goal.yaw / 2.0)
    return msg


def send_goals(
    node, goals: list[Goal], *, timeout: float, node_name: str = DEFAULT_NODE_NAME
) -> list[Delivery]:
    """Publish each goal latched once its robot's `node_name` subscribed; wait until
    every one is acknowledged or `timeout` s passed. `node` must be spinning."""
    from geometry_msgs.msg import PoseStamped
    from rclpy.duration import Duration

    from swarm_ops.rosclient import latched_qos

    deliveries = [Delivery(g) for g in goals]
    publishers = {
        id(d): node.create_publisher(PoseStamped, d.goal.topic, latched_qos()) for d in deliveries
    }
    deadline = time.monotonic() + timeout
    try:
        while True:
            for d in deliveries:
                if d.confirmed:
                    continue
                publisher = publishers[id(d)]
                if not d.subscribed:
                    # Published only once the node listens, so it gets a fresh stamp.
                    if not any(
                        e.node_name == node_name
                        and normalise_namespace(e.node_namespace) == d.goal.robot
                        for e in node.get_subscriptions_info_by_topic(d.goal.topic)
                    ):
                        continue
                    d.subscribed = True
                    publisher.publish(pose_message(d.goal, node.get_clock().now().to_msg()))
                d.confirmed = publisher.wait_for_all_acked(Duration(seconds=ACK_POLL))
            if all(d.confirmed for d in deliveries) or time.monotonic() >= deadline:
                return deliveries
            time.sleep(ACK_POLL)
    finally:
        for publisher in publishers.values():
            node.destroy_publisher(publisher)


# --------------------------------------------------------------------------- #
# The command.
# --------------------------------------------------------------------------- #


def add_arguments(p: argparse.ArgumentParser) -> None:
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--robot", help="the robot's namespace, e.g. tb3_0")
    who.add_argument(
        "--assign", type=Path, help="YAML of robot -> [x, y] or [x, y, yaw]: a goal for each"
    )
    p.add_argument("--x", type=float, help="goal x in metres (with --robot)")
    p.add_argument("--y", type=float, help="goal y in metres (with --robot)")
    p.add_argument("--yaw", type=float, default=0.0, help="goal heading in radians (default 0)")
    p.add_argument(
        "--frame",
        help=f"frame of the goal: {DEFAULT_FRAME} (default) or the robot's odom, e.g. tb3_0/odom;"
        " with --assign it overrides the file's `frame`",
    )
    p.add_argument(
        "--cancel",
        action="store_true",
        help="cancel the goal (an empty frame_id): the robot holds; with --assign, every"
        " robot in the file",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for each robot's node to subscribe and confirm (default 5)",
    )
    p.add_argument(
        "--node-name",
        default=DEFAULT_NODE_NAME,
        help=f"name of the policy nodes (default {DEFAULT_NODE_NAME})",
    )


def goals_from_args(args: argparse.Namespace) -> list[Goal]:
    """The goals the command line asks for; ConfigError naming a bad argument."""
    if args.frame is not None:
        check_frame(args.frame, "--frame")
    if args.assign is not None:
        if args.x is not None or args.y is not None:
            raise ConfigError("--x/--y go with --robot; with --assign the file holds the goals")
        goals = goals_from_assignment(args.assign, args.frame)
        return [Goal(g.robot, frame="") for g in goals] if args.cancel else goals
    robot = check_robot(args.robot, "--robot")
    if args.cancel:
        return [Goal(robot, frame="")]
    if args.x is None or args.y is None:
        raise ConfigError(f"--robot {args.robot}: give --x and --y (metres), or --cancel")
    if not all(math.isfinite(v) for v in (args.x, args.y, args.yaw)):
        raise ConfigError(f"--x {args.x} --y {args.y} --yaw {args.yaw}: must be finite numbers")
    return [Goal(robot, args.x, args.y, args.yaw, args.frame or DEFAULT_FRAME)]


def run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout}: must be > 0 seconds")
    goals = goals_from_args(args)
    from swarm_ops.rosclient import BackgroundNode

    with BackgroundNode(f"swarm_goal_{os.getpid()}") as ros:
        deliveries = send_goals(ros.node, goals, timeout=args.timeout, node_name=args.node_name)
    for d in deliveries:
        if d.confirmed:
            verdict = "delivered"
        elif d.subscribed:
            verdict = f"NOT confirmed within {args.timeout:g} s"
        else:
            verdict = (
                f"NOT delivered: no '{args.node_name}' subscribed within {args.timeout:g} s"
                f" (ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')})"
            )
        print(f"{d.goal.name}: {d.goal.describe()}: {verdict} ({d.goal.topic})")
    failed = [d.goal.name for d in deliveries if not d.confirmed]
    if failed:
        print(f"{len(failed)} of {len(deliveries)} robot(s) did not confirm: {failed}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """`ros2 run swarm_ops goal` / `python -m swarm_ops.goal`: the same as `swarm goal`."""
    from swarm_ops.command import command_main

    return command_main(sys.modules[__name__], "swarm goal", argv)


if __name__ == "__main__":
    sys.exit(main())
