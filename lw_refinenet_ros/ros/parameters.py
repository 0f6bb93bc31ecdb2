"""Declare the node's parameters from the one table in ``lw_refinenet_ros.config``.

Each descriptor is derived from the same ParameterSpec that validates the value, so the
range ``ros2 param describe`` shows is exactly the range start-up and runtime changes accept.

Names the node does not have are mistakes, not silence: a params file or ``-p`` with an
unknown name stops start-up naming the closest known one, and a runtime ``ros2 param set``
of one is refused with the same hint (rclpy's own reason lists no name). String-list
parameters are declared with their value (``[]`` included), so a get returns it, and an empty
list of any element type (``ros2 param set ... class_filter "[]"`` sends one without a type)
resets them.
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
from rclpy.exceptions import ParameterNotDeclaredException
from rclpy.node import Node
from rclpy.parameter import Parameter

from lw_refinenet_ros.config import (
    PARAMETER_SPECS,
    PARAMETERS,
    NodeConfig,
    ParameterSpec,
    unknown_names,
)
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


# rclpy's own parameters and its per-topic QoS overrides, which any node accepts.
_ROS_PREFIXES = ('qos_overrides.',)
_ARRAY_TYPES = (Parameter.Type.BYTE_ARRAY, Parameter.Type.BOOL_ARRAY,
                Parameter.Type.INTEGER_ARRAY, Parameter.Type.DOUBLE_ARRAY,
                Parameter.Type.STRING_ARRAY)


def _unknown_overrides(node: Node) -> list[str]:
    """Names given to this node (params file, ``-p``, overrides) that it did not declare."""
    # rclpy keeps the overrides it read for the node here and has no public accessor.
    overrides = getattr(node, '_parameter_overrides', None) or {}
    return [name for name in overrides
            if not node.has_parameter(name) and not name.startswith(_ROS_PREFIXES)]


def _before_set(node: Node) -> Any:
    """The node's pre-set callback: refuse unknown names with a hint, type empty lists."""
    def callback(parameters: list[Parameter]) -> list[Parameter]:
        unknown = [p.name for p in parameters if not node.has_parameter(p.name)]
        if unknown:
            # The parameter services turn exactly this exception into a refusal with its
            # text as the reason: name each unknown parameter and the closest known one.
            raise ParameterNotDeclaredException(
                f'{unknown_names(unknown)}; `ros2 param list {node.get_fully_qualified_name()}`'
                f' shows every parameter')
        return [_typed_empty_list(p) for p in parameters]
    return callback


def _typed_empty_list(parameter: Parameter) -> Parameter:
    # ``[]`` carries no element type (rclpy calls it a byte array): a string list it is.
    spec = PARAMETER_SPECS.get(parameter.name)
    if spec is not None and isinstance(spec.default, tuple) and \
            parameter.type_ in _ARRAY_TYPES and len(parameter.value) == 0:
        return Parameter(parameter.name, Parameter.Type.STRING_ARRAY, [])
    return parameter


def _writable(descriptor: ParameterDescriptor) -> ParameterDescriptor:
    return ParameterDescriptor(name=descriptor.name, type=descriptor.type,
                               description=descriptor.description,
                               additional_constraints=descriptor.additional_constraints)


def declare_parameters(node: Node) -> NodeConfig:
    """Declare every parameter with its descriptor and return the validated configuration.

    Also installs the pre-set callback that refuses unknown names at runtime.

    Raises:
        ConfigError: A value (from a params file or the command line) is invalid, or a name
            given there is not a parameter of the node (named with the closest one).
    """
    values: dict[str, Any] = {}
    for spec in PARAMETERS:
        descriptor = _descriptor(spec)
        # rclpy infers no type from an empty list: declare lists by type, then set [] below.
        default = Parameter.Type.STRING_ARRAY if spec.default == () else (
            list(spec.default) if isinstance(spec.default, tuple) else spec.default)
        is_list = isinstance(spec.default, tuple)
        try:
            # A list is declared writable first: it may need its typed [] set below.
            parameter = node.declare_parameter(
                spec.name, default, _writable(descriptor) if is_list else descriptor)
        except Exception as error:  # rclpy raises several types for a badly typed override
            raise ConfigError(f'Parameter {spec.name}: {error}') from error
        value = parameter.value
        if is_list:
            if value is None:
                # Declared without a value (none given; an empty YAML list stays unset):
                # hold a typed [] so that a get returns the list.
                node.set_parameters([Parameter(spec.name, Parameter.Type.STRING_ARRAY, [])])
            if descriptor.read_only:
                node.set_descriptor(spec.name, descriptor)
        values[spec.name] = tuple(value or ()) if isinstance(spec.default, tuple) else value
    unknown = _unknown_overrides(node)
    if unknown:
        raise ConfigError(f'Unknown parameter(s) {unknown_names(unknown)}: not a parameter of '
                          f'this node; see config/lw_refinenet.yaml or docs/node.md for the '
                          f'list.')
    node.add_pre_set_parameters_callback(_before_set(node))
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
