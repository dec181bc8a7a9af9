"""Test-side tools for driving the sim bridge over real DDS.

- `isolated_ros_env`: a ROS domain of its own (localhost discovery, Fast DDS)
  for a whole test module, so one bridge process can serve several tests.
- `BridgeProcess`: the sim bridge started as a separate process, stopped with
  SIGINT at the end, its output kept for failure messages.
- `RosProbe`: an rclpy node in its own context, spun in a background thread,
  that records topics, publishes commands and calls services.
- `drive_towards`: a proportional controller that steers one robot to a point
  through its odom and cmd_vel topics, as a policy node would.

Every wait has a timeout and says what it was waiting for, so a DDS hiccup
fails a test in seconds with a message instead of hanging it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from swarm_contract.robot_io import wrap_angle, yaw_from_quaternion

REPO = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = REPO / "ros2_ws" / "src" / "swarm_ops"
SAMPLE_PARAMS = PACKAGE_ROOT / "config" / "sim_bridge.yaml"


@contextlib.contextmanager
def isolated_ros_env() -> Iterator[int]:
    """Hold a ROS_DOMAIN_ID of our own (and localhost-only Fast DDS) for the block.

    The id comes from conftest's machine-wide pool (a lock file per id), so
    neither other tests nor other engineers' runs on this host share it.
    """
    from swarm_ops.ros_domains import claim_domain_id

    domain, lock = claim_domain_id()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ROS_DOMAIN_ID", str(domain))
            mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
            mp.setenv("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
            yield domain
    finally:
        lock.close()


def wait_until(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.01) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(poll)


# --------------------------------------------------------------------------- #
# The bridge process.
# --------------------------------------------------------------------------- #


def _ros_value(value: Any) -> str:
    """A parameter value as `-p name:=value` wants it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(f"'{v}'" for v in value) + "]"
    return str(value)


class BridgeProcess:
    """`python -m swarm_ops.sim_bridge` with the given parameters."""

    def __init__(
        self, params: dict[str, Any], log_dir: Path, params_file: Path | None = None
    ) -> None:
        cmd = [sys.executable, "-m", "swarm_ops.sim_bridge", "--ros-args"]
        if params_file is not None:
            cmd += ["--params-file", str(params_file)]
        for name, value in params.items():
            cmd += ["-p", f"{name}:={_ros_value(value)}"]
        env = dict(os.environ)
        # Works before `make setup` installs the package, and is harmless after.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")])
        )
        env["PYTHONUNBUFFERED"] = "1"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "sim_bridge.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def interrupt(self, timeout: float = 5.0) -> int:
        """SIGINT, as Ctrl-C would; returns the exit code (fails if it hangs)."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise AssertionError(
                f"sim bridge still running {timeout} s after SIGINT; output:\n{self.output()}"
            ) from err

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5.0)
        self._log.close()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"sim bridge exited with {self.process.returncode}; output:\n{self.output()}"
            )


# --------------------------------------------------------------------------- #
# The test-side node.
# --------------------------------------------------------------------------- #


class Recorder:
    """Messages of one subscription as they arrive (newest last, bounded)."""

    def __init__(self, keep: int) -> None:
        self._messages: collections.deque = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self._messages.append(msg)
            self.count += 1

    @property
    def messages(self) -> list:
        with self._lock:
            return list(self._messages)

    def latest(self) -> Any:
        with self._lock:
            return self._messages[-1] if self._messages else None

    def wait_for_count(self, count: int, timeout: float, what: str) -> list:
        wait_until(lambda: self.count >= count, timeout, f"{count} message(s) on {what}")
        return self.messages


class RosProbe:
    """An rclpy node of the test, in its own context, spinning in a thread."""

    def __init__(self, domain_id: int, name: str = "sim_bridge_probe") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._publishers: dict[str, Any] = {}

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        with contextlib.suppress(ExternalShutdownException):
            self.executor.spin()

    def listen(self, topic: str, msg_type: type, qos: Any, keep: int = 2000) -> Recorder:
        recorder = Recorder(keep)
        self.node.create_subscription(msg_type, topic, recorder, qos)
        return recorder

    def publish(self, topic: str, msg: Any) -> None:
        if topic not in self._publishers:
            self._publishers[topic] = self.node.create_publisher(type(msg), topic, 10)
        self._publishers[topic].publish(msg)

    def wait_for_subscriber(self, topic: str, timeout: float = 5.0) -> None:
        """Publishing before discovery completes would drop the first messages."""
        wait_until(
            lambda: self.node.count_subscribers(topic) > 0, timeout, f"a subscriber on {topic}"
        )

    def call_trigger(self, service: str, timeout: float = 5.0) -> Any:
        from std_srvs.srv import Trigger

        client = self.node.create_client(Trigger, service)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f"service {service} did not appear within {timeout} s")
            future = client.call_async(Trigger.Request())
            wait_until(future.done, timeout, f"the answer of {service}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)


class EventLog:
    """/swarm/events as parsed JSON objects."""

    def __init__(self, probe: RosProbe, topic: str = "/swarm/events") -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        qos = QoSProfile(
            depth=100,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._recorder = probe.listen(topic, String, qos, keep=10_000)

    def events(self, **match: Any) -> list[dict]:
        parsed = [json.loads(m.data) for m in self._recorder.messages]
        return [e for e in parsed if all(e.get(k) == v for k, v in match.items())]

    def wait_for(self, timeout: float, **match: Any) -> dict:
        found = wait_until(lambda: self.events(**match), timeout, f"an event matching {match}")
        return found[0]


# --------------------------------------------------------------------------- #
# Driving a robot from outside.
# --------------------------------------------------------------------------- #


def odom_pose(msg: Any) -> tuple[float, float, float]:
    """(x, y, yaw) of an Odometry message."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)


def stamp_seconds(msg: Any) -> float:
    """A header stamp (or a Clock message's time) in seconds."""
    stamp = msg.clock if hasattr(msg, "clock") else msg.header.stamp
    return stamp.sec + 1e-9 * stamp.nanosec


def twist(linear: float, angular: float) -> Any:
    from geometry_msgs.msg import Twist

    msg = Twist()
    msg.linear.x, msg.angular.z = float(linear), float(angular)
    return msg


def hold_command(
    probe: RosProbe, topic: str, linear: float, angular: float, seconds: float
) -> None:
    """Publish one command at 100 Hz (wall clock) for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        probe.publish(topic, twist(linear, angular))
        time.sleep(0.01)


def drive_towards(
    probe: RosProbe,
    odom: Recorder,
    cmd_topic: str,
    target: tuple[float, float],
    done: Callable[[], Any],
    timeout: float,
    max_linear: float = 0.22,
    max_angular: float = 2.84,
) -> Any:
    """Steer towards `target` (odom frame) until `done()` is truthy; returns its value.

    A proportional heading controller: turn towards the target, drive when
    roughly facing it, slow down near it.
    """
    deadline = time.monotonic() + timeout
    try:
        while True:
            result = done()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{cmd_topic}: driving towards {target} did not finish within {timeout} s"
                )
            msg = odom.latest()
            if msg is not None:
                x, y, yaw = odom_pose(msg)
                bearing = float(wrap_angle(math.atan2(target[1] - y, target[0] - x) - yaw))
                distance = math.hypot(target[0] - x, target[1] - y)
                w = max(-max_angular, min(max_angular, 4.0 * bearing))
                v = min(max_linear, 1.5 * distance) * max(0.0, math.cos(bearing)) ** 4
                probe.publish(cmd_topic, twist(v, w))
            time.sleep(0.01)
    finally:
        probe.publish(cmd_topic, twist(0.0, 0.0))
