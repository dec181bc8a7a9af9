"""What the policy node tells operators: /diagnostics and ~/active_policy contents."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from swarm_contract.onnx_policy import OnnxPolicy


@dataclass
class NodeCounters:
    """Running totals shown on /diagnostics. Written by one thread each."""

    ticks: int = 0
    missed_ticks: int = 0
    commands: int = 0
    zero_commands: int = 0
    non_finite_commands: int = 0
    stop_zone_cuts: int = 0
    """Policy commands whose motion the stop zone cut."""
    estop_engagements: int = 0
    """Times an e-stop (robot or fleet) went from released to engaged."""
    swaps_accepted: int = 0
    swaps_rejected: int = 0
    last_swap_error: str = ""
    last_inference_s: float = 0.0
    stale: list[str] = field(default_factory=list)


RATE_WINDOW_S = 5.0
"""Topic rates are arrivals over the last this many seconds of the steady clock."""
RATE_SETTLE_S = 2.0
"""A rate measured over less than this is shown but not judged: a few arrivals
right after configure would read as a low rate."""
LOW_RATE_SHARE = 0.5
"""A rate below this share of the expected one turns an OK status into WARN."""


class RateMeter:
    """Arrivals per second of one topic over the last RATE_WINDOW_S seconds.

    Times are the caller's steady clock (time.monotonic), never the ROS
    clock: with use_sim_time and no /clock the ROS clock stands still, and
    that is when an operator needs the rates most. Arrivals come from the
    control thread, reads from the diagnostics timer's: a lock keeps the
    window consistent.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self._window = window_s
        self._lock = threading.Lock()
        self._arrivals: deque[float] = deque()
        self._since: float | None = None

    def start(self, now: float) -> None:
        """Measure from `now` on (the topic is subscribed or published from now)."""
        with self._lock:
            self._arrivals.clear()
            self._since = now

    def stop(self) -> None:
        """Not measured any more (the subscription is gone)."""
        with self._lock:
            self._arrivals.clear()
            self._since = None

    def arrived(self, now: float) -> None:
        with self._lock:
            if self._since is None:
                return
            self._arrivals.append(now)
            self._forget_before(now - self._window)

    def rate(self, now: float) -> tuple[float | None, float]:
        """(arrivals per second, seconds measured over); (None, 0) when not measuring."""
        with self._lock:
            if self._since is None:
                return None, 0.0
            span = min(self._window, now - self._since)
            self._forget_before(now - span)
            return (len(self._arrivals) / span if span > 0 else 0.0), span

    def _forget_before(self, t: float) -> None:
        while self._arrivals and self._arrivals[0] < t:
            self._arrivals.popleft()


@dataclass(frozen=True)
class TopicRate:
    """One topic's measured rate against the rate the robot should deliver."""

    topic: str
    hz: float | None
    """None: not measured (not subscribed in this lifecycle state)."""
    expected_hz: float
    """0: no expectation, never judged."""
    measured_s: float = RATE_WINDOW_S

    @property
    def low(self) -> bool:
        return (
            self.hz is not None
            and self.expected_hz > 0
            and self.measured_s >= RATE_SETTLE_S
            and self.hz < LOW_RATE_SHARE * self.expected_hz
        )

    def describe(self) -> str:
        return f"{self.topic} {self.hz:.1f} Hz (expected {self.expected_hz:g})"


def measured_rate(topic: str, meter: RateMeter, expected_hz: float, now: float) -> TopicRate:
    hz, span = meter.rate(now)
    return TopicRate(topic, hz, expected_hz, span)


def active_policy_json(policy: OnnxPolicy, namespace: str) -> str:
    """JSON for the latched ~/active_policy topic: which model drives this robot."""
    return json.dumps({"robot": namespace, **policy.summary()}, sort_keys=True)


def diagnostic_status(
    *,
    node_name: str,
    namespace: str,
    lifecycle_state: str,
    policy: OnnxPolicy | None,
    hold_reason: str,
    problem: str,
    counters: NodeCounters,
    speed_limits: tuple[float, float] | None = None,
    accel_limits: tuple[float, float] | None = None,
    stop_zone: str = "",
    estop: str = "",
    policy_source: str = "",
    expected_sha256: str = "",
    rates: tuple[TopicRate, ...] = (),
    scan_period: str = "",
    scan_period_warning: str = "",
) -> DiagnosticStatus:
    """One DiagnosticStatus for this robot's policy node.

    Level: ERROR when the policy or the scans were refused or the lidar
    returns too few valid rays, WARN while not driving (unconfigured, inactive,
    holding for an e-stop, stale sensors or a goal), OK while driving or parked
    at the goal. An e-stop is WARN: an operator's deliberate stop, not a fault.
    estop: the engaged e-stops' hold reason ("e-stop (fleet)"), "" when released.
    rates: scan, odom and cmd_vel as measured; while the node would be OK, a
    rate below LOW_RATE_SHARE of the expected one makes it WARN ("driving; low
    rate: scan 1.8 Hz (expected 5)"). Every other state already says what is
    wrong and keeps its message.
    scan_period: the lidar's measured period against the model's ("0.200 s,
    model 0.1 s"); scan_period_warning, when they differ for a stacking model
    (scan_period.py): appended to the message in any state, and an OK status
    becomes WARN.
    """
    if problem:
        level, message = DiagnosticStatus.ERROR, problem
    elif policy is None:
        level, message = DiagnosticStatus.WARN, f"{lifecycle_state}: no policy loaded"
    elif lifecycle_state != "active":
        level, message = DiagnosticStatus.WARN, f"{lifecycle_state}: not driving"
    elif estop:
        level, message = DiagnosticStatus.WARN, f"holding: {estop}"
    elif hold_reason.startswith("lidar invalid"):
        level, message = DiagnosticStatus.ERROR, f"holding: {hold_reason}"
    elif counters.stale or (hold_reason and not hold_reason.startswith("at goal")):
        level, message = DiagnosticStatus.WARN, f"holding: {hold_reason}"
    else:
        level, message = DiagnosticStatus.OK, hold_reason or "driving"
    if estop and estop not in message:
        message = f"{message}; {estop}"
    low = [rate.describe() for rate in rates if rate.low]
    if level == DiagnosticStatus.OK and low:
        level, message = DiagnosticStatus.WARN, f"{message}; low rate: {', '.join(low)}"
    if scan_period_warning:
        message = f"{message}; {scan_period_warning}"
        if level == DiagnosticStatus.OK:
            level = DiagnosticStatus.WARN
    values = {
        "lifecycle_state": lifecycle_state,
        "policy_path": str(policy.path) if policy else "",
        "policy_sha256": policy.sha256 if policy else "",
        "policy_agent_id": str(policy.agent_id) if policy else "",
        "last_inference_ms": f"{counters.last_inference_s * 1e3:.3f}",
        "stale_sensors": ",".join(counters.stale),
        "hold_reason": estop or hold_reason,
        "estop": estop,
        "policy_source": policy_source,
        "expected_sha256": expected_sha256,
        # The clamp's limits in force (the parameters capped to the robot's).
        "speed_limits": f"{speed_limits[0]:g} m/s, {speed_limits[1]:g} rad/s"
        if speed_limits
        else "",
        # The safety layer's ramp and stop zone in force.
        "accel_limits": f"{accel_limits[0]:g} m/s^2, {accel_limits[1]:g} rad/s^2"
        if accel_limits
        else "",
        "stop_zone": stop_zone,
        "ticks": str(counters.ticks),
        "missed_ticks": str(counters.missed_ticks),
        "commands": str(counters.commands),
        "zero_commands": str(counters.zero_commands),
        "non_finite_commands": str(counters.non_finite_commands),
        "stop_zone_cuts": str(counters.stop_zone_cuts),
        "estop_engagements": str(counters.estop_engagements),
        "swaps_accepted": str(counters.swaps_accepted),
        "swaps_rejected": str(counters.swaps_rejected),
        "last_swap_error": counters.last_swap_error,
        # Measured over the last RATE_WINDOW_S s of the steady clock; "" when
        # not subscribed (unconfigured).
        **{f"{rate.topic}_hz": "" if rate.hz is None else f"{rate.hz:.1f}" for rate in rates},
        "expected_hz": ", ".join(f"{rate.topic} {rate.expected_hz:g}" for rate in rates),
        "scan_period": scan_period,
    }
    return DiagnosticStatus(
        level=level,
        name=f"{namespace.rstrip('/')}/{node_name}: policy",
        message=message,
        hardware_id=namespace,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
