"""The floor of `swarm bench node`: a bare rclpy node answering each scan with a
TwistStamped carrying the scan's stamp.

Same DDS path, QoS and executor type as the policy node's control path,
without the policy: what this machine's rclpy + Fast DDS cost by themselves.
Started like any node (`python -m swarm_ops.benchmarks.scan_echo --ros-args
-r __ns:=/<robot>`): it reads <robot>/scan and writes <robot>/cmd_vel.
"""

from __future__ import annotations


def main() -> None:
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import LaserScan

    rclpy.init()
    node = rclpy.create_node("scan_echo")
    pub = node.create_publisher(
        TwistStamped, "cmd_vel", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    )
    reply = TwistStamped()

    def on_scan(scan: LaserScan) -> None:
        reply.header.stamp = scan.header.stamp
        pub.publish(reply)

    node.create_subscription(LaserScan, "scan", on_scan, qos_profile_sensor_data)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
