"""Contract.scan_period: a model's stacked scans must come as often as it learned them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from swarm_contract import robot_io
from swarm_contract.robot_io import Contract, ContractMismatch, ObservationBuilder, RobotProfile


def test_scan_period_defaults_to_the_control_period():
    assert Contract().scan_period == 0.1
    assert Contract(control_period=0.2).scan_period == 0.2
    assert Contract(scan_period=0.2).scan_period == 0.2
    with pytest.raises(ValueError, match="scan_period"):
        Contract(scan_period=0.0)


def test_metadata_round_trip_and_legacy_metadata_means_one_scan_per_command():
    contract = Contract(scan_stack=3, scan_period=0.2)
    meta = contract.to_metadata()
    assert json.loads(meta["contract.scan_period"]) == 0.2
    assert Contract.from_metadata(meta) == contract

    legacy = Contract(scan_stack=3, control_period=0.05).to_metadata()
    del legacy["contract.scan_period"]  # exported before the field existed
    assert Contract.from_metadata(legacy).scan_period == 0.05


def test_a_stacking_model_is_refused_by_a_lidar_of_another_period_naming_scan_period():
    model = Contract(scan_stack=3)  # trained with a scan every 0.1 s
    robot = Contract(scan_stack=3, scan_period=0.2)  # a 5 Hz lidar
    with pytest.raises(ContractMismatch, match=r"scan_period: model stacks 3 scans 0\.1 s apart"):
        model.check_fits(robot)
    # With one scan per observation nothing depends on the period.
    Contract(scan_stack=1).check_fits(Contract(scan_stack=1, scan_period=0.2))
    # A different stack is named as such.
    with pytest.raises(ContractMismatch, match="scan_stack"):
        Contract(scan_stack=3).check_fits(Contract(scan_stack=1))


def test_the_profile_sets_the_robots_scan_period(tmp_path):
    assert Contract.for_profile(RobotProfile()).scan_period == 0.1  # unset: control period
    assert Contract.for_profile(RobotProfile(scan_period=0.2)).scan_period == 0.2
    path = tmp_path / "slow_lidar.yaml"
    path.write_text(yaml.safe_dump({"scan_period": 0.2, "dropout_rate": 0.05}))
    profile = robot_io.load_profile(path)
    assert profile.scan_period == 0.2 and profile.lidar_period == 0.2
    assert profile.dropout_rate == 0.05


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("scan_period", 0.0),
        ("range_noise_std", -0.01),
        ("range_noise_ratio", math.inf),
        ("dropout_rate", 1.0),
        ("mount_yaw", 4.0),
        ("actuation_latency", -0.1),
        ("odom_linear_drift", math.nan),
        ("odom_angular_drift", -1.0),
    ],
)
def test_bad_fidelity_fields_of_a_profile_name_the_key(field, value):
    with pytest.raises(ValueError, match=f"bad {field}="):
        RobotProfile(**{field: value})


def test_pooling_compensates_the_lidars_mounting_yaw():
    # A lidar turned 90 degrees left on the base: its ray at scan angle 0 looks left.
    ranges = np.full(360, np.inf)
    ranges[180] = 1.0  # ray 180 at angle_min -pi + 180 deg = scan angle 0
    contract = Contract(num_beams=4)
    builder = ObservationBuilder(contract, mount_yaw=math.pi / 2)
    builder.add_scan(ranges, -math.pi, math.radians(1.0))
    beams = builder.observation([0, 0, 0], [1, 0], 0.0, 0.0)[:4]
    # Beams: 0 behind, 1 right, 2 ahead, 3 left (REP-103, counter-clockwise).
    assert np.argmin(beams) == 3
    plain = ObservationBuilder(contract)
    plain.add_scan(ranges, -math.pi, math.radians(1.0))
    assert np.argmin(plain.observation([0, 0, 0], [1, 0], 0.0, 0.0)[:4]) == 2


def test_onnx_policy_load_refuses_a_model_of_another_scan_period(policy_models):
    from swarm_contract.onnx_policy import OnnxPolicy, PolicyRejected

    path = policy_models.mlp("stacked.onnx", contract=Contract(scan_stack=3))
    with pytest.raises(PolicyRejected, match="scan_period") as err:
        OnnxPolicy.load(path, robot_contract=Contract(scan_stack=3, scan_period=0.2))
    assert "0.2" in str(err.value)
    # The same model on a robot whose lidar matches loads.
    policy = OnnxPolicy.load(path, robot_contract=Contract(scan_stack=3))
    assert policy.contract.scan_period == 0.1
