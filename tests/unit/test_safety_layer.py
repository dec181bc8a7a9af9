"""The safety layer between policy and wheels: stop zone, acceleration ramp, caps.

Scans follow a TurtleBot3 LDS: 360 rays from 0 rad, counter-clockwise, so ray
0 looks straight ahead and ray 180 straight behind.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from swarm_contract.robot_io import RobotProfile, load_profile
from swarm_contract.safety_layer import SafetyLayer, SafetyLimits

BURGER = load_profile("turtlebot3_burger")
TICK = 0.1  # s, the Burger's 10 Hz control period
RAYS = 360
INCREMENT = 2 * math.pi / RAYS


def scan(**obstacles: float) -> np.ndarray:
    """An open-space scan (+inf) with returns at the given bearings, in degrees:
    scan(ahead=0.15) puts an object 0.15 m straight ahead."""
    bearings = {"ahead": 0, "left": 90, "behind": 180, "right": 270}
    ranges = np.full(RAYS, np.inf)
    for where, distance in obstacles.items():
        centre = bearings[where]
        ranges[[(centre + k) % RAYS for k in range(-3, 4)]] = distance
    return ranges


def burger_layer(**overrides) -> SafetyLayer:
    return SafetyLayer(SafetyLimits.from_profile(BURGER, **overrides))


def drive(layer: SafetyLayer, v: float, w: float, ranges: np.ndarray | None = None):
    return layer.filter(v, w, TICK, ranges, 0.0, INCREMENT)


def at_speed(v: float, w: float = 0.0, **overrides) -> SafetyLayer:
    """A Burger layer that has ramped up to (v, w) in open space."""
    layer = burger_layer(**overrides)
    for _ in range(100):
        drive(layer, v, w)
    assert layer.last_command == (v, w)
    return layer


def test_the_burger_profile_carries_its_acceleration_limits():
    assert (BURGER.max_linear_accel, BURGER.max_angular_accel) == (2.5, 3.2)


def test_an_obstacle_close_ahead_stops_forward_motion_but_not_reversing_or_turning():
    close = scan(ahead=0.15)
    forward = drive(at_speed(0.22), 0.22, 0.0, close)
    assert forward.linear == 0.0 and forward.stop_zone_cut
    turning = drive(at_speed(0.22, 1.5), 0.22, 1.5, close)
    assert turning.linear == 0.0 and turning.angular == 1.5, "it may still turn away"
    backing = drive(at_speed(-0.1, 0.5), -0.1, 0.5, close)
    assert (backing.linear, backing.angular) == (-0.1, 0.5) and not backing.stop_zone_cut


def test_an_obstacle_behind_stops_reversing_only():
    behind = scan(behind=0.15)
    assert drive(at_speed(0.22), 0.22, 0.0, behind).linear == 0.22
    assert drive(at_speed(-0.22), -0.22, 0.0, behind).linear == 0.0


def test_an_obstacle_beside_the_path_does_not_stop_the_robot():
    beside = scan(left=0.2, right=0.2)
    assert drive(at_speed(0.22), 0.22, 0.0, beside).linear == 0.22


def test_the_stop_zone_reaches_further_at_full_speed_than_when_creeping():
    wall = scan(ahead=0.2)
    assert drive(at_speed(0.22), 0.22, 0.0, wall).stop_zone_cut
    assert drive(at_speed(0.05), 0.05, 0.0, wall).linear == 0.05


def test_the_stop_is_immediate_even_where_the_ramp_would_slow_down_gradually():
    layer = at_speed(0.22, max_linear_accel=0.1)
    assert drive(layer, 0.22, 0.0, scan(ahead=0.15)).linear == 0.0
    assert layer.stop_zone_cuts == 1


def test_the_stop_zone_counts_every_step_it_cuts_and_can_be_switched_off():
    layer = at_speed(0.22)
    for _ in range(3):
        drive(layer, 0.22, 0.0, scan(ahead=0.15))
    drive(layer, 0.0, 1.0, scan(ahead=0.15))  # turning in place is no cut
    assert layer.stop_zone_cuts == 3
    off = burger_layer(stop_zone=False)
    assert drive(off, 0.22, 0.0, scan(ahead=0.15)).linear == 0.22


def test_broken_rays_are_neither_obstacles_nor_hide_real_ones():
    nan = np.full(RAYS, np.nan)
    no_return = np.zeros(RAYS)  # TurtleBot3's LDS sends 0.0 when a ray saw nothing
    for ranges in (nan, no_return, scan(), None):
        assert drive(at_speed(0.22), 0.22, 0.0, ranges).linear == 0.22
    mixed = scan(ahead=0.15)
    mixed[::2] = np.nan
    assert drive(at_speed(0.22), 0.22, 0.0, mixed).stop_zone_cut
    too_close = scan(ahead=-np.inf)  # REP-117: closer than the sensor can measure
    assert drive(at_speed(0.22), 0.22, 0.0, too_close).stop_zone_cut


def test_a_scan_whose_rays_cannot_be_placed_stops_linear_motion():
    layer = at_speed(0.22)
    assert layer.filter(0.22, 0.0, TICK, scan(), math.nan, INCREMENT).linear == 0.0


@pytest.mark.parametrize(
    ("overrides", "component", "top", "accel"),
    [
        ({"max_linear_accel": 0.5}, 0, BURGER.max_linear, 0.5),
        ({}, 1, BURGER.max_angular, BURGER.max_angular_accel),
    ],
    ids=["linear", "angular-burger"],
)
def test_reaching_full_speed_from_rest_takes_top_speed_over_acceleration(
    overrides, component, top, accel
):
    layer = burger_layer(**overrides)
    request = (top, 0.0) if component == 0 else (0.0, top)
    sent = [
        (cmd.linear, cmd.angular)[component] for cmd in (drive(layer, *request) for _ in range(30))
    ]
    ticks = sent.index(top) + 1
    assert ticks == math.ceil(top / accel / TICK - 1e-9)
    assert (
        sent[:ticks] == sorted(sent[:ticks]) and max(np.diff([0.0, *sent])) <= accel * TICK + 1e-12
    )


def test_the_burger_reaches_top_linear_speed_in_one_tick():
    assert drive(burger_layer(), 0.22, 0.0).linear == 0.22


def test_slowing_down_is_immediate_and_reversing_ramps_up_from_rest():
    layer = at_speed(0.0, 2.84)
    assert drive(layer, 0.0, 1.0).angular == 1.0
    assert drive(layer, 0.0, -2.84).angular == pytest.approx(-0.32)
    assert drive(layer, 0.0, 0.0).angular == 0.0


def test_reset_restarts_the_ramp_from_rest():
    layer = at_speed(0.0, 2.84)
    layer.reset()
    assert drive(layer, 0.0, 2.84).angular == pytest.approx(0.32)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_command_gives_an_immediate_zero(bad):
    layer = at_speed(0.22, 2.0)
    for v, w in ((bad, 0.5), (0.1, bad)):
        cmd = drive(layer, v, w)
        assert (cmd.linear, cmd.angular) == (0.0, 0.0)
        assert all(math.isfinite(x) for x in (cmd.linear, cmd.angular))


def test_commands_are_capped_to_the_profile():
    layer = at_speed(0.22, 2.84)
    cmd = drive(layer, 5.0, 40.0)
    assert (cmd.linear, cmd.angular) == (0.22, 2.84)


@pytest.mark.parametrize("dt", [math.nan, -1.0, 0.0, 60.0])
def test_a_bad_or_late_dt_never_allows_more_than_one_periods_change(dt):
    layer = burger_layer()
    assert layer.filter(0.0, 2.84, dt, None, 0.0, INCREMENT).angular == pytest.approx(0.32)


def test_an_older_profile_without_acceleration_limits_gets_the_burgers(tmp_path):
    old = tmp_path / "old_robot.yaml"
    old.write_text("radius: 0.2\nmax_linear: 0.5\nmax_angular: 1.0\n")
    limits = SafetyLimits.from_profile(load_profile(old))
    assert (limits.max_linear_accel, limits.max_angular_accel) == (2.5, 3.2)
    assert limits.footprint_radius == 0.2


def test_bad_limits_are_refused_naming_the_value():
    with pytest.raises(ValueError, match="max_linear_accel=0"):
        SafetyLimits.from_profile(BURGER, max_linear_accel=0)
    with pytest.raises(ValueError, match="unknown override.*'stop_distance'"):
        SafetyLimits.from_profile(BURGER, stop_distance=0.3)
    with pytest.raises(ValueError, match="max_angular_accel=-1"):
        RobotProfile(max_angular_accel=-1.0)
