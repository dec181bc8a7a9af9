"""The ament_python package builds with colcon and installs what ROS 2 tools look for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = REPO / "ros2_ws"
COLCON = Path(sys.executable).parent / "colcon"


@pytest.mark.skipif(not COLCON.exists(), reason="colcon is not installed in this environment")
def test_colcon_builds_the_package_into_a_separate_folder(tmp_path):
    before = sorted(p.name for p in WORKSPACE.iterdir())
    env = dict(os.environ, PATH=f"{COLCON.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    build = subprocess.run(
        [
            str(COLCON),
            "--log-base",
            str(tmp_path / "log"),
            "build",
            "--base-paths",
            "src",
            "--build-base",
            str(tmp_path / "build"),
            "--install-base",
            str(tmp_path / "install"),
            "--event-handlers",
            "console_direct-",
        ],
        cwd=WORKSPACE,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert sorted(p.name for p in WORKSPACE.iterdir()) == before, "colcon wrote into ros2_ws/"

    prefix = tmp_path / "install" / "swarm_controller"
    share = prefix / "share" / "swarm_controller"
    assert (prefix / "share/ament_index/resource_index/packages/swarm_controller").is_file()
    assert (share / "package.xml").is_file()
    assert (share / "config" / "policy_node.yaml").is_file()
    node_script = prefix / "lib" / "swarm_controller" / "policy_node"
    assert node_script.is_file() and os.access(node_script, os.X_OK)

    # What `ros2 run` / launch_ros resolve: the share folder via the ament index,
    # and the installed module (not this source tree) on the install's path.
    site = next((prefix / "lib").glob("python3*/site-packages"))
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ament_index_python.packages import get_package_share_directory as share;"
            "import swarm_controller.policy_node as node;"
            "print(share('swarm_controller')); print(node.__file__)",
        ],
        env=dict(env, AMENT_PREFIX_PATH=str(prefix), PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    share_dir, module_file = probe.stdout.split()
    assert Path(share_dir) == share
    assert Path(module_file).is_relative_to(prefix)
