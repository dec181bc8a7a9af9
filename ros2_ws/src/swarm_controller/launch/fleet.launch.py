"""A fleet of real robots from a YAML file: one policy node per entry.

    ros2 launch swarm_controller fleet.launch.py fleet:=/path/to/fleet.yaml

Each entry gives a robot's namespace, policy, topic remappings and parameters
(see fleet_example.yaml next to this file). swarm_controller.fleet reads and
checks the file and decides the nodes, exactly as `swarm deploy --fleet` does;
a mistake in the file (an unknown key, a missing policy, two robots in one
namespace) stops the launch with a message naming it.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from swarm_controller.fleet import fleet_node_specs, launch_actions, load_fleet


def _fleet(context):
    fleet = load_fleet(LaunchConfiguration("fleet").perform(context))
    return launch_actions(fleet_node_specs(fleet))


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "fleet",
                description="Fleet YAML: policy, parameters and one entry per robot"
                " (relative paths inside it are relative to the file).",
            ),
            OpaqueFunction(function=_fleet),
        ]
    )
