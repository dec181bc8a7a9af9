"""Fuzzing the policy node's callbacks with what a broken or hostile robot could send.

A real `PolicyNode` runs in this process (its own rclpy context on a claimed
DDS domain), configured and activated with a real ONNX policy. hypothesis
draws sequences of LaserScan, Odometry and goal (PoseStamped) messages and
control ticks (tests/fuzz_messages.py: NaN, +-inf, huge values, scans of
0..2000 rays, bad geometry, non-unit quaternions, goals at 1e300) and hands
them to `_on_scan`, `_on_odom`, `_on_goal` and `_on_control_timer` directly.
Only DDS delivery is skipped, which is what makes thousands of examples
affordable: the node's own code, numpy and onnxruntime all run, and the
messages are the types a subscription hands over (scan ranges as the float32
array rclpy deserialises). What the node publishes on cmd_vel and /diagnostics
is recorded instead of sent.

What must hold, whatever arrives in whatever order: no callback raises, every
command is finite and within the limits the node reports on /diagnostics (its
parameters capped to the robot profile), and a refused scan is explained in
the scan's own terms, never in numpy's.
"""

from __future__ import annotations

import array
import math
import time
from dataclasses import dataclass, field

import pytest
from conftest import NEEDS_OPS

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")
pytest.importorskip("hypothesis", reason="needs hypothesis (dev extras): pip install -e '.[dev]'")

from fuzz_messages import (
    GOALS,
    ODOMETRY,
    assert_no_leaked_error,
    assert_reads_like_a_scan_refusal,
    fuzz_settings,
    laser_scans,
)
from geometry_msgs.msg import PoseStamped
from hypothesis import event, given
from hypothesis import strategies as st
from nav_msgs.msg import Odometry
from ros_helpers import velocity
from sensor_msgs.msg import LaserScan

# Two in-process nodes, 1,750 message sequences each: ~15 s.
pytestmark = [pytest.mark.ros, pytest.mark.slow]

# --------------------------------------------------------------------------- #
# Messages from drawn fields.
# --------------------------------------------------------------------------- #


def scan_message(fields: dict) -> LaserScan:
    msg = LaserScan()
    msg.header.frame_id = "base_scan"
    # What rclpy hands a subscription: the ranges as a float32 array.
    msg.ranges = array.array("f", fields["ranges"].tobytes())
    msg.angle_min = fields["angle_min"]
    msg.angle_increment = fields["angle_increment"]
    msg.range_min, msg.range_max = fields["range_min"], fields["range_max"]
    return msg


def odom_message(fields: dict) -> Odometry:
    msg = Odometry()
    msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
    msg.pose.pose.position.x, msg.pose.pose.position.y = fields["x"], fields["y"]
    q = msg.pose.pose.orientation
    q.x, q.y, q.z, q.w = fields["q"]
    msg.twist.twist.linear.x, msg.twist.twist.angular.z = fields["v"], fields["w"]
    return msg


def goal_message(xy: tuple[float, float]) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = "odom"
    msg.pose.position.x, msg.pose.position.y = xy
    msg.pose.orientation.w = 1.0
    return msg


EVENTS = st.lists(
    st.one_of(
        laser_scans().map(lambda fields: ("scan", scan_message(fields))),
        ODOMETRY.map(lambda fields: ("odom", odom_message(fields))),
        GOALS.map(lambda xy: ("goal", goal_message(xy))),
        st.just(("tick", None)),
    ),
    min_size=1,
    max_size=6,
)


# --------------------------------------------------------------------------- #
# The node, in process, with its publishers recorded.
# --------------------------------------------------------------------------- #


class Published:
    """Stands in for one of the node's publishers: keeps what `publish` is given
    (through `keep`, since the node refills one message object), and passes
    anything else the node asks of a publisher to the real one."""

    def __init__(self, real, keep) -> None:
        self.real = real
        self.keep = keep
        self.items: list = []

    def publish(self, msg) -> None:
        self.items.append(self.keep(msg))

    def __getattr__(self, name: str):
        return getattr(self.real, name)


def record_publisher(node, topic: str, keep) -> Published:
    """Replace the node's publisher on `topic` (wherever the node keeps it) by a recorder."""
    [real] = [p for p in node.publishers if p.topic_name == topic]
    holders = [name for name, value in vars(node).items() if value is real]
    assert holders, f"the node keeps no attribute holding its {topic} publisher"
    recorder = Published(real, keep)
    for name in holders:
        setattr(node, name, recorder)
    return recorder


@dataclass
class FuzzedNode:
    node: object
    commands: Published
    diagnostics: Published
    limits: tuple[float, float] = field(default=(0.0, 0.0))
    non_finite_outputs: int = 0

    def call(self, kind: str, msg) -> None:
        if kind == "scan":
            self.node._on_scan(msg)
        elif kind == "odom":
            self.node._on_odom(msg)
        elif kind == "goal":
            self.node._on_goal(msg)
        else:
            self.node._on_control_timer()

    def status(self):
        """The node's /diagnostics status, published now."""
        self.node.publish_diagnostics()
        return self.diagnostics.items[-1]


def diagnostic_values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def drive_until_moving(fuzzed: FuzzedNode, timeout: float = 10.0) -> None:
    """Feed a sane world (open space, goal 2 m ahead, rolling slowly) until the
    node commands motion: proves the recorder sees the node's commands, and waits
    out the node's start-up hold (it does not drive before it could hear a
    latched e-stop)."""
    from ros_helpers import goal_msg, odom_msg, scan_msg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kind, msg in (
            ("odom", odom_msg(v=0.05)),
            ("goal", goal_msg(2.0, 0.0)),
            ("scan", scan_msg()),
            ("tick", None),
        ):
            fuzzed.call(kind, msg)
        if any(v != 0.0 for v, _ in fuzzed.commands.items):
            return
        time.sleep(0.05)
    raise AssertionError(
        f"the node never drove in a sane world within {timeout} s:"
        f" {fuzzed.status().message!r}, commands {fuzzed.commands.items[-3:]}"
    )


# Each case: the policy, the node's parameters, and the limits it must report.
CASES = {
    # An overflowing model, run on the control timer; max_linear is asked above
    # the Burger's 0.22 m/s and must be capped to it.
    "overflowing model, timer": ("overflowing", {"max_linear": 5.0}, (0.22, 2.84)),
    # A sensible model, run on each scan; max_angular is below the Burger's.
    "reference model, on scan": (
        "reference_controller",
        {"control_on_scan": True, "max_angular": 1.5},
        (0.22, 1.5),
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def fuzzed_node(request, tmp_path_factory):
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.logging import LoggingSeverity
    from rclpy.parameter import Parameter

    pytest.importorskip("onnx", reason="needs onnx to build test models: pip install onnx")
    domains = pytest.importorskip("swarm_ops.ros_domains", reason=NEEDS_OPS)
    onnx_models = pytest.importorskip("swarm_ops.onnx_models", reason=NEEDS_OPS)
    from swarm_controller.policy_node import PolicyNode

    model, overrides, expected_limits = CASES[request.param]
    folder = tmp_path_factory.mktemp("fuzz_node_models")
    policy = getattr(onnx_models.PolicyModels(folder), model)()
    domain, lock = domains.claim_domain_id()
    context = rclpy.Context()
    with pytest.MonkeyPatch.context() as env:
        for name, value in domains.private_domain_environment(domain).items():
            env.setenv(name, value)
        rclpy.init(args=[], context=context, domain_id=domain)
        params = {
            "policy_path": str(policy),
            "allowed_policy_dirs": [str(folder)],
            "live_policy_record": "",  # no resume file: this node must run `policy`
            **overrides,
        }
        node = PolicyNode(
            context=context,
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
        )
    try:
        # Holds and goals are logged at info on every change; the fuzz makes thousands.
        node.get_logger().set_level(LoggingSeverity.ERROR)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node._problem
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        fuzzed = FuzzedNode(
            node,
            commands=record_publisher(node, node.resolve_topic_name("cmd_vel"), velocity),
            diagnostics=record_publisher(node, "/diagnostics", lambda m: m.status[0]),
        )
        drive_until_moving(fuzzed)
        limits = diagnostic_values(fuzzed.status())["speed_limits"]
        fuzzed.limits = tuple(float(part.split()[0]) for part in limits.split(","))
        assert fuzzed.limits == expected_limits, f"speed_limits on /diagnostics: {limits}"
        yield fuzzed
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        lock.close()


@fuzz_settings(examples=1750)
@given(events=EVENTS)
def test_no_message_sequence_makes_the_node_raise_or_command_outside_its_limits(
    fuzzed_node, events
):
    fuzzed = fuzzed_node
    fuzzed.commands.items.clear()
    for kind, msg in events:
        fuzzed.call(kind, msg)  # must not raise

    max_linear, max_angular = fuzzed.limits
    for v, w in fuzzed.commands.items:
        assert math.isfinite(v) and math.isfinite(w), f"cmd_vel ({v}, {w}) is not finite"
        assert abs(v) <= max_linear and abs(w) <= max_angular, (
            f"cmd_vel ({v}, {w}) exceeds the limits ({max_linear}, {max_angular})"
        )
    event("commanded motion" if any(fuzzed.commands.items) else "no motion")

    status = fuzzed.status()
    non_finite = int(diagnostic_values(status).get("non_finite_commands", "0"))
    if non_finite > fuzzed.non_finite_outputs:
        event("policy output not finite")
        fuzzed.non_finite_outputs = non_finite
    for text in (status.message, *diagnostic_values(status).values()):
        assert_no_leaked_error(text)
    if status.message.startswith("scan refused"):
        event("scan refused")
        assert_reads_like_a_scan_refusal(status.message)


def test_odometry_with_a_nan_heading_holds_the_robot_and_says_why(fuzzed_node):
    from ros_helpers import goal_msg, odom_msg, scan_msg

    fuzzed = fuzzed_node
    drive_until_moving(fuzzed)
    nan_heading = odom_msg(v=0.05)
    nan_heading.pose.pose.orientation.w = math.nan
    for kind, msg in (("odom", nan_heading), ("goal", goal_msg(2.0, 0.0)), ("scan", scan_msg())):
        fuzzed.call(kind, msg)
    fuzzed.commands.items.clear()
    fuzzed.call("tick", None)

    assert "not finite" in fuzzed.status().message
    assert all(cmd == (0.0, 0.0) for cmd in fuzzed.commands.items)
