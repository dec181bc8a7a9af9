"""The launch files in launch/: they compile, they start what the node-spec
function decides, and (on a machine with ROS 2 Jazzy) `ros2 launch` runs them.

The ROS 2 `launch` / `launch_ros` packages are not on PyPI (they ship only with
a ROS distro), so here the launch files run against STAND_IN_LAUNCH_API: a
minimal stand-in for the few launch classes they use, written for this test,
that records what the files ask for. It checks the files' own logic
(arguments -> node-spec function -> one namespaced Node per spec, respawning at
most RESPAWN_MAX_RETRIES times; a LifecycleNode driven to active by lifecycle
events when autostart is off); it says nothing about the real launch API, which
`test_ros2_launch_starts_a_fleet_that_drives` (skipped without a ROS distro)
and the hosted CI workflow's `ros2 launch` steps exercise for real.
"""

from __future__ import annotations

import importlib.util
import json
import os
import py_compile
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

pytest.importorskip(
    "swarm_controller", reason="needs swarm_controller: pip install -e ros2_ws/src/swarm_controller"
)

from conftest import write_policy

from swarm_contract.config import ConfigError
from swarm_controller.fleet import (
    RESPAWN_MAX_RETRIES,
    fleet_node_specs,
    installed_params_file,
    load_fleet,
    robot_node_spec,
    sim_node_specs,
)

REPO = Path(__file__).resolve().parents[2]
LAUNCH_DIR = REPO / "ros2_ws" / "src" / "swarm_controller" / "launch"
LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py"))


def test_every_launch_file_compiles_and_is_installed_by_the_package():
    assert {p.name for p in LAUNCH_FILES} == {
        "swarm_sim.launch.py",
        "robot.launch.py",
        "fleet.launch.py",
    }
    for path in LAUNCH_FILES:
        py_compile.compile(str(path), doraise=True)
        assert "def generate_launch_description()" in path.read_text()
    # The package owns its launch files (colcon installs them from there); the
    # top-level launch/ is a link into it for readers of the repository.
    package_launch = REPO / "ros2_ws" / "src" / "swarm_controller" / "launch"
    assert package_launch.is_dir() and not package_launch.is_symlink()
    assert (REPO / "launch").resolve() == package_launch.resolve()


# --------------------------------------------------------------------------- #
# STAND_IN_LAUNCH_API: not ROS 2 launch; records what the launch files build.
# --------------------------------------------------------------------------- #


class StandInContext:
    """The launch context: the launch arguments' values."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values


def stand_in_launch_modules() -> dict[str, types.ModuleType]:
    """Modules named like launch's and launch_ros's, with recording classes."""

    class Recorded:
        def __init__(self, *args, **kwargs) -> None:
            self.args, self.kwargs = args, kwargs

    class LaunchDescription(Recorded):
        pass

    class DeclareLaunchArgument(Recorded):
        pass

    class OpaqueFunction(Recorded):
        pass

    class GroupAction(Recorded):
        pass

    class Node(Recorded):
        pass

    class LifecycleNode(Recorded):
        pass

    class PushRosNamespace(Recorded):
        pass

    class RegisterEventHandler(Recorded):
        pass

    class EmitEvent(Recorded):
        pass

    class OnProcessStart(Recorded):
        pass

    class OnStateTransition(Recorded):
        pass

    class ChangeState(Recorded):
        pass

    def matches_action(action):
        return ("matches", action)

    class LaunchConfiguration:
        def __init__(self, name: str) -> None:
            self.name = name

        def perform(self, context: StandInContext) -> str:
            return context.values[self.name]

    contents = {
        "launch": {"LaunchDescription": LaunchDescription},
        "launch.actions": {
            "DeclareLaunchArgument": DeclareLaunchArgument,
            "OpaqueFunction": OpaqueFunction,
            "GroupAction": GroupAction,
            "RegisterEventHandler": RegisterEventHandler,
            "EmitEvent": EmitEvent,
        },
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch.conditions": {},
        "launch.event_handlers": {"OnProcessStart": OnProcessStart},
        "launch.events": {"matches_action": matches_action},
        "launch_ros": {},
        "launch_ros.actions": {
            "Node": Node,
            "LifecycleNode": LifecycleNode,
            "PushRosNamespace": PushRosNamespace,
        },
        "launch_ros.event_handlers": {"OnStateTransition": OnStateTransition},
        "launch_ros.events": {},
        "launch_ros.events.lifecycle": {"ChangeState": ChangeState},
    }
    modules = {}
    for name, attributes in contents.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        modules[name] = module
    return modules


def run_with_stand_in(
    monkeypatch, launch_file: str, handlers: list | None = None, **arguments: str
) -> list[dict]:
    """Load a launch file against the stand-in, give it `arguments`, run its
    OpaqueFunctions; returns one dict per started node: namespace + Node kwargs
    (+ "lifecycle_node" for a LifecycleNode). Event handlers registered go to
    `handlers` as (handler class name, handler kwargs)."""
    for name, module in stand_in_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("launch_file", LAUNCH_DIR / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {
        e.args[0]: e.kwargs.get("default_value")
        for e in entities
        if type(e).__name__ == "DeclareLaunchArgument"
    }
    unknown = set(arguments) - set(declared)
    assert not unknown, f"{launch_file} declares no argument(s) {unknown}"
    values = {**declared, **arguments}
    missing = [k for k, v in values.items() if v is None]
    assert not missing, f"{launch_file} needs argument(s) {missing}"

    started = []
    context = StandInContext(values)
    for entity in entities:
        if type(entity).__name__ != "OpaqueFunction":
            continue
        for action in entity.kwargs["function"](context) or []:
            kind = type(action).__name__
            if kind == "Node":
                started.append({"namespace": "", **action.kwargs})
                continue
            if kind == "RegisterEventHandler":
                handler = action.args[0]
                if handlers is not None:
                    handlers.append((type(handler).__name__, handler.kwargs))
                continue
            assert kind == "GroupAction", "one GroupAction per node"
            inner = action.args[0]
            pushes = [a.args[0] for a in inner if type(a).__name__ == "PushRosNamespace"]
            nodes = [a for a in inner if type(a).__name__ in ("Node", "LifecycleNode")]
            assert len(nodes) == 1 and len(pushes) <= 1
            node = nodes[0]
            record = {"namespace": pushes[0] if pushes else "", **node.kwargs}
            if type(node).__name__ == "LifecycleNode":
                # launch_ros's LifecycleNode is given the absolute namespace itself.
                assert node.kwargs["namespace"] == (pushes[0] if pushes else "/")
                record["lifecycle_node"] = node
            started.append(record)
    return started


PARAMS_FILE = installed_params_file()
"""The launch files' default params_file (here: the package's source copy)."""


def as_started(spec, params_file: str = PARAMS_FILE) -> dict:
    """What a node spec should become in a launch file: policy nodes read the
    params file first, then their own parameters."""
    files = [params_file] if params_file and spec.executable == "policy_node" else []
    return {
        "namespace": spec.namespace,
        "package": spec.package,
        "executable": spec.executable,
        "name": spec.name,
        "parameters": [*files, spec.parameters],
        "remappings": list(spec.remappings),
        "respawn": spec.respawn,
        "respawn_delay": spec.respawn_delay,
        "respawn_max_retries": RESPAWN_MAX_RETRIES if spec.respawn else -1,
        "output": "screen",
    }


def test_swarm_sim_launch_with_the_stand_in_starts_the_specs_of_sim_node_specs(
    tmp_path, monkeypatch
):
    policy = write_policy(tmp_path / "models" / "nav", robots=2)
    started = run_with_stand_in(
        monkeypatch,
        "swarm_sim.launch.py",
        num_robots="3",
        policy=str(policy),
        scenario="swap",
        use_sim_time="true",
    )
    expected = sim_node_specs(
        num_robots=3, policy=policy, scenario="swap", bridge_parameters={"episodes": 0}
    )
    assert started == [as_started(s) for s in expected]
    assert [s["namespace"] for s in started] == ["", "/robot_0", "/robot_1", "/robot_2"]


def test_swarm_sim_launch_with_the_stand_in_adds_rviz_only_when_asked(tmp_path, monkeypatch):
    policy = write_policy(tmp_path / "nav", robots=1)
    without = run_with_stand_in(
        monkeypatch, "swarm_sim.launch.py", num_robots="1", policy=str(policy)
    )
    with_rviz = run_with_stand_in(
        monkeypatch, "swarm_sim.launch.py", num_robots="1", policy=str(policy), rviz="true"
    )
    assert [n["executable"] for n in with_rviz] == [n["executable"] for n in without] + ["rviz2"]
    assert with_rviz[-1]["arguments"] == ["-d", str(LAUNCH_DIR / "swarm_sim.rviz")]


def test_robot_launch_with_the_stand_in_remaps_the_robots_own_topics(tmp_path, monkeypatch):
    policy = write_policy(tmp_path / "nav", robots=2)
    started = run_with_stand_in(
        monkeypatch,
        "robot.launch.py",
        namespace="tb3_1",
        policy=str(policy),
        agent="1",
        scan_topic="/tb3_1/lidar",
        cmd_vel_topic="cmd_vel_nav",
        cmd_vel_stamped="true",
    )
    expected = robot_node_spec(
        namespace="tb3_1",
        policy=policy,
        agent=1,
        scan_topic="/tb3_1/lidar",
        cmd_vel_topic="cmd_vel_nav",
        cmd_vel_stamped=True,
    )
    assert started == [as_started(expected)]
    assert started[0]["remappings"] == [("scan", "/tb3_1/lidar"), ("cmd_vel", "cmd_vel_nav")]


def test_fleet_launch_with_the_stand_in_starts_one_node_per_fleet_entry(tmp_path, monkeypatch):
    write_policy(tmp_path / "models" / "default", robots=4)
    site = tmp_path / "launch"
    site.mkdir()
    shutil.copy(LAUNCH_DIR / "fleet_example.yaml", site / "fleet.yaml")
    started = run_with_stand_in(monkeypatch, "fleet.launch.py", fleet=str(site / "fleet.yaml"))
    expected = fleet_node_specs(load_fleet(site / "fleet.yaml"))
    assert started == [as_started(s) for s in expected]
    assert [s["namespace"] for s in started] == ["/tb3_0", "/tb3_1", "/tb3_2"]


def test_every_launch_file_gives_up_on_a_crashing_node_when_swarm_deploy_does(
    tmp_path, monkeypatch
):
    deploy = pytest.importorskip("swarm_ops.deploy")
    policy = write_policy(tmp_path / "nav", robots=1)
    started = run_with_stand_in(
        monkeypatch, "robot.launch.py", namespace="tb3_0", policy=str(policy)
    ) + run_with_stand_in(monkeypatch, "swarm_sim.launch.py", num_robots="1", policy=str(policy))
    nodes = [n for n in started if n["executable"] == "policy_node"]
    assert nodes and all(n["respawn"] for n in nodes)
    assert {n["respawn_max_retries"] for n in nodes} == {deploy.MAX_RESTARTS}


def test_the_default_params_file_is_the_packages_and_a_users_file_replaces_it(
    tmp_path, monkeypatch
):
    assert Path(PARAMS_FILE).parts[-2:] == ("config", "policy_node.yaml")
    policy = write_policy(tmp_path / "nav", robots=1)
    mine = tmp_path / "site.yaml"
    mine.write_text("/**/policy_node:\n  ros__parameters: {sensor_timeout: 0.8}\n")
    (node,) = run_with_stand_in(
        monkeypatch, "robot.launch.py", namespace="tb3_0", policy=str(policy), params_file=str(mine)
    )
    assert node["parameters"][0] == str(mine)
    assert node["parameters"][1]["policy_path"] == str(policy.resolve() / "robot_0.onnx")
    with pytest.raises(ConfigError, match="params_file"):
        run_with_stand_in(
            monkeypatch,
            "robot.launch.py",
            namespace="tb3_0",
            policy=str(policy),
            params_file=str(tmp_path / "typo.yaml"),
        )


def transition_of(emit) -> tuple[object, int]:
    """(the node a ChangeState EmitEvent is for, its transition id)."""
    event = emit.kwargs["event"]
    matcher = event.kwargs["lifecycle_node_matcher"]
    assert matcher[0] == "matches"
    return matcher[1], event.kwargs["transition_id"]


def test_without_autostart_the_launch_configures_and_then_activates_each_node(
    tmp_path, monkeypatch
):
    from lifecycle_msgs.msg import Transition

    policy = write_policy(tmp_path / "nav", robots=2)
    handlers: list = []
    started = run_with_stand_in(
        monkeypatch,
        "swarm_sim.launch.py",
        handlers,
        num_robots="2",
        policy=str(policy),
        autostart="false",
    )
    bridge, *nodes = started
    assert "lifecycle_node" not in bridge
    assert [n["namespace"] for n in nodes] == ["/robot_0", "/robot_1"]
    assert all(n["parameters"][-1]["autostart"] is False for n in nodes)
    lifecycle_nodes = [n["lifecycle_node"] for n in nodes]
    on_start = [h for kind, h in handlers if kind == "OnProcessStart"]
    on_inactive = [h for kind, h in handlers if kind == "OnStateTransition"]
    # Every start of the process (a respawn too) is followed by a configure ...
    assert [h["target_action"] for h in on_start] == lifecycle_nodes
    for handler, node in zip(on_start, lifecycle_nodes, strict=True):
        (emit,) = handler["on_start"]
        assert transition_of(emit) == (node, Transition.TRANSITION_CONFIGURE)
    # ... and a finished configure (not a deactivate from outside) by an activate.
    assert [h["target_lifecycle_node"] for h in on_inactive] == lifecycle_nodes
    for handler, node in zip(on_inactive, lifecycle_nodes, strict=True):
        assert (handler["start_state"], handler["goal_state"]) == ("configuring", "inactive")
        (emit,) = handler["entities"]
        assert transition_of(emit) == (node, Transition.TRANSITION_ACTIVATE)


def test_with_a_lifecycle_manager_the_nodes_wait_unconfigured_for_it(tmp_path, monkeypatch):
    policy = write_policy(tmp_path / "nav", robots=1)
    handlers: list = []
    (node,) = run_with_stand_in(
        monkeypatch,
        "robot.launch.py",
        handlers,
        namespace="tb3_0",
        policy=str(policy),
        lifecycle_manager="true",
    )
    assert "lifecycle_node" in node
    assert node["parameters"][-1]["autostart"] is False
    assert handlers == []


# --------------------------------------------------------------------------- #
# The real thing, where a ROS 2 distro is installed (the hosted CI workflow).
# --------------------------------------------------------------------------- #


def ros2_launch_available() -> str | None:
    """Why `ros2 launch` cannot run here, or None when it can."""
    if shutil.which("ros2") is None:
        return "no `ros2` command: needs a sourced ROS 2 distro (the CI workflow runs this)"
    for name in ("launch", "launch_ros"):
        spec = importlib.util.find_spec(name)
        # The repository's own launch/ folder imports as an empty namespace package.
        if spec is None or spec.origin in (None, "namespace"):
            return f"the ROS 2 `{name}` package is not importable (it is not on PyPI)"
    return None


@pytest.mark.ros
@pytest.mark.skipif(ros2_launch_available() is not None, reason=str(ros2_launch_available()))
def test_ros2_launch_starts_a_fleet_that_drives(tmp_path, ros_domain, policy_models):
    from geometry_msgs.msg import TwistStamped
    from ros_helpers import RobotWorld, RosProbe, wait_for

    policy = policy_models.reference_controller("fleet/robot_0.onnx").parent
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        json.dumps(
            {
                "policy": str(policy),
                "robots": [
                    {"namespace": "tb3_0"},
                    {"namespace": "tb3_1", "remappings": {"cmd_vel": "cmd_vel_nav"}},
                ],
            }
        )
    )
    log = open(tmp_path / "launch.log", "w")  # noqa: SIM115
    launch = subprocess.Popen(
        ["ros2", "launch", "swarm_controller", "fleet.launch.py", f"fleet:={fleet}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
        start_new_session=True,
    )
    probe = RosProbe(ros_domain)
    try:
        robots = [RobotWorld(probe, "/tb3_0"), RobotWorld(probe, "/tb3_1")]
        # tb3_1's commands go to its remapped topic.
        robots[1].cmd = probe.record(TwistStamped, "/tb3_1/cmd_vel_nav")
        for robot in robots:
            robot.wait_ready(timeout=60.0)
            robot.send_goal(3.0, 0.0)
            robot.feed()
        for robot in robots:
            robot.wait_command(lambda v, w: v > 0.1, 10.0, f"{robot.namespace} driving")
        for robot in robots:
            robot.stop_feed()
        launch.send_signal(signal.SIGINT)
        assert launch.wait(timeout=30) == 0
        time.sleep(0.2)
        for robot in robots:
            wait_for(lambda r=robot: r.commands()[-1] == (0.0, 0.0), 5.0, "a final zero")
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait()
        log.close()
        probe.close()
