"""ROS 2 node: N simulated robots in one PyBullet arena, on the topics real robots use.

Each robot i appears under its own namespace exactly as a TurtleBot3 would:

    robot_<i>/scan     sensor_msgs/LaserScan   360 rays from scan_angle_min, +inf = no return
                       (frame robot_<i>/base_scan)
    robot_<i>/odom     nav_msgs/Odometry       pose of robot_<i>/base_footprint in
                       robot_<i>/odom, body twist
    robot_<i>/goal     geometry_msgs/PoseStamped  RELIABLE + TRANSIENT_LOCAL, once per episode
                       (in lockstep, also the start pose while the episode settles), in
                       robot_<i>/odom; none with publish_goals:=false
    robot_<i>/cmd_vel  geometry_msgs/Twist (or TwistStamped)   subscribed

Frames follow REP-105 as a namespaced TurtleBot3 fleet has them: the arena is
`map` (origin at its centre); robot i has its own `robot_<i>/odom`, whose
origin is the robot's start pose of the episode (a robot's odometry starts
where it was switched on), and `robot_<i>/base_footprint`. Each robot's
map -> odom is thus its start pose: in episode_start's `map_to_odom` and, when
tf2_msgs is importable (a ROS distro), on /tf_static; odom -> base_footprint
goes on /tf every step. `odom_frame:=odom` puts every robot in one shared
frame instead (identical to map). Scans and odometry are published RELIABLE
(the system default, as REP-2003 asks of drivers); subscribers take them with
sensor-data QoS.

and for the whole swarm:

    /clock            rosgraph_msgs/Clock      every step, when publish_clock is true
    /swarm/events     std_msgs/String          one JSON object per event (see EVENT TYPES)
    /swarm/markers    visualization_msgs/MarkerArray   walls, obstacles, robots, goals for RViz
                                               (in map)
    /tf, /tf_static   tf2_msgs/TFMessage       the frames above (when tf2_msgs is importable)
    /swarm/reset      std_srvs/Trigger         end the episode now and start the next one;
                                               answers "episode <k> started"

A wall-clock timer steps the world one control period (the profile's, 10 Hz
for a TurtleBot3) every period / real_time_factor seconds. With `lockstep`
the bridge also waits, before each step, until every driving robot has sent a
command since the last step's readings (swarm_ops.lockstep: a timeout counts
misses, each episode starts by settling), so a closed loop over ROS plays out
the same under any CPU load; the tests and `swarm bench deploy` run so, the
demo in real time. Each step publishes the readings first and /clock last: a
node whose control timer fires on that /clock has the readings of the same
step. Scans are published as the simulator measures them, exactly what the
training observation was pooled from, so a policy node sees on ROS what the
policy saw in training (including hits nearer than range_min, which robot_io
discards as a real driver's invalid readings). At the sim config's fidelity
(sim.fidelity.preset nominal or harsh, mappo_training/sim/fidelity.py) the
readings are the robot profile's, as in training: a scan only every
scan_period, with range noise and dropped rays; odometry (and odom ->
base_footprint) with its drift; commands reach the wheels late and
acceleration-limited.

EVENT TYPES (every event has "type", "robot" (null for the swarm), "t" (sim
seconds) and "episode"); positions are in map:

    episode_start  starts, goals and obstacles of the new layout, scenario, arena size;
                   map_frame, odom_frames and map_to_odom (each robot's odom origin
                   in map: x, y, yaw)
    arrival        a robot came within goal_tolerance of its goal; it parks
    collision      a robot started touching something ("with": "robot" or "static");
                   one event per contact, however many steps it lasts
    episode_end    "reason" (all_arrived, collision, timeout, reset, shutdown) and the
                   summary `swarm eval` reports: success, collisions (robot-steps in
                   contact), robot_collisions, static_collisions, arrived_fraction,
                   time_to_goal, path_efficiency, reverse_share, length; and
                   rejected_commands (non-finite cmd_vel refused); in lockstep
                   also lockstep_misses (robot-steps stepped without a command)
    shutdown       the last message before the node exits (in lockstep with the
                   misses of the whole run, per robot)

The simulation itself (`SimulatedArena`) holds no ROS types and is tested
without DDS. It keeps and scores its episodes with training's EpisodeTracker
(mappo_training.sim.episodes), so an episode is scored here as in `swarm eval`.
"""

from __future__ import annotations

import array
import json
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TransformStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan
from std_msgs.msg import String
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from mappo_training.sim.config import SimConfig
from mappo_training.sim.episodes import EpisodeRules, EpisodeTracker
from mappo_training.sim.fidelity import Fidelity
from mappo_training.sim.scenarios import (
    PlacementError,
    default_max_steps,
    draw_layout,
    fitted_arena_size,
)
from swarm_contract import robot_io
from swarm_contract.config import ConfigError
from swarm_controller import frames
from swarm_controller.ros_parameters import declare_parameters
from swarm_ops.lockstep import SETTLE_TICKS, Action, Lockstep
from swarm_ops.rosclient import latched_qos
from swarm_ops.sim_bridge_config import (
    EVENTS_TOPIC,
    MARKERS_TOPIC,
    NODE_NAME,
    PARAMETERS,
    RESET_SERVICE,
    BridgeSettings,
    build_sim_config,
    settings_from_parameters,
)

# Commands within this much of cmd_timeout still count, so that float sums
# of control periods do not cut a command one step short.
_TIME_EPSILON = 1e-6
_LOCKSTEP_POLL = 0.01
"""Seconds between lockstep's checks for a step that is due (min interval, timeout)."""


# --------------------------------------------------------------------------- #
# The simulation: one arena, commands in, readings and events out. No ROS.
# --------------------------------------------------------------------------- #


@dataclass
class StepOutcome:
    """What one control period produced."""

    events: list[dict[str, Any]]
    """arrival and collision events, in the order they happened."""
    episode_end: dict[str, Any] | None = None
    """The episode_end event when the episode ended in this step."""


class SimulatedArena:
    """One arena of the PyBullet world with the episode rules of training.

    Robots drive with the last command each received, for at most
    `cmd_timeout` simulated seconds; a robot within goal_tolerance of its goal
    parks (zero velocity) until the episode ends; an episode ends when every
    robot arrived, on a collision if the config says end_on_collision, or after
    max_steps. The rules and scores are training's EpisodeTracker, for one arena.
    """

    def __init__(
        self,
        cfg: SimConfig,
        seed: int = 0,
        cmd_timeout: float = 0.5,
        profile: robot_io.RobotProfile | None = None,
        scan_angle_min: float = 0.0,
    ) -> None:
        from mappo_training.sim.world import World

        self.cfg = cfg
        self.profile = profile or cfg.robot_profile()
        self.num_robots = cfg.num_robots
        self.arena_size = fitted_arena_size(cfg, self.profile)
        self.max_steps = default_max_steps(
            cfg, self.arena_size, self.profile.max_linear, self.profile.control_period
        )
        self.cmd_timeout = float(cmd_timeout)
        self.world = World(1, self.num_robots, self.arena_size, self.profile)
        self._rng = np.random.default_rng(seed)
        n = self.num_robots
        self.scan_angle_min = float(scan_angle_min)
        """Angle of a published scan's first ray (the LaserScan's angle_min)."""
        self.fidelity = Fidelity(
            cfg.fidelity,
            self.profile,
            cfg.contract(self.profile),
            1,
            n,
            self.profile.scan_beams,
            self.scan_angle_min,
        )
        """The lidar, actuation and odometry effects at cfg.fidelity, as in training."""
        self.scan_due = np.ones(n, dtype=bool)
        """(N,) robots whose lidar sends a scan with the next readings."""
        self._command = np.zeros((n, 2))
        self._command_time = np.full(n, -math.inf)
        self._touching_robot = np.zeros(n, dtype=bool)
        self._touching_static = np.zeros(n, dtype=bool)
        self._rejected_commands = 0
        rules = EpisodeRules(
            cfg.goal_tolerance, self.profile.control_period, self.max_steps, cfg.end_on_collision
        )
        self.episodes = EpisodeTracker.for_arenas(1, n, rules)
        """The current episode's progress and scores (arena 0 of a tracker)."""
        self.episode = -1
        """Index of the current (or last) episode, counting from 0."""
        self.episodes_ended = 0
        self.running = False
        """An episode is under way (stepping moves robots and scores)."""

    # -- episodes ----------------------------------------------------------- #

    def start_episode(self, layout=None) -> dict[str, Any]:
        """Draw a new layout (or use `layout`), place the robots; the episode_start event."""
        if layout is None:
            layout = draw_layout(self._rng, self.cfg, self.arena_size, self.profile.radius)
        self.world.set_layout(0, layout)
        self.fidelity.start_episode(0, self._rng, self.world.poses()[0])
        self.scan_due[:] = True  # the first scan of the episode, as training's
        starts = np.asarray(layout.starts, dtype=np.float64)
        goals = np.asarray(layout.goals, dtype=np.float64)
        self.episodes.start(0, layout)
        # Commands sent during the last episode must not drive the new one:
        # a policy has to see its new goal before it moves.
        self._drop_commands()
        self._touching_robot[:] = False
        self._touching_static[:] = False
        self._rejected_commands = 0
        self.episode += 1
        self.running = True
        return self.event(
            "episode_start",
            scenario=self.cfg.scenario,
            num_robots=self.num_robots,
            arena_size=self.arena_size,
            max_steps=self.max_steps,
            goal_tolerance=self.cfg.goal_tolerance,
            starts=starts.round(4).tolist(),
            goals=goals.round(4).tolist(),
            # So a watcher can draw the episode as the robots met it.
            obstacles=[asdict(o) for o in layout.obstacles],
        )

    def end_episode(self, reason: str) -> dict[str, Any]:
        """Stop the robots and score the episode; the episode_end event."""
        self.running = False
        self.episodes_ended += 1
        self._drop_commands()
        return self.event("episode_end", reason=reason, **self.summary())

    def summary(self) -> dict[str, Any]:
        """The current episode's scores, as `swarm eval` counts them, and the refused commands."""
        scores = self.episodes.summary(0)
        # Nothing rewards the robots here; a return of 0 would only mislead.
        del scores["return"]
        return {**scores, "rejected_commands": self._rejected_commands}

    # -- control ------------------------------------------------------------ #

    def command(self, robot: int, linear: float, angular: float) -> bool:
        """A velocity command for `robot`, valid from now for cmd_timeout.

        A non-finite command is refused and counted, and the robot stops: a
        node that sends NaN has lost track, so its older command is no better.
        Returns whether the command was accepted.
        """
        now = self.world.sim_time
        if not (math.isfinite(linear) and math.isfinite(angular)):
            self._rejected_commands += 1
            self._command[robot] = 0.0
            self._command_time[robot] = now
            return False
        self._command[robot] = (linear, angular)
        self._command_time[robot] = now
        return True

    def step(self) -> StepOutcome:
        """Advance one control period with the current commands; score it."""
        if not self.running:
            raise RuntimeError("no episode is running: call start_episode() first")
        world = self.world
        episodes = self.episodes
        fresh = world.sim_time - self._command_time < self.cmd_timeout - _TIME_EPSILON
        driving = ~episodes.arrived[0]
        twists = np.where((fresh & driving)[:, None], self._command, 0.0)
        applied = self.fidelity.actuate(twists[None], world.velocities())
        world.set_twists(applied * driving[None, :, None])
        before = world.poses()
        contacts = world.advance()
        self.fidelity.track_odometry(before, world.poses())
        self.scan_due = self.fidelity.scan_arrivals()[0]
        arrived = episodes.record_step(
            before, world.poses(), world.goals(), contacts.robot, contacts.static
        ).arrived[0]
        robot_hit, static_hit = contacts.robot[0], contacts.static[0]

        steps = int(episodes.steps[0])
        events = [
            self.event(
                "arrival",
                int(i),
                time_to_goal=round(steps * self.profile.control_period, 6),
                distance=round(float(episodes.distance[0, i]), 4),
            )
            for i in np.flatnonzero(arrived)
        ]
        # One event per contact, not per step in contact: a robot pushing
        # against a wall would otherwise flood the topic at 10 Hz.
        for hit, before_hit, kind in (
            (robot_hit, self._touching_robot, "robot"),
            (static_hit, self._touching_static, "static"),
        ):
            events += [
                self.event("collision", int(i), **{"with": kind})
                for i in np.flatnonzero(hit & ~before_hit)
            ]
        self._touching_robot, self._touching_static = robot_hit.copy(), static_hit.copy()

        reason = episodes.end_reasons(contacts.any)[0]
        end = self.end_episode(reason) if reason else None
        return StepOutcome(events, end)

    def _drop_commands(self) -> None:
        self._command[:] = 0.0
        self._command_time[:] = -math.inf

    def hold(self) -> None:
        """One control period with every robot at rest, unscored (lockstep's settling):
        simulated time moves on, nothing else does. Commands are kept."""
        self.world.set_twists(np.zeros((1, self.num_robots, 2)))
        self.world.advance()
        self.scan_due = self.fidelity.scan_arrivals()[0]  # the lidar keeps turning

    def halt(self) -> None:
        """Zero every robot's command and velocity, without scoring (for shutdown)."""
        self._drop_commands()
        self.world.set_twists(np.zeros((1, self.num_robots, 2)))
        self.world.advance()  # with zero twists nothing moves; velocities read 0

    # -- readings ----------------------------------------------------------- #

    @property
    def sim_time(self) -> float:
        return self.world.sim_time

    def readings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """What the robots measure now, at the config's fidelity: odometry poses
        (N, 3, in map) and velocities (N, 2), and the scans (N, scan_beams) of
        the robots in `scan_due` (rows of the others are not meaningful), or
        None when no robot's lidar sends one now."""
        world = self.world
        poses, velocities = self.fidelity.odometry(world.poses(), world.velocities())
        ranges = None
        if self.scan_due.any():
            ranges = self.fidelity.scan(world, self.profile.scan_beams, np.array([0]))[0]
        return poses[0], velocities[0], ranges

    @property
    def parked(self) -> np.ndarray:
        """(N,) robots that reached their goal this episode."""
        return self.episodes.arrived[0]

    @property
    def touching(self) -> np.ndarray:
        """(N,) robots in contact with anything in the last step."""
        return self._touching_robot | self._touching_static

    def event(self, kind: str, robot: int | None = None, **fields: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "robot": robot,
            "t": round(self.world.sim_time, 6),
            "episode": self.episode,
            **fields,
        }

    def close(self) -> None:
        self.world.close()


def event_json(event: dict[str, Any]) -> str:
    """One event as strict JSON: NaN (no robot arrived) becomes null."""
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in event.items()
    }
    return json.dumps(clean, allow_nan=False)


# --------------------------------------------------------------------------- #
# Message helpers.
# --------------------------------------------------------------------------- #


def time_msg(seconds: float) -> Time:
    """builtin_interfaces/Time from seconds (simulated time starts at 0)."""
    nanoseconds = round(seconds * 1e9)
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def _set_yaw(orientation, yaw: float) -> None:
    orientation.x = orientation.y = 0.0
    orientation.z = math.sin(yaw / 2.0)
    orientation.w = math.cos(yaw / 2.0)


def odom_origins(starts: np.ndarray, per_robot: bool) -> np.ndarray:
    """(N, 3) each robot's odom origin in map (its map -> odom transform): the start
    pose with per-robot frames (rounded as episode_start reports it, so a tool given
    the event's numbers uses exactly the bridge's frame), else the map origin."""
    starts = np.asarray(starts, dtype=np.float64)[:, :3]
    return np.round(starts, 6) if per_robot else np.zeros_like(starts)


def transform_msg(parent: str, child: str, stamp: Time, pose) -> TransformStamped:
    """geometry_msgs/TransformStamped of the planar pose (x, y, yaw) of `child` in `parent`."""
    t = TransformStamped()
    t.header.frame_id, t.child_frame_id, t.header.stamp = parent, child, stamp
    t.transform.translation.x, t.transform.translation.y = float(pose[0]), float(pose[1])
    _set_yaw(t.transform.rotation, float(pose[2]))
    return t


def static_transforms(settings: BridgeSettings, origins: np.ndarray, stamp: Time) -> list:
    """/tf_static of one episode: map -> each odom frame, each base_footprint -> base_scan."""
    out = []
    if settings.per_robot_frames:
        out += [
            transform_msg(settings.map_frame, settings.odom_frame_of(i), stamp, origin)
            for i, origin in enumerate(origins)
        ]
    elif settings.odom_frame != settings.map_frame:
        out.append(transform_msg(settings.map_frame, settings.odom_frame, stamp, (0, 0, 0)))
    # The simulated lidar sits at the body's centre, looking ahead.
    out += [
        transform_msg(
            settings.base_frame_of(i), f"{settings.robot_namespace(i)}/base_scan", stamp, (0, 0, 0)
        )
        for i in range(len(origins))
    ]
    return out


_PALETTE = (
    (0.12, 0.47, 0.71),
    (1.00, 0.50, 0.05),
    (0.17, 0.63, 0.17),
    (0.58, 0.40, 0.74),
    (0.55, 0.34, 0.29),
    (0.89, 0.47, 0.76),
    (0.50, 0.50, 0.50),
    (0.74, 0.74, 0.13),
    (0.09, 0.75, 0.81),
)


def _marker(frame: str, stamp: Time, ns: str, ident: int, kind: int, rgba) -> Marker:
    m = Marker()
    m.header.frame_id = frame
    m.header.stamp = stamp
    m.ns, m.id, m.type, m.action = ns, ident, kind, Marker.ADD
    m.color.r, m.color.g, m.color.b, m.color.a = (float(c) for c in rgba)
    m.pose.orientation.w = 1.0
    return m


def arena_markers(arena: SimulatedArena, frame: str, stamp: Time) -> MarkerArray:
    """RViz picture of the arena: walls, obstacles, goals, robots with headings and labels."""
    out = MarkerArray()
    # Clear first: obstacles of the last episode must not linger in RViz.
    clear = Marker(action=Marker.DELETEALL)
    clear.header.frame_id = frame
    out.markers.append(clear)
    half, thick, height = arena.arena_size / 2.0, 0.05, 0.4
    for k, (x, y, sx, sy) in enumerate(
        (
            (half + thick / 2, 0.0, thick, 2 * half + 2 * thick),
            (-half - thick / 2, 0.0, thick, 2 * half + 2 * thick),
            (0.0, half + thick / 2, 2 * half, thick),
            (0.0, -half - thick / 2, 2 * half, thick),
        )
    ):
        m = _marker(frame, stamp, "walls", k, Marker.CUBE, (0.4, 0.4, 0.4, 1.0))
        m.pose.position.x, m.pose.position.y, m.pose.position.z = x, y, height / 2
        m.scale.x, m.scale.y, m.scale.z = sx, sy, height
        out.markers.append(m)
    for k, o in enumerate(arena.world.obstacles(0)):
        kind = Marker.CYLINDER if o.kind == "cylinder" else Marker.CUBE
        m = _marker(frame, stamp, "obstacles", k, kind, (0.3, 0.3, 0.3, 1.0))
        m.pose.position.x, m.pose.position.y, m.pose.position.z = o.x, o.y, height / 2
        if o.kind == "cylinder":
            m.scale.x = m.scale.y = 2 * o.radius
        else:
            m.scale.x, m.scale.y = 2 * o.half_x, 2 * o.half_y
            _set_yaw(m.pose.orientation, o.yaw)
        m.scale.z = height
        out.markers.append(m)
    poses, goals = arena.world.poses()[0], arena.world.goals()[0]
    parked, touching = arena.parked, arena.touching
    radius, tolerance = arena.profile.radius, arena.cfg.goal_tolerance
    for i in range(arena.num_robots):
        rgb = _PALETTE[i % len(_PALETTE)]
        goal = _marker(frame, stamp, "goals", i, Marker.CYLINDER, (*rgb, 0.35))
        goal.pose.position.x, goal.pose.position.y = float(goals[i, 0]), float(goals[i, 1])
        goal.scale.x = goal.scale.y = 2 * tolerance
        goal.scale.z = 0.01
        out.markers.append(goal)
        # Red while touching something, pale once parked on its goal.
        body_rgba = (0.9, 0.1, 0.1, 1.0) if touching[i] else (*rgb, 0.4 if parked[i] else 1.0)
        x, y, yaw = (float(v) for v in poses[i])
        body = _marker(frame, stamp, "robots", i, Marker.CYLINDER, body_rgba)
        body.pose.position.x, body.pose.position.y, body.pose.position.z = x, y, 0.1
        body.scale.x = body.scale.y = 2 * radius
        body.scale.z = 0.2
        _set_yaw(body.pose.orientation, yaw)
        heading = _marker(frame, stamp, "headings", i, Marker.ARROW, (0.1, 0.1, 0.1, 1.0))
        heading.pose.position.x, heading.pose.position.y, heading.pose.position.z = x, y, 0.21
        _set_yaw(heading.pose.orientation, yaw)
        heading.scale.x, heading.scale.y, heading.scale.z = 1.5 * radius, 0.03, 0.03
        label = _marker(frame, stamp, "labels", i, Marker.TEXT_VIEW_FACING, (1.0, 1.0, 1.0, 1.0))
        label.pose.position.x, label.pose.position.y, label.pose.position.z = x, y, 0.35
        label.scale.z = 0.12
        label.text = str(i)
        out.markers += [body, heading, label]
    return out


# --------------------------------------------------------------------------- #
# The node.
# --------------------------------------------------------------------------- #


@dataclass
class RobotChannels:
    """One robot's publishers and the messages reused for them every step."""

    scan_pub: Any
    odom_pub: Any
    goal_pub: Any
    cmd_sub: Any
    scan: LaserScan
    odom: Odometry


class SimBridgeNode(Node):
    """Steps a SimulatedArena on a timer and speaks for its robots on ROS 2."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        if self.get_parameter("use_sim_time").value:
            # Its timer would wait for the /clock that only the timer publishes.
            raise ConfigError(
                "parameter use_sim_time=true: the sim bridge is the source of /clock and steps"
                " on the wall clock; leave it false here and set it on the policy nodes"
            )
        self.settings = settings_from_parameters(declare_parameters(self, PARAMETERS))
        cfg = build_sim_config(self.settings)
        self.arena = SimulatedArena(
            cfg, self.settings.seed, self.settings.cmd_timeout, None, self.settings.scan_angle_min
        )
        profile = self.arena.profile
        self.finished = False
        """True once the requested number of episodes has run."""
        self._step_max = 0.0
        self._step_total = 0.0
        self._step_count = 0
        self._lockstep: Lockstep | None = None
        if self.settings.lockstep:
            self._lockstep = Lockstep(
                self.arena.num_robots,
                timeout=self.settings.lockstep_timeout,
                start_timeout=self.settings.lockstep_start_timeout,
                min_interval=self._step_period(),
                settle_ticks=max(SETTLE_TICKS, cfg.scan_stack),
            )

        # Reliable, as REP-2003 asks of drivers; sensor-data (best-effort)
        # subscribers match it, and reliable ones (a recorder) get every reading.
        sensor_qos = QoSProfile(depth=10)
        latched = latched_qos()
        # Best effort accepts both reliable and best-effort publishers, and
        # only the newest command matters anyway.
        command_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        command_type = TwistStamped if self.settings.cmd_vel_stamped else Twist
        self.robots: list[RobotChannels] = []
        for i in range(self.arena.num_robots):
            ns = self.settings.robot_namespace(i)
            scan = LaserScan()
            scan.header.frame_id = f"{ns}/base_scan"
            scan.angle_min = self.settings.scan_angle_min
            scan.angle_increment = 2.0 * math.pi / profile.scan_beams
            scan.angle_max = scan.angle_min + scan.angle_increment * (profile.scan_beams - 1)
            scan.scan_time = profile.control_period
            scan.range_min, scan.range_max = profile.range_min, profile.range_max
            odom = Odometry()
            odom.header.frame_id = self.settings.odom_frame_of(i)
            odom.child_frame_id = self.settings.base_frame_of(i)
            self.robots.append(
                RobotChannels(
                    scan_pub=self.create_publisher(LaserScan, f"{ns}/scan", sensor_qos),
                    odom_pub=self.create_publisher(Odometry, f"{ns}/odom", sensor_qos),
                    goal_pub=self.create_publisher(PoseStamped, f"{ns}/goal", latched),
                    cmd_sub=self.create_subscription(
                        command_type,
                        f"{ns}/cmd_vel",
                        lambda msg, robot=i: self._on_command(robot, msg),
                        command_qos,
                    ),
                    scan=scan,
                    odom=odom,
                )
            )
        self._origins = np.zeros((self.arena.num_robots, 3))
        """(N, 3) each robot's odom origin in map this episode (see odom_origins)."""
        self._tf_pub = self._tf_static_pub = None
        tf_note = self._make_tf_publishers()
        self._clock_pub = self.create_publisher(Clock, "/clock", 10)
        # Events keep a history so a scorer started a moment late still sees
        # the episode_start it needs.
        self._events_pub = self.create_publisher(String, EVENTS_TOPIC, latched_qos(100))
        self._markers_pub = self.create_publisher(MarkerArray, MARKERS_TOPIC, latched)
        self._reset_srv = self.create_service(Trigger, RESET_SERVICE, self._on_reset)
        self.add_post_set_parameters_callback(self._after_parameters_set)
        self._step_timer = self.create_timer(self._timer_period(), self._on_step)
        self._marker_timer = None
        if self.settings.marker_rate > 0:
            self._marker_timer = self.create_timer(
                1.0 / self.settings.marker_rate, self._on_markers
            )

        self._begin_episode()
        self.get_logger().info(
            f"{self.arena.num_robots} robots ({cfg.scenario}, arena {self.arena.arena_size:.2f} m,"
            f" profile {profile.name}) at {1.0 / profile.control_period:g} Hz x"
            f" {self.settings.real_time_factor:g} real time"
            f"{' at most, in lockstep' if self._lockstep else ''}; topics"
            f" {self.settings.robot_namespace(0)}/{{scan,odom,goal,cmd_vel}} ..."
            f" {EVENTS_TOPIC}, service {RESET_SERVICE}; frames {self.settings.map_frame} ->"
            f" {self.settings.odom_frame_of(0)} -> {self.settings.base_frame_of(0)}; {tf_note}"
        )

    def _make_tf_publishers(self) -> str:
        """/tf and /tf_static publishers when wanted and possible; says which it is."""
        if not self.settings.publish_tf:
            return "TF off (publish_tf:=false)"
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            # pip installs of rclpy come without tf2_msgs; everything else works.
            return (
                "TF off: tf2_msgs is not importable here (it comes with a ROS distro, e.g."
                " ros-jazzy-tf2-msgs); each robot's map -> odom is in episode_start's map_to_odom"
            )
        self._tf_message = TFMessage
        self._tf_pub = self.create_publisher(TFMessage, "/tf", 100)
        self._tf_static_pub = self.create_publisher(TFMessage, "/tf_static", latched_qos())
        return "TF on /tf and /tf_static"

    # -- parameters ---------------------------------------------------------- #

    def _after_parameters_set(self, parameters: list[Parameter]) -> None:
        # Ranges and read-only flags were checked by the descriptors; here
        # only the side effects of the dynamic parameters happen.
        for p in parameters:
            if p.name == "cmd_timeout":
                self.arena.cmd_timeout = float(p.value)
            elif p.name == "real_time_factor":
                self.settings = replace(self.settings, real_time_factor=float(p.value))
                self._step_timer.cancel()
                self.destroy_timer(self._step_timer)
                self._step_timer = self.create_timer(self._timer_period(), self._on_step)
                if self._lockstep is not None:
                    self._lockstep.min_interval = self._step_period()

    def _step_period(self) -> float:
        return self.arena.profile.control_period / self.settings.real_time_factor

    def _timer_period(self) -> float:
        # In lockstep the timer only looks whether it may step yet (the last
        # command usually triggers the step itself), so it may look often.
        period = self._step_period()
        return min(period, _LOCKSTEP_POLL) if self._lockstep is not None else period

    # -- callbacks ----------------------------------------------------------- #

    def _on_command(self, robot: int, msg: Twist | TwistStamped) -> None:
        stamped = isinstance(msg, TwistStamped)
        twist = msg.twist if stamped else msg
        if not self.arena.command(robot, twist.linear.x, twist.angular.z):
            self.get_logger().warn(
                f"{self.settings.robot_namespace(robot)}/cmd_vel: ignored a non-finite command"
                f" (v={twist.linear.x}, w={twist.angular.z}); the robot stops",
                throttle_duration_sec=1.0,
            )
        lockstep = self._lockstep
        if lockstep is not None:
            stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec if stamped else None
            lockstep.answer(robot, stamp, moving=twist.linear.x != 0.0 or twist.angular.z != 0.0)
            if self.arena.running and lockstep.all_answered(~self.arena.parked):
                # The last answer: step now rather than at the next timer tick.
                self._advance_lockstep()

    def _on_step(self) -> None:
        if not self.arena.running:
            return
        if self._lockstep is None:
            self._step_world()
        else:
            self._advance_lockstep()

    def _advance_lockstep(self) -> None:
        decision = self._lockstep.next_action(time.monotonic(), ~self.arena.parked)
        if decision.action is Action.WAIT:
            return
        if decision.late:
            late = [self.settings.robot_namespace(i) for i in decision.late]
            self.get_logger().warn(
                f"lockstep: no command from {late} within"
                f" {self._lockstep.timeout:g} s; stepping without (a miss each)",
                throttle_duration_sec=2.0,
            )
        if decision.action is Action.STEP:
            self._step_world()
            return
        # Goals go out before the tick's readings, so nodes act on them at this tick.
        if decision.action is Action.SETTLE:
            self._publish_goals(self.arena.world.poses()[0, :, :2])
        elif decision.action is Action.GO:
            self._publish_goals()
            self.get_logger().info(
                f"episode {self.arena.episode}: every robot ready and settled after"
                f" {self._lockstep.episode_holds} ticks at rest; the goals are out again"
            )
        self.arena.hold()
        self._publish_readings()
        self._publish_clock()
        self._lockstep.tick(time.monotonic(), self.arena.sim_time, hold=True)

    def _step_world(self) -> None:
        started = time.perf_counter()
        outcome = self.arena.step()
        self._publish_readings()
        for event in outcome.events:
            self._publish_event(event)
        if outcome.episode_end is not None:
            self._finish_episode(outcome.episode_end)
        # Last: a node acting on /clock then has this step's readings (and, when
        # an episode ended, the next one's goals and start readings).
        self._publish_clock()
        if self._lockstep is not None:
            self._lockstep.tick(time.monotonic(), self.arena.sim_time)
        elapsed = time.perf_counter() - started
        self._step_count += 1
        self._step_total += elapsed
        self._step_max = max(self._step_max, elapsed)

    def _publish_clock(self) -> None:
        if self.settings.publish_clock:
            self._clock_pub.publish(Clock(clock=time_msg(self.arena.sim_time)))

    def _on_markers(self) -> None:
        self._markers_pub.publish(arena_markers(self.arena, self.settings.map_frame, self._stamp()))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.finished:
            response.success = False
            response.message = (
                f"all {self.settings.episodes} episodes have run; the bridge is shutting down"
            )
            return response
        if self.arena.running:
            self._finish_episode(self.arena.end_episode("reset"))
        response.success = self.arena.running
        response.message = (
            f"episode {self.arena.episode} started"
            if self.arena.running
            else f"all {self.settings.episodes} episodes have run"
        )
        return response

    # -- episodes ------------------------------------------------------------ #

    def _begin_episode(self) -> None:
        event = self.arena.start_episode()
        settings = self.settings
        self._origins = odom_origins(self.arena.world.poses()[0], settings.per_robot_frames)
        event.update(
            map_frame=settings.map_frame,
            odom_frames=[settings.odom_frame_of(i) for i in range(len(self.robots))],
            map_to_odom=self._origins.tolist(),
        )
        if self._tf_static_pub is not None:
            self._tf_static_pub.publish(
                self._tf_message(
                    transforms=static_transforms(settings, self._origins, self._stamp())
                )
            )
        self._publish_goals()
        self._publish_event(event)
        # Readings of the start pose, so nodes have a scan before the first step.
        self._publish_readings()
        if self._lockstep is not None:
            self._lockstep.begin_episode(time.monotonic())
        self.get_logger().info(
            f"episode {event['episode']} started: goals published for {len(self.robots)} robots"
        )

    def _publish_goals(self, points: np.ndarray | None = None) -> None:
        """Each robot's goal (latched) in its odom frame: the episode's, or `points`
        (N, 2, in map). Nothing with publish_goals:=false."""
        if not self.settings.publish_goals:
            return
        if points is None:
            # The exact goals arrival is judged by (the event's are rounded for JSON).
            points = self.arena.world.goals()[0]
        points = frames.to_odom(self._origins, points)
        stamp = self._stamp()
        for i, (robot, (x, y)) in enumerate(zip(self.robots, points, strict=True)):
            goal = PoseStamped()
            goal.header.frame_id = self.settings.odom_frame_of(i)
            goal.header.stamp = stamp
            goal.pose.position.x, goal.pose.position.y = float(x), float(y)
            goal.pose.orientation.w = 1.0
            robot.goal_pub.publish(goal)

    def _with_misses(self, end_event: dict[str, Any]) -> dict[str, Any]:
        """An episode_end event with the episode's lockstep misses (in lockstep)."""
        if self._lockstep is not None:
            end_event["lockstep_misses"] = self._lockstep.episode_misses
        return end_event

    def _finish_episode(self, end_event: dict[str, Any]) -> None:
        self._publish_event(self._with_misses(end_event))
        mean_ms = 1e3 * self._step_total / max(self._step_count, 1)
        misses = (
            f" lockstep misses {end_event['lockstep_misses']};"
            if self._lockstep is not None
            else ""
        )
        self.get_logger().info(
            f"episode {end_event['episode']} ended ({end_event['reason']}):"
            f" success={end_event['success']} arrived={end_event['arrived_fraction']:.2f}"
            f" collisions={end_event['collisions']} length={end_event['length']};{misses}"
            f" step cost mean {mean_ms:.2f} ms, max {1e3 * self._step_max:.2f} ms"
            f" (period {1e3 * self._step_period():.0f} ms)"
        )
        episodes = self.settings.episodes
        if episodes and self.arena.episodes_ended >= episodes:
            self.finished = True
        else:
            self._begin_episode()

    # -- publishing ---------------------------------------------------------- #

    def _stamp(self) -> Time:
        if self.settings.publish_clock:
            return time_msg(self.arena.sim_time)
        return self.get_clock().now().to_msg()

    def _publish_readings(self) -> None:
        arena = self.arena
        stamp = self._stamp()
        # At the sim config's fidelity: odometry with its drift; a scan only
        # from robots whose lidar sends one now (every scan_period), noisy.
        true_poses, velocities, ranges = arena.readings()
        poses = frames.to_odom(self._origins, true_poses)
        for i, robot in enumerate(self.robots):
            # Odometry first: a node that acts on each scan (control_on_scan)
            # then sees the pose of the same step, as in training.
            odom = robot.odom
            odom.header.stamp = stamp
            x, y, yaw = poses[i]
            odom.pose.pose.position.x, odom.pose.pose.position.y = float(x), float(y)
            _set_yaw(odom.pose.pose.orientation, float(yaw))
            odom.twist.twist.linear.x = float(velocities[i, 0])
            odom.twist.twist.angular.z = float(velocities[i, 1])
            robot.odom_pub.publish(odom)
            if ranges is None or not arena.scan_due[i]:
                continue
            scan = robot.scan
            scan.header.stamp = stamp
            scan.ranges = array.array("f", ranges[i].astype(np.float32).tobytes())
            robot.scan_pub.publish(scan)
        if self._tf_pub is not None:
            settings = self.settings
            self._tf_pub.publish(
                self._tf_message(
                    transforms=[
                        transform_msg(
                            settings.odom_frame_of(i), settings.base_frame_of(i), stamp, p
                        )
                        for i, p in enumerate(poses)
                    ]
                )
            )

    def _publish_event(self, event: dict[str, Any]) -> None:
        self._events_pub.publish(String(data=event_json(event)))

    # -- shutdown ------------------------------------------------------------ #

    def step_cost(self) -> dict[str, float]:
        """Wall-clock cost of the step callback so far (simulate + publish), in ms."""
        return {
            "step_ms_mean": round(1e3 * self._step_total / max(self._step_count, 1), 3),
            "step_ms_max": round(1e3 * self._step_max, 3),
            "steps": self._step_count,
        }

    def close(self, reason: str) -> None:
        """Stop every robot, report the partial episode and say goodbye on /swarm/events."""
        self._step_timer.cancel()
        if self._marker_timer is not None:
            self._marker_timer.cancel()
        if self.arena.running:
            self._publish_event(self._with_misses(self.arena.end_episode("shutdown")))
        self.arena.halt()
        self._publish_readings()
        self._publish_clock()
        lockstep = {}
        if self._lockstep is not None:
            lockstep = {"lockstep_misses": self._lockstep.misses.tolist()}
        self._publish_event(
            self.arena.event(
                "shutdown",
                reason=reason,
                episodes_ended=self.arena.episodes_ended,
                **self.step_cost(),
                **lockstep,
            )
        )
        # Reliable subscribers (scorers) get the last events before we leave.
        self._events_pub.wait_for_all_acked(Duration(seconds=1.0))
        self.get_logger().info(f"stopped ({reason}); step cost {self.step_cost()}")
        self.arena.close()


def main(args: list[str] | None = None) -> int:
    """Run the bridge until SIGINT/SIGTERM or the last episode; 0 on a clean exit."""
    # Our own signal handlers: rclpy's would shut the context down before we
    # could zero the robots and publish the final events.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop: list[str] = []

    def request_stop(signum: int, _frame: Any) -> None:
        stop.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        try:
            node = SimBridgeNode()
        except (ValueError, PlacementError, rclpy.exceptions.ParameterException, OSError) as err:
            hint = ""
            if isinstance(err, rclpy.exceptions.InvalidParameterTypeException):
                hint = " (write numbers with a decimal point, e.g. 5.0; flags as true/false)"
            print(f"{NODE_NAME}: {err}{hint}", file=sys.stderr)
            return 2
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not stop and not node.finished:
                executor.spin_once(timeout_sec=0.05)
        except PlacementError as err:
            # A config the first layout barely fitted can fail on a later draw.
            node.get_logger().error(f"cannot draw the next episode's layout: {err}")
            node.close("placement_error")
            return 1
        node.close(stop[0] if stop else "episodes_done")
        executor.remove_node(node)
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
