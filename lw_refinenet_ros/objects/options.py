"""The object detector's parameters (``objects.*``): one table, one frozen config.

The node's parameter table in ``lw_refinenet_ros/config.py`` includes :data:`OBJECT_PARAMETERS`
so the same specs give ROS descriptors, YAML entries and validation. :class:`ObjectsConfig`
holds the validated values for the engine-layer code (detection, tracking, belt geometry),
which never sees ROS parameter names.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.options import ParameterSpec, settings_class

OBJECT_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec('objects.enabled', True,
                  'Publish segmentation/objects and segmentation/markers (computed only while '
                  'someone subscribes to one of them; meanwhile the overlay also shows ids and '
                  'pick points).',
                  runtime=True),
    ParameterSpec('objects.ignore_classes', ('background', 'belt'),
                  'Class names or ids that are never objects (the scene, not parts). Names '
                  'the model does not have are ignored (with one warning, unless the list is '
                  'the default).', runtime=True),
    ParameterSpec('objects.detect_at', 'network',
                  "network: find parts on the labels sampled at the network's input grid "
                  '(every second pixel of a 640x480 camera on a model run at 320x240) and '
                  'report them in camera pixels; min_area, max_hole_area and '
                  "split_min_radius then count the network's pixels, so they hold at every "
                  'camera resolution. camera: every camera pixel, settings in camera pixels.',
                  choices=('network', 'camera'), runtime=True),
    ParameterSpec('objects.min_area', 160,
                  'Smallest object reported, in pixels: smaller regions and split pieces are '
                  'specks and fragments (an arm end cut off by a part lying across it, a '
                  'sliver of a part mostly covered), not parts a robot can pick. 160 is about '
                  'half the smallest pickable conveyor part at 320x240; lower it for smaller '
                  'parts.', minimum=1, maximum=1 << 24, runtime=True),
    ParameterSpec('objects.min_score', 0.75,
                  'Objects whose mean confidence is below this are dropped (fragments the '
                  "model is unsure about, e.g. a part's rim taken for another class); only "
                  'applies while confidences are computed.', minimum=0.0, maximum=1.0,
                  runtime=True),
    ParameterSpec('objects.max_hole_area', 8,
                  'Holes inside a part up to this many pixels are pinholes and get filled '
                  '(real holes, e.g. in nuts, are larger and stay); 0 keeps every hole.',
                  minimum=0, maximum=1 << 24, runtime=True),
    ParameterSpec('objects.one_hole_classes', ('nut', 'washer', 'gear'),
                  'Class names or ids whose parts each have one hole through them (a bore, a '
                  'shaft hole): a region of such a class showing two or more holes of the '
                  'belt is that many parts, split between the holes (overlapping washers '
                  'show no neck). Names the model does not have are ignored (with one '
                  'warning, unless the list is the default); [] turns it off.', runtime=True),
    ParameterSpec('objects.split_touching', True,
                  'Split touching parts of the same class where the mask has a neck between '
                  'them (distance transform seeds, flooded through the mask).', runtime=True),
    ParameterSpec('objects.split_min_radius', 6.0,
                  'A part centre must lie at least this many pixels from the mask edge to '
                  'seed its own object when splitting.', minimum=1.0, maximum=1000.0,
                  runtime=True),
    ParameterSpec('objects.split_min_body_radius', 8.0,
                  'A region is split at its necks only if its thickest point lies at least '
                  "this many pixels from the mask edge: a spring's coils, joined by narrow "
                  'necks, are thinner than a part body and are not cut apart.',
                  minimum=1.0, maximum=1000.0, runtime=True),
    ParameterSpec('objects.split_neck_ratio', 0.4,
                  'Two centres stay separate objects only if the mask between them narrows to '
                  "at most this fraction of the smaller centre's radius.",
                  minimum=0.05, maximum=1.0, runtime=True),
    ParameterSpec('objects.split_min_seed_area', 40,
                  'Smallest surface, in pixels, between dark lines (objects.split_edges) or '
                  'learned seams (half of it there) that seeds a part of its own when a region '
                  'is split; pieces under objects.min_area are dropped afterwards.',
                  minimum=1, maximum=1 << 24, runtime=True),
    ParameterSpec('objects.split_edges', True,
                  'Split overlapping parts of the same class along the dark line (rim and '
                  'shadow of the upper part) the camera image shows between them; turn off '
                  'for parts with dark lines on their surface.', runtime=True),
    ParameterSpec('objects.split_max_solidity', 0.92,
                  'Regions at least this convex (area / convex hull area) are one part and '
                  'skip the neck and edge splits. 0.7 skips about half of the split work on '
                  'the conveyor parts with the same scores there, but no longer splits two '
                  'round parts (nuts, washers) that touch or overlap: their union is 0.78-0.95 '
                  'convex.', minimum=0.0, maximum=1.0, runtime=True),
    ParameterSpec('objects.split_boundary_threshold', 0.9,
                  'With a model that has the learned part-boundary output: cells at least '
                  'this likely to lie where two parts of one class meet cut a region into '
                  'parts, instead of the neck and dark-line rules; 1 = never (the rules run, '
                  'as for a model without the output).', minimum=0.01, maximum=1.0,
                  runtime=True),
    ParameterSpec('objects.contour_points', 0,
                  'Include a simplified outline with at most this many points per object; '
                  '0 = no outline.', minimum=0, maximum=10000, runtime=True),
    ParameterSpec('objects.tracking.enabled', True,
                  'Give objects persistent ids across frames and estimate their velocity.',
                  runtime=True),
    ParameterSpec('objects.tracking.max_distance_px', 40.0,
                  "Largest distance between a track's predicted position and a detection "
                  'that can still be the same part.', minimum=1.0, maximum=10000.0,
                  runtime=True),
    ParameterSpec('objects.tracking.confirm_frames', 3,
                  'A track is reported as confirmed after it was seen in this many frames.',
                  minimum=1, maximum=1000, runtime=True),
    ParameterSpec('objects.tracking.max_missed_frames', 5,
                  'Keep a track this many frames without a detection (short occlusions) '
                  'before it is dropped; a track predicted outside the image is dropped at '
                  'once.', minimum=0, maximum=1000, runtime=True),
    ParameterSpec('objects.belt.calibration', 'none',
                  'How image pixels map to metres on the belt: none (no metric fields), '
                  'plane (camera_info + camera height and tilt) or homography (camera_info + '
                  'objects.belt.homography).', choices=('none', 'plane', 'homography'),
                  runtime=True),
    ParameterSpec('objects.belt.camera_height_m', 0.5,
                  'Distance from the camera centre to the belt plane, in metres (plane mode). '
                  'A value <= 0 means the camera is not above the belt: metric fields off.',
                  minimum=-1000.0, maximum=1000.0, runtime=True),
    ParameterSpec('objects.belt.camera_tilt_deg', 0.0,
                  'Angle between the optical axis and the belt normal, rotating about the '
                  'camera x axis; positive when the top of the image looks further away '
                  '(plane mode). |tilt| >= 90 cannot see the belt: metric fields off.',
                  minimum=-180.0, maximum=180.0, runtime=True),
    ParameterSpec('objects.belt.homography', '',
                  'Nine numbers, row-major, of the 3x3 homography from image pixels (u, v, 1) '
                  'to belt-plane metres (X, Y, 1) (homography mode).', runtime=True),
    ParameterSpec('objects.pick_line.axis', 'x',
                  'Camera-frame axis along which the belt runs toward the pick line: x (image '
                  'right), y (image down) or none (no crossing times).',
                  choices=('x', 'y', 'none'), runtime=True),
    ParameterSpec('objects.pick_line.position_m', 0.0,
                  'Pick line position along that axis in the camera frame, in metres (used '
                  'while metric positions are valid).', minimum=-1000.0, maximum=1000.0,
                  runtime=True),
    ParameterSpec('objects.pick_line.position_px', -1.0,
                  'Pick line position along that axis in image pixels, used while metric '
                  'positions are not available; < 0 = no pixel pick line.',
                  minimum=-1.0, maximum=1e6, runtime=True),
)

OBJECT_PARAMETER_SPECS: dict[str, ParameterSpec] = {spec.name: spec
                                                    for spec in OBJECT_PARAMETERS}


def _field(name: str) -> str:
    return name[len('objects.'):].replace('.', '_')


def parse_homography(text: str) -> tuple[float, ...]:
    """Parse nine numbers (spaces, commas or brackets between them) or '' into a tuple.

    Raises:
        ConfigError: When the text holds anything but exactly nine finite numbers.
    """
    cleaned = text.replace(',', ' ').replace('[', ' ').replace(']', ' ').replace(';', ' ')
    if not cleaned.strip():
        return ()
    try:
        values = tuple(float(v) for v in cleaned.split())
    except ValueError:
        raise ConfigError(f'Parameter objects.belt.homography must hold nine numbers, got '
                          f'{text!r}.') from None
    if len(values) != 9 or not all(math.isfinite(v) for v in values):
        raise ConfigError(f'Parameter objects.belt.homography must hold nine finite numbers '
                          f'(row-major 3x3), got {len(values)} in {text!r}.')
    return values


class _ObjectsSettings:
    """The methods of :class:`ObjectsConfig` (its fields come from the table)."""

    @classmethod
    def defaults(cls) -> ObjectsConfig:
        """Every parameter at its default."""
        return cls.from_mapping({})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ObjectsConfig:
        """Validate values keyed by ROS name (``objects.min_area``); others are ignored.

        Keys outside ``objects.*`` belong to other tables (the node passes its whole
        parameter mapping); unknown ``objects.*`` keys are an error.
        """
        unknown = sorted(k for k in values
                         if k.startswith('objects.') and k not in OBJECT_PARAMETER_SPECS)
        if unknown:
            raise ConfigError(f'Unknown parameter(s) {", ".join(unknown)}; the objects.* '
                              f'parameters are listed in docs/objects.md.')
        fields = {_field(spec.name): spec.validate(values.get(spec.name, spec.default))
                  for spec in OBJECT_PARAMETERS}
        parse_homography(fields['belt_homography'])  # refuse malformed text at start-up
        return cls(**fields)

    @property
    def homography(self) -> tuple[float, ...]:
        """The homography as nine floats, or () when not given."""
        return parse_homography(self.belt_homography)


ObjectsConfig = settings_class(
    'ObjectsConfig', OBJECT_PARAMETERS, field=lambda spec: _field(spec.name),
    base=_ObjectsSettings, module=__name__,
    doc="""Validated ``objects.*`` settings: one field per entry of :data:`OBJECT_PARAMETERS`,
    field ``a_b`` holding parameter ``objects.a.b`` (``objects.belt.calibration`` ->
    ``belt_calibration``). Generated from the table (a new option is one entry plus its
    use); build instances with :meth:`from_mapping` or :meth:`defaults`.""")

#: The options the detector uses (:class:`DetectorSettings`), by parameter name.
DETECTOR_OPTIONS: tuple[str, ...] = (
    'objects.min_area', 'objects.min_score', 'objects.max_hole_area', 'objects.split_touching',
    'objects.split_min_radius', 'objects.split_min_body_radius', 'objects.split_neck_ratio',
    'objects.split_min_seed_area', 'objects.split_edges', 'objects.split_max_solidity',
    'objects.split_boundary_threshold', 'objects.contour_points')


class _DetectorMethods:
    """The methods of :class:`DetectorSettings`."""

    @classmethod
    def from_config(cls, config: Any) -> Any:
        """The detector's share of an ``ObjectsConfig`` (one mapping for every caller)."""
        return cls(**{_field(name): getattr(config, _field(name)) for name in DETECTOR_OPTIONS})


DetectorSettings = settings_class(
    'DetectorSettings', [OBJECT_PARAMETER_SPECS[name] for name in DETECTOR_OPTIONS],
    field=lambda spec: _field(spec.name), base=_DetectorMethods, module=__name__,
    with_defaults=True,
    doc="""What the detector needs: the :data:`DETECTOR_OPTIONS` share of
    :class:`ObjectsConfig`, as keyword fields with the table's defaults (the same defaults
    the node and the CLI use: ``min_score`` 0.75, ``min_area`` 160, ...). Build it from a
    config with :meth:`from_config`, or with keywords in code and tests.""")
