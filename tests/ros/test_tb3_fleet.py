"""A stock TurtleBot3 fleet on Jazzy, simulated: goals given in `map` with `swarm goal`.

Three robots in TB3 Jazzy style (namespaces tb3_0..tb3_2, TwistStamped on
cmd_vel, frames tb3_<i>/odom and tb3_<i>/base_footprint under a shared map)
start from a fleet YAML as `swarm deploy --fleet` starts them, against the sim
bridge configured the same way. The bridge keeps its episode's goals to itself
(publish_goals:=false) and runs in lockstep, so the run plays out the same
under any CPU load; the operator gives every robot its goal in map with
`swarm goal --assign`, and each node moves it into its own odom frame with its
map_to_odom parameter (its start pose, which the bridge announces: the pip
road has no TF). The bridge's arrival events say each robot got there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import latched_qos, wait_for
from ros_sim_helpers import BridgeProcess, EventLog
from std_msgs.msg import String

from swarm_controller.fleet import fleet_node_specs, load_fleet
from swarm_ops import goal
from swarm_ops.deploy import Deployment, known_policy_parameters

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]
ROBOTS = [f"tb3_{i}" for i in range(3)]
BRIDGE = {
    "num_robots": len(ROBOTS),
    "namespace_prefix": "tb3_",
    "cmd_vel_stamped": True,
    "lockstep": True,
    "publish_goals": False,
    "episodes": 1,
    "scenario": "random",
    "seed": 1,
    "arena_size": 3.0,
    "sim_overrides": ["min_goal_distance=0.6"],
    "real_time_factor": 10.0,
    "marker_rate": 0.0,
}


def write_fleet(path: Path, start: dict) -> Path:
    """The fleet file a TB3 Jazzy user writes, each robot with its start pose in map."""
    robots = "".join(
        f"  - namespace: {ns}\n    parameters: {{map_to_odom: {json.dumps(pose)}}}\n"
        for ns, pose in zip(ROBOTS, start["map_to_odom"], strict=True)
    )
    path.write_text(
        f"policy: {REPO / 'models' / 'default'}\n"
        "use_sim_time: true\n"
        "parameters: {cmd_vel_stamped: true}   # a Jazzy TB3 takes TwistStamped\n"
        f"robots:\n{robots}"
    )
    return path


def test_a_tb3_fleet_reaches_the_goals_given_in_map_with_swarm_goal(tmp_path, probe):
    events = EventLog(probe)
    bridge = BridgeProcess(BRIDGE, tmp_path / "bridge")
    try:
        start = events.wait_for(30.0, type="episode_start")
        assert start["odom_frames"] == [f"{ns}/odom" for ns in ROBOTS]
        odom = probe.record(Odometry, "/tb3_2/odom", qos_profile_sensor_data)
        commands = probe.record(TwistStamped, "/tb3_0/cmd_vel")
        policies = [
            probe.record(String, f"/{ns}/policy_node/active_policy", latched_qos()) for ns in ROBOTS
        ]
        fleet = load_fleet(write_fleet(tmp_path / "fleet.yaml", start))
        specs = fleet_node_specs(fleet, known_policy_parameters())
        with Deployment(specs, tmp_path / "run", say=lambda _line: None) as deployment:

            def nodes_up():
                down = deployment.poll()
                assert not down, f"{down[0].spec.label} exited: see {down[0].log_path}"
                return all(p.last() for p in policies)

            wait_for(nodes_up, 30.0, "the three policy nodes active")
            assignment = tmp_path / "goals.yaml"
            assignment.write_text(
                "frame: map\n"
                + "".join(
                    f"{ns}: {json.dumps(g)}\n" for ns, g in zip(ROBOTS, start["goals"], strict=True)
                )
            )
            assert goal.main(["--assign", str(assignment), "--timeout", "10"]) == 0

            end = events.wait_for(40.0, type="episode_end")
            arrived = {e["robot"] for e in events.events(type="arrival")}
            assert end["reason"] == "all_arrived" and arrived == {0, 1, 2}, (end, arrived)

        # Frames and commands as a TB3 on Jazzy has them.
        reading = odom.last()
        assert (reading.header.frame_id, reading.child_frame_id) == (
            "tb3_2/odom",
            "tb3_2/base_footprint",
        )
        assert commands.last().header.frame_id == "tb3_0/base_footprint"
    finally:
        bridge.stop()
    assert "Traceback" not in bridge.output(), bridge.output()
