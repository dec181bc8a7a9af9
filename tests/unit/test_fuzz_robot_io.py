"""Fuzzing the robot side of the contract with what a broken or hostile sensor could send.

The fields of LaserScan, Odometry and goal messages (tests/fuzz_messages.py: NaN,
+-inf, subnormals, huge values, scans of 0..2000 rays, bad geometry, non-unit
quaternions, goals at 1e300) go through the path a policy node runs
(check_scan_fields, count_valid_rays, ObservationBuilder, OnnxPolicy, clamp_twist)
with real ONNX policies, one of which overflows to inf and NaN once the robot
moves. What must hold: every command is finite and within the robot's limits, a
refused scan names the field that is wrong (never a numpy message), an obstacle the
lidar sees is never pooled away, and a heading does not depend on the quaternion's
norm. The examples are the same on every run (derandomized, no database), so CI
runs are reproducible and bounded; a failure prints the minimal example.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import NEEDS_OPS

pytest.importorskip("hypothesis", reason="needs hypothesis (dev extras): pip install -e '.[dev]'")

from fuzz_messages import (
    ANY_FLOAT64,
    GOALS,
    INF,
    ODOMETRY,
    assert_reads_like_a_scan_refusal,
    fuzz_settings,
    laser_scans,
)
from hypothesis import event, given
from hypothesis import strategies as st

from swarm_contract.onnx_policy import OnnxPolicy
from swarm_contract.robot_io import (
    Contract,
    ObservationBuilder,
    action_to_twist,
    check_scan_fields,
    clamp_twist,
    count_valid_rays,
    wrap_angle,
    yaw_from_quaternion,
)

# --------------------------------------------------------------------------- #
# Policies: real ONNX files, one of which overflows.
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def policies(tmp_path_factory) -> dict[str, OnnxPolicy]:
    pytest.importorskip("onnx", reason="needs onnx to build test models: pip install onnx")
    onnx_models = pytest.importorskip("swarm_ops.onnx_models", reason=NEEDS_OPS)
    models = onnx_models.PolicyModels(tmp_path_factory.mktemp("fuzz_models"))
    stacked = Contract(num_beams=8, scan_stack=3)
    return {
        "mlp": OnnxPolicy.load(models.mlp("mlp.onnx")),
        "reference": OnnxPolicy.load(models.reference_controller("reference.onnx")),
        "overflowing": OnnxPolicy.load(models.overflowing("overflowing.onnx")),
        "stacked mlp": OnnxPolicy.load(models.mlp("stacked.onnx", contract=stacked)),
    }


def feed_scan(builder: ObservationBuilder, scan: dict) -> bool:
    """What the node does with a scan: check its fields, count valid rays, pool it.
    True if it was taken; a refusal must read like one."""
    ranges = scan["ranges"]
    try:
        check_scan_fields(
            len(ranges),
            scan["angle_min"],
            scan["angle_increment"],
            scan["range_min"],
            scan["range_max"],
        )
        count_valid_rays(ranges, scan["range_min"], scan["range_max"])
        builder.add_scan(ranges, scan["angle_min"], scan["angle_increment"])
    except ValueError as err:  # ScanRefused, or a geometry the contract cannot pool
        assert_reads_like_a_scan_refusal(str(err))
        return False
    return True


def assert_nearest_obstacle_kept(beams: np.ndarray, ranges: np.ndarray, c: Contract) -> None:
    """No pooling hides what the lidar saw: the nearest reading the contract keeps
    (finite within its limits; -inf means closer than range_min) bounds the beams."""
    r = ranges.astype(np.float64)
    if (r == -INF).any():
        assert beams.min() == 0.0, "a ray closer than range_min (-inf) was pooled away"
    kept = r[np.isfinite(r) & (r >= c.range_min) & (r <= c.range_max)]
    if kept.size:
        nearest = (kept.min() - c.range_min) / (c.range_max - c.range_min)
        assert beams.min() <= nearest + 1e-6, f"an obstacle at {kept.min()} m was pooled away"


def assert_observation_in_range(obs: np.ndarray, c: Contract, pose_and_goal_finite: bool) -> None:
    """Every feature within the range the contract documents (goal features only
    when the pose and the goal are finite numbers: the node holds otherwise)."""
    beams = c.num_beams * c.scan_stack
    assert obs.shape == (c.obs_dim,) and obs.dtype == np.float32
    assert np.all((obs[:beams] >= 0) & (obs[:beams] <= 1)), obs[:beams]
    velocity = obs[beams + 3 :]
    assert np.all((velocity >= -1) & (velocity <= 1)), velocity
    if pose_and_goal_finite:
        goal = obs[beams : beams + 3]
        assert 0 <= goal[0] <= 1 and np.all(np.abs(goal[1:]) <= 1), goal


# --------------------------------------------------------------------------- #
# The properties.
# --------------------------------------------------------------------------- #


# An observation from a pose or goal at +-inf or near 1e308 computes inf - inf or
# overflows on the way (the node never builds one: it holds while the goal
# distance is not finite).
@pytest.mark.slow  # 2,000 scans through a real policy: ~10 s
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@fuzz_settings(examples=2000)
@given(
    policy_name=st.sampled_from(["mlp", "reference", "overflowing", "stacked mlp"]),
    scans=st.lists(laser_scans(), min_size=1, max_size=2),
    odom=ODOMETRY,
    goal=GOALS,
)
def test_any_scan_odometry_and_goal_give_a_command_within_the_robot_limits(
    policies, policy_name, scans, odom, goal
):
    policy = policies[policy_name]
    c = policy.contract
    builder = ObservationBuilder(c)
    taken = None
    for scan in scans:
        if feed_scan(builder, scan):
            taken = scan
    if taken is None:
        event("every scan refused")
        return  # no scan yet: the node sends nothing but zeros
    yaw = yaw_from_quaternion(*odom["q"])
    pose = (odom["x"], odom["y"], yaw)
    obs = builder.observation(pose, goal, odom["v"], odom["w"])

    assert_nearest_obstacle_kept(obs[: c.num_beams], taken["ranges"], c)
    finite = all(math.isfinite(x) for x in (*pose, *goal))
    assert_observation_in_range(obs, c, pose_and_goal_finite=finite)
    if finite:
        assert np.isfinite(obs).all(), obs

    raw = policy.infer(obs)
    # Labels for `pytest --hypothesis-show-statistics`: how many examples reached each case.
    event("policy output not finite" if not np.isfinite(raw).all() else "policy output finite")
    v, w = clamp_twist(float(raw[0]), float(raw[1]), c.max_linear, c.max_angular)
    assert math.isfinite(v) and math.isfinite(w), (v, w)
    assert abs(v) <= c.max_linear and abs(w) <= c.max_angular, (v, w)


@fuzz_settings(examples=1000)
@given(scan=laser_scans())
def test_valid_rays_are_counted_as_rep_117_defines_them(scan):
    ranges, low, high = scan["ranges"], scan["range_min"], scan["range_max"]
    # REP-117, ray by ray: +-inf are readings (out of range), NaN is an error, and
    # 0.0 is TurtleBot3's "no return"; a finite value must lie within the limits.
    expected = sum(1 for r in ranges.tolist() if math.isinf(r) or r == 0.0 or (low <= r <= high))
    assert count_valid_rays(ranges, low, high) == expected


@fuzz_settings(examples=2500)
@given(v=ANY_FLOAT64, w=ANY_FLOAT64, action=st.tuples(ANY_FLOAT64, ANY_FLOAT64))
def test_clamp_twist_and_action_scaling_never_exceed_the_limits(v, w, action):
    max_linear, max_angular = 0.22, 2.84
    out_v, out_w = clamp_twist(v, w, max_linear, max_angular)
    assert math.isfinite(out_v) and math.isfinite(out_w)
    assert abs(out_v) <= max_linear and abs(out_w) <= max_angular
    if abs(v) <= max_linear and abs(w) <= max_angular:
        assert (out_v, out_w) == (v, w), "a command within the limits must pass unchanged"
    twist = action_to_twist(np.array(action), max_linear, max_angular)
    assert np.isfinite(twist).all()
    assert abs(twist[0]) <= max_linear and abs(twist[1]) <= max_angular


@fuzz_settings(examples=2000)
@given(yaw=st.floats(-math.pi, math.pi), scale=st.floats(1e-300, 1e300))
def test_heading_from_odometry_does_not_depend_on_the_quaternion_norm(yaw, scale):
    # Odometry from a driver that does not normalise its quaternion (or loses
    # precision on the way) still means the same heading.
    x, y, z, w = 0.0, 0.0, scale * math.sin(yaw / 2), scale * math.cos(yaw / 2)
    heading = yaw_from_quaternion(x, y, z, w)
    assert math.isfinite(heading)
    assert abs(wrap_angle(heading - yaw)) < 1e-9, (heading, yaw)
