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


def test_a_lidar_with_too_few_valid_rays_stops_the_robot_once_and_resumes():
    gate = CommandGate(sensor_timeout=0.5, goal_tolerance=0.1, min_valid_ray_fraction=0.5)
    fresh = (1.0, 0.9, 0.95, 2.0)
    decisions = [
        gate.decide(*fresh, (360, 360)),
        gate.decide(*fresh, (3, 360)),  # lidar broken
        gate.decide(*fresh, (0, 360)),
        gate.decide(*fresh, (180, 360)),  # half the rays valid: enough
    ]
    assert [(d.drive, d.send_zero) for d in decisions] == [
        (True, False),
        (False, True),
        (False, False),
        (True, False),
    ]
    assert decisions[1].reason == "lidar invalid (3 of 360 rays valid, need 50%)"
    assert not gate.enough_valid_rays(0, 0), "a scan without rays is never enough"


def test_speed_limits_above_the_robots_are_capped_to_its_profile():
    from dataclasses import replace

    from swarm_contract.robot_io import Contract
    from swarm_controller import parameters

    settings = parameters.NodeSettings(
        **{spec.name: spec.default for spec in parameters.PARAMETERS}
    )
    burger = Contract()  # turtlebot3_burger: 0.22 m/s, 2.84 rad/s
    wide = replace(settings, max_linear=5.0, max_angular=2.0)
    v, w, warnings = parameters.capped_speed_limits(wide, burger)
    assert (v, w) == (0.22, 2.0), "a lower limit stays; a higher one is capped"
    assert warnings == [
        "max_linear=5 is above what the robot profile 'turtlebot3_burger' allows; capped to 0.22"
    ]
    # A robot contract claiming more than its profile still gets the profile's limit.
    v, w, _ = parameters.capped_speed_limits(wide, Contract(max_linear=1.0))
    assert v == 0.22
    # A custom robot (no shipped profile) is capped to its own contract.
    custom = Contract(max_linear=1.0, profile="my_rover")
    assert parameters.capped_speed_limits(wide, custom)[:2] == (1.0, 2.0)
