"""The sim bridge's parameters: their table, and the simulator task they describe.

The ROS 2 node declares every parameter from `PARAMETERS` (swarm_controller's
`ParameterSpec` table: name, default, description, range; all read-only but
real_time_factor and cmd_timeout), reads the values back into `BridgeSettings`,
and turns them into the simulator's `SimConfig` with `build_sim_config`.
Nothing here imports rclpy or pybullet, so the rules are tested without DDS.

Where the simulated task comes from, in order (later wins):

1. `SimConfig` defaults (4 robots, random scenario, 4 m arena, TurtleBot3);
2. the YAML file named by `sim_config` (a whole experiment config or its `sim:`
   section, as `swarm train` reads it);
3. `sim_overrides`, a list of `key=value` strings (`end_on_collision=true`);
4. the shortcuts `num_robots`, `scenario`, `arena_size`, `profile`, `max_steps`,
   which apply only when set (0 or "" means "leave it to 1-3").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from mappo_training.sim.config import MAX_ROBOTS, SimConfig
from swarm_contract.config import ConfigError, apply_overrides, from_dict, load_yaml
from swarm_controller.ros_parameters import ParameterSpec

NODE_NAME = "sim_bridge"
EVENTS_TOPIC = "/swarm/events"
MARKERS_TOPIC = "/swarm/markers"
RESET_SERVICE = "/swarm/reset"

# A prefix must turn into valid relative ROS names ("robot_0/scan") and frame
# ids ("robot_0/base_scan"): letters, digits, underscores and inner slashes.
_PREFIX_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*_?$")
_FRAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_/]*$")


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "num_robots",
        0,
        f"Robots in the arena (1 to {MAX_ROBOTS}); 0: from sim_config (4 without one).",
        0,
        MAX_ROBOTS,
        read_only=True,
    ),
    ParameterSpec(
        "scenario",
        "",
        "Layout of each episode: random, circle, swap or layout (a named room layout, its"
        " name in sim_config or sim_overrides: layout=two_rooms); empty: from sim_config (random).",
        read_only=True,
    ),
    ParameterSpec(
        "seed",
        0,
        "Seed of the layouts; the same seed replays the same episodes.",
        0,
        read_only=True,
    ),
    ParameterSpec(
        "arena_size",
        0.0,
        "Side of the square arena in metres (walls at +-side/2); 0: from sim_config (4.0)."
        " Grows when the scenario's robots would not fit.",
        0.0,
        100.0,
        read_only=True,
    ),
    ParameterSpec(
        "sim_config",
        "",
        "Path of a YAML file with the simulator task (the whole training config or its"
        " sim: section); empty: SimConfig defaults.",
        read_only=True,
    ),
    ParameterSpec(
        "sim_overrides",
        [],
        "key=value overrides of the sim config, e.g. ['end_on_collision=true', 'num_obstacles=3'].",
        read_only=True,
    ),
    ParameterSpec(
        "profile",
        "",
        "Robot profile name (swarm_contract/profiles) or YAML path; empty: from sim_config"
        " (turtlebot3_burger). Sets radius, speed limits, lidar range and control period.",
        read_only=True,
    ),
    ParameterSpec(
        "episodes",
        0,
        "Episodes to run before the bridge exits; 0: run forever.",
        0,
        1_000_000,
        read_only=True,
    ),
    ParameterSpec(
        "max_steps",
        0,
        "Episode time limit in control periods; 0: from sim_config (time to drive twice"
        " the arena side at top speed).",
        0,
        10_000_000,
        read_only=True,
    ),
    ParameterSpec(
        "namespace_prefix",
        "robot_",
        "Robot i's topics live under <prefix><i>/ (scan, odom, goal, cmd_vel).",
        read_only=True,
    ),
    ParameterSpec(
        "map_frame",
        "map",
        "The shared frame of the arena (origin at its centre): markers, events, and the"
        " parent of every robot's odom frame on TF.",
        read_only=True,
    ),
    ParameterSpec(
        "odom_frame",
        "",
        "Empty (REP-105, as namespaced TurtleBot3s): robot i has its own <ns>/odom, origin at"
        " its episode's start pose, and <ns>/base_footprint; odometry and goals are in"
        " <ns>/odom. A name (e.g. 'odom'): every robot's odometry and goals in that one"
        " frame, identical to map_frame (the layout before per-robot frames).",
        read_only=True,
    ),
    ParameterSpec(
        "publish_tf",
        True,
        "Publish TF: map -> <ns>/odom and <ns>/base_footprint -> <ns>/base_scan on"
        " /tf_static (again each episode), <ns>/odom -> <ns>/base_footprint on /tf every step."
        " Needs tf2_msgs (a ROS distro); without it the bridge says so once and goes on.",
        read_only=True,
    ),
    ParameterSpec(
        "publish_goals",
        True,
        "Publish each episode's goals on <ns>/goal (latched). False: the goals come from"
        " elsewhere (`swarm goal`); arrivals are still judged against the episode's goals.",
        read_only=True,
    ),
    ParameterSpec(
        "publish_clock",
        True,
        "Publish /clock every step and stamp messages with simulated time, so nodes can run"
        " with use_sim_time:=true.",
        read_only=True,
    ),
    ParameterSpec(
        "real_time_factor",
        1.0,
        "Simulated seconds per wall-clock second (2.0 runs twice as fast as real time).",
        0.01,
        100.0,
    ),
    ParameterSpec(
        "cmd_timeout",
        0.5,
        "Seconds of simulated time a cmd_vel command drives the robot; after that it stops.",
        0.01,
        60.0,
    ),
    ParameterSpec(
        "lockstep",
        False,
        "Step only when every driving robot has sent a command since the last step's"
        " readings (or lockstep_timeout passed: a miss per silent robot), so a ROS closed"
        " loop plays out the same under any CPU load; real_time_factor stays the top speed."
        " Each episode starts with the robots held at rest until every node answered."
        " False: step on the wall clock, as real robots' world does.",
        read_only=True,
    ),
    ParameterSpec(
        "lockstep_timeout",
        1.0,
        "Lockstep: wall-clock seconds to wait for a robot's command before stepping without"
        " it (one miss, counted in episode_end's lockstep_misses).",
        0.01,
        60.0,
        read_only=True,
    ),
    ParameterSpec(
        "lockstep_start_timeout",
        60.0,
        "Lockstep: wall-clock seconds an episode's start may wait for every robot to be"
        " ready to drive (node processes starting up) before it steps without the rest.",
        0.0,
        3600.0,
        read_only=True,
    ),
    ParameterSpec(
        "cmd_vel_stamped",
        False,
        "Subscribe to geometry_msgs/TwistStamped on cmd_vel instead of Twist.",
        read_only=True,
    ),
    ParameterSpec(
        "scan_angle_min",
        0.0,
        "Angle of a scan's first ray in radians: 0 like a TurtleBot3 LDS (0..2pi),"
        " -pi for a -pi..pi lidar.",
        -math.pi,
        math.pi,
        read_only=True,
    ),
    ParameterSpec(
        "marker_rate",
        2.0,
        "Rate in Hz (wall clock) of the RViz MarkerArray on /swarm/markers; 0: off.",
        0.0,
        30.0,
        read_only=True,
    ),
)

SHORTCUTS = ("num_robots", "scenario", "arena_size", "profile", "max_steps")
"""Parameters that, when set, override the same key of the sim config."""


@dataclass(frozen=True)
class BridgeSettings:
    """The bridge's parameter values, checked beyond what a range can say."""

    num_robots: int = 0
    scenario: str = ""
    seed: int = 0
    arena_size: float = 0.0
    sim_config: str = ""
    sim_overrides: list[str] = field(default_factory=list)
    profile: str = ""
    episodes: int = 0
    max_steps: int = 0
    namespace_prefix: str = "robot_"
    map_frame: str = "map"
    odom_frame: str = ""
    publish_tf: bool = True
    publish_goals: bool = True
    publish_clock: bool = True
    real_time_factor: float = 1.0
    cmd_timeout: float = 0.5
    lockstep: bool = False
    lockstep_timeout: float = 1.0
    lockstep_start_timeout: float = 60.0
    cmd_vel_stamped: bool = False
    scan_angle_min: float = 0.0
    marker_rate: float = 2.0

    def __post_init__(self) -> None:
        if not _PREFIX_PATTERN.match(self.namespace_prefix):
            raise ConfigError(
                f"parameter namespace_prefix={self.namespace_prefix!r}: must be a relative ROS"
                " name made of letters, digits, '_' and inner '/', starting with a letter"
                " (e.g. 'robot_' or 'fleet/tb3_')"
            )
        for name in ("map_frame", "odom_frame"):
            value = getattr(self, name)
            if (value or name == "map_frame") and not _FRAME_PATTERN.match(value):
                raise ConfigError(
                    f"parameter {name}={value!r}: must be a frame id of letters, digits, '_'"
                    " and '/' (e.g. 'map'; odom_frame may also be empty: one per robot)"
                )

    def robot_namespace(self, robot: int) -> str:
        """Robot i's namespace relative to the node's: 'robot_3'."""
        return f"{self.namespace_prefix}{robot}"

    @property
    def per_robot_frames(self) -> bool:
        """Each robot has its own odom frame (REP-105), rather than one shared one."""
        return not self.odom_frame

    def odom_frame_of(self, robot: int) -> str:
        """The frame of robot i's odometry and goals: 'robot_3/odom' (or the shared one)."""
        return self.odom_frame or f"{self.robot_namespace(robot)}/odom"

    def base_frame_of(self, robot: int) -> str:
        """Robot i's body frame, the child of its odometry: 'robot_3/base_footprint'."""
        return f"{self.robot_namespace(robot)}/base_footprint"


def settings_from_parameters(values: dict[str, Any]) -> BridgeSettings:
    """BridgeSettings from parameter values by name (those of `PARAMETERS`)."""
    values = dict(values)
    if "sim_overrides" in values:
        values["sim_overrides"] = list(values["sim_overrides"] or [])
    return BridgeSettings(**values)


def build_sim_config(settings: BridgeSettings) -> SimConfig:
    """The simulator task the parameters describe (see the module docstring for the order)."""
    data: dict[str, Any] = {}
    if settings.sim_config:
        data = load_yaml(settings.sim_config)
        if isinstance(data.get("sim"), dict):
            data = data["sim"]
    data = apply_overrides(data, settings.sim_overrides)
    for name in SHORTCUTS:
        value = getattr(settings, name)
        if value:
            data[name] = value
    try:
        return from_dict(SimConfig, data, "sim")
    except ConfigError as err:
        source = (
            f"sim_config={settings.sim_config!r}" if settings.sim_config else "SimConfig defaults"
        )
        raise ConfigError(
            f"{err} (the sim task comes from {source}, then"
            f" sim_overrides={settings.sim_overrides}, then the parameters {list(SHORTCUTS)})"
        ) from err
