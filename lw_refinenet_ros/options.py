"""How one option is declared: the leaf of the configuration spine (no torch, no ROS).

Option groups live next to the code they configure (the node's table in ``config.py``, the
object detector's in ``objects/options.py``) and all use this one class, so that ROS
parameter descriptors, the YAML file and CLI flags can be derived from any of them alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lw_refinenet_ros.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """How one node parameter is declared.

    Attributes:
        name: ROS parameter name (dots group parameters: ``model.weights``).
        default: Default value; its Python type is the parameter type (tuple = string array).
        description: Shown by ``ros2 param describe``.
        choices: Allowed values for strings, or None.
        minimum/maximum: Inclusive range for numbers, or None.
        runtime: True when the value may change while the node runs.
    """

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    runtime: bool = False

    def validate(self, value: Any) -> Any:
        """Return ``value`` in canonical form or raise ConfigError naming the parameter."""
        default = self.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f'Parameter {self.name} must be true or false, got {value!r}.')
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f'Parameter {self.name} must be an integer, got {value!r}.')
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or value != value:
                raise ConfigError(f'Parameter {self.name} must be a number, got {value!r}.')
            value = float(value)
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError(f'Parameter {self.name} must be a string, got {value!r}.')
        elif isinstance(default, tuple):
            if value is None:
                value = ()
            if not isinstance(value, (list, tuple)) or \
                    not all(isinstance(v, str) for v in value):
                raise ConfigError(f'Parameter {self.name} must be a list of strings, got '
                                  f'{value!r}.')
            value = tuple(value)
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f'Parameter {self.name} must be one of {", ".join(self.choices)}; '
                              f'got {value!r}.')
        if self.minimum is not None and value < self.minimum or \
                self.maximum is not None and value > self.maximum:
            raise ConfigError(f'Parameter {self.name} must be within [{self.minimum}, '
                              f'{self.maximum}], got {value!r}.')
        return value
