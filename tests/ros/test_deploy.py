"""`swarm deploy`: real node processes over DDS, as a user starts and stops them.

The simulated swarm runs the shipped default policy (models/default): the sim
bridge plus one policy-node process per robot, exactly what swarm_sim.launch.py
starts. Each test has its own ROS_DOMAIN_ID (conftest's `ros_domain`). The
bridge runs in lockstep (it steps once every robot's command arrived), so
what the robots do does not depend on how busy the machine is.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.cli import main

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "models" / "default"


def shipped_policy() -> Path:
    if not any(DEFAULT_POLICY.glob("robot_*.onnx")):
        pytest.fail(
            f"{DEFAULT_POLICY} holds no robot_<i>.onnx: the shipped default policy is missing"
            " (export one with `swarm export <run> --out models/default`)"
        )
    return DEFAULT_POLICY


# --------------------------------------------------------------------------- #
# Mistakes are refused before anything starts.
# --------------------------------------------------------------------------- #


def test_a_bad_fleet_file_is_refused_naming_the_mistake(tmp_path, capsys):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("policy: nowhere\nrobots: [{namespace: tb3_0, remappings: {laser: /x}}]\n")
    assert main(["deploy", "--fleet", str(fleet), "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "'laser' is not a topic of the policy node" in err and "cmd_vel" in err
    assert not (tmp_path / "runs").exists(), "nothing was started"


def test_deploy_needs_a_fleet_or_the_sim(capsys):
    with pytest.raises(SystemExit):
        main(["deploy", "--robots", "2"])
    assert "--fleet" in capsys.readouterr().err


def test_a_node_that_keeps_crashing_is_restarted_then_left_down(tmp_path, monkeypatch):
    from swarm_controller.fleet import NodeSpec
    from swarm_ops.deploy import Deployment

    # A stand-in node program that always fails, importable as fake_nodes.crash.
    package = tmp_path / "fake_nodes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "crash.py").write_text("import sys\nprint('args', sys.argv[1:])\nsys.exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    spec = NodeSpec(
        "crash", "crash", "/robot_0", {"policy_path": "p.onnx"}, respawn=True, respawn_delay=0.05
    )
    spec = dataclasses.replace(spec, package="fake_nodes")
    lines: list[str] = []
    deployment = Deployment([spec], tmp_path / "run", say=lines.append, max_restarts=2)
    deployment.start()
    try:
        deadline = time.monotonic() + 20
        down = []
        while not down and time.monotonic() < deadline:
            down = deployment.poll()
            time.sleep(0.02)
    finally:
        deployment.stop()
    assert [n.spec.label for n in down] == ["robot_0.crash"]
    assert down[0].restarts == 2 and down[0].exit_codes == [3, 3, 3]
    assert "robot_0.crash exited (code 3) after 2 restarts; leaving it down" in lines[-1]
    log = (tmp_path / "run" / "robot_0.crash.log").read_text()
    assert log.count("args ['--ros-args', '-r', '__node:=crash', '-r', '__ns:=/robot_0'") == 3


# --------------------------------------------------------------------------- #
# Real processes.
# --------------------------------------------------------------------------- #


def command_recorders(probe, robots: int) -> list:
    """Each robot's cmd_vel: TwistStamped, as a lockstep deployment sends them."""
    from geometry_msgs.msg import TwistStamped

    return [probe.record(TwistStamped, f"/robot_{i}/cmd_vel") for i in range(robots)]


@pytest.mark.ros
def test_deploy_sim_drives_two_robots_to_their_goals_and_ctrl_c_stops_them(tmp_path, probe):
    from ros_helpers import wait_for
    from ros_sim_helpers import EventLog

    policy = shipped_policy()
    events = EventLog(probe)
    commands = command_recorders(probe, 2)
    deploy = subprocess.Popen(
        [sys.executable, "-m", "mappo_training.cli", "deploy", "--sim", "--robots", "2"]
        + ["--policy", str(policy), "--scenario", "random", "--seed", "0"]
        + ["--real-time-factor", "3", "--lockstep", "--runs", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ends = wait_for(lambda: events.events(type="episode_end"), 60.0, "an episode to end")
        first = ends[0]
        assert first["arrived_fraction"] == 1.0, f"not every robot arrived: {first}"
        arrivals = {e["robot"] for e in events.events(type="arrival", episode=0)}
        assert arrivals == {0, 1}

        # Ctrl-C: robots are driving their next episode when it comes.
        wait_for(lambda: all(c.messages() for c in commands), 10.0, "commands from both robots")
        deploy.send_signal(signal.SIGINT)
        output, _ = deploy.communicate(timeout=30)
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.communicate()
    assert deploy.returncode == 0, output
    time.sleep(0.3)
    for i, recorder in enumerate(commands):
        last = recorder.last().twist
        assert (last.linear.x, last.angular.z) == (0.0, 0.0), f"robot_{i} last command {last}"
    assert len(re.findall(r"stopped \(clean\)", output)) == 3, output

    # It said what runs where: each node's pid and its own log in the run folder.
    run_dir = Path(re.search(r"logs: (\S+)", output).group(1))
    assert run_dir.parent == tmp_path
    for label in ("sim_bridge", "robot_0.policy_node", "robot_1.policy_node"):
        assert label in output
        assert (run_dir / f"{label}.log").stat().st_size > 0
    for pid in map(int, re.findall(r"pid (\d+)", output)):
        assert not Path(f"/proc/{pid}").exists() or "swarm_controller" not in Path(
            f"/proc/{pid}/cmdline"
        ).read_text(errors="replace"), f"node process {pid} outlived swarm deploy"


@pytest.mark.ros
def test_a_killed_policy_node_is_respawned_and_its_robot_drives_on(tmp_path, probe):
    from ros_helpers import wait_for
    from ros_sim_helpers import EventLog

    from swarm_controller.fleet import sim_node_specs
    from swarm_ops.deploy import LOCKSTEP_BRIDGE, Deployment

    # One shared file drives both robots, so the live swap needs a second copy of it
    # for the respawned node to tell "swapped in live" from "launched with".
    policy = tmp_path / "models" / "launched"
    shutil.copytree(shipped_policy(), policy)
    shutil.copytree(shipped_policy(), tmp_path / "models" / "live")
    specs = sim_node_specs(
        num_robots=2,
        policy=policy,
        scenario="random",
        seed=0,
        bridge_parameters={"real_time_factor": 2.0, **LOCKSTEP_BRIDGE},
    )
    events = EventLog(probe)
    commands = command_recorders(probe, 2)
    lines: list[str] = []
    with Deployment(specs, tmp_path / "run", say=lines.append) as deployment:
        victim = deployment.node("robot_1.policy_node")

        def moving_since(t: float):
            return [m for m in commands[1].messages(since=t) if abs(m.twist.linear.x) > 0.01]

        wait_for(lambda: moving_since(0.0), 30.0, "robot_1 driving")
        # Swapped live before the crash: the respawned node must come back with it.
        live = tmp_path / "models" / "live" / "robot_0.onnx"
        [swapped] = probe.set_parameters("/robot_1/policy_node", {"policy_path": str(live)})
        assert swapped.successful, swapped.reason
        swapped_at = time.monotonic()
        wait_for(lambda: moving_since(swapped_at), 10.0, "robot_1 driving after the swap")
        old_pid = victim.pid
        os.kill(old_pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def respawned():
            deployment.poll()
            return victim.restarts == 1 and victim.running and victim.pid != old_pid

        wait_for(respawned, 15.0, "robot_1's node to be restarted")
        assert any("robot_1.policy_node exited (code -9); restarting" in x for x in lines)
        driving_again = wait_for(lambda: moving_since(killed_at), 30.0, "robot_1 driving again")

        # Meanwhile deploy commanded the robot: a zero soon after the kill, then one
        # every control period, so the base never kept the dead node's last command.
        times = commands[1].times(since=killed_at)
        sent = commands[1].messages(since=killed_at)
        back_at = times[sent.index(driving_again[0])]
        to_zero = next(t for t, m in zip(times, sent, strict=True) if m.twist.linear.x == 0.0)
        to_zero -= killed_at
        silences = np.diff([killed_at, *[t for t in times if t <= back_at]])
        print(
            f"kill -> first zero {to_zero:.3f} s; longest silence {silences.max():.3f} s;"
            f" robot_1 driving again {back_at - killed_at:.2f} s after the kill"
        )
        assert to_zero < 0.5 and silences.max() < 1.0, (to_zero, silences.max())
        assert any(
            "robot_1.policy_node is down (exit code -9): zero on /robot_1/cmd_vel" in x
            for x in lines
        ), lines

        def said(text: str) -> list[str]:
            return [x for x in lines if text in x]

        wait_for(lambda: said("robot_1.policy_node is back: it commands"), 5.0, "the 'back' line")
        [resumed] = wait_for(
            lambda: said("resumed the policy swapped in live"), 5.0, "the 'resumed' line"
        )
        assert resumed.startswith("robot_1.policy_node") and str(live) in resumed, resumed

        def robot_1_arrived():
            deployment.poll()
            return events.events(type="arrival", robot=1)

        wait_for(robot_1_arrived, 60.0, "robot_1 to reach its goal after the restart")
        assert deployment.node("robot_0.policy_node").restarts == 0
    assert all(n.stopped_cleanly for n in deployment.nodes)
    log = (tmp_path / "run" / "robot_1.policy_node.log").read_text()
    assert "restart 1:" in log, "the restart is in the node's own log"
