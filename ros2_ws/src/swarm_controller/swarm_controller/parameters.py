"""The policy node's parameters: their table, and the value checks rclpy cannot make.

`PARAMETERS` is declared with a `ParameterDescriptor` each (see
`ros_parameters`), so `ros2 param describe` explains them and rclpy itself
enforces the ranges and read-only flags. The checks a descriptor cannot
express (folders that must exist, a non-empty policy path) live in
`check_value`, which the node's on-set callback calls. Nothing here imports
rclpy at import time, so `swarm deploy` can check a fleet's parameter names
without ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from swarm_contract.robot_io import PROFILES_DIR, Contract, RobotProfile, load_profile
from swarm_controller.ros_parameters import ParameterSpec, declare_parameters, parameter_values

if TYPE_CHECKING:
    from rclpy.node import Node

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
    min_valid_ray_fraction: float
    cmd_vel_stamped: bool
    control_on_scan: bool
    allowed_policy_dirs: tuple[str, ...] | None
    autostart: bool
    base_frame: str


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "policy_path",
        "",
        "ONNX policy of this robot (robot_<i>.onnx from `swarm export`). Setting it on a"
        " running node swaps the policy live once the new file has passed every check;"
        " on failure the old policy keeps driving and the reason is returned.",
    ),
    ParameterSpec(
        "robot_contract",
        "",
        "YAML file with this robot's observation contract (robot_io.Contract fields)."
        " Empty: the first policy loaded at configure defines it, and every swap must"
        " match that one.",
        read_only=True,
    ),
    ParameterSpec(
        "max_linear",
        _DEFAULT_ROBOT.max_linear,
        "Hard limit on |linear velocity| sent to cmd_vel, m/s (clamped here). Read-only:"
        " set at start; a value above the robot's (its contract's and profile's top"
        " speed) is capped to that at configure, with a warning.",
        0.0,
        10.0,
        read_only=True,
    ),
    ParameterSpec(
        "max_angular",
        _DEFAULT_ROBOT.max_angular,
        "Hard limit on |angular velocity| sent to cmd_vel, rad/s. Read-only; capped to"
        " the robot's top turn rate at configure, like max_linear.",
        0.0,
        20.0,
        read_only=True,
    ),
    ParameterSpec(
        "sensor_timeout",
        0.5,
        "Seconds after which the latest scan or odom counts as stale: the node sends"
        " one zero command and holds until fresh data arrives.",
        0.01,
        10.0,
    ),
    ParameterSpec(
        "min_valid_ray_fraction",
        0.5,
        "Share of a scan's rays that must be valid (REP-117: finite within the scan's"
        " [range_min, range_max], +inf, -inf, or 0.0 = no return) for the robot to drive."
        " Below it the lidar counts as broken: one zero command, then hold until valid"
        " scans come back. NaN is an erroneous reading, never open space.",
        0.1,
        1.0,
        read_only=True,
    ),
    ParameterSpec(
        "goal_tolerance",
        0.15,
        "Metres from the goal at which the robot counts as arrived and stops. The goal"
        " (PoseStamped) and odom must be in the same frame (e.g. both in odom or both"
        " in map); the node does not transform between frames.",
        0.0,
        10.0,
    ),
    ParameterSpec(
        "cmd_vel_stamped",
        False,
        "Publish geometry_msgs/TwistStamped instead of Twist on cmd_vel.",
        read_only=True,
    ),
    ParameterSpec(
        "control_on_scan",
        False,
        "Run the policy when each scan arrives instead of on the control timer"
        " (lowest scan-to-cmd_vel latency; TwistStamped then carries the scan's stamp)."
        " The timer still runs and enforces the stale-sensor stop.",
        read_only=True,
    ),
    ParameterSpec(
        "allowed_policy_dirs",
        [],
        "Folders that policy files must lie in (after resolving symlinks). Unset or"
        " empty: any folder (only for development). Read-only: a running node's"
        " folders cannot be widened.",
        read_only=True,
        item_type=str,
    ),
    ParameterSpec(
        "autostart",
        True,
        "Configure and activate at start. False: wait for lifecycle transitions on ~/change_state.",
        read_only=True,
    ),
    ParameterSpec(
        "base_frame",
        "base_link",
        "frame_id of TwistStamped commands (the robot's body frame).",
        read_only=True,
    ),
)

NAMES = frozenset(spec.name for spec in PARAMETERS)
"""Every parameter the node declares (besides rclpy's own use_sim_time)."""


def declare(node: Node) -> None:
    """Declare every parameter of the policy node with its descriptor."""
    declare_parameters(node, PARAMETERS)


def read(node: Node) -> NodeSettings:
    """The parameters' current values."""
    values = parameter_values(node, PARAMETERS)
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
    for spec in PARAMETERS:
        reason = check_value(spec.name, getattr(settings, spec.name))
        if reason is not None:
            return reason
    return None


def capped_speed_limits(settings: NodeSettings, robot: Contract) -> tuple[float, float, list[str]]:
    """(max_linear, max_angular) no faster than the robot allows, and a warning per cap.

    The robot's limits are its contract's (the `robot_contract` file, else the
    first policy's) and, when the contract names a shipped profile, that
    profile's too: a fleet file cannot make a 0.22 m/s Burger drive at 5 m/s.
    """
    limits = {"max_linear": robot.max_linear, "max_angular": robot.max_angular}
    source = "robot contract"
    if (PROFILES_DIR / f"{robot.profile}.yaml").is_file():
        profile = load_profile(robot.profile)
        limits = {k: min(v, getattr(profile, k)) for k, v in limits.items()}
        source = f"robot profile {robot.profile!r}"
    capped, warnings = [], []
    for name, top in limits.items():
        wanted = getattr(settings, name)
        if wanted > top:
            warnings.append(
                f"{name}={wanted:g} is above what the {source} allows; capped to {top:g}"
            )
        capped.append(min(wanted, top))
    return capped[0], capped[1], warnings
