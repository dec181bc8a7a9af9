"""MAPPO swarm controller: train in PyBullet, export per-robot ONNX actors, deploy on ROS 2.

Importing this package is cheap on purpose: a robot imports `robot_io` and
nothing heavy. Torch and PyBullet are imported only inside the functions that
need them.
"""

__version__ = "0.1.0"
