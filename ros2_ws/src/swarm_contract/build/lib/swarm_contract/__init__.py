"""The robot-side contract: what a robot needs to run a policy, and nothing more.

`robot_io` maps a robot's LaserScan, odometry and goal to the policy's input and
its output to `(v, w)`; `onnx_policy` loads and checks an exported actor;
`config` reads typed configs from YAML; `profiles/` holds robot profiles. Its
only dependencies are numpy, onnxruntime and pyyaml: the ROS node and the
training package both import it, and it imports neither.
"""
