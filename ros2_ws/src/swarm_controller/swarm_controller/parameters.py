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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from swarm_contract.onnx_policy import MAX_POLICY_BYTES
from swarm_contract.robot_io import Contract, RobotProfile
from swarm_contract.safety_layer import DEFAULT_GOAL_HOLD
from swarm_controller.goals import NAMESPACE_FIELD, map_to_odom_pose
from swarm_controller.robot_fit import node_profile
from swarm_controller.ros_parameters import ParameterSpec, declare_parameters, parameter_values

if TYPE_CHECKING:
    from rclpy.node import Node

    from swarm_contract.safety_layer import SafetyLimits

_DEFAULT_ROBOT = RobotProfile()
LIVE_POLICY_RECORD_DEFAULT = "$ROS_HOME/swarm/{namespace}/live_policy.json"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class NodeSettings:
    """The parameters' current values, read in one go."""

    policy_path: str
    robot_contract: str
    robot_profile: str
    max_linear: float
    max_angular: float
    max_linear_accel: float
    max_angular_accel: float
    stop_zone: bool
    stop_margin: float
    sensor_timeout: float
    goal_tolerance: float
    min_valid_ray_fraction: float
    cmd_vel_stamped: bool
    control_on_scan: bool
    allowed_policy_dirs: tuple[str, ...] | None
    autostart: bool
    expected_scan_hz: float
    expected_odom_hz: float
    base_frame: str
    odom_frame: str
    frame_prefix: str
    map_to_odom: tuple[float, ...]
    max_goal_age: float
    expected_sha256: str
    max_policy_bytes: int
    live_policy_record: str


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
        " Empty: the robot profile's (robot_profile) limits, periods and ranges, with"
        " the first policy's beams, scan stack and goal clip; every swap must match"
        " that one. A model whose scan stack assumes another scan_period than the"
        " profile's lidar is refused, naming scan_period (robot_fit.py).",
        read_only=True,
    ),
    ParameterSpec(
        "robot_profile",
        "",
        "This robot's profile (robot_io.RobotProfile): a profile shipped with"
        " swarm_contract by name (turtlebot3_burger) or a profile YAML's path. Empty:"
        " the shipped profile the first policy's contract names (turtlebot3_burger for"
        " shipped models); none shipped under that name: a custom robot, whose first"
        " policy's contract is the robot's. It sets the robot's side of the contract"
        " check, the caps on the motion limits, the stop zone's footprint and the"
        " lidar's mount_yaw. Read-only.",
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
        "max_linear_accel",
        _DEFAULT_ROBOT.max_linear_accel,
        "Largest change of linear velocity, m/s^2, speeding up or slowing down: the"
        " safety layer ramps every policy command to it (a stop for a hold or e-stop"
        " is immediate). Read-only; capped to the robot profile's at configure, like"
        " max_linear. The simulator trains with the profile's value.",
        0.0,
        100.0,
        read_only=True,
    ),
    ParameterSpec(
        "max_angular_accel",
        _DEFAULT_ROBOT.max_angular_accel,
        "Largest change of angular velocity, rad/s^2, like max_linear_accel. Read-only;"
        " capped to the robot profile's at configure.",
        0.0,
        200.0,
        read_only=True,
    ),
    ParameterSpec(
        "stop_zone",
        True,
        "Cut motion toward an obstacle the latest scan shows inside the stop zone: a"
        " zone ahead in the direction of travel (behind when reversing), the footprint"
        " radius plus stop_margin plus the distance needed to stop from the commanded"
        " speed. Each cut counts in stop_zone_cuts on /diagnostics. Read-only.",
        read_only=True,
    ),
    ParameterSpec(
        "stop_margin",
        0.05,
        "Metres of clearance the stop zone keeps beyond the robot's footprint. Read-only.",
        0.0,
        1.0,
        read_only=True,
    ),
    ParameterSpec(
        "sensor_timeout",
        0.5,
        "Seconds after which the latest scan or odom counts as stale: the node holds,"
        " publishing zero commands at the control rate, until fresh data arrives.",
        0.01,
        10.0,
    ),
    ParameterSpec(
        "min_valid_ray_fraction",
        0.5,
        "Share of a scan's rays that must be valid (REP-117: finite within the scan's"
        " [range_min, range_max], +inf, -inf, or 0.0 = no return) for the robot to drive."
        " Below it the lidar counts as broken: the robot holds (zero commands at the"
        " control rate) until valid scans come back. NaN is an erroneous reading, never"
        " open space.",
        0.1,
        1.0,
        read_only=True,
    ),
    ParameterSpec(
        "goal_tolerance",
        DEFAULT_GOAL_HOLD,
        "Metres from the goal, by odometry, at which the robot counts as arrived and"
        " stops for good. Keep it under the accuracy you need by the odometry's drift:"
        " a robot stops where its odometry first says it is this close. Goals come"
        " in the robot's odom frame or in map (see map_to_odom).",
        0.0,
        10.0,
    ),
    ParameterSpec(
        "cmd_vel_stamped",
        _DEFAULT_ROBOT.cmd_vel_stamped,
        "Publish geometry_msgs/TwistStamped on cmd_vel (true: what a TurtleBot3 on Jazzy,"
        " enable_stamped_cmd_vel: true, and ros2_control's diff_drive_controller take);"
        " false: geometry_msgs/Twist, for a base that subscribes to Twist. A base hears"
        " nothing of the other type, so a mismatch leaves the robot standing.",
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
        "Configure and activate at start. False: wait for lifecycle transitions on"
        " ~/change_state, as nav2_lifecycle_manager (or launch_ros's LifecycleNode) sends"
        " them: under a lifecycle manager set autostart:=false, or the manager's first"
        " configure meets an active node and is refused. A transition the current state"
        " does not allow is answered success=false and the node carries on.",
        read_only=True,
    ),
    ParameterSpec(
        "expected_scan_hz",
        5.0,
        "Rate the lidar should deliver on scan, Hz (TurtleBot3 LDS-01/LDS-02: 5). While"
        " driving, /diagnostics turns WARN when scan_hz (arrivals over the last 5 s of"
        " the wall clock) is below half of it. 0: no check.",
        0.0,
        1000.0,
    ),
    ParameterSpec(
        "expected_odom_hz",
        20.0,
        "Rate odom should arrive at, Hz (turtlebot3_node: 20, one per joint_states). While"
        " driving, /diagnostics turns WARN when odom_hz is below half of it. 0: no check.",
        0.0,
        1000.0,
    ),
    ParameterSpec(
        "base_frame",
        _DEFAULT_ROBOT.base_frame,
        "The robot's body frame without frame_prefix: TwistStamped commands carry"
        " frame_prefix + base_frame (tb3_0/base_footprint).",
        read_only=True,
    ),
    ParameterSpec(
        "odom_frame",
        _DEFAULT_ROBOT.odom_frame,
        "The robot's odometry frame without frame_prefix: goals in frame_prefix +"
        " odom_frame (tb3_0/odom), or in the frame the odom messages name, are used as"
        " they are.",
        read_only=True,
    ),
    ParameterSpec(
        "frame_prefix",
        f"{NAMESPACE_FIELD}/",
        "Prefix of this robot's frame names. The default, {namespace}/, is the node's"
        " namespace without its leading slash (tb3_0/ in /tb3_0, nothing in the root"
        ' namespace), as a namespaced TurtleBot3 on Jazzy names its frames. "" for a'
        " robot whose frames carry no prefix.",
        read_only=True,
    ),
    ParameterSpec(
        "map_to_odom",
        [],
        "This robot's start pose in map, [x, y, yaw] (m, m, rad; floats): the map -> odom"
        " transform used for goals in map. Unset ([]): the node looks map -> odom up in TF"
        " (tf2_ros, with a ROS distro); with neither, goals in map are refused and the"
        " robot holds, saying why.",
        item_type=float,
    ),
    ParameterSpec(
        "max_goal_age",
        60.0,
        "Seconds: a goal whose header stamp is older than this when it arrives is refused"
        " and the robot holds, saying why, so a respawned node does not drive to a latched"
        " goal from before its crash. 0: no limit. An unstamped goal (stamp 0) has no age"
        " and is taken.",
        0.0,
        1e9,
    ),
    ParameterSpec(
        "expected_sha256",
        "",
        "When set (64 hex digits, as `sha256sum` prints them), a policy whose file has"
        " another sha256 is refused, at configure and on a swap, naming both hashes. Set"
        " it together with policy_path in one request to swap to a pinned model. It guards"
        " against the wrong or a changed file; whoever may set parameters may also change"
        " it (docs/security.md: restrict the parameter services).",
    ),
    ParameterSpec(
        "max_policy_bytes",
        MAX_POLICY_BYTES,
        "Largest policy file, in bytes, the node reads; a larger one is refused from its"
        " size alone (an exported actor is well under 1 MiB). Read-only.",
        1,
        None,
        read_only=True,
    ),
    ParameterSpec(
        "live_policy_record",
        LIVE_POLICY_RECORD_DEFAULT,
        "JSON file recording the policy swapped in live (the launch policy_path, the live"
        " file and its sha256), rewritten atomically on every accepted swap. At configure,"
        " when the record's launch path equals policy_path, the live file still has the"
        " recorded sha256 and passes every check, the node resumes the live policy (a"
        " respawned node keeps driving what it was swapped to) and says so in its log and"
        " on /diagnostics (policy_source); otherwise it loads policy_path and says why. A"
        " different launch policy_path means the fleet file changed: the record is"
        " ignored. $ROS_HOME (default ~/.ros) and {namespace} (the node's namespace,"
        " slashes as _) are expanded. Empty: no record, a respawn loads policy_path."
        " Read-only.",
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
    values["map_to_odom"] = tuple(values["map_to_odom"] or ())
    values["expected_sha256"] = values["expected_sha256"].strip().lower()
    return NodeSettings(**values)


def check_value(name: str, value: object) -> str | None:
    """Why a new value is unacceptable (beyond the descriptor's range), or None."""
    positive = ("max_linear", "max_angular", "max_linear_accel", "max_angular_accel")
    if name in (*positive, "sensor_timeout") and not (math.isfinite(value) and value > 0):
        return f"{name}={value!r} must be a finite number > 0"
    at_least_zero = ("goal_tolerance", "stop_margin", "expected_scan_hz", "expected_odom_hz")
    if name in at_least_zero and not (math.isfinite(value) and value >= 0):
        return f"{name}={value!r} must be a finite number >= 0"
    if name == "expected_sha256" and value.strip() and not _SHA256.fullmatch(value.strip()):
        return (
            f"expected_sha256={value!r} is not a sha256: give the 64 hex digits"
            " `sha256sum <policy>.onnx` prints, or an empty string to accept any hash"
        )
    if name == "map_to_odom":
        try:
            map_to_odom_pose(value or ())
        except ValueError as err:
            return str(err)
    if name == "allowed_policy_dirs":
        missing = [d for d in value or () if not Path(d).expanduser().is_dir()]
        if missing:
            return f"allowed_policy_dirs: {missing} are not existing folders"
    if name == "robot_profile" and value:
        try:
            node_profile(value, Contract())
        except ValueError as err:
            return str(err)
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


LIMITS = ("max_linear", "max_angular", "max_linear_accel", "max_angular_accel")
"""The motion limits a fleet file may lower but never raise above the robot's."""


def capped_limits(settings: NodeSettings, robot: Contract) -> tuple[dict[str, float], list[str]]:
    """The LIMITS parameters, none above what the robot allows, and a warning per cap.

    The robot's speeds are its contract's (the `robot_contract` file, else the
    one robot_fit made) and, when it has a profile (robot_profile, or a shipped
    one its contract names), that profile's too, which also caps the
    accelerations: a fleet file cannot make a 0.22 m/s Burger drive at 5 m/s.
    A custom robot (no profile) has no acceleration limits to cap with; the
    parameters stand.
    """
    tops = {"max_linear": robot.max_linear, "max_angular": robot.max_angular}
    source = "robot contract"
    profile = node_profile(settings.robot_profile, robot)
    if profile is not None:
        tops = {name: getattr(profile, name) for name in LIMITS} | {
            k: min(v, getattr(profile, k)) for k, v in tops.items()
        }
        source = f"robot profile {profile.name!r}"
    limits, warnings = {}, []
    for name in LIMITS:
        wanted = getattr(settings, name)
        top = tops.get(name, wanted)
        if wanted > top:
            warnings.append(
                f"{name}={wanted:g} is above what the {source} allows; capped to {top:g}"
            )
        limits[name] = min(wanted, top)
    return limits, warnings


def safety_limits(settings: NodeSettings, robot: Contract) -> tuple[SafetyLimits, list[str]]:
    """The safety layer's limits for this robot (capped_limits, the footprint, the
    stop zone settings), and the warnings to log."""
    from swarm_contract.safety_layer import SafetyLimits

    limits, warnings = capped_limits(settings, robot)
    profile = node_profile(settings.robot_profile, robot)
    if profile is None:
        profile = RobotProfile(name=robot.profile)
        warnings.append(
            f"robot profile {robot.profile!r} is not shipped with swarm_contract: the stop"
            f" zone assumes a TurtleBot3's footprint radius of {profile.radius:g} m"
        )
    safety = SafetyLimits.from_profile(
        profile,
        **limits,
        stop_zone=settings.stop_zone,
        stop_margin=settings.stop_margin,
        control_period=robot.control_period,
    )
    return safety, warnings
