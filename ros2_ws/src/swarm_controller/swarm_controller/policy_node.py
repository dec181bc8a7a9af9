"""One robot's policy node: its own scan, odom and goal in, cmd_vel out.

Run one per robot, in the robot's namespace:

    python -m swarm_controller.policy_node --ros-args -r __ns:=/robot_0 \\
        -p policy_path:=models/<name>/robot_0.onnx

Topics (relative, so the namespace makes them the robot's own):
  scan     sensor_msgs/LaserScan      sensor-data QoS
  odom     nav_msgs/Odometry          sensor-data QoS
  goal     geometry_msgs/PoseStamped  RELIABLE + TRANSIENT_LOCAL, depth 1 (a
           late node still gets the goal; publishers must be TRANSIENT_LOCAL too)
  cmd_vel  geometry_msgs/Twist (TwistStamped with cmd_vel_stamped)
  ~/active_policy  std_msgs/String, latched JSON: which model drives
  /diagnostics     diagnostic_msgs/DiagnosticArray, 1 Hz and on every swap

Nothing from another robot or any shared topic feeds the control: a robot's
policy sees only its own sensors (the deployment half of MAPPO's centralized
training, decentralized execution).

A lifecycle node: configure loads and checks the model, activate starts the
control timer (the model's control period), deactivate and shutdown publish a
zero command. `autostart` (default true) runs configure and activate at start.
Setting `policy_path` on a running node swaps the policy live: the on-set
callback loads and checks the new file on a worker thread while the control
loop keeps ticking (see executor.py), then the post-set callback swaps one
reference.
"""

from __future__ import annotations

import gc
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
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import LaserScan
from std_msgs.msg import String

from swarm_contract.config import ConfigError, from_dict, load_yaml
from swarm_contract.onnx_policy import OnnxPolicy, PolicyRejected
from swarm_contract.robot_io import Contract, ObservationBuilder, clamp_twist, count_valid_rays
from swarm_controller import parameters
from swarm_controller.executor import ControlFirstExecutor
from swarm_controller.messages import (
    VelocityCommand,
    checked_scan_ranges,
    goal_xy,
    odom_pose_and_twist,
)
from swarm_controller.reporting import NodeCounters, active_policy_json, diagnostic_status
from swarm_controller.safety import CommandGate

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
DIAGNOSTICS_PERIOD = 1.0
# A tick counts as missed when the gap since the previous one exceeds this
# many periods (timer jitter of a few ms is not a missed tick).
MISSED_TICK_FACTOR = 1.5


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
        self._gate = CommandGate(
            self._settings.sensor_timeout,
            self._settings.goal_tolerance,
            self._settings.min_valid_ray_fraction,
        )
        # The clamp's limits: the read-only parameters, capped at configure to
        # what the robot allows (parameters.capped_speed_limits).
        self._speed_limits = (self._settings.max_linear, self._settings.max_angular)
        self._counters = NodeCounters()
        self._state = "unconfigured"
        self._problem = ""
        self._scan_problem = ""
        # The policy that drives. Replaced by one assignment (atomic under the
        # GIL); the control step reads it once per step.
        self._policy: OnnxPolicy | None = None
        self._robot_contract: Contract | None = None
        self._candidate: tuple[str, OnnxPolicy] | None = None
        self._builder: ObservationBuilder | None = None
        # Latest readings; written and read by control-group callbacks only.
        self._scan_time: float | None = None
        self._scan_rays: tuple[int, int] | None = None  # (valid, total) of the latest scan
        self._odom_time: float | None = None
        self._pose: tuple[float, float, float] | None = None
        self._velocity = (0.0, 0.0)
        self._goal: tuple[float, float] | None = None
        self._last_tick: float | None = None
        self._period = 0.0
        # Serialises "may I command the robot?" with publishing, so a control
        # step cannot publish after deactivate/shutdown published its zero.
        self._command_lock = threading.Lock()
        self._active = False
        self._cmd_pub = None
        self._cmd_msg: VelocityCommand | None = None
        self._policy_pub = None
        self._control_timer = None
        self._sensor_subs: list = []
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(DIAGNOSTICS_PERIOD, self.publish_diagnostics)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

    # ------------------------------------------------------------------ #
    # Lifecycle.
    # ------------------------------------------------------------------ #

    @property
    def lifecycle_state(self) -> str:
        return self._state

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
            policy = OnnxPolicy.load(s.policy_path, robot, s.allowed_policy_dirs)
        except Exception as err:  # PolicyRejected, or anything a check let slip
            self._problem = f"configure failed: {refusal_reason(err, s.policy_path)}"
            self.get_logger().error(self._problem)
            self.publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self._problem = ""
        self._robot_contract = robot or policy.contract
        self._policy = policy
        self._builder = ObservationBuilder(self._robot_contract)
        self._cap_speed_limits()
        msg_type = TwistStamped if s.cmd_vel_stamped else Twist
        self._cmd_pub = self.create_publisher(msg_type, "cmd_vel", COMMAND_QOS)
        self._cmd_msg = VelocityCommand(stamped=s.cmd_vel_stamped, frame_id=s.base_frame)
        self._policy_pub = self.create_publisher(String, "~/active_policy", LATCHED)
        g = self.control_group
        self._sensor_subs = [
            self.create_subscription(
                LaserScan, "scan", self._on_scan, qos_profile_sensor_data, callback_group=g
            ),
            self.create_subscription(
                Odometry, "odom", self._on_odom, qos_profile_sensor_data, callback_group=g
            ),
            self.create_subscription(PoseStamped, "goal", self._on_goal, LATCHED, callback_group=g),
        ]
        if s.allowed_policy_dirs is None:
            self.get_logger().warning(
                "allowed_policy_dirs is unset: any file may be loaded as a policy"
            )
        self._state = "inactive"
        self._announce_policy(policy, "configured")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._gate.reset()
        self._last_tick = None
        self._period = self._policy.contract.control_period
        with self._command_lock:
            self._active = True
        self._control_timer = self.create_timer(
            self._period, self._on_control_timer, callback_group=self.control_group
        )
        self._state = "active"
        self.get_logger().info(f"active: control period {self._period:g} s")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_timer()
        self.stop_robot("deactivated")
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._stop_timer()
        for sub in self._sensor_subs:
            self.destroy_subscription(sub)
        self._sensor_subs = []
        for pub in (self._cmd_pub, self._policy_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._cmd_pub = self._policy_pub = None
        self._policy = self._builder = None
        self._scan_time = self._odom_time = self._pose = self._goal = None
        self._scan_rays = None
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_timer()
        self.stop_robot("shutting down")
        self._state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self._stop_timer()
        self.stop_robot("error")
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _cap_speed_limits(self) -> None:
        """Clamp to the speed parameters, but never faster than the robot allows."""
        v, w, warnings = parameters.capped_speed_limits(self._settings, self._robot_contract)
        for warning in warnings:
            self.get_logger().warning(warning)
        self._speed_limits = (v, w)

    def _stop_timer(self) -> None:
        if self._control_timer is not None:
            self.destroy_timer(self._control_timer)
            self._control_timer = None

    def stop_robot(self, why: str, ack_timeout: float = 0.0) -> None:
        """Publish one zero command and stop commanding until activated again.

        ack_timeout > 0 waits until subscribers acknowledged it (on shutdown,
        so the zero is delivered before the context goes down).
        """
        with self._command_lock:
            self._active = False
            if self._cmd_pub is None:
                return
            self._publish_locked(0.0, 0.0, None)
            pub = self._cmd_pub
        self.get_logger().info(f"zero command sent ({why})")
        if ack_timeout > 0:
            pub.wait_for_all_acked(Duration(seconds=ack_timeout))

    # ------------------------------------------------------------------ #
    # Sensors and control (control group: one at a time, inline).
    # ------------------------------------------------------------------ #

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_scan(self, msg: LaserScan) -> None:
        builder = self._builder
        if builder is None:
            return
        try:
            ranges = checked_scan_ranges(msg)
            valid = count_valid_rays(ranges, msg.range_min, msg.range_max)
            builder.add_scan(ranges, msg.angle_min, msg.angle_increment)
        except ValueError as err:
            # Unusable fields or wrong geometry for the contract: the lidar can
            # no longer be trusted, so the last good scan stops counting as
            # fresh too and the stale rule stops the robot at the next tick.
            self._scan_time = None
            self._scan_problem = f"scan refused: {err}"
            self.get_logger().error(self._scan_problem, throttle_duration_sec=5.0)
            return
        if not self._gate.enough_valid_rays(valid, len(ranges)):
            # A broken lidar (the gate holds the robot): its scan must not stay
            # in the stack and reappear once valid scans come back.
            builder.forget_scans()
        self._scan_problem = ""
        self._scan_rays = (valid, len(ranges))
        now = self._now()
        self._scan_time = now
        if self._settings.control_on_scan:
            self._step(now, stamp=msg.header.stamp, run_policy=True)

    def _on_odom(self, msg: Odometry) -> None:
        self._pose, self._velocity = odom_pose_and_twist(msg)
        self._odom_time = self._now()

    def _on_goal(self, msg: PoseStamped) -> None:
        self._goal = goal_xy(msg)
        self.get_logger().info(
            f"goal ({self._goal[0]:.2f}, {self._goal[1]:.2f}) in frame '{msg.header.frame_id}'"
        )

    def _on_control_timer(self) -> None:
        now = self._now()
        self._count_tick(now)
        # With control_on_scan the scans drive; the timer still enforces stops.
        self._step(now, stamp=None, run_policy=not self._settings.control_on_scan)

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
        if self._pose is None:
            return math.nan
        return math.hypot(self._goal[0] - self._pose[0], self._goal[1] - self._pose[1])

    def _step(self, now: float, stamp, run_policy: bool) -> None:
        decision = self._gate.decide(
            now, self._scan_time, self._odom_time, self._goal_distance(), self._scan_rays
        )
        if not decision.drive:
            if decision.send_zero:
                self._publish(0.0, 0.0, stamp)
                self.get_logger().info(f"holding: {decision.reason}")
            return
        if run_policy:
            self._drive(stamp)

    def _drive(self, stamp) -> None:
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
            self._publish(0.0, 0.0, stamp)
            return
        self._counters.last_inference_s = time.perf_counter() - started
        v, w = float(cmd[0]), float(cmd[1])
        if not (math.isfinite(v) and math.isfinite(w)):
            self._counters.non_finite_commands += 1
        v, w = clamp_twist(v, w, *self._speed_limits)
        self._publish(v, w, stamp)

    def _publish(self, v: float, w: float, stamp) -> None:
        with self._command_lock:
            if self._active and self._cmd_pub is not None:
                self._publish_locked(v, w, stamp)

    def _publish_locked(self, v: float, w: float, stamp) -> None:
        if stamp is None and self._cmd_msg.stamped:
            stamp = self.get_clock().now().to_msg()
        self._cmd_pub.publish(self._cmd_msg.fill(v, w, stamp))
        self._counters.commands += 1
        if v == 0.0 and w == 0.0:
            self._counters.zero_commands += 1

    # ------------------------------------------------------------------ #
    # Parameters and live policy swap (worker thread).
    # ------------------------------------------------------------------ #

    def _validate_parameters(self, params) -> SetParametersResult:
        """On-set: check new values, and load+check a new policy, without side effects."""
        for p in params:
            reason = parameters.check_value(p.name, p.value)
            if reason is None and p.name == "policy_path":
                reason = self._prepare_policy(p.value)
            if reason is not None:
                if p.name == "policy_path":
                    self._counters.swaps_rejected += 1
                    self._counters.last_swap_error = reason
                    self.get_logger().warning(f"policy swap rejected: {reason}")
                    self.publish_diagnostics()
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _prepare_policy(self, path: str) -> str | None:
        """Load and check a policy for this robot; keep it as the swap candidate."""
        try:
            robot = self._robot_contract
            if robot is None and self._settings.robot_contract:
                robot = load_robot_contract(self._settings.robot_contract)
            policy = OnnxPolicy.load(path, robot, self._settings.allowed_policy_dirs)
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
        for p in params:
            if p.name != "policy_path" or self._candidate is None:
                continue
            path, policy = self._candidate
            self._candidate = None
            if path != p.value:
                continue
            if self._state in ("inactive", "active"):
                self._policy = policy  # the swap: one reference assignment
                self._counters.swaps_accepted += 1
                self._announce_policy(policy, "swapped to")
            elif (
                # A node whose first policy was refused starts once a good one is set.
                self._state == "unconfigured"
                and self._settings.autostart
                and self.trigger_configure() == TransitionCallbackReturn.SUCCESS
            ):
                self.trigger_activate()

    def _announce_policy(self, policy: OnnxPolicy, what: str) -> None:
        self.get_logger().info(
            f"{what} {policy.path} (agent {policy.agent_id}, sha256 {policy.sha256[:12]},"
            f" checked in {policy.load_time * 1e3:.1f} ms)"
        )
        if self._policy_pub is not None:
            self._policy_pub.publish(String(data=active_policy_json(policy, self.get_namespace())))
        self.publish_diagnostics()

    # ------------------------------------------------------------------ #
    # Reporting.
    # ------------------------------------------------------------------ #

    def publish_diagnostics(self) -> None:
        now = self._now()
        self._counters.stale = (
            self._gate.stale_sensors(now, self._scan_time, self._odom_time)
            if self._state == "active"
            else []
        )
        status = diagnostic_status(
            node_name=self.get_name(),
            namespace=self.get_namespace(),
            lifecycle_state=self._state,
            policy=self._policy,
            hold_reason=self._gate.reason if self._gate.holding else "",
            problem=self._problem or self._scan_problem,
            counters=self._counters,
            speed_limits=self._speed_limits if self._policy is not None else None,
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


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
            node.stop_robot("shutdown", ack_timeout=0.3)
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
