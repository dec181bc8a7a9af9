"""Training that survives faults: a kill, a damaged checkpoint, a NaN, a full disk.

Each test injects one fault into a tiny real run and checks what a user sees:
how many updates were lost, which message they got, and that the checkpoint
they would continue from is whole.
"""

from __future__ import annotations

import builtins
import csv
import errno
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")

import torch
from training_fixtures import TINY_RUN

from mappo_training import checkpoint as ckpt
from mappo_training import train
from mappo_training.cli import main as swarm
from mappo_training.experiment import load_train_config
from mappo_training.train import resume, start

STEPS_PER_UPDATE = 256  # TINY_RUN: 64 steps x 2 arenas x 2 robots


def tiny(updates: int) -> list[str]:
    """TINY_RUN for `updates` updates, checkpointed as by default: after every one."""
    return [*TINY_RUN, f"run.total_steps={updates * STEPS_PER_UPDATE}"]


def logged_updates(run_dir: Path) -> list[int]:
    with open(run_dir / "progress.csv", newline="") as f:
        return [int(row["update"]) for row in csv.DictReader(f)]


def weights_are_finite(path: Path) -> bool:
    learner = ckpt.load_learner(path)
    modules = [*learner.actors, learner.critic]
    return all(torch.isfinite(p).all() for m in modules for p in m.parameters())


@pytest.fixture(scope="module")
def two_updates(tmp_path_factory) -> Path:
    """A finished 2-update run with a checkpoint after each update (copy before changing)."""
    run_dir = tmp_path_factory.mktemp("faults") / "two"
    cfg = load_train_config("nav_random_4", tiny(2))
    with start(cfg, run_dir, quiet=True) as trainer:
        trainer.run()
    return run_dir


# --------------------------------------------------------------------------- #
# SIGKILL, then --resume.
# --------------------------------------------------------------------------- #


def test_sigkill_mid_run_then_resume_loses_at_most_the_update_in_progress(tmp_path):
    total = 8
    command = [sys.executable, "-m", "mappo_training.cli", "train", "--quiet"]
    command += ["--runs-dir", str(tmp_path), "run.name=r", *tiny(total)]
    run_dir = tmp_path / "r"
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "progress.csv").is_file() or len(logged_updates(run_dir)) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run logged no 2 updates in 60 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    last_logged = max(logged_updates(run_dir))
    assert last_logged < total, "killed before the end"
    # What a kill during a save leaves: a temp file, never a partial checkpoint.
    debris = run_dir / "checkpoints" / f".update_{last_logged + 1:06d}.pt.tmp-99999"
    debris.write_bytes(b"PK\x03\x04 half a zip")

    with resume(run_dir, quiet=True) as again:
        assert again.update >= last_logged, "every logged update was on disk"
        again.run()
    assert not debris.exists()
    # Each update logged once, none missing: the same run as an uninterrupted one.
    assert logged_updates(run_dir) == list(range(1, total + 1))
    final = ckpt.load(run_dir / "latest.pt")
    assert final["update"] == total
    assert final["global_step"] == total * STEPS_PER_UPDATE


def test_a_kill_between_saving_and_logging_an_update_still_logs_it(two_updates, tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(two_updates, run_dir)
    with open(run_dir / "progress.csv") as f:
        lines = f.readlines()
    (run_dir / "progress.csv").write_text("".join(lines[:-1]))  # row of update 2 never written
    with resume(run_dir, quiet=True) as again:
        assert again.update == 2
        again.run()
    assert logged_updates(run_dir) == [1, 2]


# --------------------------------------------------------------------------- #
# Damaged and foreign checkpoints.
# --------------------------------------------------------------------------- #


def test_a_truncated_checkpoint_is_refused_by_name_and_resume_falls_back(
    two_updates, tmp_path, capsys
):
    run_dir = tmp_path / "r"
    shutil.copytree(two_updates, run_dir)
    newest = run_dir / "checkpoints" / "update_000002.pt"
    os.truncate(newest, newest.stat().st_size // 2)
    (run_dir / "latest.pt").unlink()
    shutil.copyfile(newest, run_dir / "latest.pt")

    assert swarm(["export", str(run_dir), "--out", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {run_dir / 'latest.pt'} is truncated or corrupt" in err
    assert "update_000001.pt" in err, "names the earlier checkpoint to use"
    assert "Traceback" not in err

    with resume(run_dir, quiet=True) as again:
        assert again.update == 1, "continues from the newest whole checkpoint"
    assert f"skipped: checkpoint {newest} is truncated or corrupt" in capsys.readouterr().err


def test_resume_with_no_whole_checkpoint_says_so_without_a_traceback(two_updates, tmp_path, capsys):
    run_dir = tmp_path / "r"
    shutil.copytree(two_updates, run_dir)
    for path in (run_dir / "checkpoints").glob("update_*.pt"):
        path.write_bytes(b"")
    assert swarm(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"no readable checkpoint in {run_dir / 'checkpoints'}" in err
    assert "Traceback" not in err


class _RunsCode:
    """A pickled object that would create the folder `marker` when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_loading_never_runs_code_from_a_checkpoint(tmp_path):
    marker = tmp_path / "code-ran"
    planted = tmp_path / "planted.pt"
    torch.save({"format": ckpt.FORMAT, "payload": _RunsCode(marker)}, planted)
    with pytest.raises(ckpt.CheckpointError, match="refused"):
        ckpt.load(planted)
    assert not marker.exists()


def test_a_checkpoint_of_the_pickled_format_is_refused_then_upgraded(two_updates, tmp_path):
    data = ckpt.load(two_updates / "checkpoints" / "update_000002.pt")
    old = tmp_path / "old.pt"
    # As versions before weights_only wrote it: numpy arrays and dataclasses pickled.
    torch.save({**data, "format": ckpt.PICKLED_FORMAT}, old)
    with pytest.raises(ckpt.CheckpointError) as refused:
        ckpt.load(old)
    assert f"python -m mappo_training.checkpoint upgrade {old}" in str(refused.value)

    assert ckpt.main(["upgrade", str(old)]) == 0
    upgraded = ckpt.load(old)
    assert upgraded["update"] == 2
    assert upgraded["contract"] == data["contract"]
    assert (upgraded["obs"] == data["obs"]).all()


# --------------------------------------------------------------------------- #
# NaN in the losses.
# --------------------------------------------------------------------------- #


class _RewardsTurnNaN:
    """The simulator, with every reward NaN from arena step `after` on."""

    def __init__(self, env, after: int) -> None:
        self._env, self._steps, self._after = env, 0, after

    def __getattr__(self, name):
        return getattr(self._env, name)

    def step(self, actions):
        out = self._env.step(actions)
        self._steps += 1
        if self._steps > self._after:
            out[2][...] = math.nan
        return out


def test_nan_rewards_stop_training_before_learning_from_them(tmp_path, monkeypatch, capsys):
    make = train.make_swarm_env
    # 2 rollouts of 64 steps are clean; the third one's rewards are NaN.
    monkeypatch.setattr(train, "make_swarm_env", lambda **kw: _RewardsTurnNaN(make(**kw), 128))
    code = swarm(["train", "--quiet", "--runs-dir", str(tmp_path), "run.name=r", *tiny(4)])
    assert code == 1
    err = capsys.readouterr().err
    assert "training stopped at update 3 of 4: the rollout holds 256 non-finite rewards" in err
    assert "sim.reward" in err
    assert "Traceback" not in err
    run_dir = tmp_path / "r"
    assert logged_updates(run_dir) == [1, 2]
    assert ckpt.load(run_dir / "latest.pt")["update"] == 2


def test_a_nan_loss_stops_training_by_name_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, capsys
):
    from mappo_training.algo import learner as learner_module

    value_loss, calls = learner_module.value_loss, []

    def value_loss_nan_in_update_3(*args, **kwargs):
        loss = value_loss(*args, **kwargs)
        calls.append(1)
        # TINY_RUN: 1 epoch of 4 minibatches per update, none skipped (no algo.target_kl).
        return loss * math.nan if len(calls) == 2 * 4 + 2 else loss

    monkeypatch.setattr(learner_module, "value_loss", value_loss_nan_in_update_3)
    code = swarm(["train", "--quiet", "--runs-dir", str(tmp_path), "run.name=r", *tiny(4)])
    assert code == 1
    err = capsys.readouterr().err
    assert (
        "training stopped at update 3 of 4: losses/value_loss is nan"
        " (critic, epoch 1, minibatch 2)" in err
    )
    assert "algo.actor_lr=0.0003, algo.critic_lr=0.0003" in err and "sim.reward" in err
    run_dir = tmp_path / "r"
    assert f"{run_dir / 'checkpoints' / 'update_000002.pt'} (update 2) is the last good" in err
    assert "Traceback" not in err

    assert logged_updates(run_dir) == [1, 2]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "update_000001.pt",
        "update_000002.pt",
    ], "nothing saved after the bad update"
    assert ckpt.load(run_dir / "latest.pt")["update"] == 2
    assert weights_are_finite(run_dir / "latest.pt")


# --------------------------------------------------------------------------- #
# Disk full while checkpointing.
# --------------------------------------------------------------------------- #


class _DiskFillsUp:
    """`open` for the checkpoint module: the first `room` files write, then a
    write stops halfway with ENOSPC, as on a full disk."""

    def __init__(self, room: int) -> None:
        self.room = room

    def __call__(self, path, mode="r", *args, **kwargs):
        f = builtins.open(path, mode, *args, **kwargs)  # noqa: SIM115 - the caller closes it
        if "w" not in mode:
            return f
        if self.room > 0:
            self.room -= 1
            return f
        real_write = f.write

        def write(data):
            real_write(bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        f.write = write
        return f


def test_a_full_disk_while_checkpointing_stops_the_run_and_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, capsys
):
    run_dir = tmp_path / "r"
    monkeypatch.setattr(ckpt, "open", _DiskFillsUp(room=2), raising=False)
    code = swarm(["train", "--quiet", "--runs-dir", str(tmp_path), "run.name=r", *tiny(4)])
    assert code == 1
    err = capsys.readouterr().err
    third = run_dir / "checkpoints" / "update_000003.pt"
    assert f"could not write checkpoint {third} (No space left on device)" in err
    assert "Training stopped after update 3" in err
    assert f"`swarm train --resume {run_dir}` continues from update_000002.pt" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "update_000001.pt",
        "update_000002.pt",
    ], "no partial file left behind"
    assert ckpt.load(run_dir / "latest.pt")["update"] == 2
    assert logged_updates(run_dir) == [1, 2]

    monkeypatch.undo()  # space freed: the run continues, one update redone
    assert swarm(["train", "--quiet", "--resume", str(run_dir)]) == 0
    assert logged_updates(run_dir) == [1, 2, 3, 4]
