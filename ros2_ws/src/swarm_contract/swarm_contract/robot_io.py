"""The observation and action contract between a robot and its policy.

This module is the one piece of code that both sides of the product run: the
PyBullet simulator imports it to build every robot's observation during
training, and the ROS 2 policy node imports it on the robot to turn `scan`,
`odom` and `goal` into the same vector. It depends on numpy and the standard
library only, so a robot never needs torch or pybullet.

Observation layout (float32, length `Contract.obs_dim`):

    [ beams of the newest scan ... beams of the oldest scan,   # stack x num_beams
      goal distance / goal_clip (clipped to 1),
      cos(goal bearing), sin(goal bearing),
      linear velocity / max_linear, angular velocity / max_angular ]

Beams are the minimum range in `num_beams` equal sectors around the robot,
sector k centred on -pi + k * 2pi / num_beams: sector 0 looks straight behind
the robot, the count goes counter-clockwise (REP-103), and with an even beam
count sector num_beams / 2 looks straight ahead. Ranges are normalised to
[0, 1] over [range_min, range_max].

Action: two numbers in [-1, 1] scaled to (v, w) within the robot's limits.
An exported policy emits (v, w) in SI units directly; `clamp_twist` is the
last line of defence on the robot side.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import yaml

CONTRACT_VERSION = "1"
LEGACY_DEFAULTS = frozenset({"scan_period"})
"""Contract fields that model metadata may lack (written before they existed)."""
PROFILES_DIR = Path(__file__).parent / "profiles"
DEFAULT_PROFILE = "turtlebot3_burger"


class ContractMismatch(ValueError):
    """A model's observation/action contract does not fit this robot."""


class ScanRefused(ValueError):
    """A LaserScan whose fields make no sense: no command may come from it."""


# --------------------------------------------------------------------------- #
# Robot profile: the physical robot, as data.
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RobotProfile:
    """What a differential-drive robot is and what its lidar sees."""

    name: str = DEFAULT_PROFILE
    radius: float = 0.105
    """Footprint radius in metres (collision circle)."""
    max_linear: float = 0.22
    """Top forward speed in m/s; reverse is allowed up to the same speed."""
    max_angular: float = 2.84
    """Top turn rate in rad/s."""
    scan_beams: int = 360
    """Number of rays in one full LaserScan from the real sensor."""
    range_min: float = 0.12
    range_max: float = 3.5
    control_period: float = 0.1
    """Seconds between two velocity commands (10 Hz)."""
    max_linear_accel: float = 2.5
    """Largest rise of linear speed in m/s^2 (the safety layer's ramp; it also
    sizes the stop zone's braking distance). Profiles written before it
    existed get the TurtleBot3 Burger's value."""
    max_angular_accel: float = 3.2
    """Largest rise of turn rate in rad/s^2 (the safety layer's ramp)."""
    scan_period: float | None = None
    """Seconds between two LaserScan messages. None: one per control period.
    A policy that stacks scans learned them this far apart (Contract.scan_period)."""
    range_noise_std: float = 0.005
    """Standard deviation in metres of the range error that does not grow with
    distance (the simulator's `nominal` fidelity; see the profile YAML's sources).
    The fields below default to the TurtleBot3 Burger's values, like the
    acceleration limits, so profiles written before them keep loading."""
    range_noise_ratio: float = 0.0175
    """Standard deviation of the range error that grows with distance, as a
    share of the range (0.0175 = 1.75 %); it adds to range_noise_std."""
    dropout_rate: float = 0.01
    """Share of rays returned invalid (REP-117: NaN, inf or 0.0), in [0, 1)."""
    mount_yaw: float = 0.0
    """Yaw of the lidar on the base in radians (the base_scan joint's yaw): a ray
    at scan angle a looks at a + mount_yaw in the robot frame. Pooling adds it
    back (ObservationBuilder), so a rotated mount sees the same beams."""
    actuation_latency: float = 0.1
    """Seconds from a velocity command to the wheels acting on it."""
    odom_linear_drift: float = 0.02
    """Standard deviation of odometry's scale error on distance (m per m
    travelled), drawn once per run of the base: wheel radius and wear."""
    odom_angular_drift: float = 0.01
    """Standard deviation of odometry's scale error on turning (rad per rad)."""
    cmd_vel_stamped: bool = True
    """Whether the base takes geometry_msgs/TwistStamped on cmd_vel (a TurtleBot3 on
    Jazzy does) rather than Twist: the policy node's default."""
    odom_frame: str = "odom"
    """The odometry frame's name, before the robot's frame prefix (`tb3_0/odom`)."""
    base_frame: str = "base_footprint"
    """The body frame's name, before the prefix: TwistStamped commands carry it."""

    def __post_init__(self) -> None:
        positive = lambda x: math.isfinite(x) and x > 0  # noqa: E731
        checks = {
            "radius": self.radius > 0,
            "max_linear": self.max_linear > 0,
            "max_angular": self.max_angular > 0,
            "scan_beams": self.scan_beams >= 1,
            "range_min": 0 <= self.range_min < self.range_max,
            "range_max": math.isfinite(self.range_max) and self.range_max > 0,
            "control_period": self.control_period > 0,
            "max_linear_accel": positive(self.max_linear_accel),
            "max_angular_accel": positive(self.max_angular_accel),
            "scan_period": self.scan_period is None or positive(self.scan_period),
            "range_noise_std": _non_negative(self.range_noise_std),
            "range_noise_ratio": _non_negative(self.range_noise_ratio),
            "dropout_rate": _non_negative(self.dropout_rate) and self.dropout_rate < 1,
            "mount_yaw": _number(self.mount_yaw) and abs(self.mount_yaw) <= math.pi,
            "actuation_latency": _non_negative(self.actuation_latency),
            "odom_linear_drift": _non_negative(self.odom_linear_drift),
            "odom_angular_drift": _non_negative(self.odom_angular_drift),
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"robot profile {self.name!r}: bad {key}={getattr(self, key)!r}"
                    " (radius, speeds, accelerations, beams and periods must be positive,"
                    " scan_period positive or null; noise, drift and latency >= 0;"
                    " dropout_rate in [0, 1); mount_yaw in [-pi, pi];"
                    " 0 <= range_min < range_max)"
                )

    @property
    def lidar_period(self) -> float:
        """Seconds between two scans: scan_period, or the control period when unset."""
        return self.control_period if self.scan_period is None else self.scan_period


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _non_negative(x) -> bool:
    return _number(x) and x >= 0


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> RobotProfile:
    """Load a robot profile by name (from `profiles/`) or from a YAML path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise FileNotFoundError(
            f"robot profile {str(name_or_path)!r} not found; known profiles: {known},"
            " or give the path of a YAML file"
        )
    data = yaml.safe_load(path.read_text()) or {}
    allowed = {f.name for f in fields(RobotProfile)}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(
            f"robot profile {path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    data.setdefault("name", path.stem)
    return RobotProfile(**data)


# --------------------------------------------------------------------------- #
# Contract: everything about the observation/action mapping a model relies on.
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Contract:
    """The parameters of the observation and action mapping.

    An exported model carries these in its ONNX metadata; the robot builds its
    observations from them and refuses a model whose contract it cannot meet.
    """

    num_beams: int = 24
    """Lidar sectors in the observation (each the min range of its sector)."""
    scan_stack: int = 1
    """How many consecutive scans are stacked, newest first."""
    range_min: float = 0.12
    range_max: float = 3.5
    goal_clip: float = 5.0
    """Goal distances beyond this are reported as this (metres)."""
    max_linear: float = 0.22
    max_angular: float = 2.84
    control_period: float = 0.1
    profile: str = DEFAULT_PROFILE
    contract_version: str = CONTRACT_VERSION
    scan_period: float | None = None
    """Seconds between the scans of the stack (the lidar's period the model was
    trained with). None: the control period, one scan per command; metadata
    written before this field existed means exactly that."""

    def __post_init__(self) -> None:
        if self.scan_period is None:
            # Frozen: resolved once here, so every contract carries a number.
            object.__setattr__(self, "scan_period", self.control_period)
        if not (_number(self.scan_period) and self.scan_period > 0):
            raise ValueError(f"contract: scan_period={self.scan_period!r} must be > 0 (seconds)")
        if self.num_beams < 1:
            raise ValueError(f"contract: num_beams={self.num_beams} must be >= 1")
        if self.scan_stack < 1:
            raise ValueError(f"contract: scan_stack={self.scan_stack} must be >= 1")
        if not 0 <= self.range_min < self.range_max:
            raise ValueError(
                f"contract: need 0 <= range_min < range_max, got"
                f" range_min={self.range_min}, range_max={self.range_max}"
            )
        for key in ("goal_clip", "max_linear", "max_angular", "control_period"):
            if not getattr(self, key) > 0:
                raise ValueError(f"contract: {key}={getattr(self, key)} must be > 0")

    @classmethod
    def for_profile(cls, profile: RobotProfile, **overrides) -> Contract:
        """The contract a robot with this profile offers, with overrides."""
        base = dict(
            range_min=profile.range_min,
            range_max=profile.range_max,
            max_linear=profile.max_linear,
            max_angular=profile.max_angular,
            control_period=profile.control_period,
            scan_period=profile.scan_period,
            profile=profile.name,
        )
        base.update(overrides)
        return cls(**base)

    @property
    def obs_dim(self) -> int:
        return self.num_beams * self.scan_stack + 5

    # -- metadata round trip ------------------------------------------------ #

    def to_metadata(self) -> dict[str, str]:
        """String key/values for ONNX `metadata_props` (prefixed `contract.`)."""
        meta = {f"contract.{k}": json.dumps(v) for k, v in asdict(self).items()}
        meta["contract.obs_dim"] = json.dumps(self.obs_dim)
        meta["contract.obs_layout"] = (
            f"beams[{self.scan_stack}x{self.num_beams}] newest first, min-pooled, "
            "(r-range_min)/(range_max-range_min); goal_dist/goal_clip; cos(bearing); "
            "sin(bearing); v/max_linear; w/max_angular"
        )
        meta["contract.action"] = "cmd_vel [v m/s, w rad/s], already scaled and clipped"
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> Contract:
        """Rebuild a contract from ONNX metadata; names any missing field."""
        values = {}
        for f in fields(cls):
            key = f"contract.{f.name}"
            if key not in meta and f.name in LEGACY_DEFAULTS:
                # Exported before the field existed: its default (scan_period:
                # the control period) is what those models were trained with.
                continue
            if key not in meta:
                raise ContractMismatch(
                    f"model metadata has no {key!r}; it was not exported by"
                    " `swarm export` or is from an incompatible version"
                )
            try:
                values[f.name] = json.loads(meta[key])
            except json.JSONDecodeError as err:
                raise ContractMismatch(f"model metadata {key}={meta[key]!r} is not JSON") from err
        if str(values["contract_version"]) != CONTRACT_VERSION:
            raise ContractMismatch(
                f"contract_version: model has {values['contract_version']!r},"
                f" this robot speaks {CONTRACT_VERSION!r}; re-export the model"
            )
        return cls(**values)

    def mismatches(self, robot: Contract, *, tolerance: float = 1e-6) -> list[str]:
        """What in this (model) contract differs from the robot's, one line each.

        Everything that changes what an observation means must match. Speed
        limits may be lower than the robot's (the model just never drives
        faster), but not higher: the robot would clamp the commands the policy
        learned with, and drive something else than it was trained to.
        """
        problems = []
        for f in fields(self):
            if f.name == "profile":
                continue
            if f.name == "scan_period" and self.scan_stack == 1:
                # One scan per observation: nothing depends on how often they come.
                continue
            mine, theirs = getattr(self, f.name), getattr(robot, f.name)
            if f.name in ("max_linear", "max_angular"):
                if mine > theirs + tolerance:
                    problems.append(
                        f"{f.name}: model commands up to {mine!r}, robot allows {theirs!r}"
                    )
                continue
            same = abs(mine - theirs) <= tolerance if isinstance(mine, float) else mine == theirs
            if not same and f.name == "scan_period":
                problems.append(
                    f"scan_period: model stacks {self.scan_stack} scans {mine!r} s apart,"
                    f" this robot's lidar sends one every {theirs!r} s; use a model"
                    " trained at this scan period (sim fidelity) or with scan_stack 1"
                )
            elif not same:
                problems.append(f"{f.name}: model expects {mine!r}, robot has {theirs!r}")
        return problems

    def check_fits(self, robot: Contract) -> None:
        """Raise ContractMismatch naming every differing field."""
        problems = self.mismatches(robot)
        if problems:
            raise ContractMismatch("model does not fit this robot: " + "; ".join(problems))

    def digest(self) -> str:
        """Short hash of the contract, for logs and policy cards."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


# --------------------------------------------------------------------------- #
# Lidar: a LaserScan's ranges -> pooled, normalised beams.
# --------------------------------------------------------------------------- #


class BeamPooler:
    """Pools a full scan into `num_beams` sectors, min range per sector.

    Built once per scan geometry (angle_min, angle_increment, ray count), then
    applied to any batch of scans of that geometry: (..., rays) -> (..., beams).
    Ray angles are wrapped to [-pi, pi) so a scan from 0..2pi (TurtleBot3's LDS)
    and one from -pi..pi give the same beams.
    """

    def __init__(
        self,
        num_rays: int,
        angle_min: float,
        angle_increment: float,
        num_beams: int,
        range_min: float,
        range_max: float,
    ) -> None:
        if num_rays < num_beams:
            raise ValueError(
                f"a scan of {num_rays} rays cannot fill {num_beams} beams;"
                " use a contract with num_beams <= rays in the scan"
            )
        self.num_rays = num_rays
        self.num_beams = num_beams
        self.range_min = float(range_min)
        self.range_max = float(range_max)
        angles = angle_min + angle_increment * np.arange(num_rays)
        if not np.isfinite(angles).all():
            # NaN/inf angles would reach np.bincount as garbage sector indices.
            raise ScanRefused(
                f"ray angles are not finite (angle_min={angle_min!r},"
                f" angle_increment={angle_increment!r}, rays={num_rays});"
                " both must be finite radians"
            )
        # Sectors are centred on their angle (not starting at it) so that one
        # beam looks straight ahead and left/right beams mirror each other.
        wrapped = np.mod(angles + math.pi + math.pi / num_beams, 2 * math.pi)
        sector = np.minimum((wrapped / (2 * math.pi) * num_beams).astype(int), num_beams - 1)
        counts = np.bincount(sector, minlength=num_beams)
        if (counts == 0).any():
            empty = np.flatnonzero(counts == 0).tolist()
            raise ValueError(
                f"scan geometry leaves beam sector(s) {empty} without rays"
                f" (angle_min={angle_min}, angle_increment={angle_increment}, rays={num_rays})"
            )
        # Gather matrix padded with an index that points at a +inf column.
        width = counts.max()
        self._index = np.full((num_beams, width), num_rays, dtype=np.intp)
        fill = np.zeros(num_beams, dtype=int)
        for ray, s in enumerate(sector):
            self._index[s, fill[s]] = ray
            fill[s] += 1

    def __call__(self, ranges: np.ndarray) -> np.ndarray:
        """Ranges with REP-117 specials -> beams normalised to [0, 1]."""
        ranges = np.asarray(ranges, dtype=np.float64)
        if ranges.shape[-1] != self.num_rays:
            raise ValueError(
                f"scan has {ranges.shape[-1]} ranges, this pooler was built for {self.num_rays}"
            )
        clean = clean_ranges(ranges, self.range_min, self.range_max)
        padded = np.concatenate([clean, np.full(clean.shape[:-1] + (1,), np.inf)], axis=-1)
        pooled = padded[..., self._index].min(axis=-1)
        pooled = np.where(np.isfinite(pooled), pooled, self.range_max)
        return ((pooled - self.range_min) / (self.range_max - self.range_min)).astype(np.float32)


def check_scan_fields(
    num_rays: int, angle_min: float, angle_increment: float, range_min: float, range_max: float
) -> None:
    """Raise ScanRefused naming every LaserScan field that is unusable, its value
    and what a valid one is: no rays, non-finite angles or limits, an increment
    that is not positive (rays must go counter-clockwise, REP-103), or limits
    with range_max <= range_min."""
    problems = []
    if num_rays < 1:
        problems.append("ranges is empty (0 rays); a scan needs at least one ray")
    for name, value, valid in (
        ("angle_min", angle_min, "a finite angle in radians"),
        ("angle_increment", angle_increment, "a finite angle > 0 in radians"),
        ("range_min", range_min, "a finite distance >= 0 in metres"),
        ("range_max", range_max, "a finite distance > range_min in metres"),
    ):
        value = float(value)
        bad = not math.isfinite(value)
        bad = bad or (name == "angle_increment" and value <= 0)
        bad = bad or (name == "range_min" and value < 0)
        bad = bad or (name == "range_max" and math.isfinite(range_min) and value <= range_min)
        if bad:
            problems.append(f"{name}={value!r} must be {valid}")
    if problems:
        raise ScanRefused("; ".join(problems))


def count_valid_rays(ranges: np.ndarray, range_min: float, range_max: float) -> int:
    """How many rays carry a reading, by REP-117: finite within [range_min,
    range_max], +inf (nothing within range) or -inf (closer than range_min).

    NaN (an erroneous reading) and finite values outside the limits are not
    valid, with one exception: exactly 0.0 counts as "no return", like +inf,
    because that is how TurtleBot3's LDS driver reports a ray that saw nothing
    (a Burger in an open hall would otherwise be told its lidar is broken).
    """
    r = np.asarray(ranges, dtype=np.float64)
    valid = np.isinf(r) | (r == 0.0) | ((r >= range_min) & (r <= range_max))
    return int(np.count_nonzero(valid))


def clean_ranges(ranges: np.ndarray, range_min: float, range_max: float) -> np.ndarray:
    """Apply REP-117 to raw ranges; invalid readings become +inf ("nothing seen").

    - +inf: no return within range -> +inf (becomes range_max after pooling).
    - -inf: object closer than the sensor can measure -> range_min.
    - NaN: a failed reading -> ignored (+inf) so one bad ray cannot fake a wall.
    - finite below range_min: invalid (many drivers, TurtleBot3's LDS among them,
      publish 0.0 for "no return") -> ignored.
    - finite above range_max: clipped to range_max.
    """
    r = np.asarray(ranges, dtype=np.float64)
    out = np.where(np.isnan(r), np.inf, r)
    out = np.where(out == -np.inf, range_min, out)
    out = np.where(np.isfinite(out) & (out < range_min), np.inf, out)
    return np.where(np.isfinite(out), np.minimum(out, range_max), out)


# --------------------------------------------------------------------------- #
# Goal and velocity features.
# --------------------------------------------------------------------------- #


def goal_in_robot_frame(pose: np.ndarray, goal_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance and bearing of the goal as seen from the robot.

    pose: (..., 3) with x, y, yaw in the world frame; goal_xy: (..., 2).
    Returns (distance, bearing), bearing in (-pi, pi], 0 = straight ahead,
    positive = to the left (REP-103).
    """
    pose = np.asarray(pose, dtype=np.float64)
    goal_xy = np.asarray(goal_xy, dtype=np.float64)
    dx = goal_xy[..., 0] - pose[..., 0]
    dy = goal_xy[..., 1] - pose[..., 1]
    distance = np.hypot(dx, dy)
    bearing = wrap_angle(np.arctan2(dy, dx) - pose[..., 2])
    return distance, bearing


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap angles to (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(angle), 2 * np.pi)


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rotation about z) of a quaternion, for odometry messages.

    Normalised first: the formula assumes unit length, and an odometry source
    that lets its quaternion drift from it (or scales it) means the same heading.
    """
    norm = math.hypot(x, y, z, w)
    if 0 < norm < math.inf:
        x, y, z, w = x / norm, y / norm, z / norm, w / norm
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def goal_features(distance: np.ndarray, bearing: np.ndarray, contract: Contract) -> np.ndarray:
    """(..., 3): clipped normalised distance, cos and sin of the bearing."""
    d = np.minimum(np.nan_to_num(distance, nan=contract.goal_clip), contract.goal_clip)
    return np.stack([d / contract.goal_clip, np.cos(bearing), np.sin(bearing)], axis=-1).astype(
        np.float32
    )


def velocity_features(linear: np.ndarray, angular: np.ndarray, contract: Contract) -> np.ndarray:
    """(..., 2): own velocity normalised by the contract's limits, clipped to [-1, 1]."""
    # Clipped before the division, which odometry claiming 1e308 m/s would overflow.
    top_v, top_w = contract.max_linear, contract.max_angular
    v = np.clip(np.nan_to_num(np.asarray(linear, dtype=np.float64)), -top_v, top_v) / top_v
    w = np.clip(np.nan_to_num(np.asarray(angular, dtype=np.float64)), -top_w, top_w) / top_w
    return np.stack([v, w], axis=-1).astype(np.float32)


def build_observation(
    beam_stack: np.ndarray,
    pose: np.ndarray,
    goal_xy: np.ndarray,
    linear: np.ndarray,
    angular: np.ndarray,
    contract: Contract,
) -> np.ndarray:
    """Assemble observations from their parts; batched over leading dims.

    beam_stack: (..., scan_stack, num_beams) normalised beams, newest first.
    """
    beam_stack = np.asarray(beam_stack, dtype=np.float32)
    expected = (contract.scan_stack, contract.num_beams)
    if beam_stack.shape[-2:] != expected:
        raise ValueError(f"beam stack shape {beam_stack.shape[-2:]} != contract's {expected}")
    distance, bearing = goal_in_robot_frame(pose, goal_xy)
    beams = beam_stack.reshape(beam_stack.shape[:-2] + (-1,))
    return np.concatenate(
        [
            beams,
            goal_features(distance, bearing, contract),
            velocity_features(linear, angular, contract),
        ],
        axis=-1,
    ).astype(np.float32)


class ObservationBuilder:
    """One robot's observation from its latest readings, with scan stacking.

    The ROS node feeds it LaserScan ranges, odometry and the goal; it keeps the
    last `scan_stack` pooled scans. The simulator uses the batched functions
    above directly.
    """

    def __init__(self, contract: Contract, mount_yaw: float = 0.0) -> None:
        self.contract = contract
        self.mount_yaw = float(mount_yaw)
        """The lidar's yaw on the base (RobotProfile.mount_yaw), added to every
        scan angle so beams stay in the robot frame."""
        self._pooler: BeamPooler | None = None
        self._geometry: tuple[int, float, float] | None = None
        self._history: np.ndarray | None = None

    def add_scan(self, ranges, angle_min: float, angle_increment: float) -> None:
        ranges = np.asarray(ranges, dtype=np.float64)
        geometry = (ranges.shape[-1], float(angle_min), float(angle_increment))
        if geometry != self._geometry:
            c = self.contract
            self._pooler = BeamPooler(
                geometry[0],
                angle_min + self.mount_yaw,
                angle_increment,
                c.num_beams,
                c.range_min,
                c.range_max,
            )
            self._geometry = geometry
            self._history = None
        beams = self._pooler(ranges)
        if self._history is None:
            # Until enough scans have arrived, repeat the first one.
            self._history = np.repeat(beams[None], self.contract.scan_stack, axis=0)
        else:
            self._history = np.concatenate([beams[None], self._history[:-1]], axis=0)

    def forget_scans(self) -> None:
        """Drop the stacked scans (after a lidar fault, so old scans never resurface)."""
        self._history = None

    def observation(self, pose, goal_xy, linear: float, angular: float) -> np.ndarray:
        if self._history is None:
            raise RuntimeError("no scan yet: call add_scan first")
        return build_observation(
            self._history, np.asarray(pose), np.asarray(goal_xy), linear, angular, self.contract
        )


# --------------------------------------------------------------------------- #
# Actions.
# --------------------------------------------------------------------------- #


def action_to_twist(action: np.ndarray, max_linear: float, max_angular: float) -> np.ndarray:
    """Policy action in [-1, 1]^2 -> (v, w) in SI units; batched over leading dims.

    Non-finite actions become 0 (stop), never a wild command.
    """
    a = np.nan_to_num(np.asarray(action, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    a = np.clip(a, -1.0, 1.0)
    return np.stack([a[..., 0] * max_linear, a[..., 1] * max_angular], axis=-1)


def clamp_twist(
    linear: float, angular: float, max_linear: float, max_angular: float
) -> tuple[float, float]:
    """Last line of defence before cmd_vel: finite, and within the robot's limits."""
    if not (math.isfinite(linear) and math.isfinite(angular)):
        return 0.0, 0.0
    return (
        max(-max_linear, min(max_linear, float(linear))),
        max(-max_angular, min(max_angular, float(angular))),
    )
