"""How true to the robot the simulator is: lidar, actuation and odometry effects.

The robot profile (swarm_contract/profiles/*.yaml) says what the real robot
does: its lidar's period, range noise, dropped returns and mounting yaw, its
acceleration limits, actuation latency and odometry drift. `FidelityConfig`
(SimConfig.fidelity) picks a preset and, optionally, per-episode domain
randomisation ranges; `Fidelity` applies them to the batched simulator.

Presets (each range is [low, high]; a robot draws a uniform factor per episode
and multiplies the profile's value by it):

    preset    range_noise  dropout    latency    accel      odom_drift
    ideal     everything off: exactly the simulator before fidelity existed
    nominal   [0.8, 1.2]   [0.5, 1.5] [1, 1]     [0.9, 1.1] [1, 1]
    harsh     [1.5, 2.5]   [2, 4]     [2, 2]     [0.5, 0.9] [1.5, 2.5]

so harsh has about 2x the range noise, 3x the dropped rays, 2x the latency,
0.7x the acceleration and 2x the odometry drift of nominal, each drawn from a
wider range. An explicit range in the config replaces the preset's.

What each effect does, per robot (K arenas x N robots, batched):

- **Lidar period.** A new scan arrives every `scan_period` seconds (the
  profile's, at nominal and harsh; the control period at ideal), with a
  random phase per robot and episode. Steps without a scan keep the last
  ranges and do not push the scan stack: the ROS policy node pushes its stack
  on each LaserScan message, so a model stacks scans `scan_period` apart.
  The contract records that period (Contract.scan_period) and a robot whose
  lidar differs refuses a model with scan_stack > 1, naming scan_period.
  A lidar faster than the control period gives one scan per step (the
  newest); the robot would push its stack several times a step.
- **Range noise.** Gaussian, standard deviation range_noise_std +
  range_noise_ratio * range (the LDS-01's precision has both parts), on
  returns only; a noisy range below 0 reads 0.0.
- **Dropped returns.** A share dropout_rate of the rays come back invalid,
  each as NaN, +inf or 0.0 with equal odds: every form REP-117 and the
  TurtleBot3's driver use, all of which robot_io ignores.
- **Mounting yaw.** Rays are cast at scan angle + mount_yaw, and pooled with
  the same offset added (what robot_io.ObservationBuilder(mount_yaw=...) does
  on the robot), so a known rotation is compensated where the scan is pooled.
  Not modelled: a per-episode calibration error of that yaw (it needs a
  per-robot yaw offset in World.scan).
- **Actuation.** A command reaches the wheels after round(latency / control
  period) whole steps (the commands in between queue), then the velocity
  moves toward it by at most max_*_accel * dt per step, speeding up and
  slowing down alike: a real base cannot stop at once either. Parked robots
  (at their goal) still stop at once: parking is the episode's rule.
- **Odometry.** Each robot's odometry has a scale error per episode, drawn
  from N(0, odom_linear_drift) on distance and N(0, odom_angular_drift) on
  turning; it integrates the true motion with those errors, starting at the
  true start pose (the frame its goal was given in). Observations use the
  odometry pose and velocity; the critic's state keeps the truth.

All randomness comes from the env's per-arena generators (per-episode draws)
and per-arena noise generators seeded from them, so an arena's episodes do
not depend on the others, and `snapshot`/`restore` resume exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mappo_training.sim.lidar import scan_geometry
from swarm_contract import robot_io

Preset = Literal["ideal", "nominal", "harsh"]
PRESETS = ("ideal", "nominal", "harsh")
RANGE_KEYS = ("range_noise", "dropout", "latency", "accel", "odom_drift")
PRESET_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "nominal": {
        "range_noise": (0.8, 1.2),
        "dropout": (0.5, 1.5),
        "latency": (1.0, 1.0),
        "accel": (0.9, 1.1),
        "odom_drift": (1.0, 1.0),
    },
    "harsh": {
        "range_noise": (1.5, 2.5),
        "dropout": (2.0, 4.0),
        "latency": (2.0, 2.0),
        "accel": (0.5, 0.9),
        "odom_drift": (1.5, 2.5),
    },
}
"""Per-episode factors on the profile's values, [low, high], per preset."""

_DROPPED = np.array([np.nan, np.inf, 0.0])
"""How a dropped ray reads (REP-117: NaN error, +inf no return; 0.0 the LDS driver's)."""


@dataclass
class FidelityConfig:
    """SimConfig.fidelity: a preset and optional domain randomisation ranges."""

    preset: Preset = "ideal"
    """ideal: a perfect robot (no effect on); nominal: the robot profile's
    values; harsh: clearly worse (see the module docstring's table)."""
    range_noise: list[float] | None = None
    """[low, high] factor on the profile's range noise, drawn per robot and episode."""
    dropout: list[float] | None = None
    """[low, high] factor on the profile's dropout_rate."""
    latency: list[float] | None = None
    """[low, high] factor on the profile's actuation_latency."""
    accel: list[float] | None = None
    """[low, high] factor on the profile's max_linear_accel and max_angular_accel."""
    odom_drift: list[float] | None = None
    """[low, high] factor on the profile's odom_linear_drift and odom_angular_drift."""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"fidelity.preset={self.preset!r}: must be one of {list(PRESETS)}")
        for key in RANGE_KEYS:
            value = getattr(self, key)
            if value is None:
                continue
            if self.preset == "ideal":
                raise ValueError(
                    f"fidelity.{key}={value!r}: preset 'ideal' turns every effect off;"
                    " set fidelity.preset to 'nominal' or 'harsh' to randomise it"
                )
            ok = (
                isinstance(value, list | tuple)
                and len(value) == 2
                and all(isinstance(v, int | float) and math.isfinite(v) for v in value)
                and 0 <= value[0] <= value[1]
                and (key != "accel" or value[0] > 0)
            )
            if not ok:
                floor = "0 < low" if key == "accel" else "0 <= low"
                raise ValueError(
                    f"fidelity.{key}={value!r}: must be [low, high] with {floor} <= high"
                    " (factors on the robot profile's value)"
                )

    @property
    def active(self) -> bool:
        return self.preset != "ideal"

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Each effect's [low, high] factor: the config's, else the preset's."""
        if not self.active:
            return {key: (0.0, 0.0) for key in RANGE_KEYS}
        preset = PRESET_RANGES[self.preset]
        return {
            key: tuple(float(v) for v in getattr(self, key) or preset[key]) for key in RANGE_KEYS
        }

    def scan_period(self, profile: robot_io.RobotProfile) -> float:
        """Seconds between the simulated lidar's scans at this fidelity."""
        return profile.lidar_period if self.active else profile.control_period


class Fidelity:
    """The fidelity effects of one BatchedSwarmEnv: K arenas x N robots.

    The env calls, per episode: `start_episode`; per step: `actuate` (before
    the world moves), `track_odometry` (after), `next_scans`; per observation:
    `odometry`. At the ideal preset each returns its input (or does exactly
    what the env did before), so results are bit-identical. The ROS sim
    bridge (one arena) uses `scan_arrivals` and `scan` in place of `next_scans`.
    """

    def __init__(
        self,
        cfg: FidelityConfig,
        profile: robot_io.RobotProfile,
        contract: robot_io.Contract,
        num_arenas: int,
        num_robots: int,
        scan_rays: int,
        angle_min: float = -math.pi,
    ) -> None:
        self.cfg = cfg
        self.profile = profile
        self.active = cfg.active
        self.period = profile.control_period
        self.scan_period = contract.scan_period
        self._ranges = cfg.ranges()
        mount = profile.mount_yaw if self.active else 0.0
        angle_min, increment = scan_geometry(scan_rays, angle_min)
        self.cast_angle_min = angle_min + mount
        """Robot-frame angle of the first ray the world casts (scan angle + mount yaw)."""
        self._pooler = robot_io.BeamPooler(
            scan_rays,
            angle_min + mount,  # the nominal mount, compensated as the robot does
            increment,
            contract.num_beams,
            contract.range_min,
            contract.range_max,
        )
        k, n = num_arenas, num_robots
        latest = self._ranges["latency"][1] * profile.actuation_latency / self.period
        self.max_delay = int(np.rint(latest)) if self.active else 0
        self._commands = np.zeros((self.max_delay + 1, k, n, 2))
        """Commands of the last max_delay + 1 steps, newest first."""
        self._delay = np.zeros((k, n), dtype=np.intp)
        self._noise_scale = np.zeros((k, n))
        self._dropout = np.zeros((k, n))
        self._accel = np.zeros((k, n, 2))
        self._odom_scale = np.ones((k, n, 2))
        self._odom_pose = np.zeros((k, n, 3))
        self._scan_clock = np.zeros((k, n))
        """Seconds since each robot's last scan."""
        self._noise_rngs = [np.random.default_rng(0) for _ in range(k)]

    # -- episodes ------------------------------------------------------------ #

    def start_episode(self, arena: int, rng: np.random.Generator, poses: np.ndarray) -> None:
        """Draw arena `arena`'s robots' effects for a new episode from `rng` (the
        arena's scenario generator); poses (N, 3) are the true starts."""
        if not self.active:
            return
        p, r = self.profile, self._ranges
        n = len(poses)
        factor = {key: rng.uniform(*r[key], size=n) for key in RANGE_KEYS}
        self._noise_scale[arena] = factor["range_noise"]
        self._dropout[arena] = p.dropout_rate * factor["dropout"]
        delay = np.rint(p.actuation_latency * factor["latency"] / self.period)
        self._delay[arena] = np.minimum(delay.astype(np.intp), self.max_delay)
        self._accel[arena] = np.outer(factor["accel"], [p.max_linear_accel, p.max_angular_accel])
        drift = np.outer(factor["odom_drift"], [p.odom_linear_drift, p.odom_angular_drift])
        self._odom_scale[arena] = 1.0 + rng.normal(size=(n, 2)) * drift
        self._odom_pose[arena] = poses
        self._commands[:, arena] = 0.0
        # The time since the last scan, in [0, scan_period): a random phase,
        # so the robots' scans do not all arrive on the same steps.
        self._scan_clock[arena] = rng.uniform(0.0, self.scan_period, size=n)
        self._noise_rngs[arena] = np.random.default_rng(rng.integers(2**63))

    # -- actuation ----------------------------------------------------------- #

    def actuate(self, commanded: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        """Commanded twists (K, N, 2) -> the twists the wheels apply this step,
        given the current velocities (K, N, 2): latency, then acceleration limits."""
        if not self.active:
            return commanded
        self._commands[1:] = self._commands[:-1]
        self._commands[0] = commanded
        target = np.take_along_axis(self._commands, self._delay[None, ..., None], axis=0)[0]
        most = self._accel * self.period
        return velocities + np.clip(target - velocities, -most, most)

    # -- lidar --------------------------------------------------------------- #

    def pool(self, ranges: np.ndarray) -> np.ndarray:
        """Scan ranges (..., rays) -> normalised beams, the robot's way."""
        return self._pooler(ranges)

    def scan(self, world, num_rays: int, arenas: np.ndarray) -> np.ndarray:
        """Fresh scans (len(arenas), N, rays) of the given arenas, with the
        profile's noise and dropped rays at this fidelity."""
        ranges = world.scan(num_rays, self.cast_angle_min, arenas=arenas)
        if not self.active:
            return ranges
        p = self.profile
        for row, arena in enumerate(arenas):
            rng = self._noise_rngs[arena]
            r = ranges[row]
            hit = np.isfinite(r)
            measured = np.where(hit, r, 0.0)
            std = (p.range_noise_std + p.range_noise_ratio * measured) * self._noise_scale[
                arena, :, None
            ]
            noisy = np.maximum(measured + rng.standard_normal(r.shape) * std, 0.0)
            r = np.where(hit, noisy, r)
            dropped = rng.random(r.shape) < self._dropout[arena, :, None]
            kind = rng.integers(len(_DROPPED), size=r.shape)
            ranges[row] = np.where(dropped, _DROPPED[kind], r)
        return ranges

    def scan_arrivals(self) -> np.ndarray:
        """One control period passed: (K, N) whose lidar sends a scan now."""
        if not self.active:
            return np.ones(self._scan_clock.shape, dtype=bool)
        self._scan_clock += self.period
        scans = np.floor((self._scan_clock + 1e-9) / self.scan_period)
        self._scan_clock -= scans * self.scan_period
        return scans > 0

    def next_scans(
        self, world, num_rays: int, ranges: np.ndarray, history: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """After a step: the newest ranges (K, N, rays) and the scan stack
        (K, N, stack, beams), pushed only for robots whose lidar sent a scan."""
        if not self.active:
            ranges = world.scan(num_rays, self.cast_angle_min)
            history[:, :, 1:] = history[:, :, :-1]
            history[:, :, 0] = self.pool(ranges)
            return ranges, history
        fresh = self.scan_arrivals()
        arenas = np.flatnonzero(fresh.any(axis=1))
        if not len(arenas):
            return ranges, history
        new = self.scan(world, num_rays, arenas)
        mask = fresh[arenas]
        ranges = ranges.copy()
        ranges[arenas] = np.where(mask[..., None], new, ranges[arenas])
        pushed = np.concatenate([self.pool(new)[:, :, None], history[arenas, :, :-1]], axis=2)
        history = history.copy()
        history[arenas] = np.where(mask[..., None, None], pushed, history[arenas])
        return ranges, history

    # -- odometry ------------------------------------------------------------ #

    def track_odometry(self, before: np.ndarray, after: np.ndarray) -> None:
        """Integrate one step of true motion (poses (K, N, 3) before and after)
        into each robot's odometry, with its scale errors."""
        if not self.active:
            return
        dx, dy = after[..., 0] - before[..., 0], after[..., 1] - before[..., 1]
        c0, s0 = np.cos(before[..., 2]), np.sin(before[..., 2])
        # The move in the robot's frame at the start of the step, scaled.
        forward = (c0 * dx + s0 * dy) * self._odom_scale[..., 0]
        side = (-s0 * dx + c0 * dy) * self._odom_scale[..., 0]
        turn = robot_io.wrap_angle(after[..., 2] - before[..., 2]) * self._odom_scale[..., 1]
        odom = self._odom_pose
        c, s = np.cos(odom[..., 2]), np.sin(odom[..., 2])
        odom[..., 0] += c * forward - s * side
        odom[..., 1] += s * forward + c * side
        odom[..., 2] = robot_io.wrap_angle(odom[..., 2] + turn)

    def odometry(self, poses: np.ndarray, velocities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the robots' odometry reports for the true poses (K, N, 3) and
        velocities (K, N, 2): (poses, velocities) as the observation sees them."""
        if not self.active:
            return poses, velocities
        return self._odom_pose.copy(), velocities * self._odom_scale

    # -- snapshots ----------------------------------------------------------- #

    def snapshot(self) -> dict[str, Any]:
        """The state in flight (queued commands, scan clocks, draws, odometry)."""
        arrays = {
            name: getattr(self, name).copy()
            for name in (
                "_commands",
                "_delay",
                "_noise_scale",
                "_dropout",
                "_accel",
                "_odom_scale",
                "_odom_pose",
                "_scan_clock",
            )
        }
        arrays["noise_rngs"] = [rng.bit_generator.state for rng in self._noise_rngs]
        return arrays

    def restore(self, snapshot: dict[str, Any]) -> None:
        for name, value in snapshot.items():
            if name == "noise_rngs":
                for rng, state in zip(self._noise_rngs, value, strict=True):
                    rng.bit_generator.state = state
            else:
                setattr(self, name, value.copy())
