"""Which goals a robot takes, and where a goal in `map` lies in the robot's odom frame.

Pure Python (no rclpy), so the rules read in one place and tests call them
without DDS. The node hands over plain numbers from the PoseStamped and gets
back either a point in its odom frame or the reason it holds.

Frames follow REP-105 as a namespaced TurtleBot3 on Jazzy names them: robot
tb3_0's odometry is in `tb3_0/odom`, its body is `tb3_0/base_footprint`
(`frame_prefix` + the profile's frame names), and the fleet shares one `map`.

The rules:
- an empty header.frame_id cancels the goal: the robot holds, "no goal";
- a goal whose position is not finite is refused;
- a stamped goal older than `max_goal_age` seconds is refused (after a
  respawn, a latched goal from before the crash must not drive the robot
  off); an unstamped goal (stamp 0) has no age and is taken as it comes;
- a goal in the robot's odom frame (`<prefix>odom`, or the frame its
  odometry messages actually name) is used as it is;
- a goal in `map` goes through map -> odom: the `map_to_odom` parameter (the
  robot's start pose in map) when set, else TF when tf2_ros is there (a ROS
  distro); with neither it is refused rather than guessed;
- a goal in any other frame is refused, naming the frames that would do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from swarm_contract.robot_io import yaw_from_quaternion
from swarm_controller import frames

MAP_FRAME = "map"
"""The frame every robot of a fleet shares (REP-105)."""
NAMESPACE_FIELD = "{namespace}"
"""In `frame_prefix`: the node's namespace without its leading slash."""
CANCEL = "cancelled (a goal with an empty frame_id)"


def frame_prefix(setting: str, namespace: str) -> str:
    """The prefix of this robot's frame names: `{namespace}/` in /tb3_0 -> `tb3_0/`.

    In the root namespace `{namespace}/` gives "" (an unprefixed robot); a
    setting without `{namespace}` is used as it is.
    """
    if NAMESPACE_FIELD not in setting:
        return setting
    name = namespace.strip("/")
    return setting.replace(NAMESPACE_FIELD, name) if name else ""


@dataclass(frozen=True)
class Pose2D:
    """A planar pose: where a child frame's origin lies in its parent, and its heading."""

    x: float
    y: float
    yaw: float

    def apply(self, x: float, y: float) -> tuple[float, float]:
        """A point given in the child frame, in the parent frame."""
        px, py = frames.to_map(self.as_tuple(), (x, y))
        return float(px), float(py)

    def inverse(self) -> Pose2D:
        """The parent's pose in the child frame."""
        return Pose2D(*(float(v) for v in frames.to_odom(self.as_tuple(), (0.0, 0.0, 0.0))))

    def as_tuple(self) -> tuple[float, float, float]:
        return self.x, self.y, self.yaw


def map_to_odom_pose(values: Sequence[float]) -> Pose2D | None:
    """The `map_to_odom` parameter as a pose; None when unset (an empty list).

    ValueError naming the value unless it is [x, y, yaw] of finite numbers.
    """
    if not values:
        return None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"map_to_odom={list(values)!r}: give the robot's start pose in map as"
            " [x, y, yaw] (metres, metres, radians; finite floats), or [] for none"
        )
    return Pose2D(*(float(v) for v in values))


def pose_from_transform(tx: float, ty: float, qx: float, qy: float, qz: float, qw: float):
    """A TF transform's planar part (its yaw from the quaternion) as a Pose2D."""
    return Pose2D(tx, ty, yaw_from_quaternion(qx, qy, qz, qw))


@dataclass(frozen=True)
class GoalRequest:
    """A goal as it came in: its frame, position and stamp (seconds; None: unstamped)."""

    frame: str
    x: float
    y: float
    stamp: float | None = None

    @property
    def is_cancel(self) -> bool:
        return not self.frame.strip()


def stamp_seconds(sec: int, nanosec: int) -> float | None:
    """A header stamp in seconds; None for the zero stamp of an unstamped message."""
    if sec == 0 and nanosec == 0:
        return None
    return sec + nanosec * 1e-9


def refusal_on_arrival(goal: GoalRequest, now: float, max_goal_age: float) -> str | None:
    """Why a goal is refused as soon as it arrives (not finite, too old), or None.

    max_goal_age 0 turns the age check off. A stamp in the future (another
    machine's clock ahead of ours) counts as new.
    """
    if not (math.isfinite(goal.x) and math.isfinite(goal.y)):
        return f"goal ({goal.x}, {goal.y}) in '{goal.frame}' refused: its position is not finite"
    if goal.stamp is not None and max_goal_age > 0:
        age = now - goal.stamp
        if age > max_goal_age:
            return (
                f"goal ({goal.x:.2f}, {goal.y:.2f}) in '{goal.frame}' refused: stamped"
                f" {age:.0f} s ago, older than max_goal_age {max_goal_age:g} s (a latched"
                " goal from before a restart is not resumed); send it again to drive there"
            )
    return None


@dataclass(frozen=True)
class GoalFrames:
    """The frames this robot takes goals in, and how it brings a goal into odom."""

    odom_frame: str
    """This robot's odom frame: frame_prefix + the odom_frame parameter."""
    map_to_odom: Pose2D | None = None
    """The map_to_odom parameter: odom's pose in map, None when unset."""
    tf_available: bool = False
    """Whether the node can look map -> odom up in TF (tf2_ros importable)."""

    def in_odom(
        self,
        goal: GoalRequest,
        odometry_frame: str | None = None,
        tf_map_to_odom: Pose2D | None = None,
        tf_error: str = "",
    ) -> tuple[tuple[float, float] | None, str]:
        """(the goal's (x, y) in odom, "") or (None, why the robot holds instead).

        odometry_frame: header.frame_id of the latest odometry, which is the
        frame the robot's pose (and so any usable goal) is in. tf_map_to_odom:
        odom's pose in map from TF, when the node has it; tf_error says why not.
        """
        odom_frames = {self.odom_frame} | ({odometry_frame} if odometry_frame else set())
        where = f"goal ({goal.x:.2f}, {goal.y:.2f}) in '{goal.frame}'"
        if goal.frame in odom_frames:
            return (goal.x, goal.y), ""
        if goal.frame == MAP_FRAME:
            pose = self.map_to_odom or tf_map_to_odom
            if pose is not None:
                x, y = frames.to_odom(pose.as_tuple(), (goal.x, goal.y))
                return (float(x), float(y)), ""
            if self.tf_available:
                why = f": {tf_error}" if tf_error else ""
                return (
                    None,
                    f"{where}: no transform {MAP_FRAME} -> {self.odom_frame} in TF yet{why}",
                )
            return None, (
                f"{where} refused: map_to_odom is unset and TF is not available (tf2_ros"
                " comes with a ROS distro); set map_to_odom to the robot's start pose in"
                f" map [x, y, yaw], or send the goal in '{self.odom_frame}'"
            )
        if odometry_frame is None:
            return None, (
                f"{where}: waiting for odometry (the frame it names is this robot's odom"
                f" frame too; '{self.odom_frame}' and '{MAP_FRAME}' always are)"
            )
        takes = sorted(odom_frames | {MAP_FRAME})
        return None, f"{where} refused: not a frame this robot takes goals in ({takes})"
