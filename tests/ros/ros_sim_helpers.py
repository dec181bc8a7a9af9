"""Test-side tools for driving the sim bridge over real DDS.

- `isolated_ros_env`: a ROS domain of its own (localhost discovery) for a
  whole test module, so one bridge process can serve several tests.
- `BridgeProcess`: the sim bridge started as a separate process (the fleet's
  node spec, through `swarm_ops.node_processes`), stopped with SIGINT at the
  end, its output kept for failure messages.
- `EventLog`: the bridge's /swarm/events, heard by a `ros_helpers.RosProbe`.
- `drive_towards`: a proportional controller that steers one robot to a point
  through its odom and cmd_vel topics, as a policy node would.

Every wait has a timeout and says what it was waiting for, so a DDS hiccup
fails a test in seconds with a message instead of hanging it.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ros_helpers import Recorder, RosProbe, wait_for

from swarm_contract.robot_io import wrap_angle, yaw_from_quaternion
from swarm_controller.fleet import SIM_BRIDGE, SIM_PACKAGE, NodeSpec
from swarm_ops.node_processes import NodeLauncher, node_environment, stop_processes
from swarm_ops.rosclient import latched_qos

REPO = Path(__file__).resolve().parents[2]
SAMPLE_PARAMS = REPO / "ros2_ws" / "src" / "swarm_ops" / "config" / "sim_bridge.yaml"


@contextlib.contextmanager
def isolated_ros_env() -> Iterator[int]:
    """Hold a ROS_DOMAIN_ID of our own (and localhost-only Fast DDS) for the block.

    The id comes from the machine-wide pool of conftest's `ros_domain` (a lock
    file per id), so neither other tests nor other engineers' runs on this host
    share it.
    """
    from swarm_ops.ros_domains import claim_domain_id, private_domain_environment

    domain, lock = claim_domain_id()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in private_domain_environment(domain).items():
                mp.setenv(name, value)
            yield domain
    finally:
        lock.close()


# --------------------------------------------------------------------------- #
# The bridge process.
# --------------------------------------------------------------------------- #


class BridgeProcess:
    """`python -m swarm_ops.sim_bridge` with the given parameters (over `params_file`)."""

    def __init__(
        self, params: dict[str, Any], log_dir: Path, params_file: Path | None = None
    ) -> None:
        self.spec = NodeSpec(
            SIM_BRIDGE,
            SIM_BRIDGE,
            parameters=params,
            package=SIM_PACKAGE,
            parameter_files=(str(params_file),) if params_file is not None else (),
        )
        launcher = NodeLauncher(log_dir, env=node_environment(log_dir=log_dir / "ros_logs"))
        self.log_path = launcher.log_path(self.spec)
        self.process = launcher.start(self.spec)

    def output(self) -> str:
        return self.log_path.read_text()

    def interrupt(self, timeout: float = 5.0) -> int:
        """SIGINT, as Ctrl-C would; returns the exit code (fails if it hangs)."""
        [code] = stop_processes([self.process], timeout)
        if code is None:
            raise AssertionError(
                f"sim bridge still running {timeout} s after SIGINT; output:\n{self.output()}"
            )
        return code

    def stop(self) -> None:
        stop_processes([self.process], timeout=5.0)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"sim bridge exited with {self.process.returncode}; output:\n{self.output()}"
            )


# --------------------------------------------------------------------------- #
# The bridge's events.
# --------------------------------------------------------------------------- #


class EventLog:
    """/swarm/events as parsed JSON objects."""

    def __init__(self, probe: RosProbe, topic: str = "/swarm/events") -> None:
        from std_msgs.msg import String

        # The bridge keeps a history of its events for late subscribers.
        self._recorder = probe.record(String, topic, latched_qos(100), keep=10_000)

    def events(self, **match: Any) -> list[dict]:
        parsed = [json.loads(m.data) for m in self._recorder.messages()]
        return [e for e in parsed if all(e.get(k) == v for k, v in match.items())]

    def wait_for(self, timeout: float, **match: Any) -> dict:
        found = wait_for(lambda: self.events(**match), timeout, f"an event matching {match}")
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
            msg = odom.last()
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
