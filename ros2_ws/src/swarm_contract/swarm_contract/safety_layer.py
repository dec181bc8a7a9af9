"""The last filter between a policy's (v, w) and the wheels: caps, ramp, stop zone.

Both places that drive a robot run this module unchanged: the policy node on
the robot, and `swarm eval` in the simulator (one layer per simulated robot),
so an evaluation measures the robot as it will actually run. Like `robot_io`
it needs numpy only. The layering follows nav2's: a velocity smoother limits
acceleration, a collision monitor cuts motion into a stop zone; here both are
one small object per robot, `SafetyLayer`, fed one command per control period.

What `SafetyLayer.filter` does to a command, in order, and why:

1. **Non-finite → zero, at once.** A NaN or inf from a policy is a fault, not
   a wish to move; the zero goes out without a ramp (like a hold) and the
   next ramp starts from rest.
2. **Caps.** |v| <= max_linear, |w| <= max_angular: the robot profile's
   limits, which a running robot cannot widen.
3. **Acceleration ramp on speeding up**, relative to the last command this
   layer returned: a component whose magnitude grows moves toward the
   request by at most accel * dt. Slowing down is not ramped: a smaller
   magnitude of the same sign goes out at once, and a change of direction
   is a stop followed by a ramp from 0 the other way. This differs from
   nav2's velocity_smoother, which also ramps with max_decel: slowing down
   is the safe direction, and a ramp on it lengthens stopping and turning
   overshoot. It also keeps the robot drivable by policies trained
   without a ramp: ramping the Burger's 3.2 rad/s^2 both ways cut
   models/circle_8 (retired since) from 95 % to 10 % success in `swarm eval` (20 episodes);
   ramping only speeding up leaves it at 95 %. Safety stops never wait for
   anything: the stop zone's cut below, and the node's holds and e-stops,
   which publish an immediate zero and then call `reset()`, so the next
   ramp starts from 0. dt is the time since the previous command; one that
   is not finite or not positive counts as one control period, and dt is
   capped at one control period, so a late tick never licenses a bigger
   jump than a punctual one (the ramp can only be slower than the limit).
4. **Stop zone** (nav2 collision_monitor's stop polygon): a rectangle from the
   robot's centre along its direction of linear travel (ahead when v > 0,
   behind when v < 0), width 2 * (footprint_radius + stop_margin), length
   footprint_radius + stop_margin + |v| * stop_time + v^2 / (2 *
   max_linear_accel). It is checked for the command that would actually go
   out (after the ramp). If a valid lidar return lies inside it, v becomes 0
   at once (never ramped: a safety stop is immediate); w is kept, so the
   robot can still turn in place, away from what it faces, or back off.
   The zone's length covers, at the commanded speed: the footprint; a
   margin; the distance travelled before the next decision can act
   (`stop_time`); and the braking distance at the profile's deceleration.

Scan rules (REP-117; the lidar sits at the base centre, ray i points at
angle_min + i * angle_increment in the robot frame, REP-103): NaN is a failed
reading and is ignored; +inf means nothing within range; -inf means something
closer than the sensor can measure, so it counts as a return at range_min
(as `robot_io.clean_ranges` reads it); finite values below range_min
(TurtleBot3's LDS sends 0.0 for "no return") and non-positive values are
ignored. A scan whose angles are not finite cannot place any return, so it
cuts linear motion (fail safe; the policy node refuses such scans before
they get here). `ranges=None` means no scan: no stop-zone check.

Chosen values (`SafetyLimits` defaults), and why:

- stop_margin = 0.05 m: a few centimetres of clearance beyond the footprint
  for the LDS-01's range error (about 15 mm near, 5 % further out) and its
  1-degree ray spacing at the zone's edge.
- stop_time = 0.3 s: one control period (0.1 s) during which the command
  just sent holds, plus one LDS-01 revolution (0.2 s at 5 Hz), the age a
  scan can have when it is read. At the Burger's 0.22 m/s the zone reaches
  0.23 m from the centre, 0.12 m beyond its front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from swarm_contract.robot_io import RobotProfile

DEFAULT_STOP_MARGIN = 0.05
DEFAULT_STOP_TIME = 0.3

DEFAULT_GOAL_HOLD = 0.05
"""Metres from its goal, by its own odometry, at which the policy node holds
a robot for good (policy_node goal_tolerance). Tighter than the task's
arrival tolerance (0.15 m): odometry drifts (the Burger's profile: 2% of the
distance), and a robot that stopped where its odometry first said "within
0.15 m" stood outside it half of the time. `swarm bench deploy`, circle x 4
at nominal: 17% of episodes over ROS with a 0.15 m hold; `swarm eval`, which
then parked robots on their true pose only, 100%. Holding at 0.05 m the
robot drives on toward the goal its odometry sees, and the drift is the only
error left. The simulator's SimSafety holds at the same value."""


@dataclass(frozen=True)
class SafetyLimits:
    """The numbers a robot's safety layer enforces (see the module docstring)."""

    max_linear: float
    """m/s, cap on |v|."""
    max_angular: float
    """rad/s, cap on |w|."""
    max_linear_accel: float
    """m/s^2, largest rise of |v| per second (also sizes the braking distance)."""
    max_angular_accel: float
    """rad/s^2, largest rise of |w| per second."""
    footprint_radius: float
    """m, the robot's footprint circle."""
    stop_zone: bool = True
    """Cut linear motion toward a lidar return inside the stop zone."""
    stop_margin: float = DEFAULT_STOP_MARGIN
    """m of clearance the zone keeps beyond the footprint, sideways and ahead."""
    stop_time: float = DEFAULT_STOP_TIME
    """s of travel at the commanded speed that the zone reaches further ahead."""
    control_period: float = 0.1
    """s between commands: the dt used when none (or a bad one) is given, and its cap."""
    range_min: float = 0.0
    """m; finite ranges below it are invalid readings, -inf counts as a return here."""

    def __post_init__(self) -> None:
        def finite(x: float) -> bool:
            try:
                return math.isfinite(float(x))
            except (TypeError, ValueError):
                return False

        checks = {
            "max_linear": finite(self.max_linear) and self.max_linear > 0,
            "max_angular": finite(self.max_angular) and self.max_angular > 0,
            "max_linear_accel": finite(self.max_linear_accel) and self.max_linear_accel > 0,
            "max_angular_accel": finite(self.max_angular_accel) and self.max_angular_accel > 0,
            "footprint_radius": finite(self.footprint_radius) and self.footprint_radius > 0,
            "stop_margin": finite(self.stop_margin) and self.stop_margin >= 0,
            "stop_time": finite(self.stop_time) and self.stop_time >= 0,
            "control_period": finite(self.control_period) and self.control_period > 0,
            "range_min": finite(self.range_min) and self.range_min >= 0,
        }
        bad = [f"{key}={getattr(self, key)!r}" for key, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"safety limits: bad {', '.join(bad)} (speeds, accelerations, footprint"
                " and control period must be finite and > 0; stop_margin, stop_time and"
                " range_min finite and >= 0)"
            )

    @classmethod
    def from_profile(cls, profile: RobotProfile, **overrides) -> SafetyLimits:
        """The limits of a robot with this profile, with any field overridden."""
        allowed = {f.name for f in fields(cls)}
        unknown = set(overrides) - allowed
        if unknown:
            raise ValueError(
                f"safety limits: unknown override(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        base = dict(
            max_linear=profile.max_linear,
            max_angular=profile.max_angular,
            max_linear_accel=profile.max_linear_accel,
            max_angular_accel=profile.max_angular_accel,
            footprint_radius=profile.radius,
            control_period=profile.control_period,
            range_min=profile.range_min,
        )
        base.update(overrides)
        return cls(**base)

    def stop_zone_length(self, linear: float) -> float:
        """How far from the robot's centre the stop zone reaches at speed `linear`."""
        speed = abs(linear)
        return (
            self.footprint_radius
            + self.stop_margin
            + speed * self.stop_time
            + speed * speed / (2.0 * self.max_linear_accel)
        )

    @property
    def stop_zone_half_width(self) -> float:
        return self.footprint_radius + self.stop_margin


@dataclass(frozen=True)
class SafeCommand:
    """The command that may go to the wheels, and what the layer did to it."""

    linear: float
    angular: float
    stop_zone_cut: bool
    """The stop zone removed (part of) the linear motion this step."""
    accel_limited: bool
    """The acceleration ramp changed the command this step."""


class SafetyLayer:
    """One robot's safety filter: call `filter` once per control period."""

    def __init__(self, limits: SafetyLimits) -> None:
        self.limits = limits
        self.stop_zone_cuts = 0
        """Running count of steps where the stop zone cut linear motion."""
        self._last = (0.0, 0.0)
        self._geometry: tuple[int, float, float] | None = None
        self._cos = np.zeros(0)
        self._sin = np.zeros(0)

    def reset(self) -> None:
        """A zero command went out (hold, e-stop, stale sensors, a new episode):
        the next ramp starts from rest."""
        self._last = (0.0, 0.0)

    @property
    def last_command(self) -> tuple[float, float]:
        """(v, w) this layer last returned (or (0, 0) after `reset`)."""
        return self._last

    def filter(
        self,
        linear: float,
        angular: float,
        dt: float,
        ranges: np.ndarray | None,
        angle_min: float,
        angle_increment: float,
    ) -> SafeCommand:
        """The command to publish for the policy's (linear, angular)."""
        lim = self.limits
        linear, angular = float(linear), float(angular)
        if not (math.isfinite(linear) and math.isfinite(angular)):
            self._last = (0.0, 0.0)
            return SafeCommand(0.0, 0.0, stop_zone_cut=False, accel_limited=False)
        want_v = min(lim.max_linear, max(-lim.max_linear, linear))
        want_w = min(lim.max_angular, max(-lim.max_angular, angular))

        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0):
            dt = lim.control_period
        dt = min(dt, lim.control_period)
        last_v, last_w = self._last
        v = _ramp(last_v, want_v, lim.max_linear_accel * dt)
        w = _ramp(last_w, want_w, lim.max_angular_accel * dt)
        accel_limited = v != want_v or w != want_w

        cut = False
        if lim.stop_zone and v != 0.0 and ranges is not None:
            cut = self._obstacle_in_zone(v, ranges, angle_min, angle_increment)
            if cut:
                v = 0.0
                self.stop_zone_cuts += 1
        self._last = (v, w)
        return SafeCommand(v, w, stop_zone_cut=cut, accel_limited=accel_limited)

    def _obstacle_in_zone(
        self, linear: float, ranges: np.ndarray, angle_min: float, angle_increment: float
    ) -> bool:
        r = np.asarray(ranges, dtype=np.float64).reshape(-1)
        if not (math.isfinite(angle_min) and math.isfinite(angle_increment)):
            return True  # no return can be placed: do not drive blind
        cos, sin = self._ray_directions(len(r), float(angle_min), float(angle_increment))
        lim = self.limits
        r = np.where(r == -np.inf, lim.range_min, r)
        valid = np.isfinite(r) & (r > 0.0) & (r >= lim.range_min)
        if not valid.any():
            return False
        r = r[valid]
        ahead = r * cos[valid] * math.copysign(1.0, linear)
        side = np.abs(r * sin[valid])
        inside = (
            (ahead >= 0.0)
            & (ahead <= lim.stop_zone_length(linear))
            & (side <= lim.stop_zone_half_width)
        )
        return bool(inside.any())

    def _ray_directions(
        self, rays: int, angle_min: float, angle_increment: float
    ) -> tuple[np.ndarray, np.ndarray]:
        geometry = (rays, angle_min, angle_increment)
        if geometry != self._geometry:
            angles = angle_min + angle_increment * np.arange(rays)
            self._cos, self._sin = np.cos(angles), np.sin(angles)
            self._geometry = geometry
        return self._cos, self._sin


def _ramp(current: float, target: float, max_step: float) -> float:
    """The next value on the way from `current` to `target`: slowing down
    (same sign, smaller magnitude) at once; a change of sign through 0 at once;
    speeding up by at most max_step."""
    if current * target <= 0.0:
        current = 0.0
    elif abs(target) <= abs(current):
        return target
    if abs(target - current) <= max_step:
        return target
    return current + math.copysign(max_step, target - current)
