"""swarm_controller as colcon installed it: its parameter table, its sample
parameters file, and what a launch file starts (the fleet specs and the
lifecycle decision), without ROS running.

Run by `colcon test` (the repository's own suite lives in tests/)."""

from pathlib import Path

import pytest
import yaml

from swarm_contract.config import ConfigError
from swarm_controller import fleet, parameters

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SAMPLE = PACKAGE_DIR / "config" / "policy_node.yaml"


@pytest.fixture
def policy_folder(tmp_path) -> Path:
    """A models/<name> folder with two robots' files (specs only name them)."""
    folder = tmp_path / "models" / "nav"
    folder.mkdir(parents=True)
    for i in range(2):
        (folder / f"robot_{i}.onnx").write_bytes(b"")
    return folder


def test_every_parameter_has_one_entry_and_its_default_is_acceptable():
    names = [spec.name for spec in parameters.PARAMETERS]
    assert len(names) == len(set(names))
    for spec in parameters.PARAMETERS:
        if isinstance(spec.default, float):
            assert parameters.check_value(spec.name, spec.default) is None, spec.name
        assert spec.description, f"{spec.name} has no description"


def test_the_sample_params_file_sets_every_parameter_of_the_policy_node():
    values = yaml.safe_load(SAMPLE.read_text())["/**/policy_node"]["ros__parameters"]
    assert set(values) == set(parameters.NAMES)


def test_a_simulated_swarm_starts_the_bridge_and_one_respawning_node_per_robot(policy_folder):
    specs = fleet.sim_node_specs(num_robots=3, policy=policy_folder)
    assert [s.label for s in specs] == [
        "sim_bridge",
        "robot_0.policy_node",
        "robot_1.policy_node",
        "robot_2.policy_node",
    ]
    # Robot 2 of a two-robot policy runs robot_0.onnx (shared actor).
    assert Path(specs[3].parameters["policy_path"]).name == "robot_0.onnx"
    nodes = specs[1:]
    assert all(s.respawn and s.respawn_max_retries == fleet.RESPAWN_MAX_RETRIES for s in nodes)


def test_a_fleet_entry_with_a_typo_in_a_parameter_is_refused_by_name(policy_folder):
    config = fleet.FleetConfig(
        robots=[fleet.RobotEntry(namespace="tb3_0", parameters={"sensor_timout": 1.0})],
        policy=str(policy_folder),
    )
    with pytest.raises(ConfigError, match="sensor_timout"):
        fleet.fleet_node_specs(config, known_parameters=set(parameters.NAMES))


def test_without_autostart_the_launch_drives_the_lifecycle_unless_a_manager_does(
    policy_folder,
):
    specs = fleet.sim_node_specs(num_robots=1, policy=policy_folder)
    bridge, node = fleet.with_launch_arguments(specs, autostart=False)
    assert fleet.policy_lifecycle(bridge) == ""
    assert fleet.policy_lifecycle(node) == fleet.LIFECYCLE_LAUNCH
    assert fleet.policy_lifecycle(node, lifecycle_manager=True) == fleet.LIFECYCLE_MANAGER
    # Asking for a manager turns autostart off: its configure must find the node unconfigured.
    _, managed = fleet.with_launch_arguments(specs, lifecycle_manager=True)
    assert managed.parameters["autostart"] is False


def test_autostart_from_a_params_file_follows_the_node_name_patterns(tmp_path, policy_folder):
    params = tmp_path / "params.yaml"
    params.write_text(
        "/**/policy_node:\n  ros__parameters: {autostart: false}\n"
        "/robot_1/policy_node:\n  ros__parameters: {autostart: true}\n"
    )
    specs = fleet.sim_node_specs(num_robots=2, policy=policy_folder)
    _, first, second = fleet.with_launch_arguments(specs, params_file=str(params))
    assert first.parameter_files == (str(params),)
    assert fleet.policy_autostart(first) is False
    assert fleet.policy_autostart(second) is True
    with pytest.raises(ConfigError, match="params_file"):
        fleet.with_launch_arguments(specs, params_file=str(tmp_path / "missing.yaml"))
