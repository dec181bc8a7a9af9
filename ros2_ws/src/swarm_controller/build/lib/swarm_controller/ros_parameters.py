"""A node's ROS parameters as a table of specs, declared with one descriptor each.

A `ParameterSpec` says what `ros2 param describe` will say about a parameter:
its description, type, range and whether it is read-only. `declare_parameters`
declares a whole table on a node, so rclpy itself refuses out-of-range values
and changes to read-only parameters. The policy node and the sim bridge both
keep their tables here in this form.

The spec imports no rclpy (the declaring functions import it when called), so a
table and the rules built on it are importable and testable without ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.node import Node

ParameterValue = bool | int | float | str | list
"""What a parameter may hold: a scalar or a list of one scalar type."""

_INTEGER_LIMIT = 2**31 - 1
"""Where an integer range left open stops (seeds and counts fit in 32 bits)."""

_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class ParameterSpec:
    """One ROS parameter: its name, default and what its descriptor says."""

    name: str
    default: ParameterValue
    description: str
    low: float | None = None
    high: float | None = None
    """Inclusive range of a number, enforced by rclpy at declare and set time; an
    open end (None) is unbounded (for integers: +-2**31, seeds and counts fit)."""
    read_only: bool = False
    """Set only at start (command line, params file); refused on a running node."""
    item_type: type = str
    """Element type of a list parameter. A list default of [] is declared by this
    type alone (rclpy cannot infer an array's type from an empty list), so the
    parameter reads as unset until given."""

    def __post_init__(self) -> None:
        kind = type(self.default)
        if kind is list:
            if self.item_type not in _SCALARS:
                raise TypeError(
                    f"parameter {self.name}: item_type={self.item_type!r}; use one of"
                    f" {[t.__name__ for t in _SCALARS]}"
                )
            if any(type(v) is not self.item_type for v in self.default):
                raise TypeError(
                    f"parameter {self.name}: default {self.default!r} holds values that are"
                    f" not {self.item_type.__name__}"
                )
        elif kind not in _SCALARS:
            raise TypeError(
                f"parameter {self.name}: default {self.default!r} is a {kind.__name__}; use a"
                " bool, int, float, str or a list of one of them"
            )
        if (self.low is not None or self.high is not None) and kind not in (int, float):
            raise TypeError(
                f"parameter {self.name}: a range needs an int or float default, not"
                f" {self.default!r}"
            )


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """The ParameterDescriptor `ros2 param describe` shows for `spec`."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    desc = ParameterDescriptor(
        description=spec.description,
        read_only=spec.read_only,
        type=_parameter_type(spec).value,
    )
    if spec.low is None and spec.high is None:
        return desc
    if type(spec.default) is int:
        low = int(spec.low) if spec.low is not None else -_INTEGER_LIMIT - 1
        high = int(spec.high) if spec.high is not None else _INTEGER_LIMIT
        desc.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    else:
        low = float(spec.low) if spec.low is not None else -math.inf
        high = float(spec.high) if spec.high is not None else math.inf
        desc.floating_point_range = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
    return desc


def declare_parameters(node: Node, specs: tuple[ParameterSpec, ...]) -> dict[str, Any]:
    """Declare every spec on `node` (values given at start override the defaults);
    returns the values, as `parameter_values` does."""
    declared = []
    for spec in specs:
        empty_list = type(spec.default) is list and not spec.default
        default = _parameter_type(spec) if empty_list else spec.default
        declared.append((spec.name, default, descriptor(spec)))
    node.declare_parameters("", declared)
    return parameter_values(node, specs)


def parameter_values(node: Node, specs: tuple[ParameterSpec, ...]) -> dict[str, Any]:
    """The current value of every spec's parameter by name; an unset one reads as
    its spec's default."""
    from rclpy.exceptions import ParameterUninitializedException

    values = {}
    for spec in specs:
        try:
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            values[spec.name] = spec.default
    return values


def _parameter_type(spec: ParameterSpec):
    from rclpy.parameter import Parameter

    scalar = {
        bool: Parameter.Type.BOOL,
        int: Parameter.Type.INTEGER,
        float: Parameter.Type.DOUBLE,
        str: Parameter.Type.STRING,
    }
    array = {
        bool: Parameter.Type.BOOL_ARRAY,
        int: Parameter.Type.INTEGER_ARRAY,
        float: Parameter.Type.DOUBLE_ARRAY,
        str: Parameter.Type.STRING_ARRAY,
    }
    if type(spec.default) is list:
        return array[spec.item_type]
    return scalar[type(spec.default)]
