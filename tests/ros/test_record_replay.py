"""`swarm deploy --record` and `swarm replay`: a run written as a rosbag2 and looked back at.

The recorded run is a real simulated deployment (a subprocess, like a user's
`swarm deploy`); the bag is read back with `rosbags`, as any tool would. The
replay of a real fleet's bag (TB3 namespaces, per-robot odom frames, map ->
odom on /tf_static or none at all) is checked on bags written here, without DDS.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("rosbags", reason="needs rosbags: pip install -e '.[ros]'")
pytest.importorskip("swarm_ops", reason="needs swarm_ops: pip install -e ros2_ws/src/swarm_ops")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from mappo_training.cli import main

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "models" / "default"
TYPES = get_typestore(Stores.ROS2_JAZZY)


def bag_messages(bag: Path) -> tuple[dict[str, tuple[str, int]], list[dict], dict[str, list]]:
    """Each topic's (type, message count), the decoded /swarm/events and each
    scan topic's header stamps (s)."""
    with AnyReader([bag]) as reader:
        counts = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
        events, scans = [], {}
        wanted = [c for c in reader.connections if c.topic == "/swarm/events" or "scan" in c.topic]
        for c, _t, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, c.msgtype)
            if c.topic == "/swarm/events":
                events.append(json.loads(msg.data))
            else:
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                scans.setdefault(c.topic, []).append(stamp)
    return counts, events, scans


# --------------------------------------------------------------------------- #
# A simulated run, recorded and replayed.
# --------------------------------------------------------------------------- #


@pytest.mark.ros
def test_a_recorded_sim_run_reads_back_with_every_topic_and_replays_as_a_picture(
    tmp_path, ros_domain, capsys
):
    pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
    deploy = subprocess.run(
        [sys.executable, "-m", "mappo_training.cli", "deploy", "--sim", "--robots", "2"]
        + ["--policy", str(DEFAULT_POLICY), "--seed", "0", "--episodes", "1"]
        + ["--real-time-factor", "6", "--lockstep", "--runs", str(tmp_path), "--record"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    output = deploy.stdout + deploy.stderr
    assert deploy.returncode == 0, output
    bag = Path(re.search(r"bag: (\S+)", output).group(1))
    assert bag.parent.parent == tmp_path and bag.name == "bag", "the run folder's bag/"
    assert (bag / "bag.mcap").is_file(), "MCAP storage"

    counts, events, scans = bag_messages(bag)
    [end] = [e for e in events if e["type"] == "episode_end"]
    period = 0.1  # the bridge's 10 Hz control period
    for i in range(2):
        ns = f"/robot_{i}"
        assert counts[f"{ns}/scan"][0] == "sensor_msgs/msg/LaserScan"
        assert counts[f"{ns}/odom"][0] == "nav_msgs/msg/Odometry"
        # Lockstep commands are stamped: the bag holds what the nodes sent.
        assert counts[f"{ns}/cmd_vel"][0] == "geometry_msgs/msg/TwistStamped"
        # The latched goal at least (settling also sends the start pose as a goal).
        assert counts[f"{ns}/goal"][0] == "geometry_msgs/msg/PoseStamped"
        assert counts[f"{ns}/goal"][1] >= 1
        # One scan a step, none lost from the first recorded to the episode's end
        # (how early the first is depends on DDS discovery, not on the bag).
        stamps = scans[f"{ns}/scan"]
        steps = round((stamps[-1] - stamps[0]) / period) + 1
        assert len(set(stamps)) >= steps - 1 and stamps[-1] >= float(end["t"]), (len(stamps), steps)
        assert counts[f"{ns}/odom"][1] >= len(stamps) - 1
        assert len(stamps) >= 0.25 * end["length"], (len(stamps), end["length"])
        # Lockstep waits for a command every step only while the robot drives:
        # once it has arrived the bridge steps on without it.
        [arrived] = [e["t"] for e in events if e["type"] == "arrival" and e["robot"] == i]
        driving = [s for s in stamps if s <= float(arrived)]
        assert counts[f"{ns}/cmd_vel"][1] >= 0.9 * len(driving), (
            counts[f"{ns}/cmd_vel"],
            len(driving),
        )
    assert [e["type"] for e in events][:1] == ["episode_start"] and end["success"]
    assert counts["/diagnostics"][1] >= 1
    # deploy said what it recorded, as the bag has it.
    assert f"/robot_0/scan: {counts['/robot_0/scan'][1]}" in output

    picture = tmp_path / "paths.png"
    assert main(["replay", str(bag), "--out", str(picture)]) == 0
    said = capsys.readouterr().out
    assert picture.stat().st_size > 10_000
    assert "robots: /robot_0, /robot_1" in said
    assert "frame: map (map -> odom from the sim bridge's episode events)" in said
    assert "goals reached: robot 0 at t=" in said and "robot 1 at t=" in said
    assert re.search(r"/robot_1/scan +\d+ +sensor_msgs/msg/LaserScan", said)


# --------------------------------------------------------------------------- #
# A real fleet's bag (what `ros2 bag record` gives on TB3s), without DDS.
# --------------------------------------------------------------------------- #


def quaternion(yaw: float):
    return TYPES.types["geometry_msgs/msg/Quaternion"](
        0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)
    )


def header(t: float, frame: str):
    Time = TYPES.types["builtin_interfaces/msg/Time"]
    Header = TYPES.types["std_msgs/msg/Header"]
    sec = int(t)
    return Header(Time(sec, int(round((t - sec) * 1e9))), frame)


def odometry(t: float, frame: str, x: float, y: float, yaw: float):
    T = TYPES.types
    pose = T["geometry_msgs/msg/Pose"](T["geometry_msgs/msg/Point"](x, y, 0.0), quaternion(yaw))
    zero = T["geometry_msgs/msg/Vector3"](0.0, 0.0, 0.0)
    return T["nav_msgs/msg/Odometry"](
        header(t, frame),
        frame.replace("odom", "base_footprint"),
        T["geometry_msgs/msg/PoseWithCovariance"](pose, np.zeros(36)),
        T["geometry_msgs/msg/TwistWithCovariance"](
            T["geometry_msgs/msg/Twist"](zero, zero), np.zeros(36)
        ),
    )


def goal(t: float, frame: str, x: float, y: float):
    T = TYPES.types
    pose = T["geometry_msgs/msg/Pose"](T["geometry_msgs/msg/Point"](x, y, 0.0), quaternion(0.0))
    return T["geometry_msgs/msg/PoseStamped"](header(t, frame), pose)


def map_to_odom(t: float, frames: dict[str, tuple[float, float, float]]):
    T = TYPES.types
    return T["tf2_msgs/msg/TFMessage"](
        [
            T["geometry_msgs/msg/TransformStamped"](
                header(t, "map"),
                child,
                T["geometry_msgs/msg/Transform"](
                    T["geometry_msgs/msg/Vector3"](x, y, 0.0), quaternion(yaw)
                ),
            )
            for child, (x, y, yaw) in frames.items()
        ]
    )


def write_tb3_bag(path: Path, *, with_tf: bool) -> None:
    """Two TB3s, each driving 1 m straight ahead in its own odom frame for 5 s;
    tb3_1 starts 2 m to the left of tb3_0 facing the other way (map -> odom);
    goals given in map, tb3_0's reached, tb3_1's 1 m short."""
    origins = {"tb3_0/odom": (0.0, 0.0, 0.0), "tb3_1/odom": (0.0, 2.0, math.pi)}
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as bag:

        def topic(name: str, msgtype: str):
            return bag.add_connection(name, msgtype, typestore=TYPES)

        odom = {ns: topic(f"/{ns}/odom", "nav_msgs/msg/Odometry") for ns in ("tb3_0", "tb3_1")}
        goals = {ns: topic(f"/{ns}/goal", "geometry_msgs/msg/PoseStamped") for ns in odom}
        t0 = 1_700_000_000.0

        def write(connection, t: float, msg) -> None:
            bag.write(connection, int(t * 1e9), TYPES.serialize_cdr(msg, connection.msgtype))

        if with_tf:
            write(topic("/tf_static", "tf2_msgs/msg/TFMessage"), t0, map_to_odom(t0, origins))
        write(goals["tb3_0"], t0, goal(t0, "map", 1.0, 0.0))
        write(goals["tb3_1"], t0, goal(t0, "map", -2.0, 2.0))
        for k in range(51):
            t = t0 + 0.1 * k
            for ns in odom:
                write(odom[ns], t, odometry(t, f"{ns}/odom", 0.02 * k, 0.0, 0.0))


def test_a_real_fleets_bag_is_drawn_in_map_with_the_recorded_map_to_odom(tmp_path, capsys):
    bag = tmp_path / "tb3_run"
    write_tb3_bag(bag, with_tf=True)
    from swarm_ops import replay

    contents = replay.read_bag(bag)
    assert [t.namespace for t in contents.robots] == ["/tb3_0", "/tb3_1"]
    ends = {t.namespace: replay.in_map(contents, t)[-1] for t in contents.robots}
    assert ends["/tb3_0"][:2] == pytest.approx([1.0, 0.0])
    assert ends["/tb3_1"][:2] == pytest.approx([-1.0, 2.0]), "tb3_1 drove along -x in map"

    assert main(["replay", str(bag)]) == 0
    said = capsys.readouterr().out
    assert "frame: map (map -> odom from /tf)" in said
    assert "goals reached: /tb3_0: ended 0.00 m from its goal" in said
    assert "tb3_1" not in said.split("goals reached:")[1], "tb3_1 stopped 1 m short"
    assert re.search(r"/tb3_0/odom +51 +nav_msgs/msg/Odometry", said)
    picture = tmp_path / "tb3_run_paths.png"
    assert f"paths: {picture}" in said and picture.stat().st_size > 10_000


def test_without_map_to_odom_each_robot_is_drawn_in_its_own_odom_frame(tmp_path, capsys):
    bag = tmp_path / "tb3_run"
    write_tb3_bag(bag, with_tf=False)
    out = tmp_path / "picture.png"
    assert main(["replay", str(bag), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "frame: each robot in its own odom frame" in said and "no /tf" in said
    # Goals in map cannot be placed in an odom frame: none is claimed reached.
    assert "goals reached: none seen" in said
    assert out.stat().st_size > 10_000


def test_replay_of_a_folder_that_is_no_bag_says_so(tmp_path, capsys):
    assert main(["replay", str(tmp_path)]) == 2
    assert "not a rosbag2 folder (no metadata.yaml)" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# What deploy records, and the RViz config (no DDS).
# --------------------------------------------------------------------------- #


def test_deploy_records_each_robots_topics_where_its_remappings_put_them():
    from swarm_controller.fleet import POLICY_NODE, NodeSpec
    from swarm_ops.recorder import recorded_topics

    specs = [
        NodeSpec(POLICY_NODE, "policy_node", "/tb3_0", {"cmd_vel_stamped": True}),
        NodeSpec(
            POLICY_NODE,
            "policy_node",
            "/base_2",
            {"cmd_vel_stamped": False},
            remappings=(("scan", "/base_2/lidar/scan"), ("cmd_vel", "cmd_vel_nav")),
        ),
    ]
    topics = {t.name: (t.msgtype, t.listen) for t in recorded_topics(specs, tf=True)}
    assert topics["/tb3_0/cmd_vel"] == ("geometry_msgs/msg/TwistStamped", "commands")
    assert topics["/base_2/cmd_vel_nav"] == ("geometry_msgs/msg/Twist", "commands")
    assert topics["/base_2/lidar/scan"] == ("sensor_msgs/msg/LaserScan", "sensor")
    assert topics["/tb3_0/goal"][1] == "latched+volatile", "RViz's goals and latched ones"
    assert {"/swarm/events", "/diagnostics", "/tf", "/tf_static"} <= set(topics)
    assert "/tf" not in {t.name for t in recorded_topics(specs, tf=False)}


def test_the_fleet_rviz_config_shows_each_tb3_and_sends_goals_to_tb3_0():
    config = yaml.safe_load((REPO / "ros2_ws/src/swarm_ops/config/fleet.rviz").read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "map"
    shown = {
        (d["Class"].split("/")[-1], d.get("Topic", {}).get("Value")) for d in manager["Displays"]
    }
    for ns in ("tb3_0", "tb3_1", "tb3_2"):
        assert ("LaserScan", f"/{ns}/scan") in shown and ("Pose", f"/{ns}/goal") in shown
    assert ("TF", None) in shown and ("RobotModel", None) in shown
    [goal_tool] = [t for t in manager["Tools"] if t["Class"] == "rviz_default_plugins/SetGoal"]
    assert goal_tool["Topic"]["Value"] == "/tb3_0/goal"
    scans = [d for d in manager["Displays"] if d["Class"].endswith("LaserScan")]
    assert {d["Topic"]["Reliability Policy"] for d in scans} == {"Best Effort"}


def test_replay_lists_robots_in_robot_order_whatever_the_recorder_saw_first():
    """The recorder discovers topics in an order that varies with load."""
    from swarm_ops.replay import natural_key

    seen = ["/robot_10/odom", "/robot_1/odom", "/robot_2/odom", "/robot_0/odom"]
    assert sorted(seen, key=natural_key) == [
        "/robot_0/odom",
        "/robot_1/odom",
        "/robot_2/odom",
        "/robot_10/odom",
    ]
