"""One robot's policy node: its own scan, odom and goal in, cmd_vel out.

Run one per robot, in the robot's namespace:

    python -m swarm_controller.policy_node --ros-args -r __ns:=/robot_0 \\
        -p policy_path:=models/<name>/robot_0.onnx

Topics (relative, so the namespace makes them the robot's own):
  scan     sensor_msgs/LaserScan      sensor-data QoS
  odom     nav_msgs/Odometry          sensor-data QoS
  goal     geometry_msgs/PoseStamped, subscribed RELIABLE + TRANSIENT_LOCAL (a
           late node still gets a latched goal) and RELIABLE + VOLATILE (RViz's
           2D Goal Pose, `ros2 topic pub`), depth 1 each; one message heard on
           both counts once. frame_id: the robot's odom frame (tb3_0/odom) or
           map (through map_to_odom, else TF); any other frame is refused and
           an empty one cancels: the robot holds, saying why on /diagnostics.
           A goal stamped more than max_goal_age ago is refused (goals.py).
  estop         std_msgs/Bool, this robot's e-stop
  /swarm/estop  std_msgs/Bool, the whole fleet's e-stop
           Both subscribed RELIABLE + TRANSIENT_LOCAL, depth 1 (a latched
           e-stop holds a node that starts later too) and also RELIABLE +
           VOLATILE, so a plain `ros2 topic pub` reaches the node as well.
           True on either: an immediate zero, then the robot holds (zeros at
           the control rate, "e-stop (robot)" / "e-stop (fleet)" on
           /diagnostics) until both read False, whatever the lifecycle state.
           Right after start the node does not drive until it has heard the
           latched e-stops (at most estops.DISCOVERY_S, or estops.STATE_WAIT_S
           while a latched publisher is matched but its state has not come):
           a respawned node must not drive through an engaged e-stop.
  cmd_vel  geometry_msgs/TwistStamped, frame_id <frame_prefix><base_frame>
           (a TurtleBot3 on Jazzy); Twist with cmd_vel_stamped:=false
  ~/active_policy  std_msgs/String, latched JSON: which model drives. A
           lifecycle publisher: sent on activate and on swaps while active.
  /diagnostics     diagnostic_msgs/DiagnosticArray, every second of the wall
           clock (also with use_sim_time and no /clock), in every lifecycle
           state, and on every swap; scan_hz, odom_hz and cmd_vel_hz (last
           5 s) WARN while driving when below half of what is expected.
           scan_period: the lidar's measured period (median interval of the
           last scans); WARN, naming both periods, while a model stacking
           scans meets a lidar more than 30 % off its contract's scan_period
           (scan_period.py: it warns and does not hold, and why).

Which robot a model must fit (robot_fit.py): the robot_contract file, else
the robot profile (robot_profile, default: the shipped profile the model
names, turtlebot3_burger) for what the robot is (ranges, limits, control and
scan periods), with the first model's beams, stack and goal clip. A model
whose scan stack was trained at another lidar period is refused at configure
and on a swap, naming scan_period; on a refused swap the old policy drives on.
The profile's mount_yaw turns scan angles into robot-frame angles, for the
observation and the stop zone alike (as the simulator pools them).

Nothing from another robot or any shared topic feeds the control: a robot's
policy sees only its own sensors (the deployment half of MAPPO's centralized
training, decentralized execution); the fleet e-stop can only stop it.

Command watchdog: the control timer runs from the node's start to its
shutdown, at the model's control period (the default robot profile's 0.1 s
before a model is loaded). Whenever the node is not driving (unconfigured,
inactive, an e-stop, stale sensors, a broken lidar, no goal, at the goal) each
tick publishes a zero, because a base may keep executing the last command it
heard. Shutdown publishes a last zero and then nothing.

A lifecycle node: configure loads and checks the model, activate lets the
policy drive, deactivate and shutdown publish a zero at once, cleanup unloads.
rclpy's state machine is the only state. `autostart` (default true) runs
configure and activate at start; under a lifecycle manager (nav2's, or
launch_ros's LifecycleNode) set it false. A transition the current state does
not allow is answered success=false, and the node carries on. Every policy command
passes the clamp, then the shared safety layer (swarm_contract.safety_layer:
acceleration ramp, stop zone). Setting `policy_path` on a running node swaps
the policy live: the on-set callback loads and checks the new file on a
worker thread while the control loop keeps ticking (see executor.py), then
the post-set callback swaps one reference and writes the live-policy record
(live_policy.py) that a respawned node resumes from.
"""

from __future__ import annotations

import gc
import importlib.util
import math
import signal
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import SetParameters
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, String

from swarm_contract.config import ConfigError, from_dict, load_yaml
from swarm_contract.onnx_policy import OnnxPolicy, PolicyRejected
from swarm_contract.robot_io import (
    Contract,
    ObservationBuilder,
    RobotProfile,
    clamp_twist,
    count_valid_rays,
)
from swarm_contract.safety_layer import SafetyLayer
from swarm_controller import estops, goals, live_policy, parameters, robot_fit
from swarm_controller.estops import EStops
from swarm_controller.executor import ControlFirstExecutor
from swarm_controller.messages import (
    VelocityCommand,
    checked_scan_ranges,
    goal_identity,
    goal_request,
    odom_pose_and_twist,
)
from swarm_controller.reporting import (
    NodeCounters,
    RateMeter,
    active_policy_json,
    diagnostic_status,
    measured_rate,
)
from swarm_controller.safety import CommandGate, estop_reason
from swarm_controller.scan_period import ScanPeriodMeter, period_problem

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
# The same e-stop from a publisher that does not latch (a plain `ros2 topic
# pub`): a TRANSIENT_LOCAL subscription alone would not match it, and the
# operator's stop would be lost without a word.
UNLATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
ESTOP_TOPIC = "estop"
"""This robot's e-stop, relative: `<namespace>/estop`."""
FLEET_ESTOP_TOPIC = "/swarm/estop"
"""Every robot's e-stop."""
# Zero commands go out at this period until a model sets its own.
IDLE_PERIOD = RobotProfile().control_period
DIAGNOSTICS_PERIOD = 1.0
# A tick counts as missed when the gap since the previous one exceeds this
# many periods (timer jitter of a few ms is not a missed tick).
MISSED_TICK_FACTOR = 1.5
# Goals in map go through TF when tf2_ros is there (a ROS distro); on the pip
# road they need the map_to_odom parameter (goals.py).
TF_AVAILABLE = importlib.util.find_spec("tf2_ros") is not None


def load_robot_contract(path: str) -> Contract:
    """The robot's contract from a YAML file of robot_io.Contract fields."""
    try:
        return from_dict(Contract, load_yaml(path), where=f"robot_contract {path}")
    except ConfigError as err:
        raise PolicyRejected(f"parameter robot_contract: {err}") from None


def refusal_reason(err: Exception, path: str) -> str:
    """What a refused policy load tells the operator; unexpected errors name their type."""
    if isinstance(err, PolicyRejected):
        return str(err)
    return f"policy {path} refused: unexpected {type(err).__name__} while loading it: {err}"


class PolicyNode(LifecycleNode):
    """Turns one robot's sensors into velocity commands with its ONNX policy."""

    def __init__(self, node_name: str = "policy_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        # Subscriptions and the control timer: run inline by ControlFirstExecutor.
        self.control_group = MutuallyExclusiveCallbackGroup()
        parameters.declare(self)
        self._settings = parameters.read(self)
        # What the fleet file launched; a live swap changes only policy_path.
        self._launch_policy_path = self._settings.policy_path
        self._record_file = live_policy.record_path(
            self._settings.live_policy_record, self.get_namespace()
        )
        self._policy_source = ""
        self._adopting: str | None = None
        self._gate = CommandGate(
            self._settings.sensor_timeout,
            self._settings.goal_tolerance,
            self._settings.min_valid_ray_fraction,
        )
        # The clamp's limits: the read-only parameters, capped at configure to
        # what the robot allows (parameters.capped_limits).
        self._speed_limits = (self._settings.max_linear, self._settings.max_angular)
        self._safety: SafetyLayer | None = None
        self._counters = NodeCounters()
        # Arrivals on the steady clock (reporting.RateMeter); the sensors' are
        # measured while subscribed (configure to cleanup), cmd_vel's always.
        self._rates = {"scan": RateMeter(), "odom": RateMeter(), "cmd_vel": RateMeter()}
        self._rates["cmd_vel"].start(time.monotonic())
        self._scan_period = ScanPeriodMeter()
        self._scan_period_off = False  # whether the last check found a mismatch (logged once)
        self._problem = ""
        self._scan_problem = ""
        # The policy that drives. Replaced by one assignment (atomic under the
        # GIL); the control step reads it once per step.
        self._policy: OnnxPolicy | None = None
        self._robot_contract: Contract | None = None
        self._candidate: tuple[str, OnnxPolicy] | None = None
        self._builder: ObservationBuilder | None = None
        self._mount_yaw = 0.0  # the lidar's yaw on the base (robot profile), radians
        # Latest readings; written and read by control-group callbacks only.
        self._scan_time: float | None = None
        self._scan_rays: tuple[int, int] | None = None  # (valid, total) of the latest scan
        # The latest accepted scan's (ranges, angle_min, angle_increment): the stop zone's view.
        self._scan_geometry = None
        self._estops = EStops(started=time.monotonic())
        self._odom_time: float | None = None
        self._pose: tuple[float, float, float] | None = None
        self._velocity = (0.0, 0.0)
        # The goal as it came in (goals.GoalRequest), and what it is this step:
        # self._goal, its (x, y) in odom, or None while the robot holds with
        # self._goal_note saying why (refused, cancelled, no transform yet).
        self._goal: tuple[float, float] | None = None
        self._goal_request: goals.GoalRequest | None = None
        self._goal_note = ""
        self._goal_seen: tuple | None = None  # goal_identity of the last goal message
        self._odometry_frame: str | None = None  # header.frame_id of the latest odom
        self._goal_frames: tuple[parameters.NodeSettings, goals.GoalFrames] | None = None
        self._tf = None  # (tf2_ros.Buffer, TransformListener) once a map goal needs TF
        self._last_tick: float | None = None
        self._last_command_time: float | None = None
        self._period = IDLE_PERIOD
        # Serialises "may I command the robot?" with publishing, so a control
        # step cannot publish a policy command after deactivate published its
        # zero, nor anything after shutdown's last zero.
        self._command_lock = threading.Lock()
        self._active = False
        self._finalized = False
        # cmd_vel, the watchdog's timer and the e-stops exist from the start:
        # a node that is not (yet) driving still tells the base to stand still.
        s = self._settings
        self._cmd_pub = self.create_publisher(
            TwistStamped if s.cmd_vel_stamped else Twist, "cmd_vel", COMMAND_QOS
        )
        # REP-105 frame names, prefixed as a namespaced TurtleBot3 on Jazzy has them.
        self._frame_prefix = goals.frame_prefix(s.frame_prefix, self.get_namespace())
        self._cmd_msg = VelocityCommand(
            stamped=s.cmd_vel_stamped, frame_id=self._frame_prefix + s.base_frame
        )
        g = self.control_group
        self._control_timer = self.create_timer(
            self._period, self._on_control_timer, callback_group=g
        )
        self._latched_estops = {}
        for source, topic in (("robot", ESTOP_TOPIC), ("fleet", FLEET_ESTOP_TOPIC)):

            def on_estop(msg: Bool, source: str = source) -> None:
                self._on_estop(msg, source)

            self._latched_estops[source] = self.create_subscription(
                Bool,
                topic,
                on_estop,
                LATCHED,
                callback_group=g,
                # A plain publisher is heard by the UNLATCHED subscription;
                # rclpy's default warning here would call its e-stop lost.
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=lambda _: None),
            )
            self.create_subscription(Bool, topic, on_estop, UNLATCHED, callback_group=g)
        self._policy_pub = None
        self._sensor_subs: list = []
        # Plain publishers, not lifecycle ones: cmd_vel carries the watchdog's
        # zeros in every state (above), and /diagnostics must speak in every
        # state, unconfigured and inactive included. The diagnostics timer runs
        # on the steady clock: on the ROS clock, use_sim_time without /clock
        # would silence it exactly when an operator looks there.
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(
            DIAGNOSTICS_PERIOD,
            self.publish_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._take_policy_and_hash_together()
        self._refuse_invalid_transitions()

    # ------------------------------------------------------------------ #
    # Lifecycle.
    # ------------------------------------------------------------------ #

    @property
    def lifecycle_state(self) -> str:
        """rclpy's lifecycle state label ("unconfigured", "inactive", "active",
        "finalized", or a transition's "configuring" etc. while it runs)."""
        return self._state_machine.current_state[1]

    @property
    def settings(self) -> parameters.NodeSettings:
        """The parameters' current values."""
        return self._settings

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        s = self._settings
        try:
            reason = parameters.check_settings(s)
            if reason:
                raise PolicyRejected(f"parameter {reason}")
            robot = load_robot_contract(s.robot_contract) if s.robot_contract else None
            policy, source, resumed = self._configured_policy(robot)
            if robot is None:  # the profile's, which the policy was just checked against
                robot = robot_fit.robot_contract_for(s.robot_profile, policy.contract)
            profile = robot_fit.node_profile(s.robot_profile, robot)
            limits, warnings = parameters.safety_limits(s, robot)
        except Exception as err:  # PolicyRejected, or anything a check let slip
            self._problem = f"configure failed: {refusal_reason(err, s.policy_path)}"
            self.get_logger().error(self._problem)
            self.publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self._problem = ""
        if resumed:
            self._adopt_policy_path(resumed)
        self._policy_source = source
        self._robot_contract = robot
        self._policy = policy
        self._mount_yaw = profile.mount_yaw if profile is not None else 0.0
        self._builder = ObservationBuilder(robot, mount_yaw=self._mount_yaw)
        # The clamp's and the safety layer's limits: the read-only parameters,
        # none above what the robot allows (parameters.capped_limits).
        for warning in warnings:
            self.get_logger().warning(warning)
        self._speed_limits = (limits.max_linear, limits.max_angular)
        self._safety = SafetyLayer(limits)
        self._set_period(policy.contract.control_period)
        # A lifecycle publisher: it announces the model that drives, so it
        # speaks from activate on (on_activate publishes) and is muted while
        # inactive; a late subscriber still gets the latched last word.
        self._policy_pub = self.create_lifecycle_publisher(String, "~/active_policy", LATCHED)
        now = time.monotonic()
        self._rates["scan"].start(now)
        self._rates["odom"].start(now)
        self._scan_period.reset()
        g = self.control_group
        self._sensor_subs = [
            self.create_subscription(
                LaserScan, "scan", self._on_scan, qos_profile_sensor_data, callback_group=g
            ),
            self.create_subscription(
                Odometry, "odom", self._on_odom, qos_profile_sensor_data, callback_group=g
            ),
            # Goals from a latched publisher (swarm goal, the sim bridge: a node
            # that starts later still gets the goal) and from a volatile one
            # (RViz's 2D Goal Pose, `ros2 topic pub`), like the e-stops; a
            # latched goal heard on both is acted on once (goal_identity).
            self.create_subscription(
                PoseStamped,
                "goal",
                self._on_goal,
                LATCHED,
                callback_group=g,
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=lambda _: None),
            ),
            self.create_subscription(
                PoseStamped, "goal", self._on_goal, UNLATCHED, callback_group=g
            ),
        ]
        if s.allowed_policy_dirs is None:
            self.get_logger().warning(
                "allowed_policy_dirs is unset: any file may be loaded as a policy"
            )
        self._announce_policy(policy, "configured")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._gate.reset()
        with self._command_lock:
            self._safety.reset()
            self._active = True
        self.get_logger().info(f"active: control period {self._period:g} s")
        result = super().on_activate(state)  # enables the lifecycle publishers
        self._publish_active_policy()
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.stop_robot("deactivated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.stop_robot("shutting down", final=True)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        # A transition raised or returned ERROR: back to unconfigured, with
        # what configure made released, so a later configure starts clean.
        self.stop_robot("error")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Undo on_configure: sensor subscriptions, ~/active_policy, the policy."""
        for sub in self._sensor_subs:
            self.destroy_subscription(sub)
        self._sensor_subs = []
        self._rates["scan"].stop()
        self._rates["odom"].stop()
        self._scan_period.reset()
        if self._policy_pub is not None:
            self.destroy_lifecycle_publisher(self._policy_pub)
        self._policy_pub = None
        self._policy = self._builder = self._safety = None
        self._policy_source = ""
        self._scan_time = self._odom_time = self._pose = self._goal = None
        self._goal_request = self._goal_seen = self._odometry_frame = None
        self._goal_note = ""
        self._scan_rays = self._scan_geometry = None
        self._set_period(IDLE_PERIOD)

    def _refuse_invalid_transitions(self) -> None:
        """Answer a transition the current state does not allow with success=false.

        rclpy's ~/change_state handler hands the transition id to rcl, which
        raises RCLError when the current state has no such transition (activate
        while unconfigured, configure while active): the exception leaves the
        service callback, the executor re-raises it in the spin loop like
        rclpy's own executors do, and the process exits. Under a lifecycle
        manager and respawn that is a crash loop. A lifecycle service must
        answer, so the request is checked against the transitions rclpy offers
        from the current state first; a refused one is logged and reported.
        """
        service = getattr(self, "_service_change_state", None)
        if service is None:
            return  # started without the lifecycle services
        change_state = service.callback

        def checked_change_state(request, response):
            machine = self._state_machine
            current = machine.current_state[1]
            allowed = {(t[0], t[1]) for t in machine.available_transitions}
            wanted = request.transition
            ok = (
                wanted.label in {label for _, label in allowed}
                if wanted.label
                else wanted.id in {tid for tid, _ in allowed}
            )
            if ok:
                try:
                    return change_state(request, response)
                except Exception as err:  # rcl refused it after all
                    why = f"{type(err).__name__}: {err}"
            else:
                why = "allowed here: " + ", ".join(
                    sorted(f"{label} ({tid})" for tid, label in allowed)
                )
            name = wanted.label or next(
                (t[1] for t in machine.transition_graph if t[0] == wanted.id), "unknown"
            )
            self.get_logger().warning(
                f"lifecycle transition {name!r} (id {wanted.id}) refused in state"
                f" {current!r}; {why}"
            )
            response.success = False
            return response

        service.callback = checked_change_state

    def _set_period(self, period: float) -> None:
        """Tick (drive, or send the watchdog's zeros) every `period` seconds."""
        self._period = period
        self._control_timer.timer_period_ns = int(round(period * 1e9))
        self._last_tick = None

    def stop_robot(self, why: str, ack_timeout: float = 0.0, *, final: bool = False) -> None:
        """Publish a zero command now and stop driving until activated again.

        The control timer goes on sending zeros while the node is not active.
        final (shutdown): this zero is the last command the node ever sends.
        ack_timeout > 0 waits until subscribers acknowledged it (on shutdown,
        so the zero is delivered before the context goes down).
        """
        with self._command_lock:
            self._active = False
            if self._finalized:
                return
            self._publish_zero_locked(None)
            self._finalized = final
        if final:
            self.destroy_timer(self._control_timer)
        self.get_logger().info(f"zero command sent ({why})")
        if ack_timeout > 0:
            self._cmd_pub.wait_for_all_acked(Duration(seconds=ack_timeout))

    # ------------------------------------------------------------------ #
    # Sensors and control (control group: one at a time, inline).
    # ------------------------------------------------------------------ #

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_scan(self, msg: LaserScan) -> None:
        self._rates["scan"].arrived(time.monotonic())
        builder = self._builder
        if builder is None:
            return
        stamp = msg.header.stamp
        self._scan_period.arrived(goals.stamp_seconds(stamp.sec, stamp.nanosec), time.monotonic())
        try:
            ranges = checked_scan_ranges(msg)
            valid = count_valid_rays(ranges, msg.range_min, msg.range_max)
            builder.add_scan(ranges, msg.angle_min, msg.angle_increment)
        except ValueError as err:
            # Unusable fields or wrong geometry for the contract: the lidar can
            # no longer be trusted, so the last good scan stops counting as
            # fresh too and the stale rule stops the robot at the next tick.
            self._scan_time = self._scan_geometry = None
            self._scan_problem = f"scan refused: {err}"
            self.get_logger().error(self._scan_problem, throttle_duration_sec=5.0)
            return
        if not self._gate.enough_valid_rays(valid, len(ranges)):
            # A broken lidar (the gate holds the robot): its scan must not stay
            # in the stack and reappear once valid scans come back.
            builder.forget_scans()
        self._scan_problem = ""
        self._scan_rays = (valid, len(ranges))
        # In the robot frame, as the safety layer reads angles: a lidar mounted
        # turned sees an obstacle ahead at scan angle -mount_yaw.
        self._scan_geometry = (ranges, msg.angle_min + self._mount_yaw, msg.angle_increment)
        now = self._now()
        self._scan_time = now
        if self._settings.control_on_scan:
            self._step(now, stamp=msg.header.stamp, from_timer=False)

    def _on_odom(self, msg: Odometry) -> None:
        self._rates["odom"].arrived(time.monotonic())
        self._pose, self._velocity = odom_pose_and_twist(msg)
        self._odom_time = self._now()
        self._odometry_frame = msg.header.frame_id

    def _on_goal(self, msg: PoseStamped) -> None:
        """A new goal, a cancel (empty frame_id), or one refused at once (the robot holds)."""
        seen = goal_identity(msg)
        if seen == self._goal_seen:
            return  # the same message again, from the other goal subscription
        self._goal_seen = seen
        goal = goal_request(msg)
        self._goal = None
        if goal.is_cancel:
            self._goal_request, self._goal_note = None, goals.CANCEL
            self.get_logger().info(f"goal {goals.CANCEL}: holding")
        elif reason := goals.refusal_on_arrival(goal, self._now(), self._settings.max_goal_age):
            self._goal_request, self._goal_note = None, reason
            self.get_logger().warning(reason)
        else:
            self._goal_request, self._goal_note = goal, ""
            self._resolve_goal()  # logs why, if the goal cannot be used
            if self._goal is not None:
                x, y = self._goal
                odom = "" if (x, y) == (goal.x, goal.y) else f" = ({x:.2f}, {y:.2f}) in odom"
                self.get_logger().info(
                    f"goal ({goal.x:.2f}, {goal.y:.2f}) in frame '{goal.frame}'{odom}"
                )
        self.publish_diagnostics()

    def _resolve_goal(self) -> None:
        """Bring the goal into odom for this step; without it (foreign frame, no
        map -> odom) the robot holds and _goal_note says why, logged once."""
        goal = self._goal_request
        if goal is None:
            self._goal = None
            return
        frames = self._frames()
        tf_pose, tf_error = None, ""
        if goal.frame == goals.MAP_FRAME and frames.map_to_odom is None and frames.tf_available:
            tf_pose, tf_error = self._tf_map_to_odom(self._odometry_frame or frames.odom_frame)
        self._goal, note = frames.in_odom(goal, self._odometry_frame, tf_pose, tf_error)
        if note and note != self._goal_note:
            self.get_logger().warning(note)
        elif not note and self._goal_note:
            self.get_logger().info(
                f"goal ({goal.x:.2f}, {goal.y:.2f}) in '{goal.frame}' usable now"
            )
        self._goal_note = note

    def _frames(self) -> goals.GoalFrames:
        """This robot's goal frames, rebuilt when the parameters change (map_to_odom)."""
        s = self._settings
        if self._goal_frames is None or self._goal_frames[0] is not s:
            frames = goals.GoalFrames(
                odom_frame=self._frame_prefix + s.odom_frame,
                map_to_odom=goals.map_to_odom_pose(s.map_to_odom),
                tf_available=TF_AVAILABLE,
            )
            self._goal_frames = (s, frames)
        return self._goal_frames[1]

    def _tf_map_to_odom(self, odom_frame: str) -> tuple[goals.Pose2D | None, str]:
        """odom's pose in map from TF (the listener starts on the first map goal), or
        (None, why not)."""
        from rclpy.time import Time

        if self._tf is None:
            import tf2_ros

            buffer = tf2_ros.Buffer()
            self._tf = (buffer, tf2_ros.TransformListener(buffer, self))
        buffer, _ = self._tf
        try:
            t = buffer.lookup_transform(goals.MAP_FRAME, odom_frame, Time())
        except Exception as err:  # tf2's Lookup/Connectivity/Extrapolation exceptions
            return None, f"{type(err).__name__}: {err}"
        p, q = t.transform.translation, t.transform.rotation
        return goals.pose_from_transform(p.x, p.y, q.x, q.y, q.z, q.w), ""

    def _hold_reason(self) -> str:
        """The gate's hold reason, with why there is no goal when that is the reason."""
        reason = self._gate.reason
        if self._goal is None and self._goal_note and reason.startswith("no goal"):
            return f"no goal: {self._goal_note}"
        return reason

    def _on_estop(self, msg: Bool, source: str) -> None:
        """source "robot" (<ns>/estop) or "fleet" (/swarm/estop): True holds the robot."""
        engaged = bool(msg.data)
        if not self._estops.update(source, engaged):
            return  # the same state again (both QoS subscriptions hear a latched publisher)
        if engaged:
            self._counters.estop_engagements += 1
            self._publish_zero(None)
            self.get_logger().warning(
                f"e-stop ({source}) engaged: zero commands until it is released"
            )
        else:
            still = self._estops.engaged()
            self.get_logger().info(
                f"e-stop ({source}) released; "
                + (f"still held by {estop_reason(still)}" if still else "driving may resume")
            )
        self.publish_diagnostics()

    def _unheard_estops(self) -> tuple[str, ...]:
        """E-stops whose latched state may still be on its way, right after start."""
        now = time.monotonic()
        if now - self._estops.started >= estops.STATE_WAIT_S:
            return ()  # skip counting publishers once the wait is over
        matched = {s: sub.get_publisher_count() for s, sub in self._latched_estops.items()}
        return self._estops.unheard(now, matched)

    def _on_control_timer(self) -> None:
        now = self._now()
        self._count_tick(now)
        if self.lifecycle_state == "active":
            # With control_on_scan the scans drive; the timer still enforces stops.
            self._step(now, stamp=None, from_timer=True)
        else:
            # Not driving (unconfigured, inactive): the base still hears "stop".
            self._publish_zero(None)

    def _count_tick(self, now: float) -> None:
        c = self._counters
        c.ticks += 1
        if self._last_tick is not None and self._period > 0:
            gap = now - self._last_tick
            if gap > MISSED_TICK_FACTOR * self._period:
                c.missed_ticks += int(round(gap / self._period)) - 1
        self._last_tick = now

    def _goal_distance(self) -> float | None:
        if self._goal is None:
            return None
        # A NaN heading (odometry with a NaN quaternion) is as unusable as a NaN
        # position: the policy's goal bearing would be NaN, so hold instead.
        if self._pose is None or not all(math.isfinite(c) for c in self._pose):
            return math.nan
        return math.hypot(self._goal[0] - self._pose[0], self._goal[1] - self._pose[1])

    def _step(self, now: float, stamp, *, from_timer: bool) -> None:
        self._resolve_goal()
        decision = self._gate.decide(
            now,
            self._scan_time,
            self._odom_time,
            self._goal_distance(),
            self._scan_rays,
            self._estops.engaged(),
            self._unheard_estops(),
        )
        if not decision.drive:
            if decision.new_reason:
                self.get_logger().info(f"holding: {decision.reason}")
            # Every tick of a hold sends a zero; a scan (control_on_scan) sends
            # the first one at once rather than at the next tick.
            if from_timer or decision.new_reason:
                self._publish_zero(stamp)
            return
        if not (from_timer and self._settings.control_on_scan):
            self._drive(now, stamp)

    def _drive(self, now: float, stamp) -> None:
        policy = self._policy
        builder = self._builder
        if policy is None or builder is None:
            return
        # Beams depend only on fields every accepted policy shares with the
        # robot; the velocity features use the driving model's own limits.
        builder.contract = policy.contract
        obs = builder.observation(self._pose, self._goal, *self._velocity)
        started = time.perf_counter()
        try:
            cmd = policy.infer(obs)
        except Exception as err:  # a broken model must stop the robot, not the node
            self.get_logger().error(f"inference failed: {err}", throttle_duration_sec=5.0)
            self._publish_zero(stamp)
            return
        self._counters.last_inference_s = time.perf_counter() - started
        v, w = float(cmd[0]), float(cmd[1])
        if not (math.isfinite(v) and math.isfinite(w)):
            # A fault, not a wish to move: stop at once, without a ramp.
            self._counters.non_finite_commands += 1
            self._publish_zero(stamp)
            return
        v, w = clamp_twist(v, w, *self._speed_limits)
        self._publish_policy_command(v, w, now, stamp)

    def _publish_policy_command(self, v: float, w: float, now: float, stamp) -> None:
        """The policy's clamped (v, w), through the safety layer, while allowed to drive."""
        ranges, angle_min, angle_increment = self._scan_geometry or (None, 0.0, 0.0)
        with self._command_lock:
            if not self._active or self._finalized:
                return
            # The layer caps dt at one control period (see safety_layer).
            last = self._last_command_time
            dt = self._period if last is None else now - last
            safe = self._safety.filter(v, w, dt, ranges, angle_min, angle_increment)
            self._publish_locked(safe.linear, safe.angular, stamp, now)
        if safe.stop_zone_cut:
            self._counters.stop_zone_cuts += 1
            self.get_logger().warning(
                f"stop zone: an obstacle inside it, linear {v:.3f} m/s cut to 0",
                throttle_duration_sec=5.0,
            )

    def _publish_zero(self, stamp) -> None:
        """A zero command, in any lifecycle state but finalized."""
        with self._command_lock:
            if not self._finalized:
                self._publish_zero_locked(stamp)

    def _publish_zero_locked(self, stamp) -> None:
        self._publish_locked(0.0, 0.0, stamp, self._now())
        if self._safety is not None:
            self._safety.reset()  # the next ramp starts from rest

    def _publish_locked(self, v: float, w: float, stamp, now: float) -> None:
        if stamp is None and self._cmd_msg.stamped:
            stamp = self.get_clock().now().to_msg()
        self._cmd_pub.publish(self._cmd_msg.fill(v, w, stamp))
        self._rates["cmd_vel"].arrived(time.monotonic())
        self._last_command_time = now
        self._counters.commands += 1
        if v == 0.0 and w == 0.0:
            self._counters.zero_commands += 1

    # ------------------------------------------------------------------ #
    # Parameters and live policy swap (worker thread).
    # ------------------------------------------------------------------ #

    def _validate_parameters(self, params) -> SetParametersResult:
        """On-set: check new values, and load+check a new policy, without side effects.

        A policy set in the same call as expected_sha256 is checked against the
        new hash (see _take_policy_and_hash_together).
        """
        new = {p.name: p.value for p in params}
        reason = next(
            (r for p in params if (r := parameters.check_value(p.name, p.value)) is not None),
            None,
        )
        path = new.get("policy_path")
        if reason is None and path is not None and path != self._adopting:
            expected = str(new.get("expected_sha256", self._settings.expected_sha256))
            reason = self._prepare_policy(path, expected.strip().lower())
        if reason is None:
            return SetParametersResult(successful=True)
        if path is not None:
            self._counters.swaps_rejected += 1
            self._counters.last_swap_error = reason
            self.get_logger().warning(f"policy swap rejected: {reason}")
            self.publish_diagnostics()
        return SetParametersResult(successful=False, reason=reason)

    def _load_policy(self, path: str, robot: Contract | None, expected_sha256: str) -> OnnxPolicy:
        """OnnxPolicy.load with every check the parameters ask for; with no robot
        contract yet, checked against the robot profile (robot_fit)."""
        s = self._settings
        return robot_fit.load_fitting_policy(
            path,
            robot,
            s.robot_profile,
            allowed_dirs=s.allowed_policy_dirs,
            max_bytes=s.max_policy_bytes,
            expected_sha256=expected_sha256,
        )

    def _prepare_policy(self, path: str, expected_sha256: str) -> str | None:
        """Load and check a policy for this robot; keep it as the swap candidate."""
        try:
            robot = self._robot_contract
            if robot is None and self._settings.robot_contract:
                robot = load_robot_contract(self._settings.robot_contract)
            policy = self._load_policy(path, robot, expected_sha256)
        except Exception as err:
            # OnnxPolicy.load raises only PolicyRejected; anything else is a bug
            # there, and still only a refused swap: escaping this callback would
            # take the node down and leave the robot without commands.
            return refusal_reason(err, path)
        self._candidate = (path, policy)
        return None

    def _apply_parameters(self, params) -> None:
        """Post-set: side effects of accepted values (the swap itself)."""
        self._settings = parameters.read(self)
        self._gate.sensor_timeout = self._settings.sensor_timeout
        self._gate.goal_tolerance = self._settings.goal_tolerance
        names = {p.name for p in params}
        expected, policy = self._settings.expected_sha256, self._policy
        pinned_alone = "expected_sha256" in names and "policy_path" not in names
        if pinned_alone and expected and policy and policy.sha256 != expected:
            self.get_logger().warning(
                f"expected_sha256 is now {expected}, but the driving policy {policy.path} has"
                f" sha256 {policy.sha256}: it keeps driving; the next swap or configure must match"
            )
        for p in params:
            if p.name != "policy_path" or self._candidate is None or p.value == self._adopting:
                continue
            path, policy = self._candidate
            self._candidate = None
            if path != p.value:
                continue
            state = self.lifecycle_state
            if state in ("inactive", "active"):
                self._policy = policy  # the swap: one reference assignment
                self._counters.swaps_accepted += 1
                self._policy_source = self._record_live_policy(path, policy)
                self._announce_policy(policy, "swapped to")
            elif (
                # A node whose first policy was refused starts once a good one is set.
                state == "unconfigured"
                and self._settings.autostart
                and self.trigger_configure() == TransitionCallbackReturn.SUCCESS
            ):
                self._policy_source = self._record_live_policy(path, self._policy)
                self.trigger_activate()

    def _take_policy_and_hash_together(self) -> None:
        """Make ~/set_parameters set policy_path and expected_sha256 in one step.

        rclpy's SetParameters service sets a request's values one at a time, in
        order, so [policy_path, expected_sha256] would check the new policy
        against the old hash (or none). A request naming both is set atomically
        instead: the on-set callback sees both, and both succeed or neither
        does (the one result is repeated for each value). Other requests keep
        rclpy's one-at-a-time handling.
        """
        services = [
            srv
            for srv in self.services
            if srv.srv_type is SetParameters and srv.srv_name.endswith("/set_parameters")
        ]
        if len(services) != 1:
            return  # started without parameter services: nothing to adapt
        [service] = services
        one_at_a_time = service.callback

        def set_parameters(request, response):
            names = {p.name for p in request.parameters}
            if not {"policy_path", "expected_sha256"} <= names:
                return one_at_a_time(request, response)
            try:
                result = self.set_parameters_atomically(
                    [Parameter.from_parameter_msg(p) for p in request.parameters]
                )
            except Exception as err:  # e.g. an undeclared name among them
                result = SetParametersResult(successful=False, reason=str(err))
            response.results = [result] * len(request.parameters)
            return response

        service.callback = set_parameters

    # ------------------------------------------------------------------ #
    # The live-policy record: a respawned node resumes the live swap.
    # ------------------------------------------------------------------ #

    def _configured_policy(self, robot: Contract | None) -> tuple[OnnxPolicy, str, str | None]:
        """The policy to configure with, where it came from (policy_source), and
        the live-swapped path it resumed (None: policy_path's own)."""
        s = self._settings
        record, note = self._resumable_record()
        if record is not None:
            live = record.live_policy_path
            try:
                if s.expected_sha256 and s.expected_sha256 != record.sha256:
                    raise PolicyRejected(
                        f"its recorded sha256 {record.sha256} is not expected_sha256"
                        f" {s.expected_sha256}"
                    )
                policy = self._load_policy(live, robot, record.sha256)
            except Exception as err:  # refused: the launch file's policy drives
                note = (
                    f"did not resume live-swapped policy {live} (recorded sha256"
                    f" {record.sha256[:12]}): {refusal_reason(err, live)}; loading the"
                    f" launch file's {s.policy_path}"
                )
                self.get_logger().warning(note)
            else:
                note = f"resumed live-swapped policy {live} (launch file says {s.policy_path})"
                self.get_logger().info(note)
                return policy, note, live
        policy = self._load_policy(s.policy_path, robot, s.expected_sha256)
        return policy, note or "policy_path", None

    def _resumable_record(self) -> tuple[live_policy.LivePolicyRecord | None, str]:
        """The live-policy record to resume from, if it applies; else None and why not."""
        s, file = self._settings, self._record_file
        # Only the launch policy is replaced by a record: a policy_path set at
        # run time (an operator's choice, or a resumed one) loads as it is.
        if file is None or s.policy_path != self._launch_policy_path:
            return None, ""
        try:
            record = live_policy.read_record(file)
        except ValueError as err:
            self.get_logger().warning(f"{err}; loading policy_path")
            return None, f"policy_path ({err})"
        if record is None or record.live_policy_path == s.policy_path:
            return None, ""
        if record.launch_policy_path != s.policy_path:
            note = (
                f"policy_path (live policy record {file} is for launch policy"
                f" {record.launch_policy_path}: the fleet file changed, record ignored)"
            )
            self.get_logger().info(note)
            return None, note
        return record, ""

    def _adopt_policy_path(self, path: str) -> None:
        """Set policy_path to the resumed policy, so `ros2 param get` says what drives."""
        self._adopting = path
        try:
            self.set_parameters([Parameter("policy_path", value=path)])
        finally:
            self._adopting = None

    def _record_live_policy(self, path: str, policy: OnnxPolicy) -> str:
        """Record a live swap for a respawn; returns the policy_source to show."""
        if self._record_file is None:
            return "live swap"
        record = live_policy.new_record(self._launch_policy_path, path, policy.sha256)
        try:
            live_policy.write_record(self._record_file, record)
        except OSError as err:
            why = f"live policy record {self._record_file} not written: {err}"
            self.get_logger().error(f"{why}; a respawned node would load the launch policy")
            return f"live swap ({why})"
        return "live swap"

    def _announce_policy(self, policy: OnnxPolicy, what: str) -> None:
        self.get_logger().info(
            f"{what} {policy.path} (agent {policy.agent_id}, sha256 {policy.sha256[:12]},"
            f" checked in {policy.load_time * 1e3:.1f} ms)"
        )
        self._publish_active_policy()
        self.publish_diagnostics()

    def _publish_active_policy(self) -> None:
        """~/active_policy: the lifecycle publisher drops it unless active."""
        policy, publisher = self._policy, self._policy_pub
        if policy is not None and publisher is not None:
            publisher.publish(String(data=active_policy_json(policy, self.get_namespace())))

    # ------------------------------------------------------------------ #
    # Reporting.
    # ------------------------------------------------------------------ #

    def publish_diagnostics(self) -> None:
        now = self._now()
        state = self.lifecycle_state
        self._counters.stale = (
            self._gate.stale_sensors(now, self._scan_time, self._odom_time)
            if state == "active"
            else []
        )
        safety = self._safety
        limits = safety.limits if safety is not None else None
        status = diagnostic_status(
            node_name=self.get_name(),
            namespace=self.get_namespace(),
            lifecycle_state=state,
            policy=self._policy,
            hold_reason=self._hold_reason() if self._gate.holding else "",
            problem=self._problem or self._scan_problem,
            counters=self._counters,
            speed_limits=self._speed_limits if limits is not None else None,
            accel_limits=(limits.max_linear_accel, limits.max_angular_accel) if limits else None,
            stop_zone=""
            if limits is None
            else f"on, margin {limits.stop_margin:g} m"
            if limits.stop_zone
            else "off",
            estop=estop_reason(self._estops.engaged()),
            policy_source=self._policy_source,
            expected_sha256=self._settings.expected_sha256,
            rates=self._topic_rates(),
            scan_period=self._measured_scan_period(),
            scan_period_warning=self._check_scan_period(),
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    def _measured_scan_period(self) -> str:
        """The lidar's period as measured, and the driving model's, for /diagnostics."""
        measured, count = self._scan_period.period()
        if measured is None:
            return ""
        policy = self._policy
        model = f", model {policy.contract.scan_period:g} s" if policy is not None else ""
        return f"{measured:.3f} s (median of {count}){model}"

    def _check_scan_period(self) -> str:
        """scan_period.period_problem for the driving model, logged when it starts and ends."""
        policy = self._policy
        problem = period_problem(self._scan_period, policy.contract if policy else None)
        if bool(problem) != self._scan_period_off:
            if problem:
                self.get_logger().warning(problem)
            else:
                self.get_logger().info("scan_period: the lidar's period fits the model again")
            self._scan_period_off = bool(problem)
        return problem

    def _topic_rates(self) -> tuple:
        """scan, odom and cmd_vel as measured, against what the robot should
        deliver (diagnostic_status judges them only while driving)."""
        s, now = self._settings, time.monotonic()
        scan_hz = s.expected_scan_hz
        expected = {
            "scan": scan_hz,
            "odom": s.expected_odom_hz,
            # With control_on_scan each scan makes the command.
            "cmd_vel": scan_hz if s.control_on_scan else 1.0 / self._period,
        }
        return tuple(
            measured_rate(topic, meter, expected[topic], now)
            for topic, meter in self._rates.items()
        )


def main(argv: list[str] | None = None) -> int:
    """Run one policy node until SIGINT/SIGTERM; the robot gets a zero command on the way out."""
    argv = sys.argv if argv is None else argv
    # rclpy's own handlers would shut the context down at once, before a zero
    # command could go out; ours only ask the spin loop to stop.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = PolicyNode()
    executor = ControlFirstExecutor(node.control_group)
    executor.add_node(node)
    if node.settings.autostart and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
        node.trigger_activate()
    # Everything allocated so far (rclpy, numpy, onnxruntime) lives as long as
    # the node: keep it out of the collector's full passes, which otherwise
    # show up as millisecond stalls in the control loop.
    gc.collect()
    gc.freeze()
    try:
        # A short timeout bounds how long a signal waits for the loop.
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        if rclpy.ok():
            # Bounded: Fast DDS confirms delivery only at its next heartbeat
            # (can be seconds); the zero itself goes out at once.
            node.stop_robot("shutdown", ack_timeout=0.3, final=True)
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
