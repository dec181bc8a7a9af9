"""ROS 2 nodes of the MAPPO swarm controller (robot side).

`policy_node` runs one robot's exported ONNX actor on that robot's own scan,
odom and goal; `fleet` decides which policy nodes a launch file starts. It
needs the swarm_contract package (numpy + onnxruntime + pyyaml) and rclpy,
never torch, pybullet or the training package.
"""
