"""Typed configuration of the swarm simulator and its team reward.

`SimConfig` holds everything that defines the task (robots, arena, scenario,
lidar, episode length, critic state); `RewardConfig` holds the weights of the
team reward. Both validate themselves on construction and name the bad field;
`load_sim_config` fills them from a mapping or a YAML file through
`swarm_contract.config.from_dict`, so unknown keys fail loudly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mappo_training.sim.curriculum import CurriculumConfig, all_variant_configs, check_overrides
from mappo_training.sim.fidelity import FidelityConfig
from mappo_training.sim.geometry import MIN_OBSTACLE_SIZE, Obstacle
from mappo_training.sim.rooms import known_layouts, load_room_layout
from swarm_contract import robot_io
from swarm_contract.config import from_dict, load_yaml

Scenario = Literal["random", "circle", "swap", "layout"]
StateMode = Literal["global", "agent_specific", "relative"]


def _require(ok: bool, message: str) -> None:
    # ValueError (not ConfigError) on purpose: from_dict prefixes it with the
    # section it was loading ("sim: ..."), so the user sees the full key.
    if not ok:
        raise ValueError(message)


@dataclass
class RewardConfig:
    """Weights of the shared team reward.

    Each robot earns the terms below in a step; the team reward is their mean
    over the robots of the arena, so its scale does not change with the number
    of robots. Penalties are given as positive numbers and subtracted.
    """

    progress: float = 10.0
    """Reward per metre a driving robot got closer to its goal (negative when it moves away)."""
    arrival: float = 10.0
    """One-off bonus when a robot reaches its goal."""
    robot_collision: float = 5.0
    """Penalty per step in which a robot hits another robot."""
    static_collision: float = 5.0
    """Penalty per step in which a robot hits a wall or an obstacle."""
    time: float = 0.01
    """Penalty per step for every robot still driving (not yet arrived)."""
    proximity: float = 0.0
    """Penalty per step, at contact, for a driving robot whose nearest neighbour's
    footprint is closer than proximity_gap; it falls linearly to 0 at the gap.
    A dense warning before the collision penalty; 0 = off."""
    proximity_gap: float = 0.2
    """Footprint-to-footprint distance in metres below which `proximity` applies."""
    keep_right: float = 0.0
    """Penalty per step, at contact, for a driving robot that is closing on a
    neighbour ahead and to its right: about to pass it on the wrong side. Falls
    linearly to 0 at keep_right_range. A traffic rule (as in socially aware
    CADRL): when every robot keeps right, head-on and crossing encounters
    resolve the same way for all, where a learned policy otherwise hesitates
    and deadlocks in dense crossings such as the circle. 0 = off."""
    keep_right_range: float = 1.0
    """Centre-to-centre distance in metres within which `keep_right` applies."""
    reverse: float = 0.0
    """Penalty per step for a driving robot moving backwards, times its reverse
    speed as a share of max_linear. Unpenalised, the trained policies drove
    backwards for most of each episode (the lidar sees all round, the action
    range is symmetric), which few real robots are built for. 0 = off."""
    team_share: float = 1.0
    """How much of each robot's reward is the team mean (the rest is its own
    terms): 1 = pure team reward, 0 = individual rewards. A mix keeps the task
    cooperative while telling each robot what its own actions did."""

    def __post_init__(self) -> None:
        _require(
            isinstance(self.team_share, int | float) and 0.0 <= self.team_share <= 1.0,
            f"reward.team_share={self.team_share!r}: must be in [0, 1]",
        )
        for name in ("proximity_gap", "keep_right_range"):
            value = getattr(self, name)
            _require(
                isinstance(value, int | float) and math.isfinite(value) and value > 0,
                f"reward.{name}={value!r}: must be > 0 (metres)",
            )
        for name in (
            "progress",
            "arrival",
            "robot_collision",
            "static_collision",
            "time",
            "proximity",
            "keep_right",
            "reverse",
        ):
            value = getattr(self, name)
            _require(
                isinstance(value, int | float) and math.isfinite(value) and value >= 0,
                f"reward.{name}={value!r}: must be a finite number >= 0"
                " (penalties are positive and subtracted)",
            )


@dataclass
class SimConfig:
    """The swarm navigation task: N robots per arena, each must reach its own goal."""

    num_robots: int = 4
    """Robots per arena (1 to 64)."""
    scenario: Scenario = "random"
    """random: random starts and goals; circle: start on a circle, goals antipodal;
    swap: two groups on opposite sides exchange places; layout: the named room
    layout `layout` (walls, furniture, start and goal zones)."""
    layout: str | None = None
    """With scenario layout: a packaged layout (corridor, two_rooms, crossing,
    warehouse; mappo_training/sim/layouts/) or the path of a layout YAML (see
    sim/rooms.py). Its arena size is the YAML's (arena_size is not used)."""
    profile: str = robot_io.DEFAULT_PROFILE
    """Robot profile name (swarm_contract/profiles/) or path of a profile YAML."""
    arena_size: float = 4.0
    """Side of the square arena in metres; grows automatically when the robots
    of the scenario would not fit (see BatchedSwarmEnv.arena_size)."""
    arena_size_range: list[float] | None = None
    """[min, max] metres: each episode is played in a square of a side drawn
    uniformly from this range (grown when its robots need more room). The
    arena's walls stand at max; a smaller square is fenced in by four thin box
    walls (obstacles the lidar sees), and starts, goals and random obstacles lie
    inside it. None: every episode uses the whole arena."""
    num_beams: int = 24
    """Lidar sectors in the observation (contract num_beams)."""
    scan_stack: int = 1
    """Consecutive scans stacked in the observation, newest first."""
    sim_scan_rays: int | None = None
    """Rays the simulated lidar casts per robot and step; a multiple of num_beams.
    None: 3 rays per beam. The real sensor's full scan is pooled by the same code."""
    goal_clip: float = 5.0
    """Goal distances beyond this many metres are reported as this."""
    goal_tolerance: float = 0.15
    """A robot has arrived when its centre is within this many metres of its goal."""
    min_separation: float = 0.5
    """Smallest distance in metres between two robots' starts (and two goals)."""
    min_goal_distance: float = 1.0
    """Smallest start-to-goal distance in metres in the random scenario."""
    wall_clearance: float = 0.2
    """Free space in metres between a start or goal footprint and walls or obstacles."""
    circle_radius: float | None = None
    """Radius of the circle scenario in metres. None: as large as the arena allows.
    Grows when the robots would not fit on it with min_separation."""
    start_jitter: float = 0.0
    """Standard deviation, metres, of a random offset added to each start of the
    circle and swap layouts, which are symmetric by construction. 0 = exact.
    Exactly symmetric starts give every robot the same view, so deterministic
    policies act in lockstep and can hold a symmetric standoff forever; real
    robots are never placed that exactly (RVO2's circle demo perturbs its
    agents for the same reason)."""
    num_obstacles: int = 0
    """Random static obstacles (cylinders and boxes, alternating) per episode.
    In a named layout they keep a robot's width plus wall_clearance from walls
    and each other (a doorway narrows, never closes), and a crowded layout may
    take fewer."""
    obstacle_size: list[float] = field(default_factory=lambda: [0.15, 0.3])
    """Range in metres of a random obstacle's radius or half-extents."""
    obstacles: list[Obstacle] = field(default_factory=list)
    """Fixed obstacles present in every episode, in the arena frame."""
    max_steps: int | None = None
    """Episode time limit in control steps. None: the time to drive twice the
    arena side at top speed."""
    end_on_collision: bool = False
    """End the episode on the first collision (otherwise robots are blocked and go on)."""
    safety_layer: bool = False
    """Drive every robot through the robot's safety layer (acceleration ramp and
    stop zone, swarm_contract.safety_layer; sim/safety.py) between the policy
    and the simulator, as the policy node does on a robot. A policy trained
    without it meets a stop zone it never saw: in crowds, robots that would
    have touched stop instead, and teams stall until the time-out.
    `swarm eval` and `swarm bench deploy` apply the layer themselves
    (--no-safety-layer turns it off), whatever this says."""
    state_mode: StateMode = "global"
    """Critic state: global (poses, velocities, goals, arrived flags of all robots),
    agent_specific (own observation + global state + one-hot robot index), or
    relative (own observation + every robot slot's features seen from this robot,
    with present and self flags: no index, so an order-invariant critic such as
    algo.critic=attention serves every team size; see env.RELATIVE_FEATURES)."""
    team_sizes: list[int] | None = None
    """Team sizes an episode draws from (uniformly), each at most num_robots,
    which is then the robot slots per arena: smaller teams leave slots absent
    and masked. None: every episode has num_robots robots."""
    variants: list[dict[str, Any]] = field(default_factory=list)
    """Episode variants: each a mapping of sim overrides (scenario, num_obstacles,
    layout, team_sizes, ...); every episode draws one uniformly. Empty: every
    episode uses this config. Keys that fix shapes are refused (curriculum.SHAPE_KEYS)."""
    curriculum: CurriculumConfig | None = None
    """Stages of overrides with promotion on success (curriculum.py). None: off."""
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    """How true to the robot profile the simulator is: preset ideal, nominal or
    harsh, and optional randomisation ranges (sim/fidelity.py)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Team reward weights."""

    def __post_init__(self) -> None:
        if isinstance(self.reward, dict):
            self.reward = from_dict(RewardConfig, self.reward, "reward")
        if isinstance(self.fidelity, dict):
            self.fidelity = from_dict(FidelityConfig, self.fidelity, "fidelity")
        if isinstance(self.curriculum, dict):
            self.curriculum = from_dict(CurriculumConfig, self.curriculum, "curriculum")
        self.obstacles = [
            from_dict(Obstacle, o, f"obstacles[{i}]") if isinstance(o, dict) else o
            for i, o in enumerate(self.obstacles)
        ]
        self.obstacle_size = [float(v) for v in self.obstacle_size]
        _require(
            isinstance(self.num_robots, int) and 1 <= self.num_robots <= MAX_ROBOTS,
            f"num_robots={self.num_robots!r}: must be an integer from 1 to {MAX_ROBOTS}",
        )
        _require(
            self.scenario in ("random", "circle", "swap", "layout"),
            f"scenario={self.scenario!r}: must be one of 'random', 'circle', 'swap', 'layout'",
        )
        self._check_layout_keys()
        _require(
            self.state_mode in ("global", "agent_specific", "relative"),
            f"state_mode={self.state_mode!r}: must be 'global', 'agent_specific' or 'relative'",
        )
        if self.team_sizes is not None:
            sizes = self.team_sizes
            _require(
                isinstance(sizes, list)
                and sizes
                and all(isinstance(n, int) and 1 <= n <= self.num_robots for n in sizes),
                f"team_sizes={sizes!r}: must be a non-empty list of integers from 1 to"
                f" num_robots={self.num_robots} (num_robots is the robot slots per arena:"
                " raise it to the largest team)",
            )
        for i, overrides in enumerate(self.variants):
            _require(
                isinstance(overrides, dict) and "variants" not in overrides,
                f"variants[{i}]={overrides!r}: must be a mapping of sim keys (not variants)",
            )
            check_overrides(overrides, f"variants[{i}]")
        if self.variants or self.curriculum:
            all_variant_configs(self)  # each variant and stage must make a valid config
        _require(self.num_beams >= 1, f"num_beams={self.num_beams}: must be >= 1")
        _require(self.scan_stack >= 1, f"scan_stack={self.scan_stack}: must be >= 1")
        _require(
            0.0 <= self.start_jitter <= 0.5 * self.min_separation,
            f"start_jitter={self.start_jitter}: must be in [0, min_separation / 2 ="
            f" {0.5 * self.min_separation}] metres",
        )
        rays = self.sim_scan_rays
        _require(
            rays is None or (rays >= self.num_beams and rays % self.num_beams == 0),
            f"sim_scan_rays={rays}: must be a positive multiple of num_beams={self.num_beams}"
            f" (e.g. {3 * self.num_beams}), so every beam pools the same number of rays",
        )
        for name in ("arena_size", "goal_clip", "goal_tolerance", "min_separation"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value > 0, f"{name}={value!r}: must be > 0")
        _require(
            math.isfinite(self.wall_clearance) and self.wall_clearance >= 0,
            f"wall_clearance={self.wall_clearance!r}: must be >= 0",
        )
        _require(
            self.min_goal_distance > self.goal_tolerance,
            f"min_goal_distance={self.min_goal_distance}: must exceed"
            f" goal_tolerance={self.goal_tolerance}, or robots would start on their goal",
        )
        _require(
            self.circle_radius is None or self.circle_radius > 0,
            f"circle_radius={self.circle_radius!r}: must be > 0 or null (as large as fits)",
        )
        _require(self.num_obstacles >= 0, f"num_obstacles={self.num_obstacles}: must be >= 0")
        sizes = self.obstacle_size
        _require(
            len(sizes) == 2 and MIN_OBSTACLE_SIZE <= sizes[0] <= sizes[1],
            f"obstacle_size={list(sizes)}: must be [min, max] with"
            f" {MIN_OBSTACLE_SIZE} <= min <= max (metres)",
        )
        _require(
            self.max_steps is None or self.max_steps >= 1,
            f"max_steps={self.max_steps!r}: must be >= 1 or null (derived from the arena)",
        )

    def _check_layout_keys(self) -> None:
        """scenario layout <-> layout; arena_size_range [min, max] (not with a layout)."""
        if self.scenario == "layout":
            _require(
                self.layout is not None,
                f"scenario=layout needs layout: one of {known_layouts()} or the path of a layout YAML",
            )
            load_room_layout(self.layout)  # unknown name or bad key: ConfigError naming it
        else:
            _require(
                self.layout is None,
                f"layout={self.layout!r} is only used with scenario=layout"
                f" (scenario={self.scenario!r}); set scenario: layout or drop layout",
            )
        rng = self.arena_size_range
        if rng is None:
            return
        rng = self.arena_size_range = [float(v) for v in rng]
        _require(
            len(rng) == 2 and all(math.isfinite(v) for v in rng) and 0 < rng[0] <= rng[1],
            f"arena_size_range={rng}: must be [min, max] with 0 < min <= max (metres)",
        )
        _require(
            self.scenario != "layout",
            f"arena_size_range={rng} does not apply to scenario=layout: the layout"
            f" {self.layout!r} has its own size; drop arena_size_range",
        )

    @property
    def scan_rays(self) -> int:
        """Rays cast per robot and step."""
        return self.sim_scan_rays if self.sim_scan_rays is not None else 3 * self.num_beams

    def robot_profile(self) -> robot_io.RobotProfile:
        return robot_io.load_profile(self.profile)

    def contract(self, profile: robot_io.RobotProfile | None = None) -> robot_io.Contract:
        """The observation/action contract a policy trained on this task speaks.

        Its scan_period is the simulated lidar's at this fidelity: the control
        period when ideal, the profile's scan_period otherwise."""
        profile = profile or self.robot_profile()
        return robot_io.Contract.for_profile(
            profile,
            num_beams=self.num_beams,
            scan_stack=self.scan_stack,
            goal_clip=self.goal_clip,
            scan_period=self.fidelity.scan_period(profile),
        )


MAX_ROBOTS = 64


def load_sim_config(source: SimConfig | dict[str, Any] | str | Path | None) -> SimConfig:
    """A validated SimConfig from a mapping, a YAML file (whole file, or its `sim:`
    section), or an existing SimConfig."""
    if isinstance(source, SimConfig):
        return source
    if source is None:
        return SimConfig()
    if isinstance(source, str | Path):
        data = load_yaml(source)
        if isinstance(data.get("sim"), dict):
            data = data["sim"]
        return from_dict(SimConfig, data, "sim")
    return from_dict(SimConfig, source, "sim")
