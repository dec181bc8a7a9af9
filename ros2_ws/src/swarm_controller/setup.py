"""ament_python package swarm_controller: the per-robot policy node."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "swarm_controller"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        # launch/ links to the repository's launch files (their own issue).
        (
            f"share/{PACKAGE}/launch",
            glob("launch/*.py") + glob("launch/*.yaml") + glob("launch/*.rviz"),
        ),
    ],
    # mappo_training (robot_io, onnx_policy) comes from pip, not from here:
    # colcon must not try to resolve it as a ROS package.
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="swarm controller maintainers",
    maintainer_email="maintainers@example.org",
    description="Per-robot ONNX policy node with live policy swap.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"policy_node = {PACKAGE}.policy_node:main",
            f"sim_bridge = {PACKAGE}.sim_bridge:main",
        ],
    },
)
