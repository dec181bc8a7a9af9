"""ament_python package swarm_ops: deploy, swap, demo, sim bridge, benchmarks."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "swarm_ops"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    # Dependencies come from rosdep (package.xml) or pip; the simulator
    # (mappo_training, pybullet) only where a simulated swarm runs.
    install_requires=["setuptools"],
    # colcon test runs pytest (not unittest) for packages that name it here.
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="swarm controller maintainers",
    maintainer_email="maintainers@example.org",
    description="Start, swap, watch and measure a swarm of policy nodes; the PyBullet sim bridge.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"sim_bridge = {PACKAGE}.sim_bridge:main",
            # The operator's verbs, for machines without the trainer's `swarm`.
            f"deploy = {PACKAGE}.deploy:main",
            f"swap = {PACKAGE}.swap:main",
            f"stop = {PACKAGE}.stop:main",
            f"goal = {PACKAGE}.goal:main",
            f"status = {PACKAGE}.status:main",
            f"replay = {PACKAGE}.replay:main",
        ],
    },
)
