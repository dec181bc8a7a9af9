"""Episode bookkeeping and scores, one implementation for training, `swarm eval` and ROS.

`EpisodeTracker` keeps, for K arenas of N robots, what an episode has done so
far (steps, arrivals, contacts, distance driven and driven backwards, the team
return) and decides when it ends and how it scored. BatchedSwarmEnv keeps one
for its K arenas, the ROS 2 sim bridge one for its single arena, so an episode
run through ROS is scored exactly like one in `swarm eval`.

    episodes = EpisodeTracker.for_arenas(k, n, EpisodeRules(0.15, 0.1, max_steps=300))
    episodes.start(arena, layout)
    step = episodes.record_step(poses_before, poses, goals, robot_hit, static_hit)
    reasons = episodes.end_reasons(robot_hit | static_hit)   # (K,) "" while it goes on
    episodes.summary(arena)                                 # the per-episode scores

`summarize` turns a list of those per-episode dicts into the rates and means
that the training logs, `swarm eval` and the benchmarks report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

from mappo_training.sim.scenarios import ArenaLayout

ALL_ARRIVED = "all_arrived"
COLLISION = "collision"
TIMEOUT = "timeout"
ONGOING = ""
"""end_reasons' entry for an arena whose episode goes on."""


@dataclass(frozen=True)
class EpisodeRules:
    """When a robot has arrived, when an episode ends, and the length of a step."""

    goal_tolerance: float
    """A robot this close (metres) to its goal has arrived and parks."""
    control_period: float
    """Seconds per step (time to goal is counted in steps)."""
    max_steps: int
    """An episode still running after this many steps ends as a timeout."""
    end_on_collision: bool = False
    """Any contact ends the episode (as a failure) in the step it happens."""


class StepRecord(NamedTuple):
    """What one step did to the episodes, (K, N) each."""

    arrived: np.ndarray
    """Reached the goal in this step (parked from now on)."""
    progress: np.ndarray
    """Metres closer to the goal than a step ago; 0 for robots already parked."""


def _per_robot(dtype: type, unset: float = 0) -> Any:
    return field(metadata={"per": "robot", "dtype": dtype, "unset": unset})


def _per_arena(dtype: type) -> Any:
    return field(metadata={"per": "arena", "dtype": dtype, "unset": 0})


@dataclass(eq=False)
class EpisodeTracker:
    """The episodes under way in K arenas of N robots, as arrays indexed [arena(, robot)].

    Every field but `rules` is an array that a new episode resets; snapshot()
    and restore() carry exactly those, so a field added here is saved too.
    """

    rules: EpisodeRules
    start_distance: np.ndarray = _per_robot(float)
    """Metres from each robot's start to its goal."""
    distance: np.ndarray = _per_robot(float)
    """Metres from each robot to its goal after the last step."""
    path_length: np.ndarray = _per_robot(float)
    """Metres driven this episode."""
    reverse_length: np.ndarray = _per_robot(float)
    """Metres of path_length driven backwards (against the robot's heading)."""
    arrival_step: np.ndarray = _per_robot(int, unset=-1)
    """Step (counting from 1) in which each robot arrived; -1 until it does."""
    steps: np.ndarray = _per_arena(int)
    """Steps taken this episode."""
    team_return: np.ndarray = _per_arena(float)
    """Sum over steps of the robots' mean reward (the bridge gives no rewards: 0)."""
    robot_collisions: np.ndarray = _per_arena(int)
    """Robot-steps in contact with another robot."""
    static_collisions: np.ndarray = _per_arena(int)
    """Robot-steps in contact with a wall or an obstacle."""
    present: np.ndarray = _per_robot(bool, unset=True)
    """Robots taking part in the episode: a team smaller than the arena's
    robot slots leaves the last slots out of every count and score."""

    @classmethod
    def for_arenas(cls, num_arenas: int, num_robots: int, rules: EpisodeRules) -> EpisodeTracker:
        """A tracker for `num_arenas` arenas (1 for the sim bridge); start() each before stepping."""
        shapes = {"robot": (num_arenas, num_robots), "arena": (num_arenas,)}
        arrays = {
            f.name: np.full(shapes[f.metadata["per"]], f.metadata["unset"], f.metadata["dtype"])
            for f in _tracked_fields()
        }
        return cls(rules, **arrays)

    @property
    def arrived(self) -> np.ndarray:
        """(K, N) robots that have reached their goal this episode (they stay parked)."""
        return self.arrival_step >= 0

    @property
    def driving(self) -> np.ndarray:
        """(K, N) robots of the episode still on their way (present, not arrived)."""
        return self.present & (self.arrival_step < 0)

    # -- one episode's life ------------------------------------------------- #

    def start(self, arena: int, layout: ArenaLayout) -> None:
        """Begin a new episode in `arena` with the robots at the layout's starts."""
        for f in _tracked_fields():
            getattr(self, f.name)[arena] = f.metadata["unset"]
        goals = np.asarray(layout.goals, dtype=np.float64)
        starts = np.asarray(layout.starts, dtype=np.float64)
        n = len(starts)
        distance = np.hypot(*(goals - starts[:, :2]).T)
        self.present[arena] = np.arange(self.present.shape[1]) < n
        self.start_distance[arena, :n] = distance
        self.distance[arena, :n] = distance

    def record_step(
        self,
        before: np.ndarray,
        poses: np.ndarray,
        goals: np.ndarray,
        robot_hit: np.ndarray,
        static_hit: np.ndarray,
    ) -> StepRecord:
        """Count one step of every arena.

        before, poses: (K, N, 3) x, y, yaw before and after the step; goals
        (K, N, 2); robot_hit, static_hit: (K, N) contacts during the step.
        """
        driving = self.driving
        distance = np.hypot(goals[..., 0] - poses[..., 0], goals[..., 1] - poses[..., 1])
        distance = np.where(self.present, distance, 0.0)
        progress = (self.distance - distance) * driving
        self.distance = distance
        moved = np.where(self.present[..., None], poses[..., :2] - before[..., :2], 0.0)
        self.path_length += np.hypot(moved[..., 0], moved[..., 1])
        forward = moved[..., 0] * np.cos(before[..., 2]) + moved[..., 1] * np.sin(before[..., 2])
        self.reverse_length += np.maximum(-forward, 0.0)
        arrived = driving & (distance < self.rules.goal_tolerance)
        self.arrival_step[arrived] = self.steps[np.nonzero(arrived)[0]] + 1
        self.steps += 1
        self.robot_collisions += robot_hit.sum(axis=-1)
        self.static_collisions += static_hit.sum(axis=-1)
        return StepRecord(arrived, progress)

    def add_rewards(self, rewards: np.ndarray) -> None:
        """Add one step's (K, N) rewards; an episode's return is the team's
        (mean over the robots taking part)."""
        present = self.present
        self.team_return += (rewards * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)

    def end_reasons(self, collided: np.ndarray) -> np.ndarray:
        """(K,) why each arena's episode ends after the last step, ONGOING if it does not.

        collided: (K, N) robots in contact during the last step. Every robot
        at its goal wins over a collision, which wins over the time limit.
        """
        reasons = np.full(len(self.steps), ONGOING, dtype=object)
        reasons[self.steps >= self.rules.max_steps] = TIMEOUT
        if self.rules.end_on_collision:
            reasons[collided.any(axis=-1)] = COLLISION
        reasons[~self.driving.any(axis=-1)] = ALL_ARRIVED
        return reasons

    def summary(self, arena: int) -> dict[str, Any]:
        """The scores of `arena`'s episode so far (ended or not).

        success: every robot arrived and nothing touched anything; collisions:
        robot-steps in contact; time_to_goal (seconds) and path_efficiency
        ((start distance - goal_tolerance) / distance driven) are means over the
        robots that arrived, NaN when none did; reverse_share: the share of the
        whole team's driving done backwards.
        """
        present = self.present[arena]
        arrived = self.arrived[arena][present]
        robot_collisions = int(self.robot_collisions[arena])
        static_collisions = int(self.static_collisions[arena])
        collisions = robot_collisions + static_collisions
        path_length = self.path_length[arena][present]
        period = self.rules.control_period
        if arrived.any():
            time_to_goal = float(self.arrival_step[arena][present][arrived].mean() * period)
            # The shortest drive that arrives ends goal_tolerance short of the goal.
            start_distance = self.start_distance[arena][present]
            straight = np.maximum(start_distance - self.rules.goal_tolerance, 0.0)
            driven = np.maximum(path_length, 1e-9)
            efficiency = float(np.minimum(straight / driven, 1.0)[arrived].mean())
        else:
            time_to_goal = efficiency = float("nan")
        return {
            "success": bool(arrived.all() and collisions == 0),
            "collisions": collisions,
            "robot_collisions": robot_collisions,
            "static_collisions": static_collisions,
            "arrived_fraction": float(arrived.mean()),
            "length": int(self.steps[arena]),
            "return": float(self.team_return[arena]),
            "time_to_goal": time_to_goal,
            "path_efficiency": efficiency,
            "reverse_share": float(self.reverse_length[arena].sum() / max(path_length.sum(), 1e-9)),
            "robots": int(present.sum()),
        }

    # -- snapshots (exact resume) ------------------------------------------- #

    def snapshot(self) -> dict[str, np.ndarray]:
        """Copies of every tracked array, by field name (picklable)."""
        return {f.name: getattr(self, f.name).copy() for f in _tracked_fields()}

    def restore(self, saved: Mapping[str, np.ndarray]) -> None:
        """Continue from a snapshot() of a tracker with as many arenas and robots."""
        for f in _tracked_fields():
            current = getattr(self, f.name)
            value = saved.get(f.name)
            if value is None and f.name == "reverse_length":
                # Absent from snapshots written before it was tracked.
                value = np.zeros_like(current)
            if value is None and f.name == "present":
                # Snapshots from before team sizes varied: every robot took part.
                value = np.ones_like(current)
            if value is None:
                raise ValueError(
                    f"episode snapshot has no {f.name!r}; it holds {sorted(saved)}"
                    " (was it taken from an EpisodeTracker?)"
                )
            value = np.array(value, dtype=current.dtype)
            if value.shape != current.shape:
                raise ValueError(
                    f"episode snapshot's {f.name!r} has shape {value.shape}, this tracker's"
                    f" {current.shape} (arenas, robots); restore into an env of the same size"
                )
            setattr(self, f.name, value)


def _tracked_fields() -> tuple:
    return tuple(f for f in fields(EpisodeTracker) if "per" in f.metadata)


def summarize(episodes: Sequence[Mapping[str, Any]]) -> dict[str, float | int | None]:
    """The rates and means of finished episodes (dicts as EpisodeTracker.summary makes them).

    success_rate is the share of the episodes that report success (None when
    none does: a PettingZoo env that has no notion of it), collision_rate a
    share of all episodes, one without "collisions" counting as without
    contact (environments other than ours do not report them). The
    other entries are means over the episodes with a finite value (time to
    goal only exists where a robot arrived), None when there is none.
    """

    def share(flags: list[bool]) -> float | None:
        return float(np.mean(flags)) if flags else None

    def mean(key: str) -> float | None:
        values = [e[key] for e in episodes if e.get(key) is not None and np.isfinite(e[key])]
        return float(np.mean(values)) if values else None

    return {
        "episodes": len(episodes),
        "success_rate": share(
            [bool(e["success"]) for e in episodes if e.get("success") is not None]
        ),
        "collision_rate": share([e.get("collisions", 0) > 0 for e in episodes]),
        "arrived_fraction": mean("arrived_fraction"),
        "time_to_goal_s": mean("time_to_goal"),
        "path_efficiency": mean("path_efficiency"),
        "reverse_share": mean("reverse_share"),
        "episode_length": mean("length"),
        "episodic_return": mean("return"),
    }
