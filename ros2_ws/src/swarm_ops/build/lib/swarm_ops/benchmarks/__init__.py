"""Benchmarks of the ROS side: `swarm bench node` and `swarm bench deploy`."""
