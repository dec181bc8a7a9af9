"""A fleet of real robots from a YAML file: one policy node per entry.

    ros2 launch swarm_controller fleet.launch.py fleet:=/path/to/fleet.yaml

Each entry gives a robot's namespace, policy, topic remappings and parameters
(see fleet_example.yaml next to this file). swarm_controller.fleet reads and
checks the file and decides the nodes, exactly as `swarm deploy --fleet` does;
a mistake in the file (an unknown key, a missing policy, two robots in one
namespace) stops the launch with a message naming it.

Every launch file here also takes params_file (default: the installed
config/policy_node.yaml; the launch's own settings override it), autostart
(empty: as params_file says) and lifecycle_manager. A node with
autostart:=false is a launch_ros LifecycleNode that this launch configures
(after every start, respawns included) and then activates, so the robot still
drives; lifecycle_manager:=true leaves every transition to your manager.
Crashed policy nodes respawn at most swarm_controller.fleet.RESPAWN_MAX_RETRIES
times, as under `swarm deploy`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from swarm_controller.fleet import (
    fleet_node_specs,
    launch_nodes,
    load_fleet,
    policy_node_arguments,
)


def _fleet(context):
    fleet = load_fleet(LaunchConfiguration("fleet").perform(context))
    return launch_nodes(fleet_node_specs(fleet), context)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "fleet",
                description="Fleet YAML: policy, parameters and one entry per robot"
                " (relative paths inside it are relative to the file).",
            ),
            *policy_node_arguments(),
            OpaqueFunction(function=_fleet),
        ]
    )
