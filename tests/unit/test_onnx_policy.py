"""The robot-side policy loader: good models run, unsafe ones are refused with the reason."""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
import pytest
from conftest import NEEDS_OPS, exporter_weights_sha256

from swarm_contract.onnx_policy import OnnxPolicy, PolicyRejected, weights_sha256
from swarm_contract.robot_io import Contract, ObservationBuilder


def open_space_obs(contract: Contract, obstacle_ahead_m: float | None = None) -> np.ndarray:
    """An observation built the robot's way: 360-ray scan, goal 2 m straight ahead."""
    ranges = np.full(360, np.inf)
    if obstacle_ahead_m is not None:
        angles = -np.pi + np.arange(360) * 2 * np.pi / 360
        ranges[np.abs(angles) < np.radians(10)] = obstacle_ahead_m
    builder = ObservationBuilder(contract)
    builder.add_scan(ranges, -np.pi, 2 * np.pi / 360)
    return builder.observation([0.0, 0.0, 0.0], [2.0, 0.0], 0.0, 0.0)


def test_good_policy_loads_and_runs_single_and_batched(policy_models):
    path = policy_models.mlp("robot_3.onnx", agent_id=3)
    policy = OnnxPolicy.load(path, robot_contract=Contract())

    assert policy.agent_id == 3
    assert policy.contract == Contract()
    assert policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert policy.path == path.resolve()
    assert policy.metadata["policy.name"] == "test-policy"
    assert policy.load_time > 0

    obs = np.random.default_rng(0).uniform(0, 1, (5, policy.contract.obs_dim)).astype(np.float32)
    batch = policy.infer(obs)
    assert batch.shape == (5, 2)
    single = [policy.infer(row) for row in obs]
    assert all(s.shape == (2,) for s in single)
    np.testing.assert_allclose(np.stack(single), batch, rtol=1e-6)
    # Different observations give different commands: the weights are used.
    assert np.ptp(batch[:, 0]) > 0
    assert np.all(np.abs(batch) <= [Contract().max_linear, Contract().max_angular])


def test_wrong_observation_shape_is_an_error_naming_the_expected_shape(policy_models):
    policy = OnnxPolicy.load(policy_models.mlp())
    with pytest.raises(ValueError, match=r"expected \(29,\)"):
        policy.infer(np.zeros(28, np.float32))


def test_weights_hash_matches_the_exporters_definition(policy_models):
    import onnx

    for path in (policy_models.mlp(hidden=8), policy_models.reference_controller("ref.onnx")):
        model = onnx.load(str(path))
        assert weights_sha256(path.read_bytes()) == exporter_weights_sha256(model)

    # Weights kept in typed fields (float_data / int64_data) hash like raw bytes.
    model = onnx.load(str(policy_models.reference_controller("typed.onnx")))
    for init in model.graph.initializer:
        values = onnx.numpy_helper.to_array(init)
        init.ClearField("raw_data")
        if values.dtype == np.float32:
            init.float_data.extend(values.ravel().tolist())
        else:
            init.int64_data.extend(values.ravel().tolist())
    assert weights_sha256(model.SerializeToString()) == exporter_weights_sha256(model)


def test_tampered_weights_are_refused(policy_models):
    path = policy_models.tampered()
    with pytest.raises(PolicyRejected) as err:
        OnnxPolicy.load(path)
    message = str(err.value)
    assert str(path) in message
    assert "weights" in message and "policy.weights_sha256" in message


def test_graph_that_needs_the_global_state_is_refused(policy_models):
    for path in (
        policy_models.global_state("state_only.onnx"),
        policy_models.global_state("obs_and_state.onnx", with_obs=True),
    ):
        with pytest.raises(PolicyRejected) as err:
            OnnxPolicy.load(path)
        message = str(err.value)
        assert str(path) in message
        assert "state tensor(float)" in message  # names the offending input
        assert "global state" in message
        assert "exactly one input 'obs'" in message


def test_wrong_beam_count_names_the_field(policy_models):
    path = policy_models.mlp(contract=Contract(num_beams=16))
    with pytest.raises(PolicyRejected) as err:
        OnnxPolicy.load(path, robot_contract=Contract(num_beams=24))
    message = str(err.value)
    assert "num_beams: model expects 16, robot has 24" in message
    assert str(path) in message
    # Without a robot contract to compare with, the same file is a valid policy.
    assert OnnxPolicy.load(path).contract.num_beams == 16


def test_every_differing_contract_field_is_named(policy_models):
    path = policy_models.mlp(contract=Contract(num_beams=16, range_max=6.0, scan_stack=2))
    with pytest.raises(PolicyRejected) as err:
        OnnxPolicy.load(path, robot_contract=Contract())
    for field in ("num_beams", "range_max", "scan_stack"):
        assert field in str(err.value)


def test_speed_limits_may_differ_from_the_robots(policy_models):
    """The robot clamps to its own limits; a slower-trained model still fits."""
    path = policy_models.mlp(contract=Contract(max_linear=0.1))
    assert OnnxPolicy.load(path, robot_contract=Contract()).contract.max_linear == 0.1


def test_allowed_dirs_are_enforced_after_resolving_symlinks(policy_models, tmp_path):
    good = policy_models.mlp()
    allowed = good.parent
    assert OnnxPolicy.load(good, allowed_dirs=[str(allowed)]).path == good.resolve()

    outside_dir = tmp_path / "elsewhere"
    onnx_models = pytest.importorskip("swarm_ops.onnx_models", reason=NEEDS_OPS)
    outside = onnx_models.PolicyModels(outside_dir).mlp()
    with pytest.raises(PolicyRejected, match="outside the allowed policy folders"):
        OnnxPolicy.load(outside, allowed_dirs=[str(allowed)])

    # A link inside the allowed folder pointing outside is still outside.
    link = allowed / "robot_9.onnx"
    os.symlink(outside, link)
    with pytest.raises(PolicyRejected, match="resolves to .*elsewhere"):
        OnnxPolicy.load(link, allowed_dirs=[str(allowed)])


def test_missing_and_corrupt_files_are_refused(policy_models):
    missing = policy_models.root / "robot_7.onnx"
    with pytest.raises(PolicyRejected, match="no such file"):
        OnnxPolicy.load(missing)
    corrupt = policy_models.corrupt()
    with pytest.raises(PolicyRejected) as err:
        OnnxPolicy.load(corrupt)
    assert str(corrupt) in str(err.value)
    assert "cannot load it as an ONNX model" in str(err.value)


def test_missing_provenance_metadata_is_refused(policy_models):
    from onnx import helper

    path = policy_models.save(
        "no_hash.onnx",
        [helper.make_node("Identity", ["obs"], ["cmd_vel"])],
        {},
        Contract(),
        drop_metadata=("policy.weights_sha256",),
    )
    with pytest.raises(PolicyRejected, match=r"lacks \['policy.weights_sha256'\]"):
        OnnxPolicy.load(path)


def test_missing_contract_metadata_names_the_key(policy_models):
    path = policy_models.mlp()
    reexported = policy_models.save(
        "no_beams.onnx",
        *_graph_of(path),
        Contract(),
        drop_metadata=("contract.num_beams",),
    )
    with pytest.raises(PolicyRejected, match="contract.num_beams"):
        OnnxPolicy.load(reexported)


def _graph_of(path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return list(model.graph.node), weights


@pytest.mark.parametrize(
    ("v", "w", "reason"),
    [
        (float("nan"), 0.0, "non-finite"),
        (0.0, float("inf"), "non-finite"),
        (1.0, 0.0, "outside the model's limits"),
        (0.0, -9.0, "outside the model's limits"),
    ],
)
def test_warm_up_refuses_non_finite_or_out_of_limit_commands(policy_models, v, w, reason):
    path = policy_models.constant("bad_output.onnx", v, w)
    with pytest.raises(PolicyRejected, match=reason):
        OnnxPolicy.load(path)


def test_reference_controller_drives_to_an_open_goal_and_stops_for_a_wall(policy_models):
    """Checks the test fixture controller itself, which the node tests rely on."""
    c = Contract()
    policy = OnnxPolicy.load(policy_models.reference_controller(), robot_contract=c)
    v_open, w_open = policy.infer(open_space_obs(c))
    v_wall, _ = policy.infer(open_space_obs(c, obstacle_ahead_m=0.25))
    v_near, _ = policy.infer(open_space_obs(c, obstacle_ahead_m=0.6))
    assert v_open == pytest.approx(c.max_linear, rel=1e-5)
    assert w_open == pytest.approx(0.0, abs=1e-6)
    assert v_wall == 0.0
    assert 0.0 < v_near < v_open


def test_single_observation_path_is_fast(policy_models):
    """The node calls infer every tick; the single path must stay cheap."""
    import time

    policy = OnnxPolicy.load(policy_models.mlp(hidden=256))
    obs = np.zeros(policy.contract.obs_dim, np.float32)
    for _ in range(50):
        policy.infer(obs)
    started = time.perf_counter()
    for _ in range(500):
        policy.infer(obs)
    per_call = (time.perf_counter() - started) / 500
    assert per_call < 1e-3  # about 10-20 us here; 1 ms leaves room for a busy CI box


# --------------------------------------------------------------------------- #
# Faults while loading: every one is a PolicyRejected with the reason, never
# another exception (a node swapping live would die of it).
# --------------------------------------------------------------------------- #


def _refusal(path, **kwargs) -> str:
    with pytest.raises(PolicyRejected) as err:
        OnnxPolicy.load(path, **kwargs)
    assert str(path) in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("agent_id", ["Infinity", "-Infinity", "NaN", "nan", "1e999", "-1", "3.0"])
def test_non_finite_or_negative_agent_id_is_refused(policy_models, agent_id):
    nodes, weights = _graph_of(policy_models.mlp())
    path = policy_models.save(
        "robot_0.onnx", nodes, weights, Contract(), metadata={"policy.agent_id": agent_id}
    )
    reason = _refusal(path)
    assert f"policy.agent_id={agent_id!r} is not a robot index" in reason
    assert "whole number from 0 to 9999" in reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Infinity", "contract.max_linear='Infinity' is not a finite number"),
        ("1e999", "contract.max_linear='1e999' is not a finite number"),
        ("true", "contract.max_linear='true' is not a finite number"),
        ("NaN", "max_linear=nan must be > 0"),
    ],
)
def test_non_finite_contract_number_is_refused_naming_the_key(policy_models, value, reason):
    nodes, weights = _graph_of(policy_models.mlp())
    path = policy_models.save(
        "robot_0.onnx", nodes, weights, Contract(), metadata={"contract.max_linear": value}
    )
    assert reason in _refusal(path)


def test_file_name_longer_than_the_file_system_allows_is_refused(policy_models):
    path = policy_models.root / ("r" * 300 + ".onnx")
    reason = _refusal(path)
    assert "too long" in reason and "305 bytes" in reason and "255 bytes per name" in reason


def test_file_over_the_size_limit_is_refused_without_reading_it(tmp_path):
    # Sparse: 64 GiB on paper, no blocks on disk; reading it would need 64 GiB of memory.
    huge = tmp_path / "robot_0.onnx"
    huge.touch()
    os.truncate(huge, 64 * 2**30)
    started = time.perf_counter()
    reason = _refusal(huge)
    assert time.perf_counter() - started < 0.5
    assert f"holds {64 * 2**30} bytes" in reason and f"more than the {64 * 2**20} bytes" in reason


def test_the_size_limit_can_be_set_by_the_caller(policy_models):
    good = policy_models.mlp()
    size = good.stat().st_size
    assert "more than the 1000 bytes" in _refusal(good, max_bytes=1000)
    assert OnnxPolicy.load(good, max_bytes=size).path == good.resolve()


def test_a_pinned_sha256_refuses_any_other_model_naming_both_hashes(policy_models):
    good = policy_models.mlp()
    other = policy_models.mlp("other.onnx", seed=1)
    pinned = hashlib.sha256(good.read_bytes()).hexdigest()
    reason = _refusal(other, expected_sha256=pinned)
    assert hashlib.sha256(other.read_bytes()).hexdigest() in reason and pinned in reason
    assert OnnxPolicy.load(good, expected_sha256=pinned.upper()).sha256 == pinned


def test_unreadable_folder_is_refused(policy_models):
    locked = policy_models.root / "locked"
    path = policy_models.mlp("locked/robot_0.onnx")
    if os.geteuid() == 0:
        # chmod does not stop root: look as an unprivileged user instead, and
        # switch back whatever happens (the saved user id stays root).
        os.seteuid(65534)
        try:
            reason = _refusal(path)
        finally:
            os.seteuid(0)
    else:
        locked.chmod(0)
        try:
            reason = _refusal(path)
        finally:
            locked.chmod(0o755)
    assert "permission denied" in reason and "cannot reach or read it" in reason


def test_folder_and_non_regular_files_are_refused(policy_models):
    folder = policy_models.root / "robot_0.onnx"
    folder.mkdir()
    assert "not a regular file (it is a folder)" in _refusal(folder)
    fifo = policy_models.root / "robot_1.onnx"
    os.mkfifo(fifo)  # reading a FIFO would block the loader for ever
    assert "not a regular file" in _refusal(fifo)


def test_truncated_onnx_file_is_refused(policy_models):
    good = policy_models.mlp()
    cut = policy_models.root / "cut.onnx"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "cannot load it as an ONNX model" in _refusal(cut)


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("graph walk failed"), KeyError("x")])
def test_any_other_error_while_checking_is_a_refusal_naming_its_type(
    policy_models, monkeypatch, error
):
    import swarm_contract.onnx_policy as onnx_policy

    def broken(*_args):
        raise error

    monkeypatch.setattr(onnx_policy, "_check_graph_io", broken)
    reason = _refusal(policy_models.mlp())
    assert f"failed with {type(error).__name__}" in reason
