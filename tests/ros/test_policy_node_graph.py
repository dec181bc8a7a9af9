"""Decentralized execution, checked on the live ROS graph: a robot listens only to itself."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")

from rclpy.node import NodeNameNonExistentError
from ros_helpers import RobotWorld, wait_for

pytestmark = pytest.mark.ros


def test_each_robot_subscribes_only_to_its_own_namespace(probe, nodes, policy_models):
    robots = {}
    for i in range(2):
        ns = f"/robot_{i}"
        path = policy_models.reference_controller(f"robot_{i}.onnx", agent_id=i)
        # The probe subscribes first: a late subscriber to a latched topic
        # waits for the writer's next heartbeat (seconds with Fast DDS).
        robots[ns] = RobotWorld(probe, ns)
        nodes.start_policy_node(ns, policy_path=path)
    for robot in robots.values():
        robot.wait_ready()

    graph = probe.node
    for ns in robots:

        def subscriptions(ns=ns):
            # Topic matching can run ahead of node discovery: until the node's
            # name reaches this graph, rclpy raises instead of answering.
            try:
                return graph.get_subscriber_names_and_types_by_node("policy_node", ns)
            except NodeNameNonExistentError:
                return None

        topics = dict(wait_for(subscriptions, 5.0, f"{ns}/policy_node in the graph"))
        assert {f"{ns}/scan", f"{ns}/odom", f"{ns}/goal"} <= set(topics)
        assert {f"{ns}/estop", "/swarm/estop"} <= set(topics)
        # The fleet e-stop is the one shared input, and it can only stop a robot.
        foreign = [t for t in topics if not t.startswith(ns + "/") and t != "/swarm/estop"]
        assert not foreign, f"{ns}/policy_node subscribes outside its namespace: {foreign}"
        published = dict(graph.get_publisher_names_and_types_by_node("policy_node", ns))
        assert f"{ns}/cmd_vel" in published

    # Only robot_1 gets a goal and sensors: robot_1 drives, robot_0 does not move.
    robot_0, robot_1 = robots["/robot_0"], robots["/robot_1"]
    robot_1.send_goal(3.0, 0.0)
    robot_1.feed()
    robot_1.wait_command(lambda v, w: v > 0.1, 5.0, "robot_1 driving")
    time.sleep(0.3)
    assert all(v == 0.0 and w == 0.0 for v, w in robot_0.commands()), robot_0.commands()
