"""When a robot may drive: the stop-and-hold rules between sensors and cmd_vel.

Pure Python (no rclpy) so the rules read in one place and tests can call them
directly. The rule for every reason to stop is the same: publish one zero
command, then stay silent until driving is allowed again. Silence (rather than
a stream of zeros) leaves the base free for a teleop or recovery node, and the
single zero makes sure the last command the base saw was "stop".
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """What the control step should do now."""

    drive: bool
    """Run the policy and publish its command."""
    send_zero: bool
    """Publish one zero command (first step of a hold)."""
    reason: str
    """Why the robot holds ("" while driving); shown on /diagnostics."""


class CommandGate:
    """Decides drive / stop-once / stay-silent from sensor ages and the goal.

    Times are seconds on the node's clock (ROS time, so simulated time works).
    Ages are measured from when a message *arrived*, not its header stamp: the
    sensor's clock may be another machine's.
    """

    def __init__(
        self, sensor_timeout: float, goal_tolerance: float, min_valid_ray_fraction: float = 0.5
    ) -> None:
        self.sensor_timeout = sensor_timeout
        self.goal_tolerance = goal_tolerance
        self.min_valid_ray_fraction = min_valid_ray_fraction
        self._holding = False
        self.reason = "not started"

    def reset(self) -> None:
        """Forget the hold state: the next stop publishes a zero again (on activate)."""
        self._holding = False
        self.reason = "not started"

    def stale_sensors(
        self, now: float, scan_time: float | None, odom_time: float | None
    ) -> list[str]:
        """Names of the sensors with no reading, or none newer than sensor_timeout."""
        stale = []
        for name, arrived in (("scan", scan_time), ("odom", odom_time)):
            if arrived is None or now - arrived > self.sensor_timeout:
                stale.append(name)
        return stale

    def decide(
        self,
        now: float,
        scan_time: float | None,
        odom_time: float | None,
        goal_distance: float | None,
        scan_rays: tuple[int, int] | None = None,
    ) -> Decision:
        """goal_distance: metres from the robot to its goal, None while no goal is known.

        scan_rays: (valid, total) rays of the latest scan (robot_io.count_valid_rays).
        A scan with too few valid rays is a broken lidar, not open space: NaN
        or out-of-limit ranges would otherwise pool to "nothing in the way".
        """
        reason = ""
        stale = self.stale_sensors(now, scan_time, odom_time)
        if stale:
            reason = f"no fresh {' and '.join(stale)} (timeout {self.sensor_timeout:g} s)"
        elif scan_rays is not None and not self.enough_valid_rays(*scan_rays):
            valid, total = scan_rays
            reason = (
                f"lidar invalid ({valid} of {total} rays valid,"
                f" need {self.min_valid_ray_fraction:.0%})"
            )
        elif goal_distance is None:
            reason = "no goal yet"
        elif not math.isfinite(goal_distance):
            reason = "pose or goal is not finite"
        elif goal_distance <= self.goal_tolerance:
            reason = f"at goal (within {self.goal_tolerance:g} m)"
        self.reason = reason
        if not reason:
            self._holding = False
            return Decision(drive=True, send_zero=False, reason="")
        first = not self._holding
        self._holding = True
        return Decision(drive=False, send_zero=first, reason=reason)

    def enough_valid_rays(self, valid: int, total: int) -> bool:
        """Whether a scan with `valid` of `total` valid rays may drive the robot."""
        return total > 0 and valid >= self.min_valid_ray_fraction * total

    @property
    def holding(self) -> bool:
        return self._holding
