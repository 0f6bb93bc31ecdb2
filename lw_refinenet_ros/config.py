"""The segmentation node's configuration: one frozen dataclass, one parameter table.

Every ROS parameter of the node is described here once (name, default, description, range or
allowed values, whether it may change at runtime). The ROS layer turns this table into
``ParameterDescriptor`` s, the YAML in ``config/lw_refinenet.yaml`` is kept equal to it by a
test, and :meth:`NodeConfig.from_mapping` is the single validator used at start-up and for
runtime changes. The engine's options are the engine's own table
(:data:`lw_refinenet_ros.engine.config.ENGINE_PARAMETERS`), included here unchanged, so a
value the node accepts is one the engine accepts. No ROS and no torch imports here, so the
table is testable in a plain environment and cheap to import.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

from lw_refinenet_ros.constants import ARCHES
from lw_refinenet_ros.engine.config import ENGINE_PARAMETERS, EngineConfig
from lw_refinenet_ros.engine.live_calibration import LIVE_INT8_PARAMETERS
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.objects.options import OBJECT_PARAMETERS, ObjectsConfig
from lw_refinenet_ros.options import ParameterSpec, settings_class
from lw_refinenet_ros.scheduler import SchedulerConfig

__all__ = ['PARAMETERS', 'PARAMETER_SPECS', 'NodeConfig', 'ParameterSpec', 'unknown_names']

_PUBLISH_OUTPUTS = ('color', 'overlay', 'confidence', 'stats')

PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec('model.arch', 'auto',
                  'Architecture; "auto" reads it from the weights file. Set it to check that '
                  'the file holds this architecture.', choices=('auto',) + ARCHES),
    ParameterSpec('model.weights', '',
                  "Checkpoint file (original release, training checkpoint or this project's "
                  'format). Empty: the packaged conveyor model.'),
    ParameterSpec('model.num_classes', 0,
                  'Number of classes; 0 reads it from the weights file. A different value '
                  'in the file stops start-up.', minimum=0, maximum=65536),
    ParameterSpec('model.classes_file', '',
                  'YAML or text file with class names and RGB colours. Empty: names and '
                  'colours stored in the checkpoint, else VOC colours.'),
    ParameterSpec('model.trained_scale', True,
                  'With max_side 0: run the network at the image size the checkpoint says it '
                  'was trained at (a model trained on 320x240 runs a 640x480 camera at '
                  '320x240); false: native resolution.'),
    *ENGINE_PARAMETERS,
    *LIVE_INT8_PARAMETERS,
    ParameterSpec('input_type', 'raw', 'raw: sensor_msgs/Image on "image"; compressed: '
                  'sensor_msgs/CompressedImage on "image/compressed".',
                  choices=('raw', 'compressed')),
    ParameterSpec('qos', 'best_effort',
                  'Input QoS: best_effort (depth 1, works with every publisher), reliable, or '
                  'auto (match the publisher found at start-up).',
                  choices=('best_effort', 'reliable', 'auto')),
    ParameterSpec('cameras', (),
                  'Input namespaces for several cameras sharing one model (frames are batched '
                  'into one forward pass); empty = one camera on the plain topic names.'),
    ParameterSpec('use_camera_info', False,
                  'Subscribe to camera_info and check that its size matches the images.'),
    ParameterSpec('overlay_alpha', 0.5, 'Weight of the class colours in segmentation/overlay.',
                  minimum=0.0, maximum=1.0, runtime=True),
    ParameterSpec('max_frame_age_ms', 1000.0,
                  'Skip frames older than this (now minus header stamp) when inference is '
                  'ready for them; 0 disables the check.', minimum=0.0, maximum=600000.0,
                  runtime=True),
    ParameterSpec('max_rate_hz', 0.0, 'Process at most this many frames per second per '
                  'cycle; 0 = as fast as possible.', minimum=0.0, maximum=1000.0, runtime=True),
    ParameterSpec('overlap_outputs', True,
                  "Post-process and publish a frame's results on a second thread while the "
                  "next frame's forward pass runs: more frames per second on a CPU, for at "
                  'most one stage of extra latency; false: one thread does both.'),
    *(ParameterSpec(f'publish.{name}', True,
                    f'Publish segmentation/{name} (computed only while someone subscribes).',
                    runtime=True) for name in _PUBLISH_OUTPUTS),
    ParameterSpec('class_filter', (),
                  'Class names or ids reported in stats and drawn in the overlay; empty = all.',
                  runtime=True),
    ParameterSpec('max_image_pixels', 16_777_216,
                  'Refuse (count as failed) images with more pixels than this.',
                  minimum=1, maximum=1 << 30, runtime=True),
    ParameterSpec('diagnostics_period_s', 1.0, 'Period of /diagnostics messages.',
                  minimum=0.05, maximum=60.0),
    ParameterSpec('log_throttle_s', 5.0,
                  'At most one log line per kind of bad input within this many seconds.',
                  minimum=0.0, maximum=3600.0, runtime=True),
    ParameterSpec('uncertain.save_dir', '',
                  'Keep the uncertain.count frames with the lowest mean confidence here (PNG '
                  '+ uncertain.json), for the next labelling round; empty = off.'),
    ParameterSpec('uncertain.count', 20,
                  'How many least-confident frames uncertain.save_dir keeps.',
                  minimum=1, maximum=10000),
    *OBJECT_PARAMETERS,
)

PARAMETER_SPECS: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}
_OBJECT_NAMES = frozenset(spec.name for spec in OBJECT_PARAMETERS)


def unknown_names(names: Iterable[str], known: Iterable[str] = PARAMETER_SPECS) -> str:
    """``'overlay_alpa (did you mean overlay_alpha?), foo'``: each name with the closest
    known one, for errors about misspelt parameters."""
    known = list(known)
    return ', '.join(
        f'{name} (did you mean {close[0]}?)' if close else name
        for name in sorted(names) for close in [difflib.get_close_matches(name, known, n=1)])


def _object_field(name: str) -> str:
    """ObjectsConfig field of parameter ``name``: ``objects.belt.calibration`` ->
    ``belt_calibration``."""
    return name[len('objects.'):].replace('.', '_')


class _NodeSettings:
    """The methods of :class:`NodeConfig` (its fields come from the table)."""

    @classmethod
    def defaults(cls) -> NodeConfig:
        """The configuration with every parameter at its default."""
        return cls.from_mapping({})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> NodeConfig:
        """Validate parameter values (by ROS name); missing ones take their default."""
        unknown = set(values) - set(PARAMETER_SPECS)
        if unknown:
            raise ConfigError(f'Unknown parameter(s) {unknown_names(unknown)}; see '
                              f'config/lw_refinenet.yaml for the list.')
        fields: dict[str, Any] = {}
        for spec in PARAMETERS:
            if spec.name not in _OBJECT_NAMES:
                fields[spec.field] = spec.validate(values.get(spec.name, spec.default))
        fields['objects'] = ObjectsConfig.from_mapping(
            {name: value for name, value in values.items() if name in _OBJECT_NAMES})
        config = cls(**fields)
        config._check_consistency()
        return config

    def _check_consistency(self) -> None:
        cameras = self.cameras
        if len(set(cameras)) != len(cameras) or any(
                not c or c.startswith('/') and len(c) == 1 for c in cameras):
            raise ConfigError(f'Parameter cameras must list distinct, non-empty namespaces, '
                              f'got {list(cameras)}.')

    def to_mapping(self) -> dict[str, Any]:
        """The values by ROS parameter name (inverse of :meth:`from_mapping`)."""
        return {spec.name: getattr(self.objects, _object_field(spec.name))
                if spec.name in _OBJECT_NAMES else getattr(self, spec.field)
                for spec in PARAMETERS}

    def replace(self, changes: Mapping[str, Any]) -> NodeConfig:
        """A new validated config with some parameters (by ROS name) changed."""
        merged = self.to_mapping()
        merged.update(changes)
        return type(self).from_mapping(merged)

    @property
    def scheduler(self) -> SchedulerConfig:
        """The frame-dropping part of the configuration."""
        return SchedulerConfig(max_frame_age_ms=self.max_frame_age_ms,
                               max_rate_hz=self.max_rate_hz)

    @property
    def engine(self) -> EngineConfig:
        """The inference part of the configuration (same option names as the parameters)."""
        return EngineConfig.from_mapping(
            {spec.name: getattr(self, spec.field) for spec in ENGINE_PARAMETERS})

    def publishes(self, output: str) -> bool:
        """Whether ``segmentation/<output>`` is enabled (labels always are)."""
        return output == 'labels' or bool(getattr(self, f'publish_{output}'))


NodeConfig = settings_class(
    'NodeConfig', [spec for spec in PARAMETERS if spec.name not in _OBJECT_NAMES],
    base=_NodeSettings, extra=[('objects', ObjectsConfig)], module=__name__,
    doc="""Validated node settings: one field per parameter of :data:`PARAMETERS`, field
    ``a_b`` holding parameter ``a.b`` (``model.weights`` -> ``model_weights``), typed like its
    default (a list of strings is a tuple).

    The ``objects.*`` group is validated by its own table and held whole in ``objects`` (an
    :class:`~lw_refinenet_ros.objects.options.ObjectsConfig`), as the detector uses it. The
    fields are generated from the table, so a new parameter is one table entry plus its use;
    build instances with :meth:`from_mapping` (the one validator), :meth:`defaults` or
    :meth:`replace`.""")
