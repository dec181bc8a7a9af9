"""Goals as users send them, to a real policy node process in TurtleBot3 Jazzy style.

One node in /robot_0 with prefixed frames (robot_0/odom), TwistStamped commands and
map_to_odom set: RViz's volatile 2D Goal Pose in map drives it toward the right
point, a goal in a foreign frame is refused with the reason on /diagnostics, an
empty-frame goal cancels, and after a restart a latched goal older than
max_goal_age is not resumed. Without map_to_odom, a map goal goes through TF (checked
in process with a stand-in for tf2_ros, which is not on PyPI).
"""

from __future__ import annotations

import math
import time

import pytest

pytest.importorskip("rclpy", reason="needs rclpy: pip install -e '.[ros]'")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import RobotWorld, goal_msg, wait_for, wait_matched  # noqa: E402

pytestmark = pytest.mark.ros

NAMESPACE = "/robot_0"
ODOM = "robot_0/odom"
# The robot started at (2, 1) in map, facing map +y: its odom x axis is map's +y,
# so a point 1 m to map +x of the start is 1 m to the robot's right.
START_IN_MAP = [2.0, 1.0, math.pi / 2]
MAX_GOAL_AGE = 2.0
# RViz's 2D Goal Pose publisher: reliable, volatile.
RVIZ_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def stamped_now(msg: PoseStamped, node) -> PoseStamped:
    """`msg` stamped with the time of `node`'s clock."""
    now = node.get_clock().now().nanoseconds * 1e-9
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
    return msg


def hold_message(diagnostics, since: float, words: tuple[str, ...], timeout: float = 5.0) -> str:
    """The first /diagnostics message of robot_0 from `since` on that has all `words`."""

    def found() -> str | None:
        for msg in diagnostics.messages(since):
            for status in msg.status:
                if status.hardware_id == NAMESPACE and all(w in status.message for w in words):
                    return status.message
        return None

    return wait_for(found, timeout, f"/diagnostics saying {words}")


def start_node(nodes, policy):
    return nodes.start_policy_node(
        NAMESPACE,
        policy_path=policy,
        map_to_odom=START_IN_MAP,
        max_goal_age=MAX_GOAL_AGE,
        live_policy_record="",
    )


def test_goals_in_map_foreign_frames_cancel_and_stale_latched_goals(probe, nodes, policy_models):
    policy = policy_models.reference_controller()
    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot = RobotWorld(probe, NAMESPACE)  # records TwistStamped, the node's default
    robot.odom_frame = ODOM
    rviz = probe.publisher(PoseStamped, f"{NAMESPACE}/goal", RVIZ_QOS)
    start_node(nodes, policy)
    robot.wait_ready()
    wait_matched(rviz)
    robot.feed()

    # RViz's 2D Goal Pose, 1 m to map +x of the start: the robot turns right. Taken
    # in odom as it is, (3, 1) would lie ahead-left and turn it left.
    rviz.publish(stamped_now(goal_msg(3.0, 1.0, frame="map"), probe.node))
    robot.wait_command(lambda v, w: w < -0.3, 5.0, "turning right toward the map goal")
    last = robot.cmd.last()
    assert last.header.frame_id == "robot_0/base_footprint"

    # A goal in another robot's frame: refused, the robot holds and says why.
    since = time.monotonic()
    rviz.publish(stamped_now(goal_msg(1.0, 0.0, frame="tb3_9/odom"), probe.node))
    robot.wait_command(lambda v, w: (v, w) == (0.0, 0.0), 5.0, "a zero for the refused goal")
    why = hold_message(diagnostics, since, ("refused", "'tb3_9/odom'"))
    assert ODOM in why and "map" in why, why

    # A goal in the robot's own odom frame drives; an empty frame_id cancels it.
    robot.goal_pub.publish(stamped_now(goal_msg(2.0, 0.0, frame=ODOM), probe.node))
    robot.wait_command(lambda v, w: v > 0.1, 5.0, "driving to the odom goal")
    since = time.monotonic()
    rviz.publish(goal_msg(0.0, 0.0, frame=""))
    robot.wait_command(lambda v, w: (v, w) == (0.0, 0.0), 5.0, "a zero after the cancel")
    hold_message(diagnostics, since, ("cancelled",))
    # The latched goal reached the node on both of its goal subscriptions: once in the log.
    assert nodes.log(NAMESPACE).count(f"goal (2.00, 0.00) in frame '{ODOM}'") == 1

    # Driving to a latched goal, the node dies and comes back after max_goal_age:
    # the goal is refused, the robot holds and says why.
    robot.goal_pub.publish(stamped_now(goal_msg(1.5, 0.0, frame=ODOM), probe.node))
    robot.wait_command(lambda v, w: v > 0.1, 5.0, "driving to the latched goal")
    nodes.interrupt(NAMESPACE)
    time.sleep(MAX_GOAL_AGE + 0.2)
    since = time.monotonic()
    start_node(nodes, policy)
    why = hold_message(diagnostics, since, ("older than max_goal_age",), timeout=20.0)
    assert "(1.50, 0.00)" in why and "not resumed" in why
    moving = [c for c in robot.commands(since) if c != (0.0, 0.0)]
    assert not moving, f"the respawned node drove to the stale goal: {moving}"


class FakeTf:
    """Stands in for tf2_ros (not on PyPI): a Buffer that knows map -> robot_0/odom
    once `odom_in_map` is set, and a listener that does nothing."""

    odom_in_map: tuple[float, float] | None = None
    looked_up: list[tuple[str, str]] = []

    class Buffer:
        def lookup_transform(self, target: str, source: str, when):
            from geometry_msgs.msg import TransformStamped

            FakeTf.looked_up.append((target, source))
            if FakeTf.odom_in_map is None:
                raise LookupError(f'"{target}" passed to lookupTransform does not exist')
            t = TransformStamped()
            t.transform.translation.x, t.transform.translation.y = FakeTf.odom_in_map
            t.transform.rotation.w = 1.0
            return t

    class TransformListener:
        def __init__(self, buffer, node) -> None:
            pass


def test_a_map_goal_goes_through_tf_when_map_to_odom_is_unset(
    ros_domain, policy_models, monkeypatch
):
    """The ROS-distro road, in process: the node asks TF for map -> its odom frame."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from ros_helpers import odom_msg

    from swarm_controller import policy_node

    monkeypatch.setitem(__import__("sys").modules, "tf2_ros", FakeTf)
    monkeypatch.setattr(policy_node, "TF_AVAILABLE", True)
    policy = policy_models.reference_controller()
    context = rclpy.Context()
    rclpy.init(args=["--ros-args", "-r", "__ns:=/robot_0"], context=context)
    node = policy_node.PolicyNode(
        context=context,
        parameter_overrides=[
            Parameter("policy_path", value=str(policy)),
            Parameter("live_policy_record", value=""),
        ],
    )
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node._problem
        odom = odom_msg()
        odom.header.frame_id = ODOM
        node._on_odom(odom)
        node._on_goal(stamped_now(goal_msg(3.0, 1.0, frame="map"), node))
        # No transform yet: no goal, and the hold says which one is missing.
        assert node._goal is None and f"no transform map -> {ODOM}" in node._goal_note
        FakeTf.odom_in_map = (1.0, 1.0)
        node._resolve_goal()
        assert node._goal == pytest.approx((2.0, 0.0))
        assert FakeTf.looked_up[-1] == ("map", ODOM)
    finally:
        FakeTf.odom_in_map = None
        node.destroy_node()
        rclpy.try_shutdown(context=context)
