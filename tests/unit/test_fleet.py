"""The node-spec function: which nodes a deployment starts, where, and with what.

Both the launch files and `swarm deploy` start exactly these specs, so these
tests are the contract between a fleet description and the running robots.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip(
    "swarm_controller", reason="needs swarm_controller: pip install -e ros2_ws/src/swarm_controller"
)

from conftest import write_policy

from swarm_contract.config import ConfigError
from swarm_controller import parameters
from swarm_controller.fleet import (
    find_policy,
    fleet_node_specs,
    load_fleet,
    parse_flag,
    robot_node_spec,
    sim_node_specs,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_FLEET = REPO / "launch" / "fleet_example.yaml"


def test_a_simulated_swarm_is_the_bridge_and_one_policy_node_per_bridge_namespace(tmp_path):
    policy = write_policy(tmp_path / "models" / "nav", robots=4)
    specs = sim_node_specs(num_robots=3, policy=policy, scenario="swap", seed=7)

    bridge, *robots = specs
    assert (bridge.executable, bridge.namespace) == ("sim_bridge", "")
    assert bridge.parameters["num_robots"] == 3
    assert bridge.parameters["scenario"] == "swap" and bridge.parameters["seed"] == 7
    assert bridge.parameters["publish_clock"] is True
    assert not bridge.respawn, "restarting the simulator would silently start a new world"

    prefix = bridge.parameters["namespace_prefix"]
    assert [r.namespace for r in robots] == [f"/{prefix}{i}" for i in range(3)]
    for i, robot in enumerate(robots):
        assert robot.executable == "policy_node" and robot.respawn
        assert robot.parameters["policy_path"] == str((policy / f"robot_{i}.onnx").resolve())
        assert robot.parameters["use_sim_time"] is True
        # The node's topics land where the bridge publishes robot i's.
        assert robot.topic("scan") == f"/{prefix}{i}/scan"
        assert robot.topic("cmd_vel") == f"/{prefix}{i}/cmd_vel"
        # Swaps to a sibling models/<name> folder are allowed, others refused.
        assert robot.parameters["allowed_policy_dirs"] == [str((tmp_path / "models").resolve())]


def test_more_robots_than_policy_files_reuse_them_in_turn(tmp_path):
    policy = write_policy(tmp_path / "nav", robots=2)
    robots = sim_node_specs(num_robots=5, policy=policy)[1:]
    names = [Path(r.parameters["policy_path"]).name for r in robots]
    assert names == ["robot_0.onnx", "robot_1.onnx", "robot_0.onnx", "robot_1.onnx", "robot_0.onnx"]


def test_sim_overrides_reach_the_nodes_and_stamped_commands_match_the_bridge(tmp_path):
    policy = write_policy(tmp_path / "nav", robots=1)
    specs = sim_node_specs(
        num_robots=2,
        policy=policy,
        use_sim_time=False,
        bridge_parameters={"cmd_vel_stamped": True, "real_time_factor": 3.0},
        policy_parameters={"sensor_timeout": 1.5},
    )
    assert specs[0].parameters["publish_clock"] is False
    assert specs[0].parameters["real_time_factor"] == 3.0
    for robot in specs[1:]:
        assert robot.parameters["use_sim_time"] is False
        assert robot.parameters["cmd_vel_stamped"] is True
        assert robot.parameters["sensor_timeout"] == 1.5


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"num_robots": 0}, "num_robots=0"),
        ({"scenario": "maze"}, "'maze'"),
        ({"policy": "no/such/folder"}, "no/such/folder"),
    ],
)
def test_bad_sim_settings_name_the_value_and_what_would_do(tmp_path, kwargs, named):
    settings = {"num_robots": 2, "policy": write_policy(tmp_path / "nav", 1), **kwargs}
    with pytest.raises(ConfigError) as err:
        sim_node_specs(**settings)
    assert named in str(err.value)


def test_a_relative_policy_is_looked_up_in_the_current_folder_only(tmp_path, monkeypatch):
    write_policy(tmp_path / "models" / "nav", robots=1)
    monkeypatch.chdir(tmp_path)
    assert find_policy("models/nav").resolve() == (tmp_path / "models" / "nav").resolve()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError) as err:
        sim_node_specs(num_robots=1, policy="models/nav")
    message = str(err.value)
    assert f"policy 'models/nav' not found in {elsewhere};" in message
    assert "relative to the current folder" in message


def test_a_policy_folder_without_onnx_files_is_refused_with_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no robot_<i>.onnx.*swarm export"):
        sim_node_specs(num_robots=1, policy=tmp_path / "empty")


def fleet_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site" / "fleet.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_fleet_file_gives_each_robot_its_namespace_policy_remaps_and_parameters(tmp_path):
    write_policy(tmp_path / "models" / "nav", robots=2)
    special = write_policy(tmp_path / "models" / "careful", robots=1) / "robot_0.onnx"
    path = fleet_file(
        tmp_path,
        """
policy: ../models/nav
parameters: {sensor_timeout: 0.4, max_linear: 0.2}
robots:
  - namespace: tb3_0
  - namespace: /lab/tb3_1
    remappings: {cmd_vel: cmd_vel_nav, scan: /lab/tb3_1/lidar}
    parameters: {max_linear: 0.1, cmd_vel_stamped: true}
  - namespace: tb3_2
    policy: ../models/careful/robot_0.onnx
""",
    )
    a, b, c = fleet_node_specs(load_fleet(path))

    assert [s.namespace for s in (a, b, c)] == ["/tb3_0", "/lab/tb3_1", "/tb3_2"]
    assert a.parameters["policy_path"] == str((tmp_path / "models/nav/robot_0.onnx").resolve())
    assert b.parameters["policy_path"] == str((tmp_path / "models/nav/robot_1.onnx").resolve())
    assert c.parameters["policy_path"] == str(special.resolve())
    # The robot's own parameters win over the fleet's.
    assert (a.parameters["max_linear"], b.parameters["max_linear"]) == (0.2, 0.1)
    assert b.parameters["sensor_timeout"] == 0.4 and b.parameters["cmd_vel_stamped"] is True
    assert a.topic("cmd_vel") == "/tb3_0/cmd_vel"
    assert b.topic("cmd_vel") == "/lab/tb3_1/cmd_vel_nav"
    assert b.topic("scan") == "/lab/tb3_1/lidar"
    assert b.topic("odom") == "/lab/tb3_1/odom"
    assert all(s.respawn for s in (a, b, c))


def test_the_example_fleet_file_is_a_stock_jazzy_turtlebot3_fleet(tmp_path):
    # The example points at ../models/default; give it one next to a copy.
    site = tmp_path / "launch"
    site.mkdir()
    shutil.copy(EXAMPLE_FLEET, site / "fleet.yaml")
    write_policy(tmp_path / "models" / "default", robots=4)
    known = parameters.NAMES | {"use_sim_time"}
    specs = fleet_node_specs(load_fleet(site / "fleet.yaml"), known_parameters=known)

    assert [s.namespace for s in specs] == ["/tb3_0", "/tb3_1", "/tb3_2"]
    for i, spec in enumerate(specs):
        # ROBOTIS' bringup in namespace tb3_<i>: its own topics, nothing remapped,
        # TwistStamped commands, frames prefixed by the namespace (the node's default).
        assert [spec.topic(t) for t in ("scan", "odom", "goal", "cmd_vel")] == [
            f"/tb3_{i}/{t}" for t in ("scan", "odom", "goal", "cmd_vel")
        ]
        assert spec.parameters["cmd_vel_stamped"] is True
        assert "frame_prefix" not in spec.parameters
        # Goals in map need each robot's start pose: three distinct ones.
        assert len(spec.parameters["map_to_odom"]) == 3
        assert all(type(v) is float for v in spec.parameters["map_to_odom"])
        assert Path(spec.parameters["policy_path"]).name == f"robot_{i}.onnx"
    assert len({tuple(s.parameters["map_to_odom"]) for s in specs}) == 3


@pytest.mark.parametrize(
    "robots, named",
    [
        ("[{namespace: tb3_0}, {namespace: /tb3_0}]", "already used by robots[0]"),
        ("[{namespace: 3rd_robot}]", "'3rd_robot' is not a ROS namespace"),
        ("[{namespace: tb3_0, remappings: {laser: /scan}}]", "'laser' is not a topic"),
        ("[{namespace: tb3_0, remappings: {scan: 'not a topic'}}]", "'not a topic'"),
        ("[{namespace: tb3_0, polcy: x}]", "robots[0].polcy"),
        ("[]", "`robots` is empty"),
    ],
)
def test_fleet_file_mistakes_are_refused_naming_the_entry(tmp_path, robots, named):
    write_policy(tmp_path / "site" / "nav", robots=1)
    path = fleet_file(tmp_path, f"policy: nav\nrobots: {robots}\n")
    with pytest.raises(ConfigError) as err:
        fleet_node_specs(load_fleet(path))
    assert named in str(err.value)


def test_a_misspelt_node_parameter_is_caught_before_anything_starts(tmp_path):
    write_policy(tmp_path / "site" / "nav", robots=1)
    path = fleet_file(
        tmp_path, "policy: nav\nrobots: [{namespace: a, parameters: {sensor_timout: 1.0}}]\n"
    )
    known = {"policy_path", "allowed_policy_dirs", "use_sim_time", "sensor_timeout"}
    with pytest.raises(ConfigError, match=r"robots\[0\].*'sensor_timout'.*sensor_timeout"):
        fleet_node_specs(load_fleet(path), known_parameters=known)


def test_a_robot_without_a_policy_is_refused(tmp_path):
    path = fleet_file(tmp_path, "robots: [{namespace: tb3_0}]\n")
    with pytest.raises(ConfigError, match=r"robots\[0\]: no policy"):
        fleet_node_specs(load_fleet(path))


def test_one_real_robot_with_its_own_topic_names(tmp_path):
    policy = write_policy(tmp_path / "nav", robots=3)
    spec = robot_node_spec(
        namespace="tb3_0",
        policy=policy,
        agent=2,
        scan_topic="scan",
        cmd_vel_topic="/base/cmd_vel_in",
        cmd_vel_stamped=True,
    )
    assert spec.namespace == "/tb3_0" and spec.respawn
    assert spec.parameters["policy_path"] == str((policy / "robot_2.onnx").resolve())
    assert spec.parameters["cmd_vel_stamped"] is True
    assert spec.remappings == (("cmd_vel", "/base/cmd_vel_in"),)
    assert spec.topic("scan") == "/tb3_0/scan"


def test_the_command_line_carries_namespace_remaps_and_typed_parameters(tmp_path):
    policy = write_policy(tmp_path / "nav", robots=1)
    spec = robot_node_spec(
        namespace="tb3_0",
        policy=policy,
        odom_topic="/tb3_0/wheel_odom",
        parameters={"sensor_timeout": 1.0, "base_frame": "true"},
    )
    command = spec.command("python3")
    assert command[:3] == ["python3", "-m", "swarm_controller.policy_node"]
    args = command[3:]
    assert args[0] == "--ros-args"
    pairs = list(zip(args[1::2], args[2::2], strict=True))
    assert ("-r", "__ns:=/tb3_0") in pairs
    assert ("-r", "odom:=/tb3_0/wheel_odom") in pairs
    # A float stays a float, and a string that reads like a bool stays a string.
    assert ("-p", "sensor_timeout:=1.0") in pairs
    assert ("-p", 'base_frame:="true"') in pairs


@pytest.mark.parametrize("text, value", [("true", True), ("False", False), ("1", True)])
def test_launch_flags(text, value):
    assert parse_flag(text, "rviz") is value


def test_a_bad_launch_flag_names_the_argument():
    with pytest.raises(ConfigError, match="rviz:='maybe' must be true or false"):
        parse_flag("maybe", "rviz")


@pytest.mark.ros
def test_ros_reads_the_command_line_as_the_spec_means_it(tmp_path, ros_domain):
    """rcl itself parses the arguments: namespace, name, remaps and parameter types."""
    import rclpy
    from rclpy.parameter import Parameter

    policy = write_policy(tmp_path / "models" / "nav", robots=1)
    spec = robot_node_spec(
        namespace="lab/tb3_0",
        policy=policy,
        odom_topic="wheel_odom",
        parameters={"sensor_timeout": 1.0, "base_frame": "true", "goal_tolerance": 0.2},
    )
    context = rclpy.Context()
    rclpy.init(args=["node", *spec.ros_arguments()], context=context)
    try:
        node = rclpy.create_node(
            "placeholder", context=context, automatically_declare_parameters_from_overrides=True
        )
        assert (node.get_namespace(), node.get_name()) == ("/lab/tb3_0", "policy_node")
        assert node.resolve_topic_name("odom") == "/lab/tb3_0/wheel_odom"
        assert node.resolve_topic_name("scan") == "/lab/tb3_0/scan"
        timeout = node.get_parameter("sensor_timeout")
        assert timeout.type_ is Parameter.Type.DOUBLE and timeout.value == 1.0
        assert node.get_parameter("base_frame").value == "true"
        assert node.get_parameter("policy_path").value == spec.parameters["policy_path"]
        dirs = node.get_parameter("allowed_policy_dirs")
        assert dirs.type_ is Parameter.Type.STRING_ARRAY
        assert list(dirs.value) == spec.parameters["allowed_policy_dirs"]
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
