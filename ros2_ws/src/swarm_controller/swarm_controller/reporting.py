"""What the policy node tells operators: /diagnostics and ~/active_policy contents."""

from __future__ import annotations

import json
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
) -> DiagnosticStatus:
    """One DiagnosticStatus for this robot's policy node.

    Level: ERROR when the policy or the scans were refused or the lidar
    returns too few valid rays, WARN while not driving (unconfigured, inactive,
    holding for an e-stop, stale sensors or a goal), OK while driving or parked
    at the goal. An e-stop is WARN: an operator's deliberate stop, not a fault.
    estop: the engaged e-stops' hold reason ("e-stop (fleet)"), "" when released.
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
    }
    return DiagnosticStatus(
        level=level,
        name=f"{namespace.rstrip('/')}/{node_name}: policy",
        message=message,
        hardware_id=namespace,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
