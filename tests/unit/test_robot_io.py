"""robot_io: the observation/action contract as a robot and a model see it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from swarm_contract import robot_io
from swarm_contract.robot_io import BeamPooler, Contract, ContractMismatch

RANGE_MIN, RANGE_MAX = 0.12, 3.5


def lds_pooler(num_beams: int = 24, angle_min: float = -math.pi) -> BeamPooler:
    """A pooler for a 360-ray scan like TurtleBot3's LDS."""
    return BeamPooler(360, angle_min, math.radians(1.0), num_beams, RANGE_MIN, RANGE_MAX)


def beams_to_metres(beams: np.ndarray) -> np.ndarray:
    return RANGE_MIN + beams * (RANGE_MAX - RANGE_MIN)


def scan_with(readings: dict[int, float], fill: float = math.inf) -> np.ndarray:
    """A 360-ray scan (ray i at -180 + i degrees) holding `fill` except at the given rays."""
    ranges = np.full(360, fill)
    for ray, value in readings.items():
        ranges[ray] = value
    return ranges


# --------------------------------------------------------------------------- #
# REP-117 specials, as a real LaserScan carries them.
# --------------------------------------------------------------------------- #


def test_inf_means_nothing_seen():
    beams = lds_pooler()(scan_with({}))
    assert np.allclose(beams, 1.0)


def test_negative_inf_means_an_object_closer_than_range_min():
    beams = lds_pooler()(scan_with({180: -math.inf}))
    assert beams[12] == pytest.approx(0.0)
    assert np.allclose(np.delete(beams, 12), 1.0)


@pytest.mark.parametrize("invalid", [math.nan, 0.0, 0.05])
def test_invalid_readings_do_not_fake_an_obstacle(invalid):
    # NaN (failed reading) and readings below range_min (LDS drivers publish 0.0
    # for "no return") must not look like a wall touching the robot.
    beams = lds_pooler()(scan_with({180: invalid, 181: 2.0}))
    assert beams_to_metres(beams[12]) == pytest.approx(2.0)


def test_invalid_readings_alone_read_as_free_space():
    beams = lds_pooler()(scan_with({r: 0.0 for r in range(360)}))
    assert np.allclose(beams, 1.0)


def test_readings_beyond_range_max_are_clipped():
    beams = lds_pooler()(scan_with({180: 50.0}))
    assert beams[12] == pytest.approx(1.0)
    assert np.all((beams >= 0.0) & (beams <= 1.0))


def test_sector_reports_its_closest_valid_reading():
    beams = lds_pooler()(scan_with({178: 2.5, 180: 1.0, 182: math.nan}))
    assert beams_to_metres(beams[12]) == pytest.approx(1.0)


# --------------------------------------------------------------------------- #
# Beam geometry.
# --------------------------------------------------------------------------- #


def test_beam_straight_ahead_is_centred_on_zero():
    pooler = lds_pooler()
    # Rays 1 degree right and 1 degree left of the heading land in the same beam,
    # the one centred straight ahead (num_beams / 2).
    right = pooler(scan_with({179: 1.0}))
    left = pooler(scan_with({181: 1.0}))
    assert np.argmin(right) == np.argmin(left) == 12


def test_left_and_right_are_mirror_images():
    pooler = lds_pooler()
    rng = np.random.default_rng(0)
    ranges = rng.uniform(0.2, 3.0, 360)
    mirrored = np.roll(ranges[::-1], 1)  # ray at +a holds what ray at -a held
    beams, mirror_beams = pooler(ranges), pooler(mirrored)
    # Beam k looks at -pi + k*15deg; its mirror looks at pi - k*15deg = beam (24 - k) % 24.
    assert np.allclose(mirror_beams, beams[(24 - np.arange(24)) % 24])


def test_left_is_counter_clockwise():
    # Something 90 degrees to the left (REP-103: +y) is in the beam 6 sectors past ahead.
    beams = lds_pooler()(scan_with({270: 1.0}))
    assert np.argmin(beams) == 18


def test_scans_from_zero_to_two_pi_and_minus_pi_to_pi_give_the_same_beams():
    rng = np.random.default_rng(1)
    # The same world seen by two drivers: one publishes -pi..pi, one 0..2pi (TurtleBot3 LDS).
    world = rng.uniform(0.2, 3.4, 360)  # index = degrees from -180
    world[rng.integers(0, 360, 20)] = np.inf
    minus_pi = lds_pooler(angle_min=-math.pi)(world)
    zero_based = np.roll(world, -180)  # index = degrees from 0
    from_zero = lds_pooler(angle_min=0.0)(zero_based)
    assert np.array_equal(minus_pi, from_zero)


def test_pooler_refuses_too_few_rays_and_wrong_lengths():
    with pytest.raises(ValueError, match="cannot fill 24 beams"):
        BeamPooler(12, -math.pi, 2 * math.pi / 12, 24, RANGE_MIN, RANGE_MAX)
    with pytest.raises(ValueError, match="has 359 ranges"):
        lds_pooler()(np.ones(359))


# --------------------------------------------------------------------------- #
# Which scans a robot may trust (REP-117 validity, LaserScan fields).
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "reading, valid",
    [
        (1.0, True),  # within [range_min, range_max]
        (math.inf, True),  # nothing within range: free space
        (-math.inf, True),  # closer than range_min: an obstacle
        (0.0, True),  # TurtleBot3's LDS: no return
        (RANGE_MIN, True),
        (RANGE_MAX, True),
        (math.nan, False),  # an erroneous reading
        (-1.0, False),
        (0.05, False),  # below range_min
        (3.6, False),  # above range_max
    ],
)
def test_a_ray_is_valid_by_rep_117(reading, valid):
    ranges = scan_with({7: reading}, fill=math.nan)
    assert robot_io.count_valid_rays(ranges, RANGE_MIN, RANGE_MAX) == int(valid)


def test_a_broken_lidar_has_no_valid_rays():
    for broken in (np.full(360, np.nan), np.full(360, -1.0)):
        assert robot_io.count_valid_rays(broken, RANGE_MIN, RANGE_MAX) == 0


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("angle_min", math.nan, "angle_min=nan must be a finite angle in radians"),
        ("angle_increment", math.inf, "angle_increment=inf must be a finite angle > 0"),
        ("angle_increment", 0.0, "angle_increment=0.0 must be a finite angle > 0"),
        ("angle_increment", -0.01, "angle_increment=-0.01 must be a finite angle > 0"),
        ("range_min", math.nan, "range_min=nan must be a finite distance >= 0"),
        ("range_max", math.inf, "range_max=inf must be a finite distance > range_min"),
        ("range_max", 0.1, "range_max=0.1 must be a finite distance > range_min"),
        ("num_rays", 0, "ranges is empty"),
    ],
)
def test_an_unusable_scan_field_is_refused_by_name_value_and_valid_range(field, value, named):
    scan = dict(
        num_rays=360,
        angle_min=-math.pi,
        angle_increment=math.radians(1.0),
        range_min=RANGE_MIN,
        range_max=RANGE_MAX,
    )
    robot_io.check_scan_fields(**scan)  # a TurtleBot3 LDS scan passes
    with pytest.raises(robot_io.ScanRefused) as refused:
        robot_io.check_scan_fields(**{**scan, field: value})
    assert named in str(refused.value)


def test_a_nan_angle_reaching_the_pooler_is_named_not_a_numpy_error():
    with pytest.raises(ValueError, match=r"ray angles are not finite \(angle_min=nan"):
        BeamPooler(360, math.nan, math.radians(1.0), 24, RANGE_MIN, RANGE_MAX)


def test_a_builder_forgets_its_stacked_scans_after_a_fault():
    builder = robot_io.ObservationBuilder(Contract(scan_stack=2))
    builder.add_scan(scan_with({180: 1.0}), -math.pi, math.radians(1.0))
    builder.forget_scans()
    with pytest.raises(RuntimeError, match="no scan yet"):
        builder.observation((0.0, 0.0, 0.0), (1.0, 0.0), 0.0, 0.0)


# --------------------------------------------------------------------------- #
# Goal, velocity and action mapping.
# --------------------------------------------------------------------------- #


def test_goal_to_the_left_has_positive_bearing():
    distance, bearing = robot_io.goal_in_robot_frame(
        np.array([1.0, 1.0, math.pi / 2]), np.array([0.0, 1.0])
    )
    assert distance == pytest.approx(1.0)
    assert bearing == pytest.approx(math.pi / 2)


def test_actions_map_to_limits_and_non_finite_actions_stop():
    twist = robot_io.action_to_twist(np.array([[1.0, -1.0], [5.0, np.nan]]), 0.22, 2.84)
    assert twist[0] == pytest.approx([0.22, -2.84])
    assert twist[1] == pytest.approx([0.22, 0.0])


def test_clamp_twist_never_passes_nan():
    assert robot_io.clamp_twist(math.nan, 1.0, 0.22, 2.84) == (0.0, 0.0)
    assert robot_io.clamp_twist(1.0, -9.0, 0.22, 2.84) == (0.22, -2.84)


def test_observation_builder_stacks_newest_first():
    contract = Contract(scan_stack=2)
    builder = robot_io.ObservationBuilder(contract)
    builder.add_scan(scan_with({}, fill=3.5), -math.pi, math.radians(1.0))
    builder.add_scan(scan_with({}, fill=1.0), -math.pi, math.radians(1.0))
    obs = builder.observation([0.0, 0.0, 0.0], [1.0, 0.0], 0.11, 0.0)
    assert obs.shape == (contract.obs_dim,)
    assert beams_to_metres(obs[:24]) == pytest.approx(np.full(24, 1.0))
    assert beams_to_metres(obs[24:48]) == pytest.approx(np.full(24, 3.5))
    assert obs[48:51] == pytest.approx([1.0 / contract.goal_clip, 1.0, 0.0])
    assert obs[51] == pytest.approx(0.5)


# --------------------------------------------------------------------------- #
# Contract metadata.
# --------------------------------------------------------------------------- #


def test_contract_metadata_round_trip():
    contract = Contract.for_profile(robot_io.load_profile(), num_beams=36, scan_stack=3)
    meta = contract.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert Contract.from_metadata(meta) == contract
    assert json.loads(meta["contract.obs_dim"]) == 36 * 3 + 5


def test_mismatch_names_every_differing_field():
    model = Contract(num_beams=24, range_max=3.5)
    robot = Contract(num_beams=36, range_max=12.0)
    with pytest.raises(ContractMismatch) as err:
        model.check_fits(robot)
    message = str(err.value)
    assert "num_beams: model expects 24, robot has 36" in message
    assert "range_max: model expects 3.5, robot has 12.0" in message


def test_a_slower_model_fits_but_a_faster_one_is_named():
    Contract(max_linear=0.22).check_fits(Contract(max_linear=0.5))
    with pytest.raises(ContractMismatch, match="max_angular: model commands up to 5.0"):
        Contract(max_angular=5.0).check_fits(Contract(max_angular=2.84))


def test_metadata_missing_a_field_is_named():
    meta = Contract().to_metadata()
    del meta["contract.scan_stack"]
    with pytest.raises(ContractMismatch, match="contract.scan_stack"):
        Contract.from_metadata(meta)


def test_metadata_from_another_contract_version_is_refused():
    meta = Contract().to_metadata()
    meta["contract.contract_version"] = '"0"'
    with pytest.raises(ContractMismatch, match="contract_version"):
        Contract.from_metadata(meta)


def test_unknown_profile_lists_known_ones():
    with pytest.raises(FileNotFoundError, match="turtlebot3_burger"):
        robot_io.load_profile("no_such_robot")
