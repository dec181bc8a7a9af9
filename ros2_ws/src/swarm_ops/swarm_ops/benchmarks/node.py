"""`swarm bench node`: a policy node's latency through real DDS, and its ticks during swaps.

Two processes, as on a robot: the policy node, and a driver (this process)
that plays the robot's sensors.

0. Floor. The same round trip through a bare rclpy echo process (scan in,
   TwistStamped with its stamp out): what rclpy + Fast DDS cost on this
   machine right now, measured side by side with the node.
1. Latency. The node runs with `control_on_scan` (inference on each scan's
   arrival) and `cmd_vel_stamped`, and copies the scan's header stamp into the
   TwistStamped it causes. The driver numbers each scan in its stamp, sends
   it, and waits for the command carrying that number: one scan in flight at
   a time, so the time measured is scan -> cmd_vel, not queueing.
2. Swaps. The node runs on its control timer (the model's period); the driver
   feeds sensors at 20 Hz and swaps the policy `--swaps` times at
   `--swap-rate` Hz through SetParameters (what `ros2 param set` does),
   alternating two files so every swap loads and checks a model. Missed ticks
   are counted by the node over its whole active life (gaps over 1.5 periods
   between timer callbacks, reported on /diagnostics) and from the gaps
   between cmd_vel arrivals at the driver around the swaps; the larger count
   is reported.

The last line printed is JSON: {"latency_p50_ms", "latency_p99_ms", "missed_ticks",
"floor_p50_ms", "floor_p99_ms", ...}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from swarm_controller.fleet import POLICY_NODE, NodeSpec
from swarm_ops.node_processes import NodeLauncher, node_environment, stop_processes
from swarm_ops.ros_domains import claim_domain_id
from swarm_ops.rosclient import BackgroundNode, latched_qos, parameters_request, wait_future

NAMESPACE = "/bench_robot_0"
FEED_HZ = 20.0
GOAL_FAR_AHEAD = (100.0, 0.0)  # never reached: the node keeps driving
SCAN_RAYS = 360


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print only the JSON result line")
    p.add_argument(
        "--messages", type=int, default=10_000, help="scans timed for latency (default 10000)"
    )
    p.add_argument("--swaps", type=int, default=20, help="policy swaps in phase 2 (default 20)")
    p.add_argument("--swap-rate", type=float, default=20.0, help="swaps per second (default 20)")
    p.add_argument(
        "--policy",
        type=Path,
        help="a robot_0.onnx / policy.onnx file or models/<name> folder to run;"
        " default: a stand-in 2x256 MLP actor in the export format",
    )
    p.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the node")


def run(args: argparse.Namespace) -> int:
    for name in ("messages", "swaps"):
        if getattr(args, name) < 1:
            print(f"--{name} {getattr(args, name)}: must be >= 1", file=sys.stderr)
            return 2
    if args.swap_rate <= 0:
        print(f"--swap-rate {args.swap_rate}: must be > 0", file=sys.stderr)
        return 2
    say = (lambda *a: None) if args.json else print
    domain, domain_lock = claim_domain_id()
    workdir = Path(tempfile.mkdtemp(prefix="swarm_bench_node_"))
    try:
        first, second = _policy_files(args.policy, workdir)
        launcher = NodeLauncher(
            workdir, env=node_environment(domain=domain, log_dir=workdir / "ros_logs")
        )
        say(f"policy {first.name}, ROS_DOMAIN_ID={domain}, driver and node in separate processes")
        with _Driver(domain) as driver:
            floor = _measure_latency(driver, launcher, args, say, policy=None)
            latency = _measure_latency(driver, launcher, args, say, policy=first)
            swaps = _measure_swaps(driver, (first, second), launcher, args, say)
    except BaseException:
        # The error names a node log in here: keep it for the reader.
        print(f"node logs kept in {workdir}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        domain_lock.close()
    result = {
        "latency_p50_ms": round(float(np.percentile(latency, 50)) * 1e3, 4),
        "latency_p99_ms": round(float(np.percentile(latency, 99)) * 1e3, 4),
        "latency_max_ms": round(float(latency.max()) * 1e3, 4),
        "messages": int(latency.size),
        "floor_p50_ms": round(float(np.percentile(floor, 50)) * 1e3, 4),
        "floor_p99_ms": round(float(np.percentile(floor, 99)) * 1e3, 4),
        **swaps,
    }
    say(
        f"scan -> cmd_vel: p50 {result['latency_p50_ms']:.3f} ms, p99"
        f" {result['latency_p99_ms']:.3f} ms over {result['messages']} scans (goal: p99 <= 2 ms);"
        f" the bare rclpy echo floor on this machine now: p50 {result['floor_p50_ms']:.3f} ms,"
        f" p99 {result['floor_p99_ms']:.3f} ms"
    )
    say(
        f"{result['swaps_accepted']}/{result['swaps']} swaps accepted at {args.swap_rate:g} Hz,"
        f" missed control ticks: {result['missed_ticks']} (goal: 0)"
    )
    print(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- #
# Models.
# --------------------------------------------------------------------------- #


def _policy_files(policy: Path | None, workdir: Path) -> tuple[Path, Path]:
    """Two files with the same model, so every swap really loads one."""
    if policy is None:
        source = _stand_in_actor(workdir)
    elif policy.is_dir():
        candidates = [policy / "robot_0.onnx", policy / "policy.onnx"]
        source = next((c for c in candidates if c.is_file()), None)
        if source is None:
            raise SystemExit(f"--policy {policy}: no robot_0.onnx or policy.onnx in it")
    elif policy.is_file():
        source = policy
    else:
        raise SystemExit(f"--policy {policy}: no such file or folder")
    first, second = workdir / "a" / "robot_0.onnx", workdir / "b" / "robot_0.onnx"
    for target in (first, second):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return first, second


def _stand_in_actor(workdir: Path) -> Path:
    """A 2x256 tanh MLP in the export format (random weights), for timing only."""
    try:
        import onnx  # noqa: F401 - say what is missing before building anything
    except ImportError:
        raise SystemExit(
            "building the stand-in actor needs the onnx package (the `train` extra);"
            " or pass --policy models/<name>"
        ) from None
    from swarm_ops.onnx_models import PolicyModels

    return PolicyModels(workdir).mlp(
        "stand_in.onnx",
        hidden=256,
        layers=2,
        activation="Tanh",
        policy_name="stand-in-actor-for-benchmarks",
        run_id="bench",
    )


# --------------------------------------------------------------------------- #
# The two phases.
# --------------------------------------------------------------------------- #


def _measure_latency(driver, launcher, args, say, *, policy: Path | None) -> np.ndarray:
    """Scan -> cmd_vel round trips through the policy node, or (policy None) the echo floor."""
    what = "policy node" if policy is not None else "bare rclpy echo"
    if policy is None:
        spec = NodeSpec("scan_echo", "scan_echo", NAMESPACE, package="swarm_ops.benchmarks")
    else:
        spec = _policy_node(
            policy_path=str(policy),
            control_on_scan=True,
            cmd_vel_stamped=True,
            sensor_timeout=2.0,
        )
    log = launcher.log_path(spec)
    node = launcher.start(spec, note="latency")
    try:
        driver.wait_ready(args.timeout, log, policy_node=policy is not None)
        driver.warm_up(min(200, args.messages), args.timeout, log)
        latencies = driver.ping_scans(args.messages)
    finally:
        stop_processes([node], timeout=5.0)
    if latencies.size < args.messages * 0.99:
        raise SystemExit(
            f"only {latencies.size} of {args.messages} scans got their cmd_vel back"
            f" from the {what}; see {log}"
        )
    say(
        f"{what}: {latencies.size} scan -> cmd_vel round trips,"
        f" p50 {np.percentile(latencies, 50) * 1e3:.3f} ms,"
        f" p99 {np.percentile(latencies, 99) * 1e3:.3f} ms"
    )
    return latencies


def _measure_swaps(driver, files: tuple[Path, Path], launcher, args, say) -> dict:
    from swarm_contract.onnx_policy import OnnxPolicy

    period = OnnxPolicy.load(files[0]).contract.control_period
    spec = _policy_node(
        policy_path=str(files[0]),
        cmd_vel_stamped=True,
        allowed_policy_dirs=[str(files[0].parent.parent)],  # the folder of both copies
    )
    node = launcher.start(spec, note="swaps")
    try:
        driver.wait_ready(args.timeout, launcher.log_path(spec))
        driver.start_feed()
        time.sleep(0.5)  # steady state before the swaps
        started = time.monotonic()
        outcomes = []
        for i in range(args.swaps):
            slot = started + i / args.swap_rate
            time.sleep(max(0.0, slot - time.monotonic()))
            outcomes.append(driver.swap(files[(i + 1) % 2], timeout=5.0))
        ended = time.monotonic()
        time.sleep(max(0.5, 2 * period))
        driver.stop_feed()
        # The node counts over its whole active life: a superset of the window.
        counters = driver.node_counters(args.timeout, newer_than=time.monotonic())
    finally:
        stop_processes([node], timeout=5.0)
    arrivals = driver.command_times(started - 0.5, ended + 0.5)
    gaps = np.diff(arrivals)
    seen_missed = int(sum(round(g / period) - 1 for g in gaps if g > 1.5 * period))
    node_missed = counters["missed_ticks"]
    accepted = [s for ok, s in outcomes if ok]
    say(
        f"swaps: {len(accepted)}/{len(outcomes)} accepted, SetParameters round trip p50"
        f" {np.median([s for _, s in outcomes]) * 1e3:.1f} ms; node ticks {counters['ticks']},"
        f" missed: node {node_missed}, seen at the driver {seen_missed}"
    )
    return {
        "missed_ticks": max(node_missed, seen_missed),
        "missed_ticks_node": node_missed,
        "missed_ticks_driver": seen_missed,
        "swaps": len(outcomes),
        "swaps_accepted": len(accepted),
        "swap_round_trip_p50_ms": round(float(np.median([s for _, s in outcomes])) * 1e3, 3),
        "control_period_s": period,
    }


# --------------------------------------------------------------------------- #
# The node processes.
# --------------------------------------------------------------------------- #


def _policy_node(**parameters) -> NodeSpec:
    return NodeSpec(POLICY_NODE, POLICY_NODE, NAMESPACE, parameters)


# --------------------------------------------------------------------------- #
# The driver: this process's rclpy side.
# --------------------------------------------------------------------------- #


class _Driver:
    """Publishes the robot's sensors, times the commands, calls SetParameters."""

    def __init__(self, domain: int) -> None:
        self.domain = domain

    def __enter__(self) -> _Driver:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from nav_msgs.msg import Odometry
        from rcl_interfaces.srv import SetParameters
        from rclpy.qos import qos_profile_sensor_data as sensor_qos
        from sensor_msgs.msg import LaserScan
        from std_msgs.msg import String

        self.scan, self.odom, self.goal = _sensor_messages()
        self._lock = threading.Lock()
        self._expect = -1
        self._reply = threading.Event()
        self._reply_time = 0.0
        self._arrivals: list[float] = []
        self._active: list[str] = []
        self._diagnostics: list[tuple[float, dict[str, str]]] = []
        self._feed_timer = None

        self.ros = BackgroundNode("bench_driver", domain_id=self.domain)
        node = self.node = self.ros.node
        fqn = f"{NAMESPACE}/{POLICY_NODE}"
        self.scan_pub = node.create_publisher(LaserScan, f"{NAMESPACE}/scan", sensor_qos)
        self.odom_pub = node.create_publisher(Odometry, f"{NAMESPACE}/odom", sensor_qos)
        self.goal_pub = node.create_publisher(PoseStamped, f"{NAMESPACE}/goal", latched_qos())
        self.cmd_sub = node.create_subscription(
            TwistStamped, f"{NAMESPACE}/cmd_vel", self._on_cmd, 100
        )
        # Subscribed before the node starts: a late subscriber to a latched
        # topic waits for the writer's next heartbeat.
        node.create_subscription(
            String, f"{fqn}/active_policy", lambda m: self._active.append(m.data), latched_qos()
        )
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.param_client = node.create_client(SetParameters, f"{fqn}/set_parameters")
        return self

    def __exit__(self, *exc) -> None:
        self.ros.close()

    def _on_cmd(self, msg) -> None:
        now = time.perf_counter()
        with self._lock:
            self._arrivals.append(time.monotonic())
            if msg.header.stamp.sec == self._expect and msg.header.stamp.nanosec == 0:
                self._reply_time = now
                self._reply.set()

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.hardware_id == NAMESPACE:
                values = {kv.key: kv.value for kv in status.values}
                self._diagnostics.append((time.monotonic(), values))

    # -- phases ---------------------------------------------------------------- #

    def wait_ready(self, timeout: float, log: Path, policy_node: bool = True) -> None:
        """Until the node (its policy announced) and every topic it uses are matched."""
        self._active.clear()
        deadline = time.monotonic() + timeout

        def ready() -> bool:
            matched = (
                self.scan_pub.get_subscription_count() > 0
                and self.cmd_sub.get_publisher_count() > 0
            )
            if not policy_node:
                return matched
            return bool(
                matched
                and self._active
                and self.odom_pub.get_subscription_count() > 0
                and self.goal_pub.get_subscription_count() > 0
            )

        while not ready():
            if time.monotonic() > deadline:
                what = "policy node" if policy_node else "bare rclpy echo"
                raise SystemExit(f"the {what} did not come up within {timeout:g} s; see {log}")
            time.sleep(0.02)
        self.goal_pub.publish(self.goal)
        self.odom_pub.publish(self.odom)
        time.sleep(0.2)

    def warm_up(self, replies: int, timeout: float, log: Path) -> None:
        """Ping until `replies` scans in a row got their cmd_vel back.

        A node that has just started holds (it waits to hear the latched
        e-stops) and answers only the first scan of a hold; timing starts once
        it answers every scan, so the figures measure driving, not start-up.
        """
        deadline = time.monotonic() + timeout
        in_a_row = 0
        while in_a_row < replies:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the node did not answer {replies} scans in a row within {timeout:g} s;"
                    f" see {log}"
                )
            in_a_row = in_a_row + 1 if self.ping_scans(1, wait=0.25).size else 0

    def ping_scans(self, count: int, wait: float = 1.0) -> np.ndarray:
        """Send numbered scans one at a time; seconds until each one's cmd_vel."""
        out = np.full(count, np.nan)
        for i in range(count):
            if i % 50 == 0:
                self.odom_pub.publish(self.odom)  # keep odometry fresh (untimed)
            with self._lock:
                self._expect = i + 1
                self._reply.clear()
            self.scan.header.stamp.sec, self.scan.header.stamp.nanosec = i + 1, 0
            sent = time.perf_counter()
            self.scan_pub.publish(self.scan)
            if self._reply.wait(wait):
                out[i] = self._reply_time - sent
        return out[np.isfinite(out)]

    def start_feed(self) -> None:
        def publish() -> None:
            self.scan_pub.publish(self.scan)
            self.odom_pub.publish(self.odom)

        self._feed_timer = self.node.create_timer(1.0 / FEED_HZ, publish)

    def stop_feed(self) -> None:
        if self._feed_timer is not None:
            self.node.destroy_timer(self._feed_timer)
            self._feed_timer = None

    def swap(self, path: Path, timeout: float) -> tuple[bool, float]:
        """SetParameters(policy_path); (accepted, round-trip seconds)."""
        request = parameters_request({"policy_path": str(path)})
        started = time.monotonic()
        answer = wait_future(self.param_client.call_async(request), timeout)
        accepted = answer is not None and answer.results[0].successful
        return bool(accepted), time.monotonic() - started

    def node_counters(self, timeout: float, newer_than: float = 0.0) -> dict[str, int]:
        """The node's tick counters from its next /diagnostics report."""
        deadline = time.monotonic() + timeout
        since = max(newer_than, time.monotonic())
        while time.monotonic() < deadline:
            fresh = [v for t, v in self._diagnostics if t >= since]
            if fresh:
                return {k: int(fresh[-1][k]) for k in ("ticks", "missed_ticks")}
            time.sleep(0.05)
        raise SystemExit("no /diagnostics from the policy node")

    def command_times(self, start: float, end: float) -> np.ndarray:
        with self._lock:
            return np.array([t for t in self._arrivals if start <= t <= end])


def _sensor_messages():
    """An open-space 360-ray scan, odometry at the origin, a goal far ahead."""
    import math

    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import LaserScan

    scan = LaserScan()
    scan.angle_min = -math.pi
    scan.angle_increment = 2 * math.pi / SCAN_RAYS
    scan.angle_max = scan.angle_min + scan.angle_increment * (SCAN_RAYS - 1)
    scan.range_min, scan.range_max = 0.12, 3.5
    scan.ranges = np.random.default_rng(0).uniform(0.5, 3.5, SCAN_RAYS).astype(np.float32).tolist()
    # Goal and odometry in one frame: the node takes a goal in the frame its
    # odometry names (an empty frame_id would cancel the goal).
    odom = Odometry()
    odom.header.frame_id = "odom"
    odom.pose.pose.orientation.w = 1.0
    goal = PoseStamped()
    goal.header.frame_id = "odom"
    goal.pose.position.x, goal.pose.position.y = GOAL_FAR_AHEAD
    goal.pose.orientation.w = 1.0
    return scan, odom, goal
