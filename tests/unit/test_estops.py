"""The e-stop rules a policy node applies (swarm_controller.estops), without ROS."""

import pytest

pytest.importorskip("swarm_controller", reason="needs swarm_controller: make setup")

from swarm_controller.estops import DISCOVERY_S, STATE_WAIT_S, EStops  # noqa: E402


def test_either_estop_holds_the_robot_until_that_one_is_released():
    stops = EStops(started=0.0)
    assert stops.update("fleet", True)
    assert stops.update("robot", True)
    assert stops.engaged() == ("robot", "fleet")
    assert stops.update("fleet", False)
    assert stops.engaged() == ("robot",)
    assert not stops.update("robot", True)  # the same state heard again changes nothing
    assert stops.update("robot", False)
    assert stops.engaged() == ()


def test_a_new_node_waits_to_hear_latched_estops_but_not_forever():
    stops = EStops(started=100.0)
    nobody = {"robot": 0, "fleet": 0}
    # Right after start nothing is heard yet: both may still be on their way.
    assert stops.unheard(100.0, nobody) == ("robot", "fleet")
    stops.update("robot", False)
    assert stops.unheard(100.0 + DISCOVERY_S / 2, nobody) == ("fleet",)
    # No latched publisher found within the discovery wait: drive.
    assert stops.unheard(100.0 + DISCOVERY_S, nobody) == ()
    # A matched publisher that has not delivered yet is waited for, up to a limit.
    assert stops.unheard(100.0 + DISCOVERY_S, {"fleet": 1}) == ("fleet",)
    assert stops.unheard(100.0 + STATE_WAIT_S, {"fleet": 1}) == ()
