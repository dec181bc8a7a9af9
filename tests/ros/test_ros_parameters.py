"""Parameter tables declared on a real rclpy node: what `ros2 param` users see.

The policy node and the sim bridge declare their parameters from
`ros_parameters.ParameterSpec` tables. Here each table is declared on a bare
node, and the checks are the ones `ros2 param describe` / `ros2 param set`
would show: descriptions and ranges, out-of-range and read-only values refused
by rclpy itself, values from the command line winning over the defaults.
"""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="needs rclpy + ROS message wheels: pip install -e '.[ros]'")

from rclpy.exceptions import InvalidParameterValueException
from rclpy.parameter import Parameter

from swarm_controller import parameters
from swarm_controller.ros_parameters import ParameterSpec, declare_parameters


@pytest.fixture
def make_node(ros_domain):
    """A bare rclpy node in its own context, started with `args` (--ros-args ...)."""
    import rclpy

    contexts = []

    def make(name: str, args: tuple[str, ...] = ()):
        context = rclpy.Context()
        rclpy.init(args=["--ros-args", *args], context=context, domain_id=ros_domain)
        contexts.append(context)
        return rclpy.create_node(name, context=context)

    yield make
    for context in contexts:
        rclpy.try_shutdown(context=context)


def refusal(node, name: str, value) -> str:
    """Why `ros2 param set <node> name value` fails ('' when it succeeds)."""
    [result] = node.set_parameters([Parameter(name, value=value)])
    return "" if result.successful else result.reason


def test_the_policy_node_describes_each_parameter_and_rclpy_enforces_it(make_node):
    node = make_node("policy_node", ("-p", "max_linear:=0.1"))
    parameters.declare(node)

    [limit] = node.describe_parameters(["max_linear"])
    assert "Hard limit on |linear velocity|" in limit.description
    assert (limit.floating_point_range[0].from_value, limit.floating_point_range[0].to_value) == (
        0.0,
        10.0,
    )
    assert parameters.read(node).max_linear == 0.1, "the command line wins over the default"
    assert "out of range" in refusal(node, "sensor_timeout", 11.0)
    assert "read-only" in refusal(node, "cmd_vel_stamped", True)
    # Safety limits are set at start only: a running node cannot be made faster
    # or made to load policies from elsewhere.
    assert "read-only" in refusal(node, "max_linear", 5.0)
    assert "read-only" in refusal(node, "max_angular", 10.0)
    assert "read-only" in refusal(node, "allowed_policy_dirs", ["/tmp"])
    assert "read-only" in refusal(node, "min_valid_ray_fraction", 0.1)
    assert parameters.read(node).max_linear == 0.1
    # A live swap is a parameter set: policy_path stays writable.
    assert refusal(node, "policy_path", "/opt/policies/robot_0.onnx") == ""
    # Unset until given: any folder may hold a policy (development).
    assert parameters.read(node).allowed_policy_dirs is None


def test_the_sim_bridge_table_keeps_all_but_two_parameters_fixed(make_node):
    pytest.importorskip("pybullet", reason="the sim bridge needs pybullet: make setup")
    pytest.importorskip("mappo_training", reason="the sim bridge needs mappo_training: make setup")
    from swarm_ops.sim_bridge_config import PARAMETERS, settings_from_parameters

    node = make_node("sim_bridge", ("-p", "num_robots:=3", "-p", "sim_overrides:=['seed=1']"))
    settings = settings_from_parameters(declare_parameters(node, PARAMETERS))

    assert (settings.num_robots, settings.sim_overrides) == (3, ["seed=1"])
    assert "read-only" in refusal(node, "num_robots", 2)
    assert refusal(node, "real_time_factor", 4.0) == ""
    assert "out of range" in refusal(node, "real_time_factor", 1000.0)
    [seed] = node.describe_parameters(["seed"])
    assert seed.integer_range[0].from_value == 0 and seed.read_only


def test_an_out_of_range_value_at_start_is_refused_naming_the_parameter(make_node):
    node = make_node("policy_node", ("-p", "sensor_timeout:=0.0"))
    with pytest.raises(InvalidParameterValueException, match="sensor_timeout"):
        parameters.declare(node)


@pytest.mark.parametrize(
    "spec, named",
    [
        (dict(default=None), "default None"),
        (dict(default="fast", low=0.0), "a range needs an int or float"),
        (dict(default=[1, "a"], item_type=int), "not int"),
    ],
)
def test_a_malformed_spec_is_refused_naming_the_parameter(spec, named):
    with pytest.raises(TypeError, match=f"parameter speed: .*{named}"):
        ParameterSpec(**{"name": "speed", "description": "", **spec})
