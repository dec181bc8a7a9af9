"""Test-side ROS plumbing: a probe node that plays one robot's world, and node processes.

`RosProbe` is a `swarm_ops.rosclient.BackgroundNode` (its own rclpy context and
executor thread inside the test process) that publishes, records what comes
back with arrival times, and calls services. `NodeProcesses` starts real nodes
from fleet node specs through `swarm_ops.node_processes`, as `swarm deploy`
does, and always stops them (SIGINT, then kill), so a failing test never
leaves DDS participants behind. Every wait has a timeout and names what it
waited for.
"""

from __future__ import annotations

import collections
import math
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from swarm_controller.fleet import POLICY_NODE, NodeSpec
from swarm_ops.node_processes import NodeLauncher, node_environment, stop_processes
from swarm_ops.rosclient import BackgroundNode, call_service, latched_qos, set_parameters, wait_for

SCAN_RAYS = 360


# --------------------------------------------------------------------------- #
# Messages of a robot's world.
# --------------------------------------------------------------------------- #


def scan_msg(obstacle_ahead_m: float | None = None, stamp_sec: int = 0, stamp_nanosec: int = 0):
    """A 360-ray LaserScan from -pi: open space, or a wall within +-10 deg ahead."""
    from sensor_msgs.msg import LaserScan

    ranges = np.full(SCAN_RAYS, np.inf, dtype=np.float32)
    if obstacle_ahead_m is not None:
        angles = -math.pi + np.arange(SCAN_RAYS) * 2 * math.pi / SCAN_RAYS
        ranges[np.abs(angles) < math.radians(10)] = obstacle_ahead_m
    msg = LaserScan()
    msg.header.frame_id = "base_scan"
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_sec, stamp_nanosec
    msg.angle_min = -math.pi
    msg.angle_increment = 2 * math.pi / SCAN_RAYS
    msg.angle_max = msg.angle_min + msg.angle_increment * (SCAN_RAYS - 1)
    msg.range_min, msg.range_max = 0.12, 3.5
    msg.ranges = ranges.tolist()
    return msg


def odom_msg(x: float = 0.0, y: float = 0.0, yaw: float = 0.0, v: float = 0.0, w: float = 0.0):
    from nav_msgs.msg import Odometry

    msg = Odometry()
    msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    msg.pose.pose.orientation.z = math.sin(yaw / 2)
    msg.pose.pose.orientation.w = math.cos(yaw / 2)
    msg.twist.twist.linear.x, msg.twist.twist.angular.z = v, w
    return msg


def goal_msg(x: float, y: float, frame: str = "odom"):
    from geometry_msgs.msg import PoseStamped

    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.pose.position.x, msg.pose.position.y = x, y
    msg.pose.orientation.w = 1.0
    return msg


# --------------------------------------------------------------------------- #
# The probe.
# --------------------------------------------------------------------------- #


class Recorder:
    """Messages received on one topic with their arrival times (monotonic), oldest
    first; with `keep`, only the newest `keep` (`count` still counts them all)."""

    def __init__(self, keep: int | None = None) -> None:
        self._lock = threading.Lock()
        self._items: collections.deque[tuple[float, Any]] = collections.deque(maxlen=keep)
        self.count = 0
        self.subscription = None

    def __call__(self, msg) -> None:
        with self._lock:
            self._items.append((time.monotonic(), msg))
            self.count += 1

    def messages(self, since: float = 0.0) -> list:
        with self._lock:
            return [m for t, m in self._items if t >= since]

    def times(self, since: float = 0.0) -> list[float]:
        with self._lock:
            return [t for t, _ in self._items if t >= since]

    def last(self):
        with self._lock:
            return self._items[-1][1] if self._items else None

    def wait_for_count(self, count: int, timeout: float, what: str) -> list:
        """All kept messages, once `count` have arrived in total."""
        wait_for(lambda: self.count >= count, timeout, f"{count} message(s) on {what}")
        return self.messages()


class RosProbe(BackgroundNode):
    """The test's own node: publishes, records, calls services."""

    def __init__(self, domain_id: int, name: str = "test_probe") -> None:
        super().__init__(name, domain_id=domain_id)
        self._publishers: dict[str, Any] = {}

    def publisher(self, msg_type, topic: str, qos=10):
        return self.node.create_publisher(msg_type, topic, qos)

    def publish(self, topic: str, msg) -> None:
        """Publish on `topic` (one publisher per topic, made on first use)."""
        if topic not in self._publishers:
            self._publishers[topic] = self.publisher(type(msg), topic)
        self._publishers[topic].publish(msg)

    def record(self, msg_type, topic: str, qos=10, keep: int | None = None) -> Recorder:
        recorder = Recorder(keep)
        recorder.subscription = self.node.create_subscription(msg_type, topic, recorder, qos)
        return recorder

    def wait_for_subscriber(self, topic: str, timeout: float = 5.0) -> None:
        """Publishing before discovery completes would drop the first messages."""
        wait_for(
            lambda: self.node.count_subscribers(topic) > 0, timeout, f"a subscriber on {topic}"
        )

    def set_parameters(self, node_fqn: str, values: dict, timeout: float = 15.0) -> list:
        """Call `<node>/set_parameters` like `ros2 param set`; returns the results."""
        return set_parameters(self.node, node_fqn, values, timeout)

    def call_trigger(self, service: str, timeout: float = 5.0) -> Any:
        from std_srvs.srv import Trigger

        return call_service(self.node, Trigger, service, Trigger.Request(), timeout)


def wait_matched(entity, timeout: float = 10.0) -> None:
    """Wait until a publisher has a subscriber (or a recorder a publisher)."""
    entity = getattr(entity, "subscription", None) or entity
    count = getattr(entity, "get_subscription_count", None) or entity.get_publisher_count
    wait_for(lambda: count() > 0, timeout, f"a peer on {entity.topic_name}")


# --------------------------------------------------------------------------- #
# Node processes.
# --------------------------------------------------------------------------- #


def node_spec(namespace: str, executable: str = POLICY_NODE, **parameters) -> NodeSpec:
    """A node of swarm_controller (the policy node by default) in `namespace`;
    paths among the parameters become strings, as a launch file would pass them."""
    values = {k: str(v) if isinstance(v, Path) else v for k, v in parameters.items()}
    return NodeSpec(executable, executable, namespace, values)


class NodeProcesses:
    """Starts nodes as child processes, logs in `log_dir`; `stop_all` always cleans up."""

    def __init__(self, log_dir: Path) -> None:
        self.launcher = NodeLauncher(log_dir, env=node_environment(log_dir=log_dir / "ros_logs"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.specs: dict[str, NodeSpec] = {}

    def start(self, spec: NodeSpec) -> subprocess.Popen:
        proc = self.launcher.start(spec)
        self.procs[spec.label] = proc
        self.specs[spec.label] = spec
        return proc

    def start_policy_node(self, namespace: str, **params) -> subprocess.Popen:
        return self.start(node_spec(namespace, **params))

    def _label(self, name: str) -> str:
        """A label as given, or the policy node's label in namespace `name`."""
        return name if name in self.procs else node_spec(name).label

    def log(self, name: str) -> str:
        """Everything the node (label, or namespace of a policy node) printed so far."""
        path = self.launcher.log_path(self.specs[self._label(name)])
        return path.read_text() if path.exists() else ""

    def interrupt(self, name: str, timeout: float = 10.0) -> int:
        """SIGINT one node (like Ctrl-C) and wait for it to exit; returns its exit code."""
        [code] = stop_processes([self.procs[self._label(name)]], timeout)
        if code is None:
            raise AssertionError(f"{name} did not exit within {timeout} s of SIGINT")
        return code

    def stop_all(self) -> None:
        stop_processes(self.procs.values(), timeout=5.0)


# --------------------------------------------------------------------------- #
# One robot's world, seen from the probe.
# --------------------------------------------------------------------------- #


class RobotWorld:
    """Publishes one robot's scan/odom/goal and records its cmd_vel and active policy.

    Create it before starting the node: a subscriber that joins a latched
    topic late gets the old message only at the writer's next heartbeat,
    which takes up to seconds with Fast DDS defaults.
    """

    def __init__(
        self,
        probe: RosProbe,
        namespace: str,
        node_name: str = "policy_node",
        *,
        stamped: bool = True,
    ) -> None:
        """stamped: record cmd_vel as TwistStamped (the node's default) or Twist
        (a node started with cmd_vel_stamped=False)."""
        from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
        from nav_msgs.msg import Odometry
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import LaserScan
        from std_msgs.msg import String

        self.probe = probe
        self.namespace = namespace
        self.node_fqn = f"{namespace}/{node_name}"
        self.scan_pub = probe.publisher(LaserScan, f"{namespace}/scan", qos_profile_sensor_data)
        self.odom_pub = probe.publisher(Odometry, f"{namespace}/odom", qos_profile_sensor_data)
        self.goal_pub = probe.publisher(PoseStamped, f"{namespace}/goal", latched_qos())
        self.cmd = probe.record(TwistStamped if stamped else Twist, f"{namespace}/cmd_vel")
        self.active_policy = probe.record(String, f"{self.node_fqn}/active_policy", latched_qos())
        self.obstacle_ahead_m: float | None = None
        self.odom_frame = "odom"
        """header.frame_id of the fed odometry (a namespaced TurtleBot3: <ns>/odom)."""
        self._feed_timer = None

    def wait_ready(self, timeout: float = 20.0) -> dict:
        """Wait for the node's latched active policy and for every topic to match."""
        import json

        wait_for(self.active_policy.last, timeout, f"{self.node_fqn}/active_policy")
        for entity in (self.scan_pub, self.odom_pub, self.goal_pub, self.cmd):
            wait_matched(entity, timeout)
        return json.loads(self.active_policy.last().data)

    def policy_sha256(self) -> str:
        import json

        last = self.active_policy.last()
        return json.loads(last.data)["sha256"] if last else ""

    def send_goal(self, x: float, y: float) -> None:
        self.goal_pub.publish(goal_msg(x, y))

    def feed(self, rate_hz: float = 20.0) -> None:
        """Publish scan + odom (robot at the origin facing +x) at rate_hz until stop_feed."""

        def publish() -> None:
            self.scan_pub.publish(scan_msg(self.obstacle_ahead_m))
            odom = odom_msg()
            odom.header.frame_id = self.odom_frame
            self.odom_pub.publish(odom)

        self.stop_feed()
        publish()
        self._feed_timer = self.probe.node.create_timer(1.0 / rate_hz, publish)

    def stop_feed(self) -> None:
        if self._feed_timer is not None:
            self.probe.node.destroy_timer(self._feed_timer)
            self._feed_timer = None

    def commands(self, since: float = 0.0) -> list[tuple[float, float]]:
        return [velocity(m) for m in self.cmd.messages(since)]

    def wait_command(self, check: Callable[[float, float], bool], timeout: float, what: str):
        """Wait for a cmd_vel arriving from now on that satisfies check(v, w)."""
        since = time.monotonic()
        return wait_for(
            lambda: [c for c in self.commands(since) if check(*c)], timeout, f"cmd_vel {what}"
        )


def velocity(cmd) -> tuple[float, float]:
    """(linear.x, angular.z) of a Twist or TwistStamped command."""
    twist = getattr(cmd, "twist", cmd)
    return twist.linear.x, twist.angular.z


def diagnostic_error(diagnostics: Recorder, hardware_id: str) -> str | None:
    """The message of the first ERROR status from `hardware_id` recorded so far, or None."""
    from diagnostic_msgs.msg import DiagnosticStatus

    for msg in diagnostics.messages():
        for status in msg.status:
            if status.hardware_id == hardware_id and status.level == DiagnosticStatus.ERROR:
                return status.message
    return None


def change_state(probe: RosProbe, node_fqn: str, transition: int, timeout: float = 10.0) -> bool:
    """Call the lifecycle `<node>/change_state` service (what `ros2 lifecycle set` does)."""
    from lifecycle_msgs.srv import ChangeState

    request = ChangeState.Request()
    request.transition.id = transition
    service = f"{node_fqn}/change_state"
    return call_service(probe.node, ChangeState, service, request, timeout).success
