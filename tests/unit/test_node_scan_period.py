"""The policy node's side of Contract.scan_period, without ROS: which robot a model
must fit (robot_fit), and the lidar period measured at run time (scan_period)."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip(
    "swarm_controller", reason="needs swarm_controller: pip install -e ros2_ws/src/swarm_controller"
)

from swarm_contract.onnx_policy import PolicyRejected
from swarm_contract.robot_io import Contract, load_profile
from swarm_controller import parameters, robot_fit
from swarm_controller.scan_period import MIN_INTERVALS, ScanPeriodMeter, period_problem


@pytest.fixture
def slow_lidar(tmp_path):
    """A custom robot profile: a lidar at 5 Hz, mounted turned 90 degrees left."""
    path = tmp_path / "slow_lidar_bot.yaml"
    path.write_text(yaml.safe_dump({"scan_period": 0.2, "mount_yaw": 1.5707963}))
    return str(path)


def test_a_stacking_model_of_another_scan_period_is_refused_naming_scan_period(
    policy_models, slow_lidar
):
    stacked_10hz = policy_models.mlp("s10/robot_0.onnx", contract=Contract(scan_stack=3))
    with pytest.raises(PolicyRejected) as err:
        robot_fit.load_fitting_policy(stacked_10hz, None, slow_lidar)
    reason = str(err.value)
    assert str(stacked_10hz) in reason
    assert "scan_period: model stacks 3 scans 0.1 s apart" in reason
    assert "one every 0.2 s" in reason and "slow_lidar_bot" in reason


def test_one_scan_models_and_models_of_the_lidars_period_are_accepted(policy_models, slow_lidar):
    one_scan = policy_models.mlp("one/robot_0.onnx", contract=Contract(scan_stack=1))
    assert robot_fit.load_fitting_policy(one_scan, None, slow_lidar).contract.scan_stack == 1
    matching = policy_models.mlp(
        "s5/robot_0.onnx", contract=Contract(scan_stack=3, scan_period=0.2)
    )
    policy = robot_fit.load_fitting_policy(matching, None, slow_lidar)
    # The robot's contract: the profile's periods, the model's stack and beams.
    robot = robot_fit.robot_contract_for(slow_lidar, policy.contract)
    assert (robot.scan_period, robot.scan_stack, robot.num_beams) == (0.2, 3, 24)


def test_without_robot_profile_the_shipped_profile_the_model_names_decides(policy_models):
    """Default robot_profile "": a TurtleBot3 model is checked against the Burger's lidar."""
    burger = load_profile("turtlebot3_burger")
    other_period = round(burger.lidar_period / 2, 3)
    wrong = policy_models.mlp(
        "wrong/robot_0.onnx", contract=Contract(scan_stack=2, scan_period=other_period)
    )
    with pytest.raises(PolicyRejected, match="scan_period") as err:
        robot_fit.load_fitting_policy(wrong, None, "")
    assert "turtlebot3_burger" in str(err.value)
    right = policy_models.mlp(
        "right/robot_0.onnx", contract=Contract(scan_stack=2, scan_period=burger.lidar_period)
    )
    robot_fit.load_fitting_policy(right, None, "")


def test_a_custom_robot_without_a_profile_keeps_the_models_contract(policy_models):
    model = Contract(scan_stack=3, scan_period=0.05, profile="my_rover")
    path = policy_models.mlp("rover/robot_0.onnx", contract=model)
    assert robot_fit.load_fitting_policy(path, None, "").contract == model
    assert robot_fit.robot_contract_for("", model) is model


def test_a_robot_contract_file_is_the_robots_side_as_written(policy_models, slow_lidar):
    stacked_10hz = policy_models.mlp("s10/robot_0.onnx", contract=Contract(scan_stack=3))
    robot_fit.load_fitting_policy(stacked_10hz, Contract(scan_stack=3), slow_lidar)
    with pytest.raises(PolicyRejected, match="scan_period"):
        robot_fit.load_fitting_policy(
            stacked_10hz, Contract(scan_stack=3, scan_period=0.2), slow_lidar
        )


def test_robot_profile_parameter_is_checked_and_caps_and_places_the_lidar(slow_lidar):
    assert "robot_profile='no_such_bot'" in parameters.check_value("robot_profile", "no_such_bot")
    assert parameters.check_value("robot_profile", slow_lidar) is None
    settings = parameters.NodeSettings(
        **{spec.name: spec.default for spec in parameters.PARAMETERS}
        | {"robot_profile": slow_lidar}
    )
    robot = robot_fit.robot_contract_for(slow_lidar, Contract())
    limits, warnings = parameters.safety_limits(settings, robot)
    assert warnings == [] and limits.footprint_radius == 0.105
    assert robot_fit.node_profile(slow_lidar, robot).mount_yaw == pytest.approx(1.5707963)


# --------------------------------------------------------------------------- #
# The period measured at run time.
# --------------------------------------------------------------------------- #


def fed(intervals: list[float], *, stamped: bool = True) -> ScanPeriodMeter:
    meter, t = ScanPeriodMeter(), 100.0
    meter.arrived(t if stamped else None, 5.0)
    for dt in intervals:
        t += dt
        # Arrival times jitter (DDS): with stamps, only the stamps count.
        meter.arrived(t if stamped else None, 5.0 + (t - 100.0) + (0.03 if stamped else 0.0))
    return meter


def test_a_lidar_at_another_period_warns_naming_both_periods():
    model = Contract(scan_stack=3, scan_period=0.2)
    meter = fed([0.1] * MIN_INTERVALS)
    problem = period_problem(meter, model)
    assert "every 0.100 s" in problem and "3 scans 0.2 s apart" in problem
    assert problem.startswith("scan_period:")
    # Unstamped scans: the arrival times tell the period.
    assert "every 0.100 s" in period_problem(fed([0.1] * 12, stamped=False), model)


def test_the_period_check_waits_for_enough_scans_and_ignores_one_scan_models():
    model = Contract(scan_stack=3, scan_period=0.2)
    assert period_problem(fed([0.1] * (MIN_INTERVALS - 1)), model) == ""
    assert period_problem(fed([0.1] * 20), Contract(scan_stack=1, scan_period=0.2)) == ""
    assert period_problem(fed([0.1] * 20), None) == ""


def test_a_dropped_scan_now_and_then_is_not_a_wrong_period():
    model = Contract(scan_stack=3, scan_period=0.2)
    # An LDS-01 at 300 +- 10 rpm, two scans lost on the way.
    intervals = [0.2, 0.195, 0.205, 0.4, 0.2, 0.198, 0.202, 0.4, 0.2, 0.2, 0.2, 0.2]
    meter = fed(intervals)
    assert period_problem(meter, model) == ""
    assert meter.period() == (pytest.approx(0.2), len(intervals))
    meter.reset()
    assert meter.period() == (None, 0)
