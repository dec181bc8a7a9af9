"""`swarm eval --matrix`: a policy scored over scenarios x team sizes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install -e '.[train]'")

import yaml

from mappo_training.cli import main as swarm

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default"
ROWS = ["random + 3 obstacles", "circle"]  # the tiny preset's
SIZES = [2, 4]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A copy of models/default: --store writes its card, never the shipped one's."""
    return Path(shutil.copytree(DEFAULT_MODEL, tmp_path_factory.mktemp("models") / "default"))


def matrix(model: Path, out: Path, *extra: str) -> int:
    return swarm(
        ["eval", str(model), "--matrix", "tiny", "--episodes", "2", "--out", str(out), *extra]
    )


def test_matrix_prints_tables_draws_heatmap_writes_results_and_fills_the_card(
    model, tmp_path, capsys
):
    shipped_card = (DEFAULT_MODEL / "policy.yaml").read_bytes()
    assert matrix(model, tmp_path / "m", "--store") == 0
    out = capsys.readouterr().out

    assert "[1/4] random + 3 obstacles x 2 robots ... success" in out, "a progress line per cell"
    for title in ("success", "collisions", "time-to-goal (s)", "path efficiency"):
        assert f"\n{title} " in out
    table = out[out.index("\nsuccess ") :]
    assert "2 robots" in table and "4 robots" in table
    assert all(row in table for row in ROWS)
    assert "mean success" in out and "worst cell:" in out and "wall time" in out

    picture = tmp_path / "m" / "matrix.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 5000

    results = yaml.safe_load((tmp_path / "m" / "matrix.yaml").read_text())
    cells = {(c["row"], c["robots"]): c for c in results["cells"]}
    assert set(cells) == {(r, n) for r in ROWS for n in SIZES}
    for cell in cells.values():
        assert cell["episodes"] == 2
        for key in ("success_rate", "collision_rate", "time_to_goal_s", "path_efficiency"):
            assert key in cell
    assert results["fidelity"] == "nominal", "the tiny preset's"
    assert 0.0 <= results["mean_success"] <= 1.0
    assert results["worst_cell"]["success_rate"] == min(c["success_rate"] for c in cells.values())
    assert "| circle |" in (tmp_path / "m" / "matrix.md").read_text()

    card = yaml.safe_load((model / "policy.yaml").read_text())
    shipped = yaml.safe_load(shipped_card)["matrix"]
    *kept, stored = card["matrix"]
    assert kept == shipped, "the shipped standard matrix stays beside the new entry"
    assert stored["preset"] == "tiny" and stored["fidelity"] == "nominal"
    assert stored["command"].startswith(f"swarm eval {model} --matrix tiny")
    assert len(stored["cells"]) == 4 and (model / stored["heatmap"]).is_file()
    assert card["contract"] and card["robots"], "the rest of the card is kept"
    assert (DEFAULT_MODEL / "policy.yaml").read_bytes() == shipped_card

    readme = (model / "README.md").read_text()
    assert "Matrix `tiny` at fidelity `nominal`" in readme and "| circle |" in readme
    assert f"![matrix]({stored['heatmap']})" in readme
    assert readme.startswith("# Policy `default`"), "the rest of the README is kept"


def test_a_rerun_gives_the_same_cells_and_replaces_the_cards_entry(model, tmp_path):
    assert matrix(model, tmp_path / "a", "--store") == 0
    assert matrix(model, tmp_path / "b", "--store") == 0

    def cells(folder: str) -> list[dict]:
        results = yaml.safe_load((tmp_path / folder / "matrix.yaml").read_text())
        return [{k: v for k, v in c.items() if k != "wall_s"} for c in results["cells"]]

    assert cells("a") == cells("b"), "every cell's seed is fixed"
    card = yaml.safe_load((model / "policy.yaml").read_text())
    entries = [(e["preset"], e["fidelity"]) for e in card["matrix"]]
    assert entries.count(("tiny", "nominal")) == 1, "one entry per preset and fidelity"
    readme = (model / "README.md").read_text()
    assert readme.count("Matrix `tiny` at fidelity `nominal`") == 1, "the README's too"


@pytest.mark.parametrize(
    "argv",
    [["--matrix", "tiny", "--episodes", "1", "--out", "OUT"], ["--episodes", "1"]],
    ids=["matrix", "one evaluation"],
)
def test_fidelity_reaches_the_simulator_of_every_episode(monkeypatch, tmp_path, argv):
    import mappo_training.evaluate as evaluate

    seen, real = [], evaluate.run_episodes

    def spy(policy, sim, *args, **kwargs):
        seen.append(sim)
        return real(policy, sim, *args, **kwargs)

    monkeypatch.setattr(evaluate, "run_episodes", spy)
    argv = [str(tmp_path / "m") if a == "OUT" else a for a in argv]
    assert swarm(["eval", str(DEFAULT_MODEL), *argv, "--fidelity", "harsh"]) == 0
    assert seen and all(sim["fidelity"] == {"preset": "harsh"} for sim in seen)


def test_an_unknown_preset_is_refused_with_the_known_ones(capsys):
    assert swarm(["eval", str(DEFAULT_MODEL), "--matrix", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "'nosuch'" in err and "standard" in err and "tiny" in err


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("team_sizes: [2]\nrows: [{name: r, sim: {num_obstacle: 6}}]\n", "num_obstacle"),
        ("team_sizes: [2]\nepisode: 3\nrows: [{name: r}]\n", "episode"),
        ("team_sizes: [2]\nrows: [{name: r, sim: {num_robots: 8}}]\n", "num_robots"),
        ("rows: [{name: r}]\n", "team_sizes"),
    ],
)
def test_a_bad_matrix_file_is_refused_naming_the_key(tmp_path, capsys, text, named):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    assert swarm(["eval", str(DEFAULT_MODEL), "--matrix", str(path)]) == 2
    assert named in capsys.readouterr().err


def test_options_of_one_evaluation_are_refused_with_a_matrix(capsys):
    assert swarm(["eval", str(DEFAULT_MODEL), "--matrix", "tiny", "--robots", "8"]) == 2
    assert "--robots" in capsys.readouterr().err


def test_store_needs_a_policy_card(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert swarm(["eval", str(run_dir), "--matrix", "tiny", "--store"]) == 2
    assert "--store" in capsys.readouterr().err


def test_a_fidelity_asked_for_replaces_the_training_ranges():
    """A policy trained over wide randomisation ranges is scored at the preset
    asked for, not at its training ranges under the preset's name."""
    from mappo_training.evaluate import task

    trained = {"scenario": "random", "fidelity": {"preset": "nominal", "dropout": [0.5, 4.0]}}
    sim = task(trained, None, 8, None, {"fidelity": {"preset": "harsh"}})
    assert sim["fidelity"] == {"preset": "harsh"}
    assert sim["num_robots"] == 8
