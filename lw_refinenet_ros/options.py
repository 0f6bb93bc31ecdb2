"""How one option is declared: the leaf of the configuration spine (no torch, no ROS).

Option groups live next to the code they configure (the node's table in ``config.py``, the
object detector's in ``objects/options.py``) and all use this one class, so that ROS
parameter descriptors, the YAML file and CLI flags can be derived from any of them alike.
:func:`settings_class` derives the frozen settings classes from a table as well, so a new
option is one table entry plus the code that uses it, and each option has one default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Callable, Iterable, Sequence

from lw_refinenet_ros.errors import ConfigError

# String options whose names end so hold a file or folder: ``~`` and ``$VARS`` in them are
# expanded when they are validated (the one place every value passes), for every table.
PATH_SUFFIXES = ('weights', '_file', '_dir')


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
        check: Extra test for values that choices and ranges cannot express (``cuda:N``);
            returns whether the value is allowed.
        constraint: What ``check`` accepts, in words; shown in errors and descriptors.
        flags: Extra CLI spellings kept for compatibility (``--threads``).
    """

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    runtime: bool = False
    check: Callable[[Any], bool] | None = None
    constraint: str | None = None
    flags: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The CLI spelling: ``max_side`` -> ``--max-side``, ``objects.min_area`` ->
        ``--objects-min-area``."""
        return '--' + self.name.replace('.', '-').replace('_', '-')

    @property
    def is_path(self) -> bool:
        """Whether the option holds a path (see :data:`PATH_SUFFIXES`)."""
        return isinstance(self.default, str) and self.name.endswith(PATH_SUFFIXES)

    @property
    def field(self) -> str:
        """The dataclass field holding this option: ``model.weights`` -> ``model_weights``."""
        return self.name.replace('.', '_')

    def validate(self, value: Any, label: str | None = None) -> Any:
        """Return ``value`` in canonical form or raise ConfigError naming the parameter.

        Args:
            value: The candidate value.
            label: How to name the option in the error (default ``Parameter <name>``; the
                CLI passes its flag).
        """
        try:
            return self._validate(value)
        except ConfigError as error:
            if label is None:
                raise
            raise ConfigError(str(error).replace(f'Parameter {self.name}', label, 1)) \
                from None

    def _validate(self, value: Any) -> Any:
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
            if self.is_path and value:
                value = os.path.expandvars(os.path.expanduser(value))
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
        if self.check is not None and not self.check(value):
            raise ConfigError(f'Parameter {self.name} must be {self.constraint}, got '
                              f'{value!r}.')
        return value


def add_arguments(parser: argparse.ArgumentParser | Any, specs: Iterable[ParameterSpec]) -> None:
    """One CLI flag per spec (``--max-side``), typed like the spec and defaulting to unset.

    Unset flags stay ``None`` so that :func:`values_from_args` passes only what the user
    gave; the defaults in the help text are the specs' own.
    """
    for spec in specs:
        default = spec.default
        # argparse expands %-formats in help texts: a literal '%' must be doubled.
        help_text = f'{spec.description} (default: {_shown(default)})'.replace('%', '%%')
        names = (spec.flag, *spec.flags)
        dest = spec.field
        if isinstance(default, bool):
            parser.add_argument(*names, dest=dest, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        elif isinstance(default, tuple):
            parser.add_argument(*names, dest=dest, nargs='*', default=None, help=help_text)
        else:
            kind = type(default) if isinstance(default, (int, float)) else str
            parser.add_argument(*names, dest=dest, type=kind, default=None,
                                choices=spec.choices, help=help_text)


def values_from_args(args: argparse.Namespace, specs: Iterable[ParameterSpec]
                     ) -> dict[str, Any]:
    """The options the user set on the command line, validated, by spec name.

    Raises:
        ConfigError: A value is out of range; the message names the flag.
    """
    values = {}
    for spec in specs:
        value = getattr(args, spec.field, None)
        if value is not None:
            values[spec.name] = spec.validate(value, label=spec.flag)
    return values


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return 'on' if default else 'off'
    if isinstance(default, tuple):
        return ' '.join(default) or 'none'
    return repr(default) if default == '' else str(default)


def field_type(spec: ParameterSpec) -> type:
    """The Python type of an option's validated value (a list of strings is a tuple)."""
    default = spec.default
    return tuple[str, ...] if isinstance(default, tuple) else type(default)


def settings_class(name: str, specs: Sequence[ParameterSpec], *, doc: str, module: str,
                   field: Callable[[ParameterSpec], str] = lambda spec: spec.field,
                   base: type = object, extra: Sequence[tuple[str, Any]] = (),
                   with_defaults: bool = False) -> type:
    """A frozen dataclass with one field per spec, derived from the table itself.

    Args:
        name: The class name.
        specs: The options, in field order.
        doc: The class docstring.
        module: The module the class is published in (``__name__``: pickling, reprs, docs).
        field: The field name of a spec (default :attr:`ParameterSpec.field`).
        base: A plain class holding the methods (validation, derived views).
        extra: More ``(name, type)`` fields after the options' (no defaults).
        with_defaults: Give each option field the spec's default (for code-level settings
            built with keywords, such as the detector's); otherwise every field is required
            and values come through the table's validator.
    """
    fields: list[Any] = []
    for spec in specs:
        if with_defaults:
            fields.append((field(spec), field_type(spec), dataclasses.field(
                default=spec.default)))
        else:
            fields.append((field(spec), field_type(spec)))
    fields.extend(extra)
    cls = dataclasses.make_dataclass(name, fields, bases=(base,), frozen=True)
    cls.__module__ = module
    cls.__doc__ = doc
    return cls
