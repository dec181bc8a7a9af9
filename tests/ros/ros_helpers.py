"""Test-side ROS plumbing: a probe node that plays one robot's world, and node processes.

`RosProbe` runs its own rclpy context and executor thread inside the test
process: it publishes a robot's scan/odom/goal, records what comes back, and
calls parameter services. `NodeProcesses` starts real policy nodes as child
processes and always stops them (SIGINT, then kill), so a failing test never
leaves DDS participants behind. Every wait has a timeout.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PACKAGE_SRC = REPO / "ros2_ws" / "src" / "swarm_controller"
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


def latched_qos():
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


# --------------------------------------------------------------------------- #
# The probe.
# --------------------------------------------------------------------------- #


class Recorder:
    """Messages received on one topic, with their arrival time (monotonic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[float, object]] = []
        self.subscription = None

    def __call__(self, msg) -> None:
        with self._lock:
            self._items.append((time.monotonic(), msg))

    def messages(self, since: float = 0.0) -> list:
        with self._lock:
            return [m for t, m in self._items if t >= since]

    def times(self, since: float = 0.0) -> list[float]:
        with self._lock:
            return [t for t, _ in self._items if t >= since]

    def last(self):
        with self._lock:
            return self._items[-1][1] if self._items else None


class RosProbe:
    """A node in the test process with its own context and spin thread."""

    def __init__(self, domain_id: int, name: str = "test_probe") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self.context = Context()
        rclpy.init(
            context=self.context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="probe-spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context going down under us at close()
                if self._running and self.context.ok():
                    raise
                return

    def publisher(self, msg_type, topic: str, qos=10):
        return self.node.create_publisher(msg_type, topic, qos)

    def record(self, msg_type, topic: str, qos=10) -> Recorder:
        recorder = Recorder()
        recorder.subscription = self.node.create_subscription(msg_type, topic, recorder, qos)
        return recorder

    def set_parameters(self, node_fqn: str, values: dict, timeout: float = 15.0) -> list:
        """Call `<node>/set_parameters` like `ros2 param set`; returns the results."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f"{node_fqn}/set_parameters")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f"no {node_fqn}/set_parameters service within {timeout} s")
            request = SetParameters.Request(
                parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
            )
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            if not done.wait(timeout):
                raise AssertionError(f"{node_fqn}/set_parameters gave no answer in {timeout} s")
            return list(future.result().results)
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def wait_for(predicate: Callable[[], object], timeout: float, what: str, poll: float = 0.02):
    """Poll until predicate() is truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_matched(entity, timeout: float = 10.0) -> None:
    """Wait until a publisher has a subscriber (or a recorder a publisher)."""
    entity = getattr(entity, "subscription", None) or entity
    count = getattr(entity, "get_subscription_count", None) or entity.get_publisher_count
    wait_for(lambda: count() > 0, timeout, f"a peer on {entity.topic_name}")


# --------------------------------------------------------------------------- #
# Policy node processes.
# --------------------------------------------------------------------------- #


def ros_param(value) -> str:
    """A Python value as `-p name:=value` text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(f"'{v}'" for v in value) + "]"
    return str(value)


def child_env() -> dict[str, str]:
    """Environment for node processes: the test's DDS settings, the package importable."""
    env = dict(os.environ)
    paths = [str(PACKAGE_SRC), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class NodeProcesses:
    """Starts policy nodes as child processes; `stop_all` always cleans up."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start_policy_node(self, namespace: str, **params) -> subprocess.Popen:
        args = [sys.executable, "-m", "swarm_controller.policy_node", "--ros-args"]
        args += ["-r", f"__ns:={namespace}"]
        for key, value in params.items():
            args += ["-p", f"{key}:={ros_param(value)}"]
        log = open(self.log_dir / f"{namespace.strip('/').replace('/', '_')}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=child_env())
        log.close()
        self.procs[namespace] = proc
        return proc

    def log(self, namespace: str) -> str:
        path = self.log_dir / f"{namespace.strip('/').replace('/', '_')}.log"
        return path.read_text() if path.exists() else ""

    def interrupt(self, namespace: str, timeout: float = 10.0) -> int:
        """SIGINT one node (like Ctrl-C) and wait for it to exit; returns its exit code."""
        proc = self.procs[namespace]
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{namespace} did not exit within {timeout} s of SIGINT") from None

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- #
# One robot's world, seen from the probe.
# --------------------------------------------------------------------------- #


class RobotWorld:
    """Publishes one robot's scan/odom/goal and records its cmd_vel and active policy.

    Create it before starting the node: a subscriber that joins a latched
    topic late gets the old message only at the writer's next heartbeat,
    which takes up to seconds with Fast DDS defaults.
    """

    def __init__(self, probe: RosProbe, namespace: str, node_name: str = "policy_node") -> None:
        from geometry_msgs.msg import PoseStamped, Twist
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
        self.cmd = probe.record(Twist, f"{namespace}/cmd_vel")
        self.active_policy = probe.record(String, f"{self.node_fqn}/active_policy", latched_qos())
        self.obstacle_ahead_m: float | None = None
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
            self.odom_pub.publish(odom_msg())

        self.stop_feed()
        publish()
        self._feed_timer = self.probe.node.create_timer(1.0 / rate_hz, publish)

    def stop_feed(self) -> None:
        if self._feed_timer is not None:
            self.probe.node.destroy_timer(self._feed_timer)
            self._feed_timer = None

    def commands(self, since: float = 0.0) -> list[tuple[float, float]]:
        return [(m.linear.x, m.angular.z) for m in self.cmd.messages(since)]

    def wait_command(self, check: Callable[[float, float], bool], timeout: float, what: str):
        """Wait for a cmd_vel arriving from now on that satisfies check(v, w)."""
        since = time.monotonic()
        return wait_for(
            lambda: [c for c in self.commands(since) if check(*c)], timeout, f"cmd_vel {what}"
        )


def change_state(probe: RosProbe, node_fqn: str, transition: int, timeout: float = 10.0) -> bool:
    """Call the lifecycle `<node>/change_state` service (what `ros2 lifecycle set` does)."""
    from lifecycle_msgs.srv import ChangeState

    client = probe.node.create_client(ChangeState, f"{node_fqn}/change_state")
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            raise AssertionError(f"no {node_fqn}/change_state service within {timeout} s")
        request = ChangeState.Request()
        request.transition.id = transition
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise AssertionError(f"{node_fqn}/change_state gave no answer in {timeout} s")
        return future.result().success
    finally:
        probe.node.destroy_client(client)
