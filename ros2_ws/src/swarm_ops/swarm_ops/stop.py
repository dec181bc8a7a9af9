"""`swarm stop`: e-stop every robot, or chosen ones, from the command line; `--release` lifts it.

    swarm stop                           # every robot: True on /swarm/estop
    swarm stop --robots robot_0,robot_3  # True on /robot_0/estop and /robot_3/estop
    swarm stop --fleet launch/fleet_example.yaml
    swarm stop --release                 # lift the fleet-wide e-stop

It publishes a latched std_msgs/Bool (RELIABLE + TRANSIENT_LOCAL, depth 1) at
once, then waits until each robot's policy node has subscribed and confirmed
delivery (DDS acknowledgement), prints one line per robot, and exits 0, or 1
naming the robots that did not confirm within --timeout. Without --robots or
--fleet the robots are the policy nodes found on the graph.

How the stop outlives this command: the policy node itself keeps an e-stop
until it reads False, so a confirmed delivery is enough, and a robot stays
stopped after `swarm stop` has exited. A latched message only lives as long
as its publisher, though: a node that starts later (a respawn after a crash,
a robot switched on) begins released. `--hold` keeps this command running,
and its latched message reaches such nodes too, until Ctrl-C. The fleet-wide
and the per-robot e-stop are separate switches (a robot drives only when
both are released): release the one you set.

rclpy is imported only when the command runs, so `swarm --help` works without ROS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from swarm_ops.swap import DEFAULT_NODE_NAME, agent_index, normalise_namespace

FLEET_TOPIC = "/swarm/estop"
ROBOT_TOPIC = "estop"
"""A robot's own e-stop, relative to its namespace."""
ACK_POLL = 0.05


@dataclass
class Target:
    """One robot and the topic that stops it."""

    namespace: str
    topic: str
    confirmed: bool = False

    @property
    def name(self) -> str:
        return self.namespace.strip("/")


def robot_topic(namespace: str) -> str:
    return f"{namespace.rstrip('/')}/{ROBOT_TOPIC}"


def fleet_namespaces(path: Path) -> list[str]:
    """The policy nodes' namespaces of a fleet file (the same `swarm deploy --fleet` starts)."""
    from swarm_controller import fleet
    from swarm_controller.fleet import POLICY_NODE
    from swarm_ops.deploy import known_policy_parameters

    specs = fleet.fleet_node_specs(fleet.load_fleet(path), known_policy_parameters())
    return [s.namespace for s in specs if s.executable == POLICY_NODE]


# --------------------------------------------------------------------------- #
# The command.
# --------------------------------------------------------------------------- #


def add_arguments(p: argparse.ArgumentParser) -> None:
    who = p.add_mutually_exclusive_group()
    who.add_argument(
        "--robots",
        help="comma-separated robot namespaces, e.g. robot_0,robot_3: their own <ns>/estop"
        f" (default: every robot, through {FLEET_TOPIC})",
    )
    who.add_argument("--fleet", type=Path, help="fleet YAML: the <ns>/estop of every robot in it")
    p.add_argument("--release", action="store_true", help="lift the e-stop (publish False) instead")
    p.add_argument(
        "--hold",
        action="store_true",
        help="keep running (Ctrl-C ends it) so nodes that start later get the message too",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for every robot to confirm (default 10)",
    )
    p.add_argument(
        "--node-name",
        default=DEFAULT_NODE_NAME,
        help=f"name of the policy nodes (default {DEFAULT_NODE_NAME})",
    )


def targets_from_args(args: argparse.Namespace) -> list[Target] | None:
    """The robots named on the command line (None: every robot, found on the graph)."""
    if args.robots is not None:
        namespaces = [normalise_namespace(r) for r in args.robots.split(",") if r.strip()]
        if not namespaces:
            raise ValueError(f"--robots {args.robots!r}: give names like robot_0,robot_3")
    elif args.fleet is not None:
        namespaces = fleet_namespaces(args.fleet)
    else:
        return None
    return [Target(ns, robot_topic(ns)) for ns in dict.fromkeys(namespaces)]


def run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        print(f"--timeout {args.timeout}: must be > 0 seconds", file=sys.stderr)
        return 2
    try:
        targets = targets_from_args(args)
    except ValueError as err:
        print(str(err), file=sys.stderr)
        return 2
    from std_msgs.msg import Bool

    from swarm_ops.rosclient import BackgroundNode, latched_qos

    engaged = not args.release
    what = "e-stopped" if engaged else "released"
    with BackgroundNode(f"swarm_stop_{os.getpid()}") as ros:
        node = ros.node
        topics = [FLEET_TOPIC] if targets is None else [t.topic for t in targets]
        publishers = {}
        for topic in topics:
            # Out at once; the latched copy reaches subscribers that match later.
            publishers[topic] = node.create_publisher(Bool, topic, latched_qos())
            publishers[topic].publish(Bool(data=engaged))
        print(f"{'e-stop' if engaged else 'release'} published on {', '.join(topics)}", flush=True)
        if targets is None:
            # All of --timeout for discovery: it ends as soon as the set of
            # robots settles, and a fresh process on a loaded machine has
            # needed more than half of 6 s to see nodes that were there.
            found = fleet_robots(node, args.node_name, args.timeout)
            targets = [Target(ns, FLEET_TOPIC) for ns in found]
            if not targets:
                print(
                    f"no '{args.node_name}' nodes found within {args.timeout:g} s"
                    f" (ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}): nobody confirmed"
                    f" the {'e-stop' if engaged else 'release'}",
                    file=sys.stderr,
                )
                return 1
        wait_for_confirmations(node, publishers, targets, args.node_name, args.timeout)
        for target in targets:
            verdict = what if target.confirmed else f"did not confirm within {args.timeout:g} s"
            print(f"{target.name}: {verdict} ({target.topic})")
        unconfirmed = [t.name for t in targets if not t.confirmed]
        if unconfirmed:
            print(
                f"{len(unconfirmed)} of {len(targets)} robot(s) did not confirm: {unconfirmed}"
                f" (no '{args.node_name}' subscribed to their e-stop, or it did not acknowledge)"
            )
        if args.hold:
            hold(what)
    return 1 if unconfirmed else 0


def fleet_robots(node, node_name: str, timeout: float) -> list[str]:
    """Namespaces of the policy nodes on the graph, once discovery has settled.

    A robot is seen by its subscription to /swarm/estop (topic discovery is
    what delivers the message) or by its node name (so one that does not
    subscribe is still named as unconfirmed). Discovery trickles in on a busy
    machine: the set must stop growing for a while before the wait ends.
    """
    from swarm_ops.rosclient import discover_until_settled

    def found_now() -> set[str]:
        by_subscription = {
            normalise_namespace(e.node_namespace)
            for e in node.get_subscriptions_info_by_topic(FLEET_TOPIC)
            if e.node_name == node_name
        }
        return by_subscription | {
            normalise_namespace(ns)
            for name, ns in node.get_node_names_and_namespaces()
            if name == node_name
        }

    found = discover_until_settled(found_now, timeout, settle=min(1.5, timeout / 2))
    return sorted(found, key=lambda ns: (agent_index(ns) is None, agent_index(ns) or 0, ns))


def wait_for_confirmations(
    node, publishers: dict, targets: list[Target], node_name: str, timeout: float
) -> None:
    """Mark each target confirmed once its policy node subscribes to its topic and
    that topic's publisher has every delivery acknowledged (or until `timeout`)."""
    from rclpy.duration import Duration

    deadline = time.monotonic() + timeout
    while True:
        for topic, publisher in publishers.items():
            waiting = [t for t in targets if t.topic == topic and not t.confirmed]
            if not waiting:
                continue
            subscribed = {
                normalise_namespace(e.node_namespace)
                for e in node.get_subscriptions_info_by_topic(topic)
                if e.node_name == node_name
            }
            ready = [t for t in waiting if t.namespace in subscribed]
            if ready and publisher.wait_for_all_acked(Duration(seconds=ACK_POLL)):
                for t in ready:
                    t.confirmed = True
        if all(t.confirmed for t in targets) or time.monotonic() >= deadline:
            return
        time.sleep(ACK_POLL)


def hold(what: str) -> None:
    """Keep the latched message alive for nodes that start later, until Ctrl-C."""
    print(f"holding: robots that start from now on are {what} too; Ctrl-C ends this", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopped holding (the robots keep their e-stop state)")


def main(argv: list[str] | None = None) -> int:
    """`ros2 run swarm_ops stop` / `python -m swarm_ops.stop`: the same as `swarm stop`."""
    from swarm_ops.command import command_main

    return command_main(sys.modules[__name__], "swarm stop", argv)


if __name__ == "__main__":
    sys.exit(main())
