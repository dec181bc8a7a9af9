"""The policy node's topic rates on /diagnostics, without DDS: what an operator reads."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("diagnostic_msgs", reason="needs the ROS message wheels")

from diagnostic_msgs.msg import DiagnosticStatus

from swarm_controller.reporting import NodeCounters, RateMeter, diagnostic_status, measured_rate

POLICY = SimpleNamespace(path="models/nav/robot_0.onnx", sha256="ab" * 32, agent_id=0)


def fed(meter: RateMeter, hz: float, start: float, end: float) -> None:
    for i in range(int((end - start) * hz)):
        meter.arrived(start + i / hz)


def status(rates, **overrides) -> DiagnosticStatus:
    fields = dict(
        node_name="policy_node",
        namespace="/tb3_0",
        lifecycle_state="active",
        policy=POLICY,
        hold_reason="",
        problem="",
        counters=NodeCounters(),
        rates=rates,
    )
    return diagnostic_status(**(fields | overrides))


def test_a_rate_is_arrivals_over_the_last_five_seconds_and_falls_to_zero_when_they_stop():
    meter = RateMeter()
    assert meter.rate(0.0) == (None, 0.0), "not subscribed: no rate"
    meter.start(100.0)
    fed(meter, 5.0, 100.0, 110.0)
    hz, span = meter.rate(110.0)
    assert span == 5.0 and hz == pytest.approx(5.0, abs=0.2)
    assert meter.rate(116.0)[0] == 0.0, "a lidar that went quiet reads 0 Hz"
    meter.stop()
    assert meter.rate(117.0) == (None, 0.0)


def test_a_low_rate_warns_while_driving_but_never_hides_what_else_is_wrong():
    scan, odom = RateMeter(), RateMeter()
    for meter in (scan, odom):
        meter.start(0.0)
    fed(scan, 2.0, 0.0, 6.0)  # a 5 Hz lidar delivering 2 Hz
    fed(odom, 20.0, 0.0, 6.0)
    rates = (measured_rate("scan", scan, 5.0, 6.0), measured_rate("odom", odom, 20.0, 6.0))

    driving = status(rates)
    assert driving.level == DiagnosticStatus.WARN
    assert driving.message == "driving; low rate: scan 2.0 Hz (expected 5)"
    values = {kv.key: kv.value for kv in driving.values}
    assert (values["scan_hz"], values["odom_hz"]) == ("2.0", "20.0")
    assert values["expected_hz"] == "scan 5, odom 20"

    held = status(rates, estop="e-stop (fleet)")
    assert (held.level, held.message) == (DiagnosticStatus.WARN, "holding: e-stop (fleet)")
    refused = status(rates, problem="scan refused: 0 rays")
    assert (refused.level, refused.message) == (DiagnosticStatus.ERROR, "scan refused: 0 rays")


def test_a_rate_measured_for_under_two_seconds_is_shown_but_not_judged():
    scan = RateMeter()
    scan.start(0.0)
    fed(scan, 5.0, 0.0, 1.0)
    early = status((measured_rate("scan", scan, 50.0, 1.0),))
    assert (early.level, early.message) == (DiagnosticStatus.OK, "driving")
    assert {kv.key: kv.value for kv in early.values}["scan_hz"] == "5.0"
