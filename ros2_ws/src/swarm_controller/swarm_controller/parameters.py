"""The policy node's parameters: names, defaults, descriptors and value checks.

Declared once with a `ParameterDescriptor` each, so `ros2 param describe`
explains them and rclpy itself enforces the ranges and read-only flags. The
checks rclpy cannot express (folders that must exist, a contract file that
must parse) live in `check_value`, which the node's on-set callback calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from swarm_contract.robot_io import RobotProfile

_DEFAULT_ROBOT = RobotProfile()


@dataclass(frozen=True)
class NodeSettings:
    """The parameters' current values, read in one go."""

    policy_path: str
    robot_contract: str
    max_linear: float
    max_angular: float
    sensor_timeout: float
    goal_tolerance: float
    cmd_vel_stamped: bool
    control_on_scan: bool
    allowed_policy_dirs: tuple[str, ...] | None
    autostart: bool
    base_frame: str


def _range(low: float, high: float) -> list[FloatingPointRange]:
    return [FloatingPointRange(from_value=low, to_value=high, step=0.0)]


# name -> (default, descriptor). A default of a Parameter.Type declares the
# parameter without a value (rclpy cannot infer a string array from []).
SPECS: dict[str, tuple[object, ParameterDescriptor]] = {
    "policy_path": (
        "",
        ParameterDescriptor(
            description=(
                "ONNX policy of this robot (robot_<i>.onnx from `swarm export`). Setting it on a"
                " running node swaps the policy live once the new file has passed every check;"
                " on failure the old policy keeps driving and the reason is returned."
            )
        ),
    ),
    "robot_contract": (
        "",
        ParameterDescriptor(
            description=(
                "YAML file with this robot's observation contract (robot_io.Contract fields)."
                " Empty: the first policy loaded at configure defines it, and every swap must"
                " match that one."
            ),
            read_only=True,
        ),
    ),
    "max_linear": (
        _DEFAULT_ROBOT.max_linear,
        ParameterDescriptor(
            description="Hard limit on |linear velocity| sent to cmd_vel, m/s (clamped here).",
            floating_point_range=_range(0.0, 10.0),
        ),
    ),
    "max_angular": (
        _DEFAULT_ROBOT.max_angular,
        ParameterDescriptor(
            description="Hard limit on |angular velocity| sent to cmd_vel, rad/s.",
            floating_point_range=_range(0.0, 20.0),
        ),
    ),
    "sensor_timeout": (
        0.5,
        ParameterDescriptor(
            description=(
                "Seconds after which the latest scan or odom counts as stale: the node sends"
                " one zero command and holds until fresh data arrives."
            ),
            floating_point_range=_range(0.01, 10.0),
        ),
    ),
    "goal_tolerance": (
        0.15,
        ParameterDescriptor(
            description=(
                "Metres from the goal at which the robot counts as arrived and stops. The goal"
                " (PoseStamped) and odom must be in the same frame (e.g. both in odom or both"
                " in map); the node does not transform between frames."
            ),
            floating_point_range=_range(0.0, 10.0),
        ),
    ),
    "cmd_vel_stamped": (
        False,
        ParameterDescriptor(
            description="Publish geometry_msgs/TwistStamped instead of Twist on cmd_vel.",
            read_only=True,
        ),
    ),
    "control_on_scan": (
        False,
        ParameterDescriptor(
            description=(
                "Run the policy when each scan arrives instead of on the control timer"
                " (lowest scan-to-cmd_vel latency; TwistStamped then carries the scan's stamp)."
                " The timer still runs and enforces the stale-sensor stop."
            ),
            read_only=True,
        ),
    ),
    "allowed_policy_dirs": (
        Parameter.Type.STRING_ARRAY,
        ParameterDescriptor(
            description=(
                "Folders that policy files must lie in (after resolving symlinks). Unset or"
                " empty: any folder (only for development)."
            )
        ),
    ),
    "autostart": (
        True,
        ParameterDescriptor(
            description=(
                "Configure and activate at start. False: wait for lifecycle transitions on"
                " ~/change_state."
            ),
            read_only=True,
        ),
    ),
    "base_frame": (
        "base_link",
        ParameterDescriptor(
            description="frame_id of TwistStamped commands (the robot's body frame).",
            read_only=True,
        ),
    ),
}


def declare(node: Node) -> None:
    """Declare every parameter of the policy node with its descriptor."""
    node.declare_parameters("", [(name, default, desc) for name, (default, desc) in SPECS.items()])


def read(node: Node) -> NodeSettings:
    """The parameters' current values."""
    values = {}
    for name in SPECS:
        try:
            values[name] = node.get_parameter(name).value
        except ParameterUninitializedException:
            values[name] = None
    dirs = values["allowed_policy_dirs"]
    values["allowed_policy_dirs"] = tuple(dirs) if dirs else None
    return NodeSettings(**values)


def check_value(name: str, value: object) -> str | None:
    """Why a new value is unacceptable (beyond the descriptor's range), or None."""
    if name in ("max_linear", "max_angular", "sensor_timeout") and not (
        math.isfinite(value) and value > 0
    ):
        return f"{name}={value!r} must be a finite number > 0"
    if name == "goal_tolerance" and not (math.isfinite(value) and value >= 0):
        return f"goal_tolerance={value!r} must be a finite number >= 0"
    if name == "allowed_policy_dirs":
        missing = [d for d in value or () if not Path(d).expanduser().is_dir()]
        if missing:
            return f"allowed_policy_dirs: {missing} are not existing folders"
    if name == "policy_path" and not str(value).strip():
        return "policy_path is empty; give the path of a robot_<i>.onnx file"
    return None


def check_settings(settings: NodeSettings) -> str | None:
    """The first problem among all current values (overrides given at start skip
    the on-set callback, so configure checks them here), or None."""
    for name in SPECS:
        reason = check_value(name, getattr(settings, name))
        if reason is not None:
            return reason
    return None
