"""One real robot: its policy node in the robot's namespace, wired to the robot's topics.

    ros2 launch swarm_controller robot.launch.py namespace:=tb3_0 \
        policy:=/opt/swarm/models/default agent:=0

The node reads <namespace>/scan, <namespace>/odom, <namespace>/goal and writes
<namespace>/cmd_vel. A robot whose driver uses other names needs no code:
scan_topic, odom_topic, goal_topic and cmd_vel_topic remap them (relative to
the namespace, or absolute). Commands are TwistStamped, as a TurtleBot3 on
Jazzy takes them; cmd_vel_stamped:=false publishes Twist for a base that wants it.
The decision is swarm_controller.fleet.robot_node_spec's, shared with
fleet.launch.py and `swarm deploy`.

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
    launch_nodes,
    parse_count,
    parse_flag,
    policy_node_arguments,
    robot_node_spec,
)


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
    return launch_nodes([spec], context)


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
                default_value="true",
                choices=["true", "false"],
                description="Publish TwistStamped (a TurtleBot3 on Jazzy, ros2_control's"
                " diff_drive_controller); false: Twist, for a base that takes Twist.",
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                choices=["true", "false"],
                description="Follow /clock (Gazebo or the sim bridge).",
            ),
            *policy_node_arguments(),
            OpaqueFunction(function=_robot),
        ]
    )
