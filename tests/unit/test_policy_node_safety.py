"""The stop-and-hold rules of the policy node, without ROS: one zero, then silence."""

from __future__ import annotations

import math

import pytest

pytest.importorskip(
    "swarm_controller", reason="needs swarm_controller: pip install -e ros2_ws/src/swarm_controller"
)

from swarm_controller.safety import CommandGate


def run(gate: CommandGate, steps: list[tuple[float, float | None, float | None, float | None]]):
    return [gate.decide(*step) for step in steps]


def test_every_stop_reason_sends_one_zero_then_holds_silently():
    gate = CommandGate(sensor_timeout=0.5, goal_tolerance=0.1)
    fresh = (1.0, 0.9, 0.95)
    decisions = run(
        gate,
        [
            (*fresh, None),  # no goal
            (*fresh, None),
            (*fresh, 2.0),  # goal known: drive
            (2.0, 0.9, 1.9, 2.0),  # scan 1.1 s old: stale
            (2.1, 0.9, 2.0, 2.0),
            (2.2, 2.15, 2.1, 2.0),  # fresh again: drive
            (2.3, 2.25, 2.2, 0.05),  # within tolerance: at goal
            (2.4, 2.35, 2.3, 0.05),
        ],
    )
    assert [(d.drive, d.send_zero) for d in decisions] == [
        (False, True),
        (False, False),
        (True, False),
        (False, True),
        (False, False),
        (True, False),
        (False, True),
        (False, False),
    ]
    assert decisions[0].reason == "no goal yet"
    assert decisions[3].reason == "no fresh scan (timeout 0.5 s)"
    assert decisions[6].reason.startswith("at goal")


def test_missing_or_non_finite_readings_never_drive():
    gate = CommandGate(sensor_timeout=0.5, goal_tolerance=0.1)
    assert gate.decide(1.0, None, None, 2.0).reason == "no fresh scan and odom (timeout 0.5 s)"
    assert gate.decide(1.0, 1.0, 1.0, math.nan).reason == "pose or goal is not finite"
    assert gate.stale_sensors(1.0, 0.2, 0.9) == ["scan"]


def test_reset_on_activation_sends_a_fresh_zero():
    gate = CommandGate(sensor_timeout=0.5, goal_tolerance=0.1)
    assert gate.decide(0.0, None, None, None).send_zero
    assert not gate.decide(0.1, None, None, None).send_zero
    gate.reset()
    assert gate.decide(0.2, None, None, None).send_zero
