"""A real policy node in its own process, driven over DDS like a robot would drive it."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")

from lifecycle_msgs.msg import Transition
from ros_helpers import RobotWorld, change_state, wait_for

pytestmark = pytest.mark.ros

MAX_V = 0.22  # the default contract's (TurtleBot3) top speed, which the fixture controller uses


def test_drives_toward_a_goal_ahead_stops_for_an_obstacle_and_on_ctrl_c(
    probe, nodes, policy_models
):
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node("/robot_0", policy_path=policy_models.reference_controller())
    assert robot.wait_ready()["name"] == "reference-fixture-controller"

    robot.send_goal(3.0, 0.0)
    robot.feed()
    v, w = robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 5.0, "driving forward")[0]
    assert v <= MAX_V and w == pytest.approx(0.0, abs=1e-3)

    robot.obstacle_ahead_m = 0.25
    robot.wait_command(lambda v, w: v == 0.0, 3.0, "stopping for the wall")
    time.sleep(0.4)
    blocked = robot.commands(since=time.monotonic() - 0.35)
    assert blocked and all(v == 0.0 for v, _ in blocked), blocked

    robot.obstacle_ahead_m = None
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 3.0, "driving again once the way is clear")
    # Ctrl-C while driving on fresh data: the last word is a zero command.
    assert nodes.interrupt("/robot_0") == 0
    time.sleep(0.2)
    robot.stop_feed()
    commands = robot.commands()
    assert commands[-1] == (0.0, 0.0), f"last commands after Ctrl-C: {commands[-5:]}"
    assert commands[-2][0] > 0.9 * MAX_V, "the robot was not driving right before Ctrl-C"


def test_holds_without_goal_or_fresh_sensors_and_resumes(probe, nodes, policy_models):
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node(
        "/robot_0",
        policy_path=policy_models.reference_controller(),
        autostart=False,
        sensor_timeout=0.3,
    )
    assert change_state(probe, "/robot_0/policy_node", Transition.TRANSITION_CONFIGURE)
    robot.wait_ready()
    robot.feed()
    assert change_state(probe, "/robot_0/policy_node", Transition.TRANSITION_ACTIVATE)

    # Sensors but no goal: exactly one zero, then silence.
    time.sleep(1.0)
    assert robot.commands() == [(0.0, 0.0)]

    robot.send_goal(3.0, 0.0)
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 3.0, "driving once a goal arrives")

    # Sensors go quiet: driving until the timeout, then one zero, then nothing.
    robot.stop_feed()
    stopped = time.monotonic()
    time.sleep(1.2)
    after = robot.commands(since=stopped)
    times = robot.cmd.times(since=stopped)
    assert after and after[-1] == (0.0, 0.0), f"after the sensors went stale: {after}"
    assert all(v > 0 for v, _ in after[:-1]), after
    assert times[-1] - stopped < 0.3 + 0.4, "the zero came long after the sensor timeout"

    robot.feed()
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 3.0, "resuming with fresh sensors")

    # Deactivate: a zero, then no command although sensors keep coming.
    assert change_state(probe, "/robot_0/policy_node", Transition.TRANSITION_DEACTIVATE)
    time.sleep(0.1)
    deactivated = time.monotonic()
    time.sleep(0.5)
    assert robot.commands()[-1] == (0.0, 0.0)
    assert robot.commands(since=deactivated) == []


def nan_midway_model(policy_models):
    """Finite on the loader's warm-up probes, NaN once the goal is 0.25-4.75 m away."""
    import numpy as np
    from onnx import helper

    from swarm_contract.robot_io import Contract

    c = Contract()
    n = helper.make_node
    weights = {
        "dist_idx": np.array([c.num_beams * c.scan_stack], np.int64),
        "lo": np.float32(0.05),
        "hi": np.float32(0.95),
        "half": np.float32(-0.5),
        "w_zero": np.zeros((1, 1), np.float32),
    }
    nodes = [
        n("Gather", ["obs", "dist_idx"], ["d"], axis=1),
        n("Sub", ["d", "lo"], ["a"]),
        n("Sub", ["hi", "d"], ["b"]),
        n("Mul", ["a", "b"], ["ab"]),
        n("Mul", ["ab", "half"], ["neg"]),  # < 0 between lo and hi
        n("Sqrt", ["neg"], ["v"]),  # NaN there
        n("MatMul", ["d", "w_zero"], ["w"]),
        n("Concat", ["v", "w"], ["cmd_vel"], axis=1),
    ]
    return policy_models.save("nan_midway.onnx", nodes, weights, c)


def test_a_policy_output_of_nan_never_reaches_cmd_vel(probe, nodes, policy_models):
    import math

    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node("/robot_0", policy_path=nan_midway_model(policy_models))
    robot.wait_ready()
    robot.send_goal(3.0, 0.0)
    robot.feed()
    time.sleep(0.8)
    commands = robot.commands()
    assert len(commands) >= 4, f"the node should keep commanding (stop): {commands}"
    assert all(math.isfinite(v) and math.isfinite(w) for v, w in commands), commands
    assert all(c == (0.0, 0.0) for c in commands)


def test_a_refused_first_policy_leaves_the_robot_still_until_a_good_one_is_set(
    probe, nodes, policy_models, tmp_path
):
    """robot_contract pins the robot's sensors; a model for 16 beams never drives it."""
    import yaml
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    from swarm_contract.robot_io import Contract

    contract_file = tmp_path / "robot_contract.yaml"
    contract_file.write_text(yaml.safe_dump({"num_beams": 24}))
    wrong = policy_models.reference_controller("b16/robot_0.onnx", contract=Contract(num_beams=16))
    good = policy_models.reference_controller("b24/robot_0.onnx")

    diagnostics = probe.record(DiagnosticArray, "/diagnostics")
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node("/robot_0", policy_path=wrong, robot_contract=contract_file)

    def configure_failed():
        for msg in diagnostics.messages():
            for status in msg.status:
                if status.hardware_id == "/robot_0" and status.level == DiagnosticStatus.ERROR:
                    return status.message
        return None

    message = wait_for(configure_failed, 10.0, "/diagnostics to report the refused policy")
    assert "configure failed" in message and "num_beams: model expects 16, robot has 24" in message
    robot.send_goal(3.0, 0.0)
    robot.feed()
    time.sleep(0.3)
    assert robot.commands() == []  # unconfigured: no cmd_vel publisher at all

    [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(wrong)})
    assert not result.successful and "num_beams" in result.reason
    [result] = probe.set_parameters(robot.node_fqn, {"policy_path": str(good)})
    assert result.successful, result.reason
    robot.wait_ready()
    robot.wait_command(lambda v, w: v > 0.9 * MAX_V, 5.0, "driving with the good policy")
