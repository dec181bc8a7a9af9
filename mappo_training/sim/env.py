"""The swarm navigation task for MAPPO: K arenas of N robots stepped as one batch.

`BatchedSwarmEnv` sits on top of `World`: it draws scenario layouts, turns
policy actions into twists, builds each robot's local observation through
robot_io (the same code the robot runs), computes the team reward and the
critic's state, scores episodes with an EpisodeTracker (episodes.py) and
resets finished arenas by itself.

    env = BatchedSwarmEnv(SimConfig(num_robots=4), num_arenas=16, seed=0)
    obs, state = env.reset()                       # (K, N, obs_dim), (K, N, state_dim)
    obs, state, reward, terminated, truncated, info = env.step(actions)  # (K, N, 2) in [-1, 1]

Robots that reached their goal are parked (zero velocity) and stay in the
arena as obstacles until the whole team is done.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from mappo_training.batched_env import ActionSpec
from mappo_training.sim.config import SimConfig, load_sim_config
from mappo_training.sim.curriculum import EpisodePlan, all_variant_configs
from mappo_training.sim.episodes import TIMEOUT, EpisodeRules, EpisodeTracker
from mappo_training.sim.fidelity import Fidelity
from mappo_training.sim.geometry import robot_distances
from mappo_training.sim.lidar import scan_geometry
from mappo_training.sim.reward import robot_rewards, wrong_side_closeness
from mappo_training.sim.safety import SimSafety
from mappo_training.sim.scenarios import (
    ArenaLayout,
    default_max_steps,
    draw_layout,
    fitted_arena_size,
)
from mappo_training.sim.world import World
from swarm_contract import robot_io

GLOBAL_FEATURES_PER_ROBOT = 9
"""x, y, cos yaw, sin yaw, v, w, goal x, goal y, arrived."""

RELATIVE_FEATURES = 11
"""Per robot slot in the relative state, seen from the robot whose value it is:
x, y of the other robot in this robot's frame (/ RELATIVE_SCALE), cos and sin
of its heading relative to this robot's, its v and w (/ limits), its goal's
x, y in this robot's frame (/ RELATIVE_SCALE), arrived, present, is-self.
Absent slots are all zeros."""

RELATIVE_SCALE = 4.0
"""Metres per unit of the relative state's positions: fixed, so the state
means the same in every arena size."""


def state_dim_of(cfg: SimConfig, obs_dim: int) -> int:
    """Width of the critic's input: every robot's global features, plus (in
    agent_specific mode) the robot's own observation and a one-hot of its index;
    in relative mode the own observation and every slot's relative features."""
    if cfg.state_mode == "relative":
        return obs_dim + RELATIVE_FEATURES * cfg.num_robots
    extra = obs_dim + cfg.num_robots if cfg.state_mode == "agent_specific" else 0
    return GLOBAL_FEATURES_PER_ROBOT * cfg.num_robots + extra


class BatchedSwarmEnv:
    """K independent arenas of the swarm navigation task, simulated in one process."""

    action_dim = 2
    supports_snapshot = True
    """A checkpoint can carry the episodes in progress (see `snapshot`)."""

    def __init__(
        self,
        cfg: SimConfig | dict[str, Any] | str | Path | None = None,
        num_arenas: int = 1,
        seed: int | None = None,
    ) -> None:
        cfg = load_sim_config(cfg)
        if num_arenas < 1:
            raise ValueError(f"num_arenas={num_arenas}: must be >= 1")
        self.cfg = cfg
        self.profile = cfg.robot_profile()
        self.contract = cfg.contract(self.profile)
        self.num_arenas = num_arenas
        self.num_robots = cfg.num_robots
        self.arena_size = max(
            fitted_arena_size(variant, self.profile) for variant in all_variant_configs(cfg)
        )
        """Side of the arenas in metres: cfg.arena_size, or larger when the robots
        of any episode variant need it."""
        self.plan = EpisodePlan(cfg)
        """Draws each episode's variant and team size; runs the curriculum."""
        self.max_steps = default_max_steps(
            cfg, self.arena_size, self.profile.max_linear, self.profile.control_period
        )
        self.obs_dim = self.contract.obs_dim
        self.global_state_dim = GLOBAL_FEATURES_PER_ROBOT * self.num_robots
        self.state_dim = state_dim_of(cfg, self.obs_dim)
        self.scan_rays = cfg.scan_rays
        angle_min, increment = scan_geometry(self.scan_rays)
        self._pooler = robot_io.BeamPooler(
            self.scan_rays,
            angle_min,
            increment,
            self.contract.num_beams,
            self.contract.range_min,
            self.contract.range_max,
        )
        self.world = World(num_arenas, self.num_robots, self.arena_size, self.profile)

        k, n = num_arenas, self.num_robots
        self._fidelity = Fidelity(cfg.fidelity, self.profile, self.contract, k, n, self.scan_rays)
        self._history = np.zeros((k, n, cfg.scan_stack, cfg.num_beams), dtype=np.float32)
        self._ranges = np.full((k, n, self.scan_rays), np.inf)
        rules = EpisodeRules(
            cfg.goal_tolerance, self.profile.control_period, self.max_steps, cfg.end_on_collision
        )
        self.episodes = EpisodeTracker.for_arenas(k, n, rules)
        """What each arena's current episode has done so far, and its scores."""
        self._one_hot = np.broadcast_to(np.eye(n, dtype=np.float32), (k, n, n))
        self.safety = SimSafety(self) if cfg.safety_layer else None
        """The robots' safety layers (sim.safety_layer), or None."""
        self._seed(seed)
        self._started = False

    @property
    def obs_dims(self) -> list[int]:
        """Every robot reads the same observation layout (the contract's)."""
        return [self.obs_dim] * self.num_robots

    @property
    def action_specs(self) -> list[ActionSpec]:
        """Every robot drives with (v, w) scaled to [-1, 1] by its speed limits."""
        return [ActionSpec(kind="box", dim=self.action_dim, low=-1.0, high=1.0)] * self.num_robots

    # -- episodes ----------------------------------------------------------- #

    def _seed(self, seed: int | None) -> None:
        # One generator per arena: an arena's sequence of episodes does not
        # depend on when the other arenas happen to finish theirs.
        children = np.random.SeedSequence(seed).spawn(self.num_arenas)
        self._rngs = [np.random.default_rng(s) for s in children]

    def reset(
        self, seed: int | None = None, layouts: list[ArenaLayout] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Start a new episode in every arena; returns (obs, state).

        seed: reseed the scenario generators (None: continue their sequence).
        layouts: one ArenaLayout per arena to start from instead of drawing
        scenarios (for tests and fixed evaluations).
        """
        if seed is not None:
            self._seed(seed)
        if layouts is not None and len(layouts) != self.num_arenas:
            raise ValueError(f"got {len(layouts)} layouts for {self.num_arenas} arenas")
        everything = np.arange(self.num_arenas)
        for arena in everything:
            self._start_episode(arena, None if layouts is None else layouts[arena])
            if self.safety is not None:
                self.safety.end_episode(arena)  # robots start from rest
        self._fill_history(everything)
        self._started = True
        return self._observe()

    def set_generator_states(self, states: list[dict]) -> None:
        """Draw the next episodes from these per-arena generator states (numpy
        bit_generator.state, one per arena): layouts, fidelity effects and team
        sizes then come out as they did for whoever held those states (the
        sim bridge, for `swarm bench deploy`)."""
        if len(states) != self.num_arenas:
            raise ValueError(f"got {len(states)} generator states for {self.num_arenas} arenas")
        for rng, state in zip(self._rngs, states, strict=True):
            rng.bit_generator.state = copy.deepcopy(state)

    def _start_episode(self, arena: int, layout: ArenaLayout | None) -> None:
        if layout is None:
            rng = self._rngs[arena]
            layout = draw_layout(rng, self.plan.draw(rng), self.arena_size, self.profile.radius)
        self.world.set_layout(arena, layout)
        self._fidelity.start_episode(arena, self._rngs[arena], self.world.poses()[arena])
        self.episodes.start(arena, layout)

    def _fill_history(self, arenas: np.ndarray) -> None:
        """First scan of a new episode, repeated over the stack (as the robot does)."""
        self._ranges[arenas] = self._fidelity.scan(self.world, self.scan_rays, arenas)
        beams = self._fidelity.pool(self._ranges[arenas])
        self._history[arenas] = beams[:, :, None, :]

    # -- stepping ----------------------------------------------------------- #

    def step(self, actions: np.ndarray):
        """Apply actions (K, N, 2) in [-1, 1] for one control period.

        Returns obs, state, reward (K, N), terminated (K,), truncated (K,), info;
        see the package docstring for the info keys. Arenas whose episode ended
        are reset before returning: obs and state belong to their new episode,
        info["final_obs"] / ["final_state"] / ["final_poses"] to the old one.
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, dtype=np.float32)
        expected = (self.num_arenas, self.num_robots, self.action_dim)
        if actions.shape != expected:
            raise ValueError(f"actions have shape {actions.shape}, expected {expected}")
        if self.safety is not None:
            # The policy's actions (what PPO learns from) stay as they were; the
            # robots drive what the safety layer lets through.
            actions = self.safety.apply(actions)
        world = self.world
        episodes = self.episodes
        driving = episodes.driving
        twists = robot_io.action_to_twist(
            actions, self.contract.max_linear, self.contract.max_angular
        )
        world.set_twists(self._fidelity.actuate(twists, world.velocities()) * driving[..., None])
        before = world.poses()
        contacts = world.advance()
        poses = world.poses()
        self._fidelity.track_odometry(before, poses)
        stepped = episodes.record_step(
            before, poses, world.goals(), contacts.robot, contacts.static
        )
        progress, arrived = stepped.progress, stepped.arrived
        collided = contacts.any

        gap = None
        if self.cfg.reward.proximity and self.num_robots > 1:
            nearest = robot_distances(poses[..., :2]).min(axis=-1)
            gap = nearest - 2 * self.profile.radius
        velocities = world.velocities()
        wrong_side = None
        if self.cfg.reward.keep_right and self.num_robots > 1:
            wrong_side = wrong_side_closeness(poses, velocities, self.cfg.reward.keep_right_range)
        reversing = None
        if self.cfg.reward.reverse:
            reversing = np.clip(-velocities[..., 0] / self.contract.max_linear, 0.0, 1.0)
        rewards = robot_rewards(
            self.cfg.reward,
            progress,
            arrived,
            contacts.robot,
            contacts.static,
            driving,
            gap,
            wrong_side,
            reversing,
            present=episodes.present,
        )
        episodes.add_rewards(rewards)
        reasons = episodes.end_reasons(collided)
        truncated = reasons == TIMEOUT
        terminated = reasons.astype(bool) & ~truncated

        self._ranges, self._history = self._fidelity.next_scans(
            world, self.scan_rays, self._ranges, self._history
        )
        obs, state = self._observe()

        info: dict[str, Any] = {
            "active": driving,
            "arrived": arrived,
            "collided": collided,
            "robot_collided": contacts.robot,
            "static_collided": contacts.static,
            "final_obs": obs,
            "final_state": state,
            "final_poses": poses,
            "episodes": [],
        }
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            info["episodes"] = [
                {"arena": int(a), "stage": self.plan.stage, **episodes.summary(a)} for a in ended
            ]
            for summary in info["episodes"]:
                self.plan.record(summary["success"])
                if self.safety is not None:
                    summary.update(self.safety.end_episode(summary["arena"]))
            for arena in ended:
                self._start_episode(arena, None)
            self._fill_history(ended)
            obs, state = self._observe()
        return obs, state, rewards.astype(np.float32), terminated, truncated, info

    # -- observations and critic state --------------------------------------- #

    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        poses = self.world.poses()
        velocities = self.world.velocities()
        goals = self.world.goals()
        odom_poses, odom_velocities = self._fidelity.odometry(poses, velocities)
        obs = robot_io.build_observation(
            self._history,
            odom_poses,
            goals,
            odom_velocities[..., 0],
            odom_velocities[..., 1],
            self.contract,
        )
        return obs, self._critic_state(obs, poses, velocities, goals)

    def _critic_state(
        self, obs: np.ndarray, poses: np.ndarray, velocities: np.ndarray, goals: np.ndarray
    ) -> np.ndarray:
        """(K, N, state_dim): global state, or agent-specific state per robot."""
        size = self.arena_size
        features = np.concatenate(
            [
                poses[..., :2] / size,
                np.cos(poses[..., 2:3]),
                np.sin(poses[..., 2:3]),
                velocities[..., :1] / self.contract.max_linear,
                velocities[..., 1:] / self.contract.max_angular,
                goals / size,
                self.episodes.arrived[..., None],
            ],
            axis=-1,
        ).astype(np.float32)
        if self.cfg.state_mode == "relative":
            return self._relative_state(obs, poses, velocities, goals)
        flat = features.reshape(self.num_arenas, 1, -1)
        repeated = np.repeat(flat, self.num_robots, axis=1)
        if self.cfg.state_mode == "global":
            return repeated
        return np.concatenate([obs, repeated, self._one_hot], axis=-1)

    def _relative_state(
        self, obs: np.ndarray, poses: np.ndarray, velocities: np.ndarray, goals: np.ndarray
    ) -> np.ndarray:
        """(K, N, obs_dim + N * RELATIVE_FEATURES): each robot's observation, then
        every slot as this robot sees it (RELATIVE_FEATURES; absent slots zero)."""
        k, n = self.num_arenas, self.num_robots
        present = self.episodes.present
        yaw = poses[..., 2]
        cos, sin = np.cos(yaw)[:, :, None], np.sin(yaw)[:, :, None]  # (K, i, 1)

        def in_frame(points: np.ndarray) -> np.ndarray:
            # points (K, j, 2) -> (K, i, j, 2) in robot i's frame, / RELATIVE_SCALE
            d = points[:, None, :, :] - poses[:, :, None, :2]
            x = cos * d[..., 0] + sin * d[..., 1]
            y = -sin * d[..., 0] + cos * d[..., 1]
            return np.stack([x, y], axis=-1) / RELATIVE_SCALE

        turn = yaw[:, None, :] - yaw[:, :, None]
        own = np.broadcast_to
        features = np.concatenate(
            [
                in_frame(poses[..., :2]),
                np.cos(turn)[..., None],
                np.sin(turn)[..., None],
                own((velocities[..., :1] / self.contract.max_linear)[:, None], (k, n, n, 1)),
                own((velocities[..., 1:] / self.contract.max_angular)[:, None], (k, n, n, 1)),
                in_frame(goals),
                own(self.episodes.arrived[:, None, :, None], (k, n, n, 1)),
                own(present[:, None, :, None], (k, n, n, 1)),
                own(np.eye(n, dtype=bool)[None, :, :, None], (k, n, n, 1)),
            ],
            axis=-1,
        ).astype(np.float32)
        features *= present[:, None, :, None]
        return np.concatenate([obs, features.reshape(k, n, -1)], axis=-1)

    # -- what a recorder or bridge needs ------------------------------------- #

    @property
    def scan_ranges(self) -> np.ndarray:
        """(K, N, scan_rays) the newest lidar ranges, the scan the current
        observations were built from (LaserScan convention, angles from
        lidar.scan_geometry(scan_rays)); for the robot-side safety layer."""
        return self._ranges

    @property
    def believed_goal_distance(self) -> np.ndarray:
        """(K, N) metres from each robot to its goal as its odometry has it (with
        drift at nominal fidelity): what the policy node's at-goal hold reads."""
        odom_poses, _ = self._fidelity.odometry(self.world.poses(), self.world.velocities())
        return np.linalg.norm(self.world.goals() - odom_poses[..., :2], axis=-1)

    def poses(self) -> np.ndarray:
        """(K, N, 3) current poses x, y, yaw in each arena's frame."""
        return self.world.poses()

    def arena_layout(self, arena: int) -> ArenaLayout:
        """The layout (starts, goals, obstacles) of arena `arena`'s current episode."""
        return self.world.layout(arena)

    @property
    def parked(self) -> np.ndarray:
        """(K, N) robots that have reached their goal in the current episode."""
        return self.episodes.arrived

    # -- snapshots (exact resume) -------------------------------------------- #

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue these episodes exactly (picklable)."""
        return {
            "world": self.world.snapshot(),
            "rngs": [rng.bit_generator.state for rng in self._rngs],
            "history": self._history.copy(),
            "ranges": self._ranges.copy(),
            "fidelity": self._fidelity.snapshot(),
            "episodes": self.episodes.snapshot(),
            "plan": self.plan.snapshot(),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from a snapshot of an env with the same config and arena count."""
        if len(snapshot["rngs"]) != self.num_arenas:
            raise ValueError(
                f"snapshot holds {len(snapshot['rngs'])} arenas, this env has {self.num_arenas}"
            )
        self.world.restore(snapshot["world"])
        for rng, state in zip(self._rngs, snapshot["rngs"], strict=True):
            rng.bit_generator.state = state
        self._history = snapshot["history"].copy()
        if "fidelity" in snapshot:
            self._fidelity.restore(snapshot["fidelity"])
            self._ranges = snapshot["ranges"].copy()
        else:
            self._ranges = self.world.scan(self.scan_rays)  # the world is deterministic
            poses = self.world.poses()  # from before fidelity: draw its effects afresh
            for arena, rng in enumerate(self._rngs):
                self._fidelity.start_episode(arena, rng, poses[arena])
        if "plan" in snapshot:
            self.plan.restore(snapshot["plan"])
        if "episodes" in snapshot:
            self.episodes.restore(snapshot["episodes"])
        else:
            # Snapshots written before the EpisodeTracker kept its arrays at the top.
            self.episodes.restore({**snapshot, "team_return": snapshot["return"]})
        if self.safety is not None:
            # The layers' ramps are not in snapshots: a resumed episode's robots
            # ramp up from rest once, as after a node restart.
            for arena in range(self.num_arenas):
                self.safety.end_episode(arena)
        self._started = True

    def close(self) -> None:
        self.world.close()

    def __enter__(self) -> BatchedSwarmEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
