"""`swarm status`: each robot's lifecycle state, policy, hold, sensor rates and diagnostics.

    swarm status                           # every policy node found on the graph
    swarm status --robots tb3_0,tb3_1
    swarm status --fleet fleet.yaml --json

One row per robot:

    ROBOT  STATE   SHA256        HOLD  SCAN_HZ  ODOM_HZ  CMD_HZ  DIAGNOSTICS    POLICY
    tb3_0  active  3f2a9c1b2d4e  -     10.0     10.0     10.0    OK: driving    models/...

STATE is the node's lifecycle state as its get_state service answers (the
diagnostics' copy when the service does not answer); SHA256 and POLICY the
model that drives it; HOLD why it holds the robot still ("-": it does not);
the rates what its diagnostics measured ("-" where they say nothing); and
DIAGNOSTICS the level and message of its last /diagnostics status, heard for
--wait seconds (they come once a second). `--json` prints the same as a list
of objects, the diagnostics' key-values included. Exit 0 when every robot
answered, 1 when one did not or none was found. rclpy is imported only when
the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from swarm_contract.config import ConfigError
from swarm_ops.swap import DEFAULT_NODE_NAME, normalise_namespace

RATE_KEYS = ("scan_hz", "odom_hz", "cmd_vel_hz")
"""Diagnostics keys of the measured sensor and command rates."""
_LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


@dataclass
class RobotStatus:
    """What `swarm status` shows of one robot."""

    robot: str
    state: str = ""
    policy_sha256: str = ""
    policy_path: str = ""
    hold_reason: str = ""
    rates: dict[str, str] = field(default_factory=dict)
    level: str = ""
    message: str = ""
    diagnostics: dict[str, str] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return bool(self.state or self.level)

    def row(self) -> list[str]:
        return [
            self.robot,
            self.state or "?",
            self.policy_sha256[:12] or "-",
            self.hold_reason or "-",
            *(self.rates.get(k) or "-" for k in RATE_KEYS),
            f"{self.level}: {self.message}" if self.level else "(no diagnostics)",
            self.policy_path or "-",
        ]


HEADER = [
    "ROBOT",
    "STATE",
    "SHA256",
    "HOLD",
    "SCAN_HZ",
    "ODOM_HZ",
    "CMD_HZ",
    "DIAGNOSTICS",
    "POLICY",
]


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    )


def status_from_diagnostics(status: RobotStatus, diag) -> None:
    """Fill `status` from one diagnostic_msgs/DiagnosticStatus of its node."""
    values = {kv.key: kv.value for kv in diag.values}
    status.diagnostics = values
    # A `byte` field: bytes of length 1 in rclpy.
    level = diag.level[0] if isinstance(diag.level, bytes) else int(diag.level)
    status.level = _LEVELS.get(level, str(level))
    status.message = diag.message
    status.state = status.state or values.get("lifecycle_state", "")
    status.policy_sha256 = values.get("policy_sha256", "") or status.policy_sha256
    status.policy_path = values.get("policy_path", "") or status.policy_path
    status.hold_reason = values.get("hold_reason", "")
    status.rates = {k: values[k] for k in RATE_KEYS if values.get(k)}


class DiagnosticsListener:
    """The newest policy-node DiagnosticStatus per namespace, heard on /diagnostics."""

    def __init__(self, node, node_name: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self._lock = threading.Lock()
        self._suffix = f"/{node_name}: policy"
        self.latest: dict[str, object] = {}
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_array, 50)

    def _on_array(self, msg) -> None:
        with self._lock:
            for s in msg.status:
                if s.name.endswith(self._suffix):
                    self.latest[
                        normalise_namespace(s.hardware_id or s.name[: -len(self._suffix)])
                    ] = s

    def get(self, namespace: str):
        with self._lock:
            return self.latest.get(namespace)


def lifecycle_state(node, namespace: str, node_name: str, timeout: float) -> str:
    """The node's lifecycle state label from its get_state service, "" without an answer."""
    from lifecycle_msgs.srv import GetState

    from swarm_ops.rosclient import call_service

    service = f"{namespace.rstrip('/')}/{node_name}/get_state"
    try:
        return call_service(
            node, GetState, service, GetState.Request(), timeout
        ).current_state.label
    except TimeoutError:
        return ""


def collect(
    node, namespaces: list[str] | None, *, node_name: str, wait: float
) -> list[RobotStatus]:
    """Every robot's status: those in `namespaces`, or the policy nodes found on the graph."""
    from swarm_ops.stop import fleet_robots

    listener = DiagnosticsListener(node, node_name)
    started = time.monotonic()
    if namespaces is None:
        namespaces = fleet_robots(node, node_name, wait)
    statuses = [RobotStatus(ns.strip("/")) for ns in namespaces]
    for ns, status in zip(namespaces, statuses, strict=True):
        status.state = lifecycle_state(node, ns, node_name, timeout=min(2.0, wait))
    # Diagnostics come once a second: wait for one from each node, at most `wait`.
    deadline = started + wait
    while time.monotonic() < deadline and not all(listener.get(ns) for ns in namespaces):
        time.sleep(0.05)
    for ns, status in zip(namespaces, statuses, strict=True):
        diag = listener.get(ns)
        if diag is not None:
            status_from_diagnostics(status, diag)
    return statuses


# --------------------------------------------------------------------------- #
# The command.
# --------------------------------------------------------------------------- #


def add_arguments(p: argparse.ArgumentParser) -> None:
    who = p.add_mutually_exclusive_group()
    who.add_argument(
        "--robots", help="comma-separated robot namespaces, e.g. tb3_0,tb3_1 (default: all found)"
    )
    who.add_argument("--fleet", type=Path, help="fleet YAML: every robot in it")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument(
        "--wait",
        type=float,
        # Longer than Fast DDS's 3 s between discovery announcements: a node
        # whose first announcement was lost is found at its next one.
        default=6.0,
        help="seconds to find the robots and hear their diagnostics (default 6)",
    )
    p.add_argument(
        "--node-name",
        default=DEFAULT_NODE_NAME,
        help=f"name of the policy nodes (default {DEFAULT_NODE_NAME})",
    )


def run(args: argparse.Namespace) -> int:
    if args.wait <= 0:
        raise ConfigError(f"--wait {args.wait}: must be > 0 seconds")
    namespaces = None
    if args.robots is not None:
        namespaces = [normalise_namespace(r) for r in args.robots.split(",") if r.strip()]
        if not namespaces:
            raise ConfigError(f"--robots {args.robots!r}: give names like tb3_0,tb3_1")
    elif args.fleet is not None:
        from swarm_ops.stop import fleet_namespaces

        namespaces = fleet_namespaces(args.fleet)
    from swarm_ops.rosclient import BackgroundNode

    with BackgroundNode(f"swarm_status_{os.getpid()}") as ros:
        statuses = collect(ros.node, namespaces, node_name=args.node_name, wait=args.wait)
    if not statuses:
        print(
            f"no '{args.node_name}' nodes found within {args.wait:g} s"
            f" (ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')})",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], indent=2, sort_keys=True))
    else:
        print(table([HEADER, *(s.row() for s in statuses)]))
    silent = [s.robot for s in statuses if not s.answered]
    if silent:
        print(f"no answer from {silent} within {args.wait:g} s", file=sys.stderr)
    return 1 if silent else 0


def main(argv: list[str] | None = None) -> int:
    """`ros2 run swarm_ops status` / `python -m swarm_ops.status`: the same as `swarm status`."""
    from swarm_ops.command import command_main

    return command_main(sys.modules[__name__], "swarm status", argv)


if __name__ == "__main__":
    sys.exit(main())
