"""Operations on the ROS side: start, watch, change and measure a running swarm.

The fleet spec lives with the launch files in swarm_controller; here are the
tools that act on it: `swarm deploy` (node processes without a ROS distro),
`swarm swap`, `swarm demo`, the PyBullet sim bridge, the node and deploy
benchmarks, and `rosclient`, the toolkit they and the tests share. Nothing here
imports the training package at import time; the sim bridge, the demo and the
deploy benchmark import its simulator when they run.
"""
