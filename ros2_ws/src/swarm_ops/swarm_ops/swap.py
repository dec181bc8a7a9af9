"""`swarm swap`: put a new policy on running robots, each through its policy_path parameter.

    swarm swap --policy models/<name> --all
    swarm swap --policy models/<name> --robots robot_0,robot_3 --timeout 10
    swarm swap --policy models/<name>/policy.onnx --all --expected-sha256 <64 hex digits>

Each robot's policy node gets `<folder>/robot_<i>.onnx`, i taken from its
namespace `robot_<i>` (or `<folder>/policy.onnx` for every robot when the folder
holds that single shared model), through the standard rcl_interfaces
SetParameters service, the same call `ros2 param set` makes. The node checks
the file and answers; this command prints one line per robot, "accepted" or
"rejected: <reason>", and exits non-zero if any robot did not take the policy.
A robot that refuses keeps driving with its previous policy.

`--expected-sha256` pins a known model: the same request sets the node's
`expected_sha256` parameter (first) and `policy_path`, so the robot refuses
any file with other contents, however it got there (a wrong path, a file
changed between review and swap). The hash comes from the operator (the
`sha256sum` of the reviewed model), never from the file being sent: a hash
computed from that file would vouch for whatever it holds. A file here that
already differs is refused without asking the robot. The service applies
the values one by one, so a robot that refuses the file for another reason
(its contract, say) keeps the new pin and its old policy. Without the option
the node's expected_sha256 stays as it was (empty: no pin).

rclpy is imported only when the command runs, so `swarm --help` works without ROS.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from swarm_ops.rosclient import (
    BackgroundNode,
    discover_until_settled,
    parameters_request,
    wait_future,
)

SHARED_MODEL = "policy.onnx"
DEFAULT_NODE_NAME = "policy_node"
_ROBOT_NAMESPACE = re.compile(r"(?:^|/)robot_(\d+)$")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class SwapError(ValueError):
    """No model file for a robot in the given folder; the message says what is there."""


@dataclass
class SwapOutcome:
    """What one robot answered."""

    namespace: str
    policy_file: Path | None
    accepted: bool
    reason: str = ""

    def line(self) -> str:
        """`robot_0: accepted (<file>)` or `robot_0: rejected: <reason>`."""
        name = self.namespace.strip("/")
        if self.accepted:
            return f"{name}: accepted ({self.policy_file})"
        return f"{name}: rejected: {self.reason}"


# --------------------------------------------------------------------------- #
# Which file goes to which robot (no ROS needed).
# --------------------------------------------------------------------------- #


def normalise_namespace(name: str) -> str:
    """`robot_0`, `/robot_0/` -> `/robot_0`."""
    return "/" + name.strip().strip("/")


def agent_index(namespace: str) -> int | None:
    """The robot's index from a namespace ending in `robot_<i>`, else None."""
    match = _ROBOT_NAMESPACE.search(namespace.rstrip("/"))
    return int(match.group(1)) if match else None


def policy_file_for(policy: Path, namespace: str) -> Path:
    """The model file a robot should load from `policy` (a folder or one .onnx file).

    Raises SwapError naming the robot and what the folder holds instead.
    """
    if policy.is_file():
        return policy.absolute()
    if not policy.is_dir():
        raise SwapError(f"--policy {policy}: no such folder or file; give models/<name>")
    shared = policy / SHARED_MODEL
    if shared.is_file():
        return shared.absolute()
    index = agent_index(namespace)
    if index is None:
        raise SwapError(
            f"cannot tell which robot_<i>.onnx {namespace} needs: its namespace does not end"
            f" in robot_<i>; put a single {SHARED_MODEL} in {policy} or pass one .onnx file"
        )
    path = policy / f"robot_{index}.onnx"
    if path.is_file():
        return path.absolute()
    # Same rule as the fleet spec and `swarm eval`: with n files, robot k takes
    # robot_<k mod n>.onnx, so a policy trained on fewer robots drives more.
    files = sorted(policy.glob("robot_*.onnx"))
    numbered = {
        int(m.group(1)): f for f in files if (m := re.fullmatch(r"robot_(\d+)\.onnx", f.name))
    }
    if numbered and sorted(numbered) == list(range(len(numbered))):
        return numbered[index % len(numbered)].absolute()
    present = sorted(p.name for p in policy.glob("*.onnx"))
    raise SwapError(f"{policy} has no robot_{index}.onnx (it holds {present or 'no models'})")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_sha256(text: str) -> str:
    """A sha256 as `sha256sum` prints it (64 hex digits, any case) -> lower case."""
    value = text.strip().lower()
    if not _SHA256.fullmatch(value):
        raise SwapError(
            f"--expected-sha256 {text!r}: give the 64 hex digits `sha256sum <model>.onnx` prints"
        )
    return value


# --------------------------------------------------------------------------- #
# The command.
# --------------------------------------------------------------------------- #


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        type=Path,
        required=True,
        help="models/<name> folder (robot_<i>.onnx per robot, or one policy.onnx for all),"
        " or a single .onnx file for every chosen robot",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--robots", help="comma-separated robot namespaces, e.g. robot_0,robot_3")
    who.add_argument("--all", action="store_true", help="every policy node found on the ROS graph")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for robots to appear and to answer (default 10)",
    )
    p.add_argument(
        "--node-name",
        default=DEFAULT_NODE_NAME,
        help=f"name of the policy nodes (default {DEFAULT_NODE_NAME})",
    )
    p.add_argument(
        "--expected-sha256",
        metavar="HEX",
        help="only a model with this sha256 (as `sha256sum` prints it) may drive: the robot"
        " refuses any other file; for one .onnx or a shared policy.onnx",
    )


def run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        print(f"--timeout {args.timeout}: must be > 0 seconds", file=sys.stderr)
        return 2
    if not args.policy.exists():
        print(
            f"--policy {args.policy}: no such folder or file; give models/<name>", file=sys.stderr
        )
        return 2
    expected = None
    if args.expected_sha256 is not None:
        try:
            expected = checked_sha256(args.expected_sha256)
        except SwapError as err:
            print(str(err), file=sys.stderr)
            return 2
    if args.robots is not None:
        namespaces = [normalise_namespace(r) for r in args.robots.split(",") if r.strip()]
        if not namespaces:
            print(f"--robots {args.robots!r}: give names like robot_0,robot_3", file=sys.stderr)
            return 2

    with BackgroundNode(f"swarm_swap_{os.getpid()}") as ros:
        node = ros.node
        if args.all:
            namespaces = discover_policy_nodes(node, args.node_name, args.timeout)
            if not namespaces:
                print(
                    f"no '{args.node_name}' nodes found within {args.timeout:g} s"
                    f" (ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')});"
                    " are the robots running, on this domain?",
                    file=sys.stderr,
                )
                return 2
        outcomes = swap_policies(
            node, namespaces, args.policy, args.node_name, args.timeout, expected
        )
        if args.all:
            outcomes += swap_late_robots(node, namespaces, args, expected)
    for outcome in outcomes:
        print(outcome.line())
    rejected = sum(not o.accepted for o in outcomes)
    if rejected:
        print(f"{rejected} of {len(outcomes)} robot(s) kept their previous policy")
    return 1 if rejected else 0


def discover_policy_nodes(node, node_name: str, timeout: float) -> list[str]:
    """Namespaces of nodes called `node_name`, once discovery has settled.

    Discovery trickles in: on a busy machine (or a fleet on Wi-Fi) the second
    robot can appear well over half a second after the first, so wait until the
    set has not grown for `settle` seconds (or the timeout passes). A robot
    whose first discovery messages were lost shows up at its next announcement
    (Fast DDS repeats them every 3 s), so `settle` is longer than that, with
    room for a starved process: 3.5 s once missed a robot on a loaded machine.
    """
    found = discover_until_settled(
        lambda: {ns for name, ns in node.get_node_names_and_namespaces() if name == node_name},
        timeout,
        settle=min(5.0, timeout / 2),
    )
    return sorted(found, key=lambda ns: (agent_index(ns) is None, agent_index(ns) or 0, ns))


def swap_late_robots(node, swapped: list[str], args, expected: str | None) -> list[SwapOutcome]:
    """Swap the policy nodes that discovery found only after the first round.

    On a loaded machine one robot of two has stayed out of the graph for over
    3.5 s after the other appeared: `--all` promises every robot running, so
    one that shows up while the first round is answered gets its own round.
    """
    done = set(swapped)
    outcomes: list[SwapOutcome] = []
    while True:
        late = sorted(set(discover_policy_nodes(node, args.node_name, 0.5)) - done)
        if not late:
            return outcomes
        done |= set(late)
        outcomes += swap_policies(node, late, args.policy, args.node_name, args.timeout, expected)


def swap_policies(
    node,
    namespaces: list[str],
    policy: Path,
    node_name: str,
    timeout: float,
    expected_sha256: str | None = None,
) -> list[SwapOutcome]:
    """Ask every robot at once to load its file; collect each answer (or timeout).

    With `expected_sha256` the request sets that parameter first, then policy_path.
    """
    from rcl_interfaces.srv import SetParameters

    outcomes: dict[str, SwapOutcome] = {}
    pending = {}
    deadline = time.monotonic() + timeout
    for ns in namespaces:
        try:
            path = policy_file_for(policy, ns)
        except SwapError as err:
            outcomes[ns] = SwapOutcome(ns, None, False, str(err))
            continue
        values = {"policy_path": str(path)}
        if expected_sha256 is not None:
            actual = file_sha256(path)
            if actual != expected_sha256:
                outcomes[ns] = SwapOutcome(
                    ns,
                    path,
                    False,
                    f"{path} has sha256 {actual}, not the expected {expected_sha256};"
                    " not sent to the robot",
                )
                continue
            values = {"expected_sha256": expected_sha256, **values}
        service = f"{ns.rstrip('/')}/{node_name}/set_parameters"
        client = node.create_client(SetParameters, service)
        outcomes[ns] = SwapOutcome(ns, path, False, f"no answer within {timeout:g} s")
        pending[ns] = (client, values, service)

    futures = {}
    for ns, (client, values, service) in pending.items():
        if not client.wait_for_service(timeout_sec=max(0.0, deadline - time.monotonic())):
            outcomes[
                ns
            ].reason = f"no {service} service within {timeout:g} s (is the node running?)"
            continue
        futures[ns] = client.call_async(parameters_request(values))

    for ns, future in futures.items():
        answer = wait_future(future, deadline - time.monotonic())
        if answer is None:
            continue
        # One result per value, in order; the swap took only if every one did.
        refused = [r for r in answer.results if not r.successful]
        outcomes[ns].accepted = not refused
        outcomes[ns].reason = refused[0].reason if refused else ""
    for client, _, _ in pending.values():
        node.destroy_client(client)
    return [outcomes[ns] for ns in namespaces]


def main(argv: list[str] | None = None) -> int:
    """`ros2 run swarm_ops swap` / `python -m swarm_ops.swap`: the same as `swarm swap`."""
    from swarm_ops.command import command_main

    return command_main(sys.modules[__name__], "swarm swap", argv)


if __name__ == "__main__":
    sys.exit(main())
