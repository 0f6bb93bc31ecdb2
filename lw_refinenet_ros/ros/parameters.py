"""Declare the node's parameters from the one table in ``lw_refinenet_ros.config``.

Each descriptor is derived from the same ParameterSpec that validates the value, so the
range ``ros2 param describe`` shows is exactly the range start-up and runtime changes accept.
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from lw_refinenet_ros.config import PARAMETER_SPECS, PARAMETERS, NodeConfig, ParameterSpec
from lw_refinenet_ros.errors import ConfigError, LWRefineNetError


def _descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(name=spec.name, description=spec.description,
                                     read_only=not spec.runtime)
    default = spec.default
    if isinstance(default, bool):
        descriptor.type = ParameterType.PARAMETER_BOOL
    elif isinstance(default, int):
        descriptor.type = ParameterType.PARAMETER_INTEGER
        if spec.minimum is not None:
            descriptor.integer_range = [IntegerRange(from_value=int(spec.minimum),
                                                     to_value=int(spec.maximum), step=1)]
    elif isinstance(default, float):
        descriptor.type = ParameterType.PARAMETER_DOUBLE
        if spec.minimum is not None:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(spec.minimum), to_value=float(spec.maximum), step=0.0)]
    elif isinstance(default, tuple):
        descriptor.type = ParameterType.PARAMETER_STRING_ARRAY
    else:
        descriptor.type = ParameterType.PARAMETER_STRING
    if spec.choices is not None:
        descriptor.additional_constraints = f'one of: {", ".join(spec.choices)}'
    elif spec.constraint is not None:
        descriptor.additional_constraints = spec.constraint
    return descriptor


def declare_parameters(node: Node) -> NodeConfig:
    """Declare every parameter with its descriptor and return the validated configuration.

    Raises:
        ConfigError: A value (from a params file or the command line) is invalid.
    """
    values: dict[str, Any] = {}
    for spec in PARAMETERS:
        descriptor = _descriptor(spec)
        # An empty list has no ROS type: declare lists by type (an empty YAML list stays unset).
        # A non-empty default list (objects.ignore_classes) is declared with its value.
        default = Parameter.Type.STRING_ARRAY if spec.default == () else (
            list(spec.default) if isinstance(spec.default, tuple) else spec.default)
        try:
            parameter = node.declare_parameter(spec.name, default, descriptor)
        except Exception as error:  # rclpy raises several types for a badly typed override
            raise ConfigError(f'Parameter {spec.name}: {error}') from error
        value = parameter.value
        values[spec.name] = tuple(value or ()) if isinstance(spec.default, tuple) else value
    return NodeConfig.from_mapping(values)


def validate_change(config: NodeConfig, parameters: list[Parameter]) -> tuple[
        NodeConfig | None, SetParametersResult]:
    """Check a runtime change with the same validator as start-up.

    Returns the new configuration (None when rejected) and the result for rclpy.
    """
    changes = {}
    for parameter in parameters:
        spec = PARAMETER_SPECS.get(parameter.name)
        if spec is None:
            continue  # not ours (e.g. use_sim_time)
        if not spec.runtime:
            return None, SetParametersResult(
                successful=False, reason=f'{parameter.name} is fixed at start-up; restart the '
                                         f'node to change it')
        changes[parameter.name] = parameter.value
    try:
        new_config = config.replace(changes) if changes else config
    except ConfigError as error:
        return None, SetParametersResult(successful=False, reason=str(error))
    return new_config, SetParametersResult(successful=True)


def apply_runtime_change(config: NodeConfig, pipeline: Any,
                         parameters: list[Parameter]) -> tuple[NodeConfig, SetParametersResult]:
    """Validate a runtime change and apply it to ``pipeline`` (None: nothing running yet).

    Shared by both node flavours. Returns the configuration now in force (the old one when
    the change is refused) and the result for rclpy.
    """
    new_config, result = validate_change(config, parameters)
    if new_config is None:
        return config, result
    if pipeline is not None and new_config != config:
        try:
            pipeline.apply(new_config)
        except LWRefineNetError as error:
            return config, SetParametersResult(successful=False, reason=str(error))
    return new_config, result
