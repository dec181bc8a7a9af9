"""Which goals a robot takes, and where a goal in map lands in its odom frame (no DDS)."""

from __future__ import annotations

import math

import pytest

from swarm_contract.robot_io import load_profile
from swarm_controller.goals import (
    CANCEL,
    GoalFrames,
    GoalRequest,
    Pose2D,
    frame_prefix,
    map_to_odom_pose,
    pose_from_transform,
    refusal_on_arrival,
    stamp_seconds,
)

TB3_0 = GoalFrames(odom_frame="tb3_0/odom")


@pytest.mark.parametrize(
    "setting, namespace, prefix",
    [
        ("{namespace}/", "/tb3_0", "tb3_0/"),
        ("{namespace}/", "/fleet/tb3_0", "fleet/tb3_0/"),
        ("{namespace}/", "/", ""),  # a robot in the root namespace: unprefixed frames
        ("", "/tb3_0", ""),
        ("robot_a/", "/tb3_0", "robot_a/"),
    ],
)
def test_the_frame_prefix_follows_the_namespace_like_a_jazzy_turtlebot3(setting, namespace, prefix):
    assert frame_prefix(setting, namespace) == prefix


def test_the_turtlebot3_profile_names_jazzy_commands_and_frames():
    profile = load_profile("turtlebot3_burger")
    assert profile.cmd_vel_stamped is True
    assert (profile.odom_frame, profile.base_frame) == ("odom", "base_footprint")


def test_a_goal_in_the_robots_own_odom_frame_is_used_as_it_is():
    assert TB3_0.in_odom(GoalRequest("tb3_0/odom", 1.5, -2.0)) == ((1.5, -2.0), "")


def test_a_goal_in_the_frame_the_odometry_names_counts_as_odom():
    # A robot whose odometry says plain "odom" (an unprefixed driver).
    goal = GoalRequest("odom", 1.0, 2.0)
    assert TB3_0.in_odom(goal, odometry_frame="odom") == ((1.0, 2.0), "")


def test_a_bare_odom_goal_for_a_prefixed_robot_is_refused_naming_the_right_frames():
    point, why = TB3_0.in_odom(GoalRequest("odom", 1.0, 2.0), odometry_frame="tb3_0/odom")
    assert point is None
    assert "refused" in why and "'odom'" in why
    assert "tb3_0/odom" in why and "map" in why


def test_a_goal_in_a_foreign_frame_is_refused():
    point, why = TB3_0.in_odom(GoalRequest("tb3_1/odom", 1.0, 2.0), odometry_frame="tb3_0/odom")
    assert point is None and "'tb3_1/odom' refused" in why


def test_a_map_goal_lands_where_the_robots_start_pose_puts_it():
    # The robot started at (2, 1) in map facing +y: its odom x axis is map's +y.
    frames = GoalFrames("tb3_0/odom", map_to_odom=Pose2D(2.0, 1.0, math.pi / 2))
    (x, y), why = frames.in_odom(GoalRequest("map", 2.0, 4.0))
    # 3 m along map +y from the start is 3 m straight ahead in odom.
    assert why == "" and x == pytest.approx(3.0) and y == pytest.approx(0.0, abs=1e-12)
    (x, y), _ = frames.in_odom(GoalRequest("map", 1.0, 1.0))
    assert (x, y) == pytest.approx((0.0, 1.0))  # 1 m to map -x is 1 m to the robot's left


def test_a_pose_and_its_inverse_undo_each_other():
    pose = Pose2D(0.7, -1.3, 2.1)
    x, y = pose.inverse().apply(*pose.apply(0.4, 0.9))
    assert (x, y) == pytest.approx((0.4, 0.9))


def test_a_map_goal_uses_tf_when_map_to_odom_is_unset():
    frames = GoalFrames("tb3_0/odom", tf_available=True)
    tf_pose = pose_from_transform(1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # odom 1 m along map +x
    assert frames.in_odom(GoalRequest("map", 3.0, 0.0), tf_map_to_odom=tf_pose) == (
        (2.0, 0.0),
        "",
    )
    point, why = frames.in_odom(GoalRequest("map", 3.0, 0.0), tf_error="LookupException: no map")
    assert point is None and "no transform map -> tb3_0/odom" in why and "no map" in why


def test_a_map_goal_without_map_to_odom_or_tf_is_refused_not_guessed():
    point, why = TB3_0.in_odom(GoalRequest("map", 3.0, 0.0))
    assert point is None
    assert "map_to_odom is unset" in why and "tb3_0/odom" in why


def test_a_quaternion_yaw_comes_through_the_transform():
    half = math.pi / 8  # yaw pi/4
    pose = pose_from_transform(0.0, 0.0, 0.0, 0.0, math.sin(half), math.cos(half))
    assert pose.yaw == pytest.approx(math.pi / 4)


@pytest.mark.parametrize("values", [[1.0, 2.0], [0.0, math.nan, 0.0], [0.0, 0.0, 0.0, 1.0]])
def test_a_bad_map_to_odom_is_refused_naming_the_value(values):
    with pytest.raises(ValueError, match=r"map_to_odom=.*\[x, y, yaw\]"):
        map_to_odom_pose(values)


def test_an_unset_map_to_odom_is_none():
    assert map_to_odom_pose([]) is None
    assert map_to_odom_pose([1.0, 2.0, 0.5]) == Pose2D(1.0, 2.0, 0.5)


def test_an_empty_frame_is_a_cancel():
    assert GoalRequest("", 1.0, 1.0).is_cancel and GoalRequest("  ", 0.0, 0.0).is_cancel
    assert not GoalRequest("map", 0.0, 0.0).is_cancel
    assert "empty frame_id" in CANCEL


def test_a_goal_stamped_before_max_goal_age_is_refused_after_a_restart():
    old = GoalRequest("map", 1.0, 1.0, stamp=1000.0)
    why = refusal_on_arrival(old, now=1000.0 + 61.0, max_goal_age=60.0)
    assert "61 s ago" in why and "max_goal_age 60 s" in why
    assert refusal_on_arrival(old, now=1000.0 + 59.0, max_goal_age=60.0) is None
    assert refusal_on_arrival(old, now=1000.0 + 1e6, max_goal_age=0.0) is None  # 0: no limit


def test_an_unstamped_goal_has_no_age_and_a_future_stamp_counts_as_new():
    assert stamp_seconds(0, 0) is None and stamp_seconds(5, 500_000_000) == 5.5
    assert refusal_on_arrival(GoalRequest("map", 1.0, 1.0), 1e9, 60.0) is None
    assert refusal_on_arrival(GoalRequest("map", 1.0, 1.0, stamp=2000.0), 1000.0, 60.0) is None


@pytest.mark.parametrize("x, y", [(math.nan, 0.0), (0.0, math.inf)])
def test_a_goal_that_is_not_finite_is_refused(x, y):
    assert "not finite" in refusal_on_arrival(GoalRequest("map", x, y), 0.0, 60.0)


def test_a_goal_in_an_unknown_frame_waits_for_odometry_before_it_is_judged():
    point, why = TB3_0.in_odom(GoalRequest("odom", 1.0, 2.0), odometry_frame=None)
    assert point is None and "waiting for odometry" in why
    assert TB3_0.in_odom(GoalRequest("odom", 1.0, 2.0), odometry_frame="odom")[0] == (1.0, 2.0)
