"""ROS messages to the plain numbers robot_io works with, and back to cmd_vel."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import LaserScan

from swarm_contract.robot_io import check_scan_fields, yaw_from_quaternion
from swarm_controller.goals import GoalRequest, stamp_seconds


def scan_ranges(msg: LaserScan) -> np.ndarray:
    """The ranges without a copy (rclpy hands them over as a float32 array)."""
    return np.frombuffer(msg.ranges, dtype=np.float32) if len(msg.ranges) else np.zeros(0)


def checked_scan_ranges(msg: LaserScan) -> np.ndarray:
    """The ranges of a scan whose fields are usable; robot_io.ScanRefused (naming
    the field, its value and the valid range) for one that is not."""
    ranges = scan_ranges(msg)
    check_scan_fields(len(ranges), msg.angle_min, msg.angle_increment, msg.range_min, msg.range_max)
    return ranges


def odom_pose_and_twist(msg: Odometry) -> tuple[tuple[float, float, float], tuple[float, float]]:
    """((x, y, yaw) in the odom message's frame, (v, w) in the body frame).

    nav_msgs/Odometry gives its twist in child_frame_id, the robot's body,
    which is what the observation's own-velocity features mean.
    """
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    t = msg.twist.twist
    return (p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)), (t.linear.x, t.angular.z)


def goal_request(msg: PoseStamped) -> GoalRequest:
    """A goal's frame, position and stamp (None when unstamped), for goals.py's rules."""
    stamp = msg.header.stamp
    return GoalRequest(
        msg.header.frame_id,
        msg.pose.position.x,
        msg.pose.position.y,
        stamp_seconds(stamp.sec, stamp.nanosec),
    )


def goal_identity(msg: PoseStamped) -> tuple:
    """What tells one goal message from another: the node hears a latched publisher's
    goal on both of its goal subscriptions and must act on it once."""
    h, p, q = msg.header, msg.pose.position, msg.pose.orientation
    return (h.frame_id, h.stamp.sec, h.stamp.nanosec, p.x, p.y, p.z, q.x, q.y, q.z, q.w)


class VelocityCommand:
    """One reusable Twist or TwistStamped for cmd_vel.

    A command goes out every tick (or every scan), and rclpy's message
    constructors cost tens of microseconds each; publish() serialises the
    message at once, so filling one object in place is safe.
    """

    def __init__(self, *, stamped: bool, frame_id: str) -> None:
        self.stamped = stamped
        self.message = TwistStamped() if stamped else Twist()
        self._twist = self.message.twist if stamped else self.message
        if stamped:
            self.message.header.frame_id = frame_id

    def fill(self, linear: float, angular: float, stamp: Time) -> Twist | TwistStamped:
        """The message carrying (v, w); `stamp` is used only when stamped."""
        self._twist.linear.x = float(linear)
        self._twist.angular.z = float(angular)
        if self.stamped:
            self.message.header.stamp = stamp
        return self.message
