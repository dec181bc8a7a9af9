"""ROS 2 nodes of the MAPPO swarm controller (robot side).

`policy_node` runs one robot's exported ONNX actor on that robot's own scan,
odom and goal. It needs mappo_training's light base install only (robot_io,
onnx_policy: numpy + onnxruntime), never torch or pybullet.
"""
