"""`swarm export`: per-robot ONNX files that a robot can run alone, checked before they exist."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("onnx", reason="needs onnx: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

import onnx
import torch
import yaml
from conftest import exporter_weights_sha256
from training_fixtures import train_tiny_run

from mappo_training import export
from mappo_training.cli import main as swarm
from mappo_training.evaluate import CheckpointPolicy, evaluate
from swarm_contract.robot_io import Contract, ContractMismatch


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    # A robot id on the shared actor: one file per robot, each with its id baked in.
    return train_tiny_run(tmp_path_factory.mktemp("run"), "algo.agent_id=onehot")


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "tiny"
    assert swarm(["export", str(trained_run), "--out", str(out)]) == 0
    return out


def test_one_file_per_robot_with_card_and_readme(exported):
    assert sorted(p.name for p in exported.glob("*.onnx")) == ["robot_0.onnx", "robot_1.onnx"]
    card = yaml.safe_load((exported / "policy.yaml").read_text())
    assert card["training"]["robot_steps"] > 0
    assert card["training"]["seed"] == 1
    assert (exported / "README.md").read_text().startswith("# Policy")
    for robot in card["robots"]:
        data = (exported / robot["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == robot["sha256"]
        assert robot["parity_max_abs_diff"]["random"] <= 1e-5


def test_graph_takes_only_the_local_observation_and_emits_cmd_vel(exported):
    model = onnx.load(str(exported / "robot_0.onnx"))
    onnx.checker.check_model(model)
    session = ort.InferenceSession(str(exported / "robot_0.onnx"))
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    contract = Contract.from_metadata(session.get_modelmeta().custom_metadata_map)
    assert inp.name == "obs" and inp.shape[1] == contract.obs_dim
    assert out.name == "cmd_vel"
    obs = export.random_observations(contract, 64, seed=3)
    cmd = session.run(None, {"obs": obs})[0]
    assert cmd.shape == (64, 2), "dynamic batch"
    assert np.all(np.abs(cmd[:, 0]) <= contract.max_linear + 1e-6)
    assert np.all(np.abs(cmd[:, 1]) <= contract.max_angular + 1e-6)


def test_metadata_is_complete_and_rebuilds_the_contract(exported):
    meta = ort.InferenceSession(str(exported / "robot_1.onnx")).get_modelmeta()
    props = meta.custom_metadata_map
    for key in (
        "contract.contract_version",
        "contract.num_beams",
        "contract.range_min",
        "contract.range_max",
        "contract.scan_stack",
        "contract.max_linear",
        "contract.control_period",
        "contract.profile",
        "policy.agent_id",
        "policy.run_id",
        "policy.config_hash",
        "policy.weights_sha256",
    ):
        assert key in props, key
    assert props["policy.agent_id"] == "1"
    model = onnx.load(str(exported / "robot_1.onnx"))
    assert props["policy.weights_sha256"] == exporter_weights_sha256(model)


def test_onnx_matches_torch_on_fresh_observations(trained_run, exported):
    from mappo_training import checkpoint as ckpt

    data = ckpt.load(trained_run / "latest.pt")
    policy = CheckpointPolicy(data)
    contract = data["contract"]
    obs = export.random_observations(contract, 500, seed=11)
    session = ort.InferenceSession(str(exported / "robot_0.onnx"))
    got = session.run(None, {"obs": obs})[0]
    with torch.no_grad():
        mean = policy.learner.actor_for(0)(policy.learner.agent_input(0, obs)).numpy()
    expected = np.clip(mean, -1, 1) * [contract.max_linear, contract.max_angular]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_parity_failure_aborts_the_export(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)  # nothing can pass
    out = tmp_path / "never"
    code = swarm(["export", str(trained_run), "--out", str(out)])
    assert code == 2
    assert not out.exists(), "a failed export writes nothing"


def contract_of(model: Path) -> Contract:
    """The observation contract an exported file carries in its metadata."""
    session = ort.InferenceSession(str(model))
    return Contract.from_metadata(session.get_modelmeta().custom_metadata_map)


def test_model_for_another_lidar_is_reported_naming_the_field(exported):
    model_contract = contract_of(exported / "robot_0.onnx")
    robot = Contract(num_beams=36)
    with pytest.raises(ContractMismatch, match="num_beams: model expects 24, robot has 36"):
        model_contract.check_fits(robot)


def test_eval_of_the_onnx_folder_runs_through_robot_io(exported):
    report = evaluate(exported, episodes=2)
    assert report["episodes"] == 2
    assert 0.0 <= report["success_rate"] <= 1.0


def test_model_faster_than_the_robot_is_reported_naming_the_field(exported):
    model_contract = contract_of(exported / "robot_0.onnx")
    slow_robot = Contract(max_linear=0.1)
    with pytest.raises(ContractMismatch, match="max_linear: model commands up to 0.22"):
        model_contract.check_fits(slow_robot)


def test_an_id_free_shared_actor_is_one_file_for_any_fleet(tmp_path):
    """Without a robot id every robot runs the same network: one robot_0.onnx,
    which the fleet gives robot k as robot_<k mod 1>."""
    from swarm_controller.fleet import policy_for_robot

    run = train_tiny_run(tmp_path / "run")
    out = tmp_path / "models" / "any"
    assert swarm(["export", str(run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.onnx")) == ["robot_0.onnx"]
    card = yaml.safe_load((out / "policy.yaml").read_text())
    assert [r["file"] for r in card["robots"]] == ["robot_0.onnx"]
    assert "any number of robots" in (out / "README.md").read_text()
    assert policy_for_robot(out, 11) == (out / "robot_0.onnx").resolve()
