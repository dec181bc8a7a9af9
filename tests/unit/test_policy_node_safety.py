"""The stop-and-hold rules of the policy node, without ROS: every tick of a hold is a zero."""

from __future__ import annotations

import math

import pytest

pytest.importorskip(
    "swarm_controller", reason="needs swarm_controller: pip install -e ros2_ws/src/swarm_controller"
)

from swarm_controller.safety import CommandGate


def run(gate: CommandGate, steps: list[tuple[float, float | None, float | None, float | None]]):
    return [gate.decide(*step) for step in steps]


def test_every_stop_reason_holds_and_each_new_reason_is_reported_once():
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
    # drive False: the node publishes a zero on that tick; new_reason: it logs why.
    assert [(d.drive, d.new_reason) for d in decisions] == [
        (False, True),
        (False, False),
        (True, True),
        (False, True),
        (False, False),
        (True, True),
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


def test_reset_on_activation_reports_the_hold_again():
    gate = CommandGate(sensor_timeout=0.5, goal_tolerance=0.1)
    assert gate.decide(0.0, None, None, None).new_reason
    assert not gate.decide(0.1, None, None, None).new_reason
    gate.reset()
    assert gate.decide(0.2, None, None, None).new_reason


def test_an_estop_holds_whatever_else_is_true_and_release_resumes():
    gate = CommandGate(sensor_timeout=0.5, goal_tolerance=0.1)
    fresh = (1.0, 0.9, 0.95, 2.0, (360, 360))
    assert gate.decide(*fresh).drive
    for estops, reason in (
        (("fleet",), "e-stop (fleet)"),
        (("robot", "fleet"), "e-stop (robot, fleet)"),
        (("robot",), "e-stop (robot)"),
    ):
        decision = gate.decide(*fresh, estops)
        assert (decision.drive, decision.reason) == (False, reason)
    # Stale sensors too: the e-stop is the reason shown, it is what must be released.
    assert gate.decide(9.0, 0.9, 0.95, 2.0, (360, 360), ("robot",)).reason == "e-stop (robot)"
    assert gate.decide(*fresh, ()).drive
    # Right after start, an e-stop not heard from yet may be a latched "stop" on its way.
    waiting = gate.decide(*fresh, (), ("fleet",))
    assert (waiting.drive, waiting.reason) == (False, "waiting to hear the latched e-stop (fleet)")


def test_a_lidar_with_too_few_valid_rays_stops_the_robot_and_resumes():
    gate = CommandGate(sensor_timeout=0.5, goal_tolerance=0.1, min_valid_ray_fraction=0.5)
    fresh = (1.0, 0.9, 0.95, 2.0)
    decisions = [
        gate.decide(*fresh, (360, 360)),
        gate.decide(*fresh, (3, 360)),  # lidar broken
        gate.decide(*fresh, (0, 360)),
        gate.decide(*fresh, (180, 360)),  # half the rays valid: enough
    ]
    assert [d.drive for d in decisions] == [True, False, False, True]
    assert decisions[1].reason == "lidar invalid (3 of 360 rays valid, need 50%)"
    assert not gate.enough_valid_rays(0, 0), "a scan without rays is never enough"


def default_settings(**changes):
    from dataclasses import replace

    from swarm_controller import parameters

    settings = parameters.NodeSettings(
        **{spec.name: spec.default for spec in parameters.PARAMETERS}
    )
    return replace(settings, **changes)


def test_motion_limits_above_the_robots_are_capped_to_its_profile():
    from swarm_contract.robot_io import Contract
    from swarm_controller import parameters

    burger = Contract()  # turtlebot3_burger: 0.22 m/s, 2.84 rad/s, 2.5 m/s^2, 3.2 rad/s^2
    wide = default_settings(
        max_linear=5.0, max_angular=2.0, max_linear_accel=10.0, max_angular_accel=1.0
    )
    limits, warnings = parameters.capped_limits(wide, burger)
    assert limits == {
        "max_linear": 0.22,
        "max_angular": 2.0,
        "max_linear_accel": 2.5,
        "max_angular_accel": 1.0,
    }, "a lower limit stays; a higher one is capped"
    assert warnings == [
        "max_linear=5 is above what the robot profile 'turtlebot3_burger' allows; capped to 0.22",
        "max_linear_accel=10 is above what the robot profile 'turtlebot3_burger' allows;"
        " capped to 2.5",
    ]
    # A robot contract claiming more than its profile still gets the profile's limit.
    assert parameters.capped_limits(wide, Contract(max_linear=1.0))[0]["max_linear"] == 0.22
    # A custom robot (no shipped profile) is capped to its own contract's speeds;
    # it has no acceleration limits to cap with.
    custom = Contract(max_linear=1.0, profile="my_rover")
    limits, _ = parameters.capped_limits(wide, custom)
    assert (limits["max_linear"], limits["max_linear_accel"]) == (1.0, 10.0)


def test_safety_limits_carry_the_capped_values_the_footprint_and_the_stop_zone():
    from swarm_contract.robot_io import Contract
    from swarm_controller import parameters

    settings = default_settings(max_linear_accel=0.5, stop_zone=False, stop_margin=0.1)
    limits, warnings = parameters.safety_limits(settings, Contract())
    assert (limits.max_linear, limits.max_linear_accel, limits.max_angular_accel) == (
        0.22,
        0.5,
        3.2,
    )
    assert (limits.footprint_radius, limits.stop_zone, limits.stop_margin) == (0.105, False, 0.1)
    assert warnings == []
    _, warnings = parameters.safety_limits(settings, Contract(profile="my_rover"))
    assert "footprint radius of 0.105 m" in warnings[0]


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("expected_sha256", "abc", "expected_sha256='abc' is not a sha256"),
        ("max_linear_accel", math.inf, "max_linear_accel=inf must be a finite number > 0"),
        ("stop_margin", math.nan, "stop_margin=nan must be a finite number >= 0"),
    ],
)
def test_values_a_descriptor_cannot_refuse_are_refused_by_name(name, value, reason):
    from swarm_controller import parameters

    assert parameters.check_value(name, value).startswith(reason)


def test_a_sha256_is_accepted_in_either_case_and_empty_means_any():
    from swarm_controller import parameters

    for value in ("", "ab" * 32, "AB" * 32):
        assert parameters.check_value("expected_sha256", value) is None


def test_the_live_policy_record_lives_under_ros_home_per_namespace(tmp_path):
    from swarm_controller import live_policy, parameters

    template = parameters.LIVE_POLICY_RECORD_DEFAULT
    env = {"ROS_HOME": str(tmp_path)}
    assert live_policy.record_path(template, "/fleet/robot_0", env) == (
        tmp_path / "swarm" / "fleet_robot_0" / "live_policy.json"
    )
    home = live_policy.record_path(template, "/robot_1", {})
    assert home.parts[-4:] == (".ros", "swarm", "robot_1", "live_policy.json")
    assert live_policy.record_path("", "/robot_0") is None, "empty turns the record off"


def test_the_live_policy_record_round_trips_and_a_damaged_one_is_named(tmp_path):
    from swarm_controller import live_policy

    path = tmp_path / "deep" / "live_policy.json"
    assert live_policy.read_record(path) is None
    record = live_policy.new_record("/m/a/robot_0.onnx", "/m/b/robot_0.onnx", "ab" * 32)
    live_policy.write_record(path, record)
    assert live_policy.read_record(path) == record
    assert [p.name for p in path.parent.iterdir()] == ["live_policy.json"], "no temporary left"
    path.write_text('{"launch_policy_path": 3}')
    with pytest.raises(ValueError, match=f"live policy record {path} is not one"):
        live_policy.read_record(path)
    path.write_text("{cut")
    with pytest.raises(ValueError, match="cannot be read"):
        live_policy.read_record(path)


def test_the_sample_params_file_sets_every_parameter_with_its_type():
    from pathlib import Path

    import yaml

    from swarm_controller import parameters

    repo = Path(__file__).resolve().parents[2]
    sample = repo / "ros2_ws" / "src" / "swarm_controller" / "config" / "policy_node.yaml"
    values = yaml.safe_load(sample.read_text())["/**/policy_node"]["ros__parameters"]
    assert set(values) == set(parameters.NAMES)
    for spec in parameters.PARAMETERS:
        assert type(values[spec.name]) is type(spec.default), spec.name
