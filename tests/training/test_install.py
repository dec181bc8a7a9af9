"""The training package works from a plain (non-editable) install, outside the checkout.

`pip install` copies mappo_training into a folder of its own; the `swarm`
script it installs then runs from an unrelated folder and must find the
packaged configs and read a model folder given by path, importing
mappo_training from that install, not from the checkout (swarm_contract, its
dependency, stays the venv's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")

pytestmark = pytest.mark.slow  # a pip build and two short runs: ~5 s

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding a non-editable install of mappo_training (and its `swarm` script)."""
    root = tmp_path_factory.mktemp("install")
    # Installed from a copy: pip builds a local project inside its source folder
    # (setuptools' build/), and the checkout must not gain one.
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "mappo_training",
        source / "mappo_training",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    target = root / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            target,
            source,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def swarm(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`swarm <args>` as installed into `site`, run from `cwd` with only `site` added."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [site / "bin" / "swarm", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_installed_package_is_the_one_that_runs(site, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(site))
    done = subprocess.run(
        [sys.executable, "-c", "import mappo_training; print(mappo_training.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(site)


def test_swarm_train_finds_its_packaged_configs_from_any_folder(site, tmp_path):
    done = swarm(site, tmp_path, "train", "--config", "nav_random_4", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "share_actor: true" in done.stdout
    assert list(tmp_path.iterdir()) == [], "a config check wrote files"


def test_swarm_eval_scores_a_model_folder_given_by_path(site, tmp_path):
    done = swarm(site, tmp_path, "eval", str(REPO / "models" / "default"), "--episodes", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 episodes: success" in done.stdout
