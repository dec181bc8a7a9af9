"""`swarm goal` and `swarm status`: an operator sends goals and reads robots without `ros2`."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

pytest.importorskip(
    "swarm_controller", reason="needs swarm_controller: pip install -e ros2_ws/src/swarm_controller"
)
pytest.importorskip("swarm_ops", reason="needs swarm_ops: pip install -e ros2_ws/src/swarm_ops")

from swarm_contract.config import ConfigError
from swarm_ops import goal, status


def swarm(verb: str, *args: str) -> subprocess.CompletedProcess:
    # `python -m swarm_ops.<verb>` is `swarm <verb>` (and `ros2 run swarm_ops <verb>`).
    return subprocess.run(
        [sys.executable, "-m", f"swarm_ops.{verb}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def goal_args(**given) -> SimpleNamespace:
    defaults = dict(robot=None, assign=None, x=None, y=None, yaw=0.0, frame=None, cancel=False)
    return SimpleNamespace(**{**defaults, **given})


# --------------------------------------------------------------------------- #
# What the command line asks for (no DDS).
# --------------------------------------------------------------------------- #


def test_a_fleet_assignment_gives_each_robot_its_goal_in_map(tmp_path):
    path = tmp_path / "goals.yaml"
    path.write_text("goals:\n  tb3_0: [1.0, 0.5]\n  /site/tb3_1/: [-0.5, 1, 3.14]\n")
    goals = goal.goals_from_assignment(path)
    assert [(g.robot, g.x, g.y, g.yaw, g.frame) for g in goals] == [
        ("/tb3_0", 1.0, 0.5, 0.0, "map"),
        ("/site/tb3_1", -0.5, 1.0, 3.14, "map"),
    ]
    assert goals[1].topic == "/site/tb3_1/goal"
    # The robots at the top level, with a frame of the file's own.
    path.write_text("frame: tb3_0/odom\ntb3_0: [2, 0]\n")
    [only] = goal.goals_from_assignment(path)
    assert (only.robot, only.frame, only.describe()) == (
        "/tb3_0",
        "tb3_0/odom",
        "goal x=2.000 y=0.000 yaw=0.000 in tb3_0/odom",
    )
    cancels = goal.goals_from_args(goal_args(assign=path, cancel=True))
    assert [(g.robot, g.cancel, g.describe()) for g in cancels] == [("/tb3_0", True, "cancel")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tb3_0: [1.0]\n", r"tb3_0: \[1.0\] is not a goal; give \[x, y\]"),
        ("tb3_0: [1.0, .nan]\n", r"is not a goal"),
        ("3rd robot: [1, 2]\n", r"'3rd robot' is not a robot namespace"),
        ("frame: 'my map'\ntb3_0: [1, 2]\n", r"frame='my map': not a frame id"),
        ("frame: map\n", r"no goals in it"),
    ],
)
def test_a_bad_assignment_names_the_robot_and_the_fix(tmp_path, text, expected):
    path = tmp_path / "goals.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        goal.goals_from_assignment(path)


def test_one_robot_needs_x_and_y_or_cancel():
    with pytest.raises(ConfigError, match="give --x and --y"):
        goal.goals_from_args(goal_args(robot="tb3_0", x=1.0))
    [g] = goal.goals_from_args(goal_args(robot="tb3_0", x=1.0, y=2.0, yaw=0.5))
    assert (g.robot, g.x, g.y, g.yaw, g.frame) == ("/tb3_0", 1.0, 2.0, 0.5, "map")
    [c] = goal.goals_from_args(goal_args(robot="tb3_0", cancel=True))
    assert c.cancel and c.frame == ""


def test_status_shows_a_dash_for_what_the_diagnostics_do_not_say():
    row = status.RobotStatus("tb3_0", state="active", policy_sha256="ab" * 32, level="OK")
    row.message, row.rates = "driving", {"scan_hz": "9.9"}
    printed = status.table([status.HEADER, row.row(), status.RobotStatus("tb3_1").row()])
    header, first, second = printed.splitlines()
    assert header.split() == status.HEADER
    assert first.split() == [
        "tb3_0",
        "active",
        "ab" * 6,
        "-",
        "9.9",
        "-",
        "-",
        "OK:",
        "driving",
        "-",
    ]
    assert second.split()[:2] == ["tb3_1", "?"] and "(no diagnostics)" in second


# --------------------------------------------------------------------------- #
# One real policy node.
# --------------------------------------------------------------------------- #


@pytest.mark.ros
def test_swarm_goal_drives_a_robot_swarm_status_shows_it_and_cancel_stops_it(
    probe, nodes, policy_models, capsys
):
    from ros_helpers import RobotWorld

    policy = policy_models.reference_controller("v1/robot_0.onnx")
    robot = RobotWorld(probe, "/robot_0")
    nodes.start_policy_node(
        "/robot_0", policy_path=policy, allowed_policy_dirs=[str(policy_models.root)]
    )
    robot.wait_ready()
    robot.feed()

    # A goal in the robot's own odom frame, 10 m ahead; a robot that is not there
    # is named as not delivered.
    sent = swarm("goal", "--robot", "robot_0", "--x", "10", "--y", "0", "--frame", "robot_0/odom")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert (
        "robot_0: goal x=10.000 y=0.000 yaw=0.000 in robot_0/odom: delivered (/robot_0/goal)"
        in sent.stdout
    )
    robot.wait_command(lambda v, w: v > 0.1, 10.0, "driving towards the goal")

    # In-process (the same main as `python -m swarm_ops.status`): every robot found.
    assert status.main([]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == status.HEADER
    cells = row.split()
    assert cells[:3] == ["robot_0", "active", robot.policy_sha256()[:12]]
    assert cells[-1] == str(policy) and "OK: driving" in row

    # JSON, with a robot that does not answer.
    assert status.main(["--robots", "robot_0,robot_9", "--json", "--wait", "1.5"]) == 1
    out = capsys.readouterr()
    by_robot = {s["robot"]: s for s in json.loads(out.out)}
    assert by_robot["robot_0"]["state"] == "active"
    assert by_robot["robot_0"]["policy_sha256"] == robot.policy_sha256()
    assert by_robot["robot_0"]["diagnostics"]["lifecycle_state"] == "active"
    assert by_robot["robot_9"]["state"] == "" and "no answer from ['robot_9']" in out.err

    # Cancel: the node drops its goal and holds with zeros.
    assert goal.main(["--robot", "robot_0", "--cancel", "--timeout", "5"]) == 0
    assert "robot_0: cancel: delivered (/robot_0/goal)" in capsys.readouterr().out
    robot.wait_command(lambda v, w: v == 0.0 and w == 0.0, 5.0, "a zero after the cancel")
