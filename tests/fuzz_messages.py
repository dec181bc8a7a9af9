"""hypothesis strategies for what a broken or hostile sensor sends, and the refusal check.

The fields of LaserScan, Odometry and goal (PoseStamped) messages are drawn as
the wire carries them: LaserScan's are float32, so a scan holds at most
+-3.4e38, the others float64. Each draw is mostly what a working robot sends and
otherwise anything at all: NaN, +-inf, subnormals, huge values, scans of 0..2000
rays, zero, negative and huge angle increments, range_min above range_max, NaN
and non-unit quaternions, goals at 1e300. Used by tests/unit/test_fuzz_robot_io.py
(robot_io and a policy) and tests/ros/test_fuzz_policy_node.py (the node's
callbacks).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

NAN, INF = math.nan, math.inf


def fuzz_settings(examples: int) -> settings:
    """Reproducible and bounded: derandomized with no example database, so every
    run (and CI) draws the same examples; no deadline per example, so a loaded
    machine cannot turn a slow example into a failure."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def float32(value: float) -> float:
    """`value` as a float32 message field holds it."""
    return float(np.float32(value))


ANY_FLOAT32 = st.floats(width=32)  # NaN, +-inf, subnormals, +-3.4e38
ANY_FLOAT64 = st.floats()  # ... and up to +-1.8e308
RANGE_READINGS = st.one_of(
    st.floats(0.0, 4.0, width=32),  # what a lidar reports, around its limits
    st.sampled_from([NAN, INF, -INF, 0.0, -1.0, float32(0.12), 3.5]),
    ANY_FLOAT32,
)
POSITIONS = st.one_of(
    st.floats(-20, 20), st.sampled_from([NAN, INF, -INF, 1e300, -1e300]), ANY_FLOAT64
)
SPEEDS = st.one_of(st.floats(-0.3, 0.3), st.floats(-3, 3), ANY_FLOAT64)


def sometimes_wild(draw, plausible: st.SearchStrategy, wild: st.SearchStrategy) -> float:
    """One field: mostly what a working sensor sends, one time in eight anything at
    all, so that most examples still reach the policy and the rest probe refusals."""
    return draw(wild if draw(st.integers(0, 7)) == 0 else plausible)


@st.composite
def laser_scans(draw) -> dict:
    """A LaserScan's fields: 0..2000 rays repeating a short pattern of readings (long
    scans stay cheap to draw and shrink, and a pattern such as [NaN, 1.0] puts the
    share of valid rays on any boundary), and any geometry."""
    rays = draw(st.one_of(st.sampled_from([360, 2000, 24, 720]), st.integers(0, 2000)))
    pattern = draw(st.lists(RANGE_READINGS, min_size=1, max_size=5))
    full_turn = st.just(float32(2 * math.pi / max(rays, 1)))
    return {
        "ranges": np.resize(np.array(pattern, dtype=np.float32), rays),
        "angle_min": sometimes_wild(draw, st.sampled_from([float32(-math.pi), 0.0]), ANY_FLOAT32),
        "angle_increment": sometimes_wild(draw, full_turn, ANY_FLOAT32),
        "range_min": sometimes_wild(draw, st.just(float32(0.12)), ANY_FLOAT32),
        "range_max": sometimes_wild(draw, st.sampled_from([3.5, 12.0]), ANY_FLOAT32),
    }


@st.composite
def quaternions(draw) -> tuple[float, float, float, float]:
    """(x, y, z, w): a heading, the same heading at any scale, or anything at all."""
    kind = draw(st.sampled_from(["unit", "scaled", "any"]))
    if kind == "any":
        return draw(st.tuples(ANY_FLOAT64, ANY_FLOAT64, ANY_FLOAT64, ANY_FLOAT64))
    yaw = draw(st.floats(-math.pi, math.pi))
    scale = 1.0 if kind == "unit" else draw(st.floats(1e-300, 1e300))
    return (0.0, 0.0, scale * math.sin(yaw / 2), scale * math.cos(yaw / 2))


ODOMETRY = st.fixed_dictionaries(
    {"x": POSITIONS, "y": POSITIONS, "q": quaternions(), "v": SPEEDS, "w": SPEEDS}
)
"""Odometry's pose (x, y, orientation q) and body twist (v, w)."""
GOALS = st.tuples(POSITIONS, POSITIONS)
"""A goal PoseStamped's position (x, y)."""


# What numpy and Python say when garbage reaches them unchecked: a refusal that
# reads like this tells an operator nothing about the sensor.
LEAKED_ERROR_TEXTS = (
    "argument must have",
    "operands could not be broadcast",
    "could not convert",
    "setting an array element",
    "index ",
    "out of bounds",
    "ufunc",
    "cannot convert float",
    "object has no attribute",
    "NoneType",
    "Traceback",
)
# A scan refusal names what is wrong with the scan in LaserScan's own words.
SCAN_FIELD_NAMES = ("angle_min", "angle_increment", "range_min", "range_max", "ranges", "rays")


def assert_no_leaked_error(text: str) -> None:
    leaked = [fragment for fragment in LEAKED_ERROR_TEXTS if fragment in text]
    assert not leaked, f"an internal error leaks into what the operator reads ({leaked}): {text!r}"


def assert_reads_like_a_scan_refusal(text: str) -> None:
    assert_no_leaked_error(text)
    assert any(name in text for name in SCAN_FIELD_NAMES), f"refusal names no field: {text!r}"
