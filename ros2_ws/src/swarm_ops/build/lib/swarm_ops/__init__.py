"""Operations on the ROS side: start, watch, change and measure a running swarm.

The fleet spec lives with the launch files in swarm_controller; here are the
tools that act on it: `swarm deploy` (node processes without a ROS distro),
`swarm swap`, `swarm demo`, the PyBullet sim bridge, the node and deploy
benchmarks. What they and the tests share: `rosclient` (a node of this process
on the swarm's graph), `node_processes` (node specs started as processes),
`watch` (what a simulated swarm does, seen over ROS 2) and `onnx_models`
(stand-in policy files). Nothing here imports the training package at import
time; the sim bridge, the demo and the deploy benchmark import its simulator
when they run.
"""
