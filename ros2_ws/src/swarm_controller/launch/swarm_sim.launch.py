"""A simulated swarm: the sim bridge plus one policy node per robot, each in its namespace.

    ros2 launch swarm_controller swarm_sim.launch.py num_robots:=4 policy:=models/default

Robot i runs in /robot_<i> (topics scan, odom, goal, cmd_vel, published by the
bridge) with models/<name>/robot_<i mod n>.onnx; policy nodes respawn if they
crash. Which nodes start with which settings is decided by
swarm_controller.fleet.sim_node_specs, the same function `swarm deploy --sim`
uses, so both roads start the same nodes. The bridge is swarm_ops's (it needs
the simulator): build the whole workspace, not only what a robot needs.

Every launch file here also takes params_file (default: the installed
config/policy_node.yaml; the launch's own settings override it), autostart
(empty: as params_file says) and lifecycle_manager. A node with
autostart:=false is a launch_ros LifecycleNode that this launch configures
(after every start, respawns included) and then activates, so the robot still
drives; lifecycle_manager:=true leaves every transition to your manager.
Crashed policy nodes respawn at most swarm_controller.fleet.RESPAWN_MAX_RETRIES
times, as under `swarm deploy`.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from swarm_controller.fleet import (
    SCENARIOS,
    launch_nodes,
    parse_count,
    parse_flag,
    policy_node_arguments,
    sim_node_specs,
)

RVIZ_CONFIG = Path(__file__).resolve().with_name("swarm_sim.rviz")


def _swarm(context):
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    specs = sim_node_specs(
        num_robots=parse_count(arg("num_robots"), "num_robots"),
        policy=arg("policy"),
        scenario=arg("scenario"),
        seed=parse_count(arg("seed"), "seed"),
        use_sim_time=parse_flag(arg("use_sim_time"), "use_sim_time"),
        bridge_parameters={"episodes": parse_count(arg("episodes"), "episodes")},
    )
    return launch_nodes(specs, context)


def _rviz(context):
    if not parse_flag(LaunchConfiguration("rviz").perform(context), "rviz"):
        return []
    use_sim_time = parse_flag(LaunchConfiguration("use_sim_time").perform(context), "use_sim_time")
    # Without the config file (an install that did not ship it) RViz starts
    # empty; add a MarkerArray display on /swarm/markers by hand.
    arguments = ["-d", str(RVIZ_CONFIG)] if RVIZ_CONFIG.is_file() else []
    return [
        Node(
            package="rviz2",
            executable="rviz2",
            arguments=arguments,
            parameters=[{"use_sim_time": use_sim_time}],
            output="log",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "num_robots", default_value="4", description="Simulated robots (1 to 64)."
            ),
            DeclareLaunchArgument(
                "scenario",
                default_value="random",
                choices=list(SCENARIOS),
                description="random starts and goals, a circle crossing, or two groups swapping",
            ),
            DeclareLaunchArgument(
                "policy",
                default_value="models/default",
                description="models/<name> folder from `swarm export` (a relative path is"
                " relative to the current folder)",
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="true",
                choices=["true", "false"],
                description="The bridge publishes /clock and every node follows it.",
            ),
            DeclareLaunchArgument(
                "rviz",
                default_value="false",
                choices=["true", "false"],
                description="Also start RViz showing /swarm/markers.",
            ),
            DeclareLaunchArgument("seed", default_value="0", description="Layout seed."),
            DeclareLaunchArgument(
                "episodes",
                default_value="0",
                description="Episodes before the bridge exits; 0: run forever.",
            ),
            *policy_node_arguments(),
            OpaqueFunction(function=_swarm),
            OpaqueFunction(function=_rviz),
        ]
    )
