"""When the sim bridge may step in lockstep: once every driving robot has answered.

A closed loop stepped by a wall-clock timer depends on CPU load: a policy
node that answers late leaves its robot driving one more period on its old
command (or stopped at cmd_timeout), and the episode plays out differently.
In lockstep the bridge publishes a tick (a step's readings, then /clock) and
steps again only when every active robot (not parked at its goal) has sent a
command since that tick, or `timeout` wall seconds have passed; each robot
still silent then counts one miss. Ticks are never closer than
`min_interval` wall seconds, so the real-time factor stays an upper bound.

Each episode starts by settling, so that it plays out the same however long
the nodes took to come up. The robots are held at rest, unscored, while:

1. READY: every robot has sent a command that would move it (its node is up,
   has its policy, sensors and goal, and nothing holds it). Zeros do not
   count: a policy node also answers with zeros before it can drive.
2. SETTLE: each robot's goal is its start pose, so its node holds "at goal"
   (which also restarts its acceleration ramp from rest) and fills its scan
   stack with the start readings: at least `settle_ticks` ticks, each
   answered by every robot.
3. GO: the real goals go out with one more tick; the first step is driven by
   the commands every node computed from exactly what training's reset gives
   a policy.

Settling takes at most `start_timeout` wall seconds (node processes starting
up) and counts no misses; a tick nobody answered within `timeout` is simply
followed by another.

A command counts as an answer when it arrives after the tick went out. A
TwistStamped one counts only if stamped at or after the tick's simulated
time (a policy node stamps with its clock, which the tick set), so a late
command for the previous tick is never taken for this one; a plain Twist
carries no such proof (`swarm deploy --lockstep` and `swarm bench deploy`
therefore use stamped commands).

Plain Python: the bridge passes in wall times, ticks and commands.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

SETTLE_TICKS = 3
"""Fewest SETTLE ticks per episode: the scan stack of the shipped policies (3)."""
_STAMP_EPSILON = 1e-6


class Action(enum.Enum):
    WAIT = "wait"
    """Not yet: a robot may still answer, or the real-time factor says slow down."""
    HOLD = "hold"
    """Settling: one control period passes with every robot at rest, unscored."""
    SETTLE = "settle"
    """Every robot can drive: publish each robot's start pose as its goal, then HOLD."""
    GO = "go"
    """Settled: publish the real goals, then HOLD one more tick for the first commands."""
    STEP = "step"
    """Step the world with the commands received."""


class _Phase(enum.Enum):
    READY = 1
    SETTLE = 2
    RUN = 3


@dataclass(frozen=True)
class Decision:
    action: Action
    late: tuple[int, ...] = ()
    """Robots that had not answered when the wait ended (each a miss on STEP)."""


class Lockstep:
    """Tracks ticks and answers for one bridge; `next_action` says what to do now."""

    def __init__(
        self,
        num_robots: int,
        *,
        timeout: float,
        start_timeout: float,
        min_interval: float,
        settle_ticks: int = SETTLE_TICKS,
    ) -> None:
        self.timeout = float(timeout)
        self.start_timeout = float(start_timeout)
        self.min_interval = float(min_interval)
        self.settle_ticks = int(settle_ticks)
        self.misses = np.zeros(num_robots, dtype=np.int64)
        """Misses per robot since the bridge started."""
        self.episode_misses = 0
        """Misses in the current episode (all robots)."""
        self.episode_holds = 0
        """Settling ticks of the current episode so far."""
        self._answered = np.zeros(num_robots, dtype=bool)
        self._moved = np.zeros(num_robots, dtype=bool)
        self._tick_at = -np.inf
        self._tick_stamp = -np.inf
        self._phase = _Phase.READY
        self._settle_holds = 0
        self._began = 0.0
        self._untimed_readings = True

    @property
    def settling(self) -> bool:
        return self._phase is not _Phase.RUN

    def begin_episode(self, now: float) -> None:
        """A new episode's goals and start readings are out: settle before its first step.

        Call `tick` after it when the readings went out with a /clock tick (an
        episode that began inside a step); without one (start-up, a reset) the
        first settling tick comes at once.
        """
        self._phase = _Phase.READY
        self._moved[:] = False
        self._settle_holds = 0
        self._began = now
        self._untimed_readings = True
        self.episode_misses = 0
        self.episode_holds = 0

    def tick(self, now: float, stamp: float, *, hold: bool = False) -> None:
        """Readings and /clock for simulated time `stamp` went out at wall time `now`."""
        self._answered[:] = False
        self._tick_at = now
        self._tick_stamp = stamp
        self._untimed_readings = False
        if hold:
            self.episode_holds += 1
            self._settle_holds += 1

    def answer(self, robot: int, stamp: float | None = None, *, moving: bool = False) -> None:
        """A command from `robot` (`moving`: not zero). With a stamp (TwistStamped), one
        stamped before the latest tick answers an older one and does not count; a
        zero stamp says nothing."""
        if stamp and stamp < self._tick_stamp - _STAMP_EPSILON:
            return
        self._answered[robot] = True
        self._moved[robot] |= moving

    def all_answered(self, active: np.ndarray) -> bool:
        return not bool(np.any(active & ~self._answered))

    def next_action(self, now: float, active: np.ndarray) -> Decision:
        """What the bridge should do at wall time `now`; `active`: (N,) robots still driving.

        A STEP with late robots counts their misses.
        """
        if now < self._tick_at + self.min_interval:
            return Decision(Action.WAIT)
        late = active & ~self._answered
        waiting = bool(late.any()) and now < self._tick_at + self.timeout
        if self._phase is not _Phase.RUN:
            if self._untimed_readings:
                # Start readings without a clock tick (start-up, a reset): no node
                # acts on them until the clock moves.
                return Decision(Action.HOLD)
            if waiting:
                return Decision(Action.WAIT)
            patient = now - self._began < self.start_timeout
            if self._phase is _Phase.READY:
                if not self._moved.all() and patient:
                    return Decision(Action.HOLD)
                self._phase = _Phase.SETTLE
                self._settle_holds = 0
                return Decision(Action.SETTLE)
            if (late.any() or self._settle_holds < self.settle_ticks) and patient:
                return Decision(Action.HOLD)
            self._phase = _Phase.RUN
            return Decision(Action.GO)
        if waiting:
            return Decision(Action.WAIT)
        late_robots = tuple(int(i) for i in np.flatnonzero(late))
        self.misses[list(late_robots)] += 1
        self.episode_misses += len(late_robots)
        return Decision(Action.STEP, late_robots)
