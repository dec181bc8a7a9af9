"""A robot's two e-stops: what each last said, and whether a new node has heard it yet.

`<ns>/estop` (source "robot") and `/swarm/estop` (source "fleet") are latched
std_msgs/Bool topics; True on either holds the robot until False arrives on
it. Pure Python (no rclpy) so the rules read in one place and tests can call
them directly; the node owns the subscriptions.
"""

from __future__ import annotations

from collections.abc import Mapping

SOURCES = ("robot", "fleet")

# A latched e-stop reaches a new node only once discovery has matched the two
# and the writer has resent its history. Until then the node does not drive:
# for DISCOVERY_S after start while no e-stop was heard, and up to STATE_WAIT_S
# while a latched e-stop publisher is matched but silent (Fast DDS resends at
# its heartbeat, every 3 s by default). Without the wait, a respawned node
# could drive through an engaged fleet e-stop for its first ticks.
DISCOVERY_S = 1.0
STATE_WAIT_S = 3.5


class EStops:
    """The state of both e-stops, as this node has heard them since `started`."""

    def __init__(self, started: float) -> None:
        self.started = started
        self._engaged = dict.fromkeys(SOURCES, False)
        self._heard = dict.fromkeys(SOURCES, False)

    def update(self, source: str, engaged: bool) -> bool:
        """Record what `source` says; whether that changed its state.

        A latched publisher is heard on both of the node's subscriptions (the
        latched and the plain one), so the same state usually arrives twice.
        """
        self._heard[source] = True
        if engaged == self._engaged[source]:
            return False
        self._engaged[source] = engaged
        return True

    def engaged(self) -> tuple[str, ...]:
        """The sources that hold the robot now."""
        return tuple(source for source in SOURCES if self._engaged[source])

    def unheard(self, now: float, matched_publishers: Mapping[str, int]) -> tuple[str, ...]:
        """E-stops whose latched state may still be on its way, right after start.

        matched_publishers: per source, the latched publishers matched so far.
        """
        age = now - self.started
        if age >= STATE_WAIT_S:
            return ()
        return tuple(
            source
            for source in SOURCES
            if not self._heard[source]
            and (age < DISCOVERY_S or matched_publishers.get(source, 0) > 0)
        )
