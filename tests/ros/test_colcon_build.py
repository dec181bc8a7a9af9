"""The three ament_python packages build with colcon, install what ROS 2 tools look
for, and pass their own tests under `colcon test` (as the hosted CI runs them),
all on a copy of ros2_ws/src outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = REPO / "ros2_ws"
COLCON = Path(sys.executable).parent / "colcon"
PACKAGES = ("swarm_contract", "swarm_controller", "swarm_ops")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A copy of ros2_ws/src, colcon-built outside the checkout (colcon leaves
    build/, install/ and log/ folders, and pytest caches, where it runs)."""
    if not COLCON.exists():
        pytest.skip("needs colcon: pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("colcon")
    shutil.copytree(
        WORKSPACE / "src",
        out / "src",
        ignore=shutil.ignore_patterns(
            "*.egg-info", "__pycache__", ".ruff_cache", "build", "install", "log"
        ),
    )
    build = colcon(out, "build", "--base-paths", "src")
    assert build.returncode == 0, build.stdout + build.stderr
    return out


@pytest.fixture(scope="module")
def install(workspace) -> Path:
    return workspace / "install"


def colcon(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [COLCON, *args, "--event-handlers", "console_direct-"]
        if args[0] in ("build", "test")
        else [COLCON, *args],
        cwd=workspace,
        env=colcon_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def colcon_env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{COLCON.parent}{os.pathsep}{os.environ.get('PATH', '')}")


def test_every_package_is_in_the_ament_index_with_its_package_xml(install):
    for package in PACKAGES:
        share = install / package / "share"
        assert (share / "ament_index/resource_index/packages" / package).is_file(), package
        assert (share / package / "package.xml").is_file(), package


def test_the_controller_installs_its_node_launch_files_and_config(install):
    prefix = install / "swarm_controller"
    share = prefix / "share" / "swarm_controller"
    node_script = prefix / "lib" / "swarm_controller" / "policy_node"
    assert node_script.is_file() and os.access(node_script, os.X_OK)
    assert (share / "config" / "policy_node.yaml").is_file()
    launch = share / "launch"
    for name in (
        "swarm_sim.launch.py",
        "robot.launch.py",
        "fleet.launch.py",
        "fleet_example.yaml",
        "swarm_sim.rviz",
    ):
        path = launch / name
        # Real files: `ros2 launch` must not depend on this checkout staying put.
        assert path.is_file() and not path.is_symlink(), path


def test_ops_installs_the_sim_bridge_and_its_sample_parameters(install):
    prefix = install / "swarm_ops"
    script = prefix / "lib" / "swarm_ops" / "sim_bridge"
    assert script.is_file() and os.access(script, os.X_OK)
    assert (prefix / "share" / "swarm_ops" / "config" / "sim_bridge.yaml").is_file()


def test_ros_tools_find_the_installed_packages_not_this_checkout(install):
    """What `ros2 run` / launch_ros resolve: share folders through the ament index,
    and the installed modules (with their package data) on the install's path."""
    prefixes = [install / p for p in PACKAGES]
    sites = [str(next((p / "lib").glob("python3*/site-packages"))) for p in prefixes]
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ament_index_python.packages import get_package_share_directory as share\n"
            "import swarm_controller.policy_node as node, swarm_ops.swap as ops\n"
            "from swarm_contract.robot_io import load_profile\n"
            "print(share('swarm_controller')); print(share('swarm_ops'))\n"
            "print(node.__file__); print(ops.__file__); print(load_profile().name)",
        ],
        env=dict(
            colcon_env(),
            AMENT_PREFIX_PATH=os.pathsep.join(map(str, prefixes)),
            PYTHONPATH=os.pathsep.join(sites),
        ),
        cwd=install,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    controller_share, ops_share, node_file, ops_file, profile = probe.stdout.split()
    assert Path(controller_share) == install / "swarm_controller/share/swarm_controller"
    assert Path(ops_share) == install / "swarm_ops/share/swarm_ops"
    assert Path(node_file).is_relative_to(install / "swarm_controller")
    assert Path(ops_file).is_relative_to(install / "swarm_ops")
    assert profile == "turtlebot3_burger"


def test_nothing_installed_is_a_link_back_into_the_sources(install):
    """A plain (not --symlink-install) build copies everything: the install
    keeps working when the checkout moves or goes."""
    links = [p for p in install.rglob("*") if p.is_symlink()]
    assert links == []


def test_colcon_test_runs_every_packages_own_tests_and_they_pass(workspace):
    """What the hosted CI runs after its build. A package without tests makes
    colcon fall back to unittest, which exits 5 ("NO TESTS RAN")."""
    run = colcon(workspace, "test")
    assert run.returncode == 0, run.stdout + run.stderr
    result = colcon(workspace, "test-result", "--verbose")
    assert result.returncode == 0, result.stdout + result.stderr
    for package in PACKAGES:
        report = workspace / "build" / package / "pytest.xml"
        suite = ElementTree.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        assert int(suite.get("tests")) > 0, package
        assert int(suite.get("failures")) == int(suite.get("errors")) == 0, package
