"""ament_python package swarm_contract: the robot-side observation/action contract."""

from setuptools import find_packages, setup

PACKAGE = "swarm_contract"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["profiles/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    # numpy, onnxruntime and pyyaml come from rosdep (package.xml) or pip; naming
    # them here would make colcon's pip step fight the distro's numpy.
    install_requires=["setuptools"],
    # colcon test runs pytest (not unittest) for packages that name it here.
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="swarm controller maintainers",
    maintainer_email="maintainers@example.org",
    description="Observation/action contract and ONNX policy loader shared by robot and trainer.",
    license="Apache-2.0",
)
