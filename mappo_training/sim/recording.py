"""Recording one arena's episode as plain data, for pictures and reports.

A recording is a dict, so it pickles and needs no simulator to be drawn:

    layout      ArenaLayout: arena size, starts, goals, obstacles, robot radius
    poses       (T + 1, N, 3) x, y, yaw per robot, from the start to the last step
    collisions  list of (t, robot): robot touched something in the step ending at poses[t]
    arrivals    list of (t, robot): robot reached its goal in the step ending at poses[t]
    period      seconds per step
    result      the episode dict of BatchedSwarmEnv (None while the episode runs)
"""

from __future__ import annotations

from typing import Any

import numpy as np


class EpisodeRecorder:
    """Follows arena `arena` of a BatchedSwarmEnv from its current state to the
    end of its episode: make it after reset (or after the arena's previous
    episode ended) and pass it each step's info."""

    def __init__(self, env, arena: int = 0) -> None:
        self.arena = arena
        self.layout = env.arena_layout(arena)
        self.period = env.profile.control_period
        self._frames = [env.poses()[arena].copy()]
        self.collisions: list[tuple[int, int]] = []
        self.arrivals: list[tuple[int, int]] = []
        self.result: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def add(self, info: dict[str, Any]) -> bool:
        """Record one step; returns True once the episode has ended."""
        if self.done:
            return True
        a = self.arena
        self._frames.append(np.asarray(info["final_poses"][a]).copy())
        t = len(self._frames) - 1
        self.collisions += [(t, int(r)) for r in np.flatnonzero(info["collided"][a])]
        self.arrivals += [(t, int(r)) for r in np.flatnonzero(info["arrived"][a])]
        for episode in info.get("episodes", []):
            if episode["arena"] == a:
                self.result = episode
        return self.done

    def recording(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "poses": np.stack(self._frames),
            "collisions": list(self.collisions),
            "arrivals": list(self.arrivals),
            "period": self.period,
            "result": self.result,
        }
