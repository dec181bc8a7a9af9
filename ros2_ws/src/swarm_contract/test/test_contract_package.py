"""swarm_contract as colcon installed it: the shipped robot profile loads and a
model's contract survives the trip through ONNX metadata.

Run by `colcon test` (the repository's own suite lives in tests/)."""

import numpy as np
import pytest

from swarm_contract.robot_io import (
    Contract,
    ContractMismatch,
    ObservationBuilder,
    clamp_twist,
    load_profile,
)


def test_the_shipped_turtlebot3_profile_loads_from_the_installed_package():
    profile = load_profile()
    assert profile.name == "turtlebot3_burger"
    assert 0 < profile.max_linear <= 0.26
    assert profile.range_min < profile.range_max


def test_a_contract_round_trips_through_onnx_metadata():
    contract = Contract.for_profile(load_profile(), num_beams=16, scan_stack=2)
    meta = contract.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert Contract.from_metadata(meta) == contract


def test_metadata_from_another_contract_version_is_refused_with_the_fix():
    meta = Contract().to_metadata()
    meta["contract.contract_version"] = '"0"'
    with pytest.raises(ContractMismatch, match="re-export the model"):
        Contract.from_metadata(meta)


def test_an_observation_has_the_contracts_size_and_commands_stay_in_limits():
    contract = Contract()
    builder = ObservationBuilder(contract)
    builder.add_scan(np.full(360, 2.0), -np.pi, 2 * np.pi / 360)
    obs = builder.observation(np.zeros(3), np.array([1.0, 0.0]), 0.0, 0.0)
    assert obs.shape == (contract.obs_dim,)
    assert np.all(np.isfinite(obs))
    v, w = clamp_twist(10.0, -10.0, contract.max_linear, contract.max_angular)
    assert (v, w) == (contract.max_linear, -contract.max_angular)
