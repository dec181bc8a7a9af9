"""One real robot: its policy node in the robot's namespace, wired to the robot's topics.

    ros2 launch swarm_controller robot.launch.py namespace:=tb3_0 \
        policy:=/opt/swarm/models/default agent:=0

The node reads <namespace>/scan, <namespace>/odom, <namespace>/goal and writes
<namespace>/cmd_vel. A robot whose driver uses other names needs no code:
scan_topic, odom_topic, goal_topic and cmd_vel_topic remap them (relative to
the namespace, or absolute), and cmd_vel_stamped:=true publishes TwistStamped
for bases that want it (e.g. a ros2_control diff_drive_controller on Jazzy).
The decision is swarm_controller.fleet.robot_node_spec's, shared with
fleet.launch.py and `swarm deploy`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from swarm_controller.fleet import launch_actions, parse_count, parse_flag, robot_node_spec


def _robot(context):
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    spec = robot_node_spec(
        namespace=arg("namespace"),
        policy=arg("policy"),
        agent=parse_count(arg("agent"), "agent"),
        scan_topic=arg("scan_topic"),
        odom_topic=arg("odom_topic"),
        goal_topic=arg("goal_topic"),
        cmd_vel_topic=arg("cmd_vel_topic"),
        cmd_vel_stamped=parse_flag(arg("cmd_vel_stamped"), "cmd_vel_stamped"),
        use_sim_time=parse_flag(arg("use_sim_time"), "use_sim_time"),
    )
    return launch_actions([spec])


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", description="The robot's namespace, e.g. tb3_0."),
            DeclareLaunchArgument(
                "policy",
                description="models/<name> folder (the node runs robot_<agent>.onnx) or one"
                " .onnx file.",
            ),
            DeclareLaunchArgument(
                "agent", default_value="0", description="Which robot_<i>.onnx of a policy folder."
            ),
            DeclareLaunchArgument(
                "scan_topic", default_value="scan", description="The robot's LaserScan topic."
            ),
            DeclareLaunchArgument(
                "odom_topic", default_value="odom", description="The robot's Odometry topic."
            ),
            DeclareLaunchArgument(
                "goal_topic", default_value="goal", description="Where goals (PoseStamped) come in."
            ),
            DeclareLaunchArgument(
                "cmd_vel_topic", default_value="cmd_vel", description="The base's velocity input."
            ),
            DeclareLaunchArgument(
                "cmd_vel_stamped",
                default_value="false",
                choices=["true", "false"],
                description="Publish TwistStamped instead of Twist.",
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                choices=["true", "false"],
                description="Follow /clock (Gazebo or the sim bridge).",
            ),
            OpaqueFunction(function=_robot),
        ]
    )
