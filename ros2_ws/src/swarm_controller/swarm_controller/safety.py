"""When a robot may drive: the stop-and-hold rules between sensors and cmd_vel.

Pure Python (no rclpy) so the rules read in one place and tests can call them
directly. The rule for every reason to stop is the same: publish zero
commands at the control rate until driving is allowed again. One zero is not
enough: a base may keep executing the last command it received (a TurtleBot3
does, with no timeout of its own), so a lost or overwritten zero would leave
the robot moving. The zeros go on while the node is inactive too, so a teleop
or recovery node that needs the base reaches it through a cmd_vel mux with a
higher priority (twist_mux), or the policy node is shut down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def estop_reason(estops: Sequence[str]) -> str:
    """The hold reason for the engaged e-stops ("e-stop (fleet)"); "" for none."""
    return f"e-stop ({', '.join(estops)})" if estops else ""


@dataclass(frozen=True)
class Decision:
    """What the control step should do now."""

    drive: bool
    """Run the policy and publish its command; False: publish a zero (hold)."""
    reason: str
    """Why the robot holds ("" while driving); shown on /diagnostics."""
    new_reason: bool
    """The reason differs from the previous decision's: a hold starts or changes
    cause (log it once; with control_on_scan, a scan sends the first zero at once)."""


class CommandGate:
    """Decides drive / hold from the e-stops, sensor ages, lidar health and the goal.

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
        """Forget the hold state (on activate): the next decision counts as a new reason."""
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
        estops: Sequence[str] = (),
        unheard_estops: Sequence[str] = (),
    ) -> Decision:
        """goal_distance: metres from the robot to its goal, None while no goal is known.

        scan_rays: (valid, total) rays of the latest scan (robot_io.count_valid_rays).
        A scan with too few valid rays is a broken lidar, not open space: NaN
        or out-of-limit ranges would otherwise pool to "nothing in the way".
        estops: the engaged e-stops ("robot", "fleet"); any one holds the robot,
        whatever else is true.
        unheard_estops: e-stops whose latched state has not arrived yet, right
        after start (a latched "stop" may still be on its way): they hold too.
        """
        reason = ""
        stale = self.stale_sensors(now, scan_time, odom_time)
        if estops:
            reason = estop_reason(estops)
        elif unheard_estops:
            reason = f"waiting to hear the latched e-stop ({', '.join(unheard_estops)})"
        elif stale:
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
        new_reason = reason != self.reason
        self.reason = reason
        self._holding = bool(reason)
        return Decision(drive=not reason, reason=reason, new_reason=new_reason)

    def enough_valid_rays(self, valid: int, total: int) -> bool:
        """Whether a scan with `valid` of `total` valid rays may drive the robot."""
        return total > 0 and valid >= self.min_valid_ray_fraction * total

    @property
    def holding(self) -> bool:
        return self._holding
