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
        (
            f"share/{PACKAGE}/launch",
            glob("launch/*.py") + glob("launch/*.yaml") + glob("launch/*.rviz"),
        ),
    ],
    # swarm_contract and the ROS packages come from rosdep (package.xml) or pip.
    install_requires=["setuptools"],
    # colcon test runs pytest (not unittest) for packages that name it here.
    extras_require={"test": ["pytest"]},
    zip_safe=True,
    maintainer="swarm controller maintainers",
    maintainer_email="maintainers@example.org",
    description="Per-robot ONNX policy node with live policy swap.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"policy_node = {PACKAGE}.policy_node:main",
        ],
    },
)
