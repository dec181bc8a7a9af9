"""The policy node under a lifecycle manager, and its diagnostics without a ROS clock.

A real node process is driven through `~/change_state` exactly as
nav2_lifecycle_manager (or `ros2 lifecycle set`) drives it; a transition the
current state does not allow must be answered as a failure while the node
stays up and keeps the robot safe.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from ros_helpers import RobotWorld, change_state, wait_for, wait_matched
from test_policy_node import MAX_V, assert_zeros_keep_coming

from swarm_ops.rosclient import call_service

pytestmark = pytest.mark.ros

NODE = "/robot_0/policy_node"
# The probe feeds scan and odom at 20 Hz (RobotWorld.feed); the node expects
# 50 Hz scans here, so while driving its diagnostics must warn about the rate.
EXPECTED_SCAN_HZ = 50.0


def lifecycle_state(probe, node_fqn: str) -> str:
    """`<node>/get_state`, as `ros2 lifecycle get` asks it."""
    from lifecycle_msgs.srv import GetState

    response = call_service(probe.node, GetState, f"{node_fqn}/get_state", GetState.Request(), 5.0)
    return response.current_state.label


def statuses(diagnostics, hardware_id: str, since: float = 0.0) -> list:
    return [
        status
        for msg in diagnostics.messages(since)
        for status in msg.status
        if status.hardware_id == hardware_id
    ]


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_a_manager_drives_the_lifecycle_and_a_wrong_transition_is_refused_not_fatal(
    probe, nodes, policy_models
):
    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot = RobotWorld(probe, "/robot_0")
    policy = policy_models.reference_controller()
    proc = nodes.start_policy_node(
        "/robot_0",
        policy_path=policy,
        autostart=False,
        expected_scan_hz=EXPECTED_SCAN_HZ,
    )
    # A second node, started at the same time: simulated time and no /clock.
    nodes.start_policy_node("/robot_1", policy_path=policy, use_sim_time=True)

    def refused(transition: int, what: str) -> None:
        assert not change_state(probe, NODE, transition), f"{what} was accepted"
        assert proc.poll() is None, f"the node exited after {what}: {nodes.log('/robot_0')}"

    # Unconfigured: activate is not a transition from here.
    refused(Transition.TRANSITION_ACTIVATE, "activate while unconfigured")
    assert lifecycle_state(probe, NODE) == "unconfigured"
    wait_matched(robot.cmd)
    since = time.monotonic()
    time.sleep(0.5)
    assert_zeros_keep_coming(robot, since, time.monotonic(), "unconfigured")

    assert change_state(probe, NODE, Transition.TRANSITION_CONFIGURE)
    refused(Transition.TRANSITION_CONFIGURE, "configure while inactive")
    assert change_state(probe, NODE, Transition.TRANSITION_ACTIVATE)
    assert robot.wait_ready()["name"] == "reference-fixture-controller"
    robot.send_goal(3.0, 0.0)
    robot.feed()
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 5.0, "driving once active")

    refused(Transition.TRANSITION_CONFIGURE, "configure while active")
    assert lifecycle_state(probe, NODE) == "active"
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 2.0, "still driving after the refusal")

    # Rates: once measured over RATE_SETTLE_S (2 s), 20 Hz scans against the
    # 50 expected make a driving robot's status WARN; odom and cmd_vel are fine.
    driving = wait_for(
        lambda: [
            s
            for s in statuses(diagnostics, "/robot_0")
            if s.level == DiagnosticStatus.WARN and "low rate" in s.message
        ],
        5.0,
        "/robot_0 diagnostics warning of a low scan rate while driving",
    )[-1]
    assert driving.message == "driving; low rate: scan " + values(driving)["scan_hz"] + (
        " Hz (expected 50)"
    )
    rates = {k: float(values(driving)[k]) for k in ("scan_hz", "odom_hz", "cmd_vel_hz")}
    print("rates while driving (Hz):", rates)
    # Never above what was sent (20 Hz feed, 10 Hz control); loose below, so a
    # loaded machine's late messages do not fail it.
    assert 2.0 < rates["scan_hz"] <= 21.0, rates
    assert 2.0 < rates["odom_hz"] <= 21.0, rates
    assert 1.0 < rates["cmd_vel_hz"] <= 11.0, rates

    # Deactivate: zeros at the control rate, the process stays up.
    assert change_state(probe, NODE, Transition.TRANSITION_DEACTIVATE)
    time.sleep(0.1)
    deactivated = time.monotonic()
    time.sleep(0.6)
    assert_zeros_keep_coming(robot, deactivated, time.monotonic(), "inactive")
    assert lifecycle_state(probe, NODE) == "inactive"

    # Cleanup unloads; the watchdog still sends zeros; a wrong transition is refused.
    assert change_state(probe, NODE, Transition.TRANSITION_CLEANUP)
    refused(Transition.TRANSITION_DEACTIVATE, "deactivate while unconfigured")
    cleaned = time.monotonic()
    time.sleep(0.5)
    assert_zeros_keep_coming(robot, cleaned, time.monotonic(), "cleaned up")
    assert lifecycle_state(probe, NODE) == "unconfigured"

    # And the node can be brought up again.
    assert change_state(probe, NODE, Transition.TRANSITION_CONFIGURE)
    assert change_state(probe, NODE, Transition.TRANSITION_ACTIVATE)
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 5.0, "driving after configure+activate")
    assert proc.poll() is None

    # The simulated-time node: no /clock ever came, yet diagnostics keep coming
    # once a second of the wall clock, with the rate keys present.
    # (Its configure announces itself once; three need the timer.)
    def sim_time_diagnostics() -> list:
        return [m for m in diagnostics.messages() if m.status[0].hardware_id == "/robot_1"]

    wait_for(lambda: len(sim_time_diagnostics()) >= 3, 5.0, "3 /robot_1 diagnostics, no /clock")
    sim_msgs = sim_time_diagnostics()
    assert {m.header.stamp.sec for m in sim_msgs} == {0}, "not on simulated time after all"
    sim = [m.status[0] for m in sim_msgs]
    assert values(sim[-1])["lifecycle_state"] == "active"
    assert {"scan_hz", "odom_hz", "cmd_vel_hz"} <= set(values(sim[-1]))
