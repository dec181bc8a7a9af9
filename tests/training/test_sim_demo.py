"""`swarm demo`, the episode pictures and `swarm bench sim`, as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("PIL", reason="needs pillow: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from PIL import Image

from mappo_training.cli import main
from mappo_training.sim import BatchedSwarmEnv, EpisodeRecorder, Obstacle, SimConfig, render


def test_demo_runs_reports_and_writes_its_pictures(tmp_path, capsys):
    assert main(["demo", "--controller", "handwritten", "--out", str(tmp_path), "--seed", "0"]) == 0
    report = capsys.readouterr().out
    assert "4/4 robots arrived" in report
    assert str(tmp_path / "paths.png") in report
    with Image.open(tmp_path / "paths.png") as png:
        assert png.size[0] >= 400 and png.size[1] >= 400
    with Image.open(tmp_path / "episode.gif") as gif:
        assert gif.n_frames > 10


def test_demo_controller_brings_a_swap_home_without_collisions(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--scenario", "swap", "--no-gif"]
    assert main(["demo", "--controller", "handwritten", *args]) == 0
    report = capsys.readouterr().out
    assert "success: 4/4 robots arrived, 0 collision steps" in report
    assert not (tmp_path / "episode.gif").exists()


def recorded_crash() -> dict:
    """Two robots driven head-on into each other next to a box, recorded."""
    cfg = SimConfig(num_robots=2, max_steps=30, obstacles=[Obstacle("box", 0.0, 1.0)])
    with BatchedSwarmEnv(cfg, num_arenas=1, seed=0) as env:
        env.reset()
        from mappo_training.sim import ArenaLayout

        starts = np.array([[-0.6, 0.0, 0.0], [0.6, 0.0, np.pi]])
        layout = ArenaLayout(env.arena_size, starts, -starts[:, :2], (Obstacle("box", 0.0, 1.0),))
        env.reset(layouts=[layout])
        recorder = EpisodeRecorder(env)
        while not recorder.add(env.step(np.tile([1.0, 0.0], (1, 2, 1)).astype(np.float32))[5]):
            pass
        return recorder.recording()


def test_recording_holds_the_whole_episode_with_its_collisions():
    recording = recorded_crash()
    assert recording["poses"].shape == (31, 2, 3)
    assert recording["result"]["length"] == 30
    assert recording["collisions"], "the head-on crash was recorded"
    t, robot = recording["collisions"][0]
    gap = np.linalg.norm(recording["poses"][t, 0, :2] - recording["poses"][t, 1, :2])
    assert gap < 0.25


def test_pictures_show_the_paths_and_mark_collisions(tmp_path):
    recording = recorded_crash()
    png = render.episode_png(recording, tmp_path / "crash.png")
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    red = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)
    assert red.sum() > 20, "collision crosses are drawn in red"
    without = dict(recording, collisions=[])
    image_clean = np.asarray(Image.open(render.episode_png(without, tmp_path / "clean.png")))
    red_clean = (
        (image_clean[..., 0] > 200) & (image_clean[..., 1] < 60) & (image_clean[..., 2] < 60)
    )
    assert red_clean.sum() < red.sum()
    gif = render.episode_gif(recording, tmp_path / "crash.gif", max_frames=8)
    with Image.open(gif) as animation:
        assert animation.n_frames >= 8


def test_bench_sim_prints_both_rates_and_a_json_line(capsys):
    args = ["bench", "sim", "--arenas", "2", "--robots", "2", "--steps", "10", "--rounds", "1"]
    assert main([*args, "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(result) == {"env_steps_per_s", "floor_steps_per_s", "ratio"}
    assert result["env_steps_per_s"] > 0 and result["floor_steps_per_s"] > 0
    assert result["ratio"] == round(result["env_steps_per_s"] / result["floor_steps_per_s"], 3)
    assert any("floor" in line for line in lines[:-1])


def test_bench_sim_puts_several_arena_counts_side_by_side(capsys):
    args = ["bench", "sim", "--arenas", "1,3", "--robots", "2", "--steps", "5", "--rounds", "1"]
    assert main([*args, "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(result) == {"env_steps_per_s", "floor_steps_per_s", "ratio", "env_wall_steps_per_s"}
    for rates in result.values():
        assert set(rates) == {"1", "3"} and all(v > 0 for v in rates.values())
    rows = [line.split() for line in lines if line.split() and line.split()[0] in ("1", "3")]
    assert [row[0] for row in rows] == ["1", "3"], "one table row per arena count"
