"""`swarm`: verbs from a package that is not installed say which package and how."""

from __future__ import annotations

import pytest

pytest.importorskip("mappo_training", reason="the swarm CLI lives in mappo_training: make setup")

from mappo_training import cli  # noqa: E402


def test_a_verb_whose_package_is_missing_names_it_and_exits_non_zero(monkeypatch, capsys):
    table = [*cli.COMMANDS, ("fly", "swarm_not_installed.fly", "fly the swarm")]
    monkeypatch.setattr(cli, "COMMANDS", table)
    monkeypatch.setattr(cli, "OUR_PACKAGES", (*cli.OUR_PACKAGES, "swarm_not_installed"))

    assert "fly" in cli.build_parser().format_help()
    assert cli.main(["fly"]) == 2
    err = capsys.readouterr().err
    assert "`swarm fly` needs the swarm_not_installed package" in err
    assert "pip install -e ros2_ws/src/swarm_not_installed" in err
    # Arguments after the verb get the same answer, not an argparse complaint.
    assert cli.main(["fly", "--robots", "4"]) == 2
    assert "`swarm fly` needs the swarm_not_installed package" in capsys.readouterr().err


def test_an_ops_verb_whose_robot_package_is_missing_names_that_package(
    monkeypatch, tmp_path, capsys
):
    # A verb module that imports a project package which is not installed.
    (tmp_path / "ops_without_robot.py").write_text("import swarm_controller_not_here.fleet\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "OUR_PACKAGES", (*cli.OUR_PACKAGES, "swarm_controller_not_here"))
    monkeypatch.setattr(cli, "COMMANDS", [("walk", "ops_without_robot", "walk the swarm")])
    assert cli.main(["walk"]) == 2
    assert "needs the swarm_controller_not_here package" in capsys.readouterr().err


def test_ops_verbs_are_listed_when_swarm_ops_is_installed():
    pytest.importorskip("swarm_ops", reason="swarm_ops is not installed")
    text = cli.build_parser().format_help()
    for verb in ("demo", "deploy", "swap"):
        assert verb in text
    assert "(not installed)" not in text
