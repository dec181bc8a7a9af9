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
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from swarm_ops.ros_domains import claim_domain_id

REPO = Path(__file__).resolve().parents[2]
PACKAGE_SRC = REPO / "ros2_ws" / "src" / "swarm_controller"
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
        env = _node_env(domain)
        say(f"policy {first.name}, ROS_DOMAIN_ID={domain}, driver and node in separate processes")
        with _Driver(domain) as driver:
            floor = _measure_latency(driver, env, workdir, args, say, policy=None)
            latency = _measure_latency(driver, env, workdir, args, say, policy=first)
            swaps = _measure_swaps(driver, (first, second), env, workdir, args, say)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
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
        source = write_stand_in_actor(workdir / "stand_in.onnx")
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


def write_stand_in_actor(path: Path, hidden: int = 256, seed: int = 0) -> Path:
    """A 2x`hidden` tanh MLP in the export format (random weights), for timing only."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise SystemExit(
            "building the stand-in actor needs the onnx package (the `train` extra);"
            " or pass --policy models/<name>"
        ) from None
    from swarm_contract.onnx_policy import weights_sha256
    from swarm_contract.robot_io import Contract

    c = Contract()
    rng = np.random.default_rng(seed)
    sizes = [c.obs_dim, hidden, hidden, 2]
    weights, nodes, x = [], [], "obs"
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32)
        weights += [
            numpy_helper.from_array(w, f"w{k}"),
            numpy_helper.from_array(np.zeros(n_out, np.float32), f"b{k}"),
        ]
        nodes += [
            helper.make_node("Gemm", [x, f"w{k}", f"b{k}"], [f"z{k}"]),
            helper.make_node("Tanh", [f"z{k}"], [f"h{k}"]),
        ]
        x = f"h{k}"
    weights.append(
        numpy_helper.from_array(np.array([c.max_linear, c.max_angular], np.float32), "limits")
    )
    nodes.append(helper.make_node("Mul", [x, "limits"], ["cmd_vel"]))
    graph = helper.make_graph(
        nodes,
        "stand_in_actor",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", c.obs_dim])],
        [helper.make_tensor_value_info("cmd_vel", TensorProto.FLOAT, ["batch", 2])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        **c.to_metadata(),
        "policy.agent_id": "0",
        "policy.run_id": "bench",
        "policy.config_hash": "none",
        "policy.name": "stand-in-actor-for-benchmarks",
        "policy.weights_sha256": weights_sha256(model.SerializeToString()),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# --------------------------------------------------------------------------- #
# The two phases.
# --------------------------------------------------------------------------- #


def _measure_latency(driver, env, workdir: Path, args, say, *, policy: Path | None) -> np.ndarray:
    """Scan -> cmd_vel round trips through the policy node, or (policy None) the echo floor."""
    what = "policy node" if policy is not None else "bare rclpy echo"
    log = workdir / ("latency_node.log" if policy is not None else "echo.log")
    if policy is None:
        node = _start_echo(env, log)
    else:
        node = _start_node(
            env,
            log,
            policy_path=policy,
            control_on_scan=True,
            cmd_vel_stamped=True,
            sensor_timeout=2.0,
        )
    try:
        driver.wait_ready(args.timeout, policy_node=policy is not None)
        warm_up = min(200, args.messages)
        latencies = driver.ping_scans(args.messages + warm_up)[warm_up:]
    finally:
        _stop_node(node)
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


def _measure_swaps(driver, files: tuple[Path, Path], env, workdir: Path, args, say) -> dict:
    from swarm_contract.onnx_policy import OnnxPolicy

    period = OnnxPolicy.load(files[0]).contract.control_period
    node = _start_node(
        env,
        workdir / "swap_node.log",
        policy_path=files[0],
        cmd_vel_stamped=True,
        allowed_policy_dirs=[str(workdir)],
    )
    try:
        driver.wait_ready(args.timeout)
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
        _stop_node(node)
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
# The policy node process.
# --------------------------------------------------------------------------- #


def _node_env(domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        RMW_IMPLEMENTATION=env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
        PYTHONUNBUFFERED="1",
    )
    # Without `make setup`'s editable install, run the package from source.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_SRC), str(REPO), env.get("PYTHONPATH", "")) if p
    )
    return env


def _start_node(env: dict[str, str], log: Path, **params) -> subprocess.Popen:
    args = [sys.executable, "-m", "swarm_controller.policy_node", "--ros-args"]
    args += ["-r", f"__ns:={NAMESPACE}"]
    for key, value in params.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list):
            value = "[" + ", ".join(f"'{v}'" for v in value) + "]"
        args += ["-p", f"{key}:={value}"]
    with open(log, "w") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def _start_echo(env: dict[str, str], log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "swarm_ops.benchmarks.node", "--echo", NAMESPACE]
    with open(log, "w") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def echo_main(namespace: str) -> None:
    """The floor: a bare rclpy process answering each scan with a TwistStamped of its stamp.

    Same DDS path, QoS and executor type as the policy node's control path,
    without the policy: what this machine's rclpy + Fast DDS cost by themselves.
    """
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import LaserScan

    rclpy.init()
    node = rclpy.create_node("scan_echo", namespace=namespace)
    pub = node.create_publisher(
        TwistStamped, "cmd_vel", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    )
    reply = TwistStamped()

    def on_scan(scan: LaserScan) -> None:
        reply.header.stamp = scan.header.stamp
        pub.publish(reply)

    node.create_subscription(LaserScan, "scan", on_scan, qos_profile_sensor_data)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


def _stop_node(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- #
# The driver: this process's rclpy side.
# --------------------------------------------------------------------------- #


class _Driver:
    """Publishes the robot's sensors, times the commands, calls SetParameters."""

    def __init__(self, domain: int) -> None:
        self.domain = domain

    def __enter__(self) -> _Driver:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from nav_msgs.msg import Odometry
        from rcl_interfaces.srv import SetParameters
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.qos import qos_profile_sensor_data as sensor_qos
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import LaserScan
        from std_msgs.msg import String

        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.context = Context()
        rclpy.init(
            context=self.context,
            domain_id=self.domain,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        node = self.node = rclpy.create_node("bench_driver", context=self.context)
        fqn = f"{NAMESPACE}/policy_node"
        self.scan_pub = node.create_publisher(LaserScan, f"{NAMESPACE}/scan", sensor_qos)
        self.odom_pub = node.create_publisher(Odometry, f"{NAMESPACE}/odom", sensor_qos)
        self.goal_pub = node.create_publisher(PoseStamped, f"{NAMESPACE}/goal", latched)
        self.cmd_sub = node.create_subscription(
            TwistStamped, f"{NAMESPACE}/cmd_vel", self._on_cmd, 100
        )
        # Subscribed before the node starts: a late subscriber to a latched
        # topic waits for the writer's next heartbeat.
        self._active: list[str] = []
        node.create_subscription(
            String, f"{fqn}/active_policy", lambda m: self._active.append(m.data), latched
        )
        self._diagnostics: list[tuple[float, dict[str, str]]] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.param_client = node.create_client(SetParameters, f"{fqn}/set_parameters")

        self.scan, self.odom, self.goal = _sensor_messages()
        self._lock = threading.Lock()
        self._expect = -1
        self._reply = threading.Event()
        self._reply_time = 0.0
        self._arrivals: list[float] = []
        self._feed_timer = None
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

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

    def wait_ready(self, timeout: float, policy_node: bool = True) -> None:
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
                raise SystemExit(f"the policy node did not come up within {timeout:g} s")
            time.sleep(0.02)
        self.goal_pub.publish(self.goal)
        self.odom_pub.publish(self.odom)
        time.sleep(0.2)

    def ping_scans(self, count: int) -> np.ndarray:
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
            if self._reply.wait(1.0):
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
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(
            parameters=[Parameter("policy_path", value=str(path)).to_parameter_msg()]
        )
        started = time.monotonic()
        future = self.param_client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        ok = done.wait(timeout) and future.result() is not None
        return bool(ok and future.result().results[0].successful), time.monotonic() - started

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
    odom = Odometry()
    odom.pose.pose.orientation.w = 1.0
    goal = PoseStamped()
    goal.pose.position.x, goal.pose.position.y = GOAL_FAR_AHEAD
    goal.pose.orientation.w = 1.0
    return scan, odom, goal


if __name__ == "__main__" and "--echo" in sys.argv:
    echo_main(sys.argv[sys.argv.index("--echo") + 1])
