"""Label image -> reported objects: detection, tracking, belt positions, pick-line times.

:class:`ObjectProcessor` is what the node (and the demo, and the benchmark) calls once per
frame of one camera. It keeps the tracker's state between frames and rebuilds the belt
geometry when the calibration or the camera's intrinsics change. A calibration that cannot
work is reported once through ``on_warning`` and leaves the metric fields off; it never
raises per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import time
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from lw_refinenet_ros.objects.belt import (
    BeltGeometry,
    CalibrationError,
    intrinsics_matrix,
    time_to_line,
)
from lw_refinenet_ros.objects.detect import (
    DetectedObject,
    DetectorSettings,
    class_ids,
    detect_objects,
    detection_step,
    part_class_lut,
)
from lw_refinenet_ros.objects.options import OBJECT_PARAMETER_SPECS, ObjectsConfig
from lw_refinenet_ros.objects.tracking import Tracker, TrackerSettings

_NAN2 = (math.nan, math.nan)
_NAN3 = (math.nan, math.nan, math.nan)
# Slower than this along the pick-line axis counts as a stopped belt (no crossing time).
_MIN_SPEED_PX_S = 0.5
_MIN_SPEED_M_S = 1e-3


@dataclass(frozen=True)
class ObjectReport:
    """One object as published.

    Attributes:
        object: The detection (pixels).
        class_name: Name of its class.
        track_id: Persistent id; 0 when tracking is off.
        confirmed: The track is confirmed (always False when tracking is off).
        age: Seconds since the track's first detection (0 when tracking is off).
        hits: Frames the track was detected in (0 when tracking is off).
        velocity_px: (vx, vy) px/s; NaN until measured or when tracking is off.
        metric_valid: Position/velocity in metres are known.
        position_m: Pick point on the belt in the camera frame, metres (NaN if unknown).
        velocity_m: Its velocity in the camera frame, m/s (NaN if unknown).
        time_to_pick_line: Seconds until the pick point crosses the pick line (negative:
            crossed already under the current velocity; NaN: unknown or not moving).
    """

    object: DetectedObject
    class_name: str
    track_id: int = 0
    confirmed: bool = False
    age: float = 0.0
    hits: int = 0
    velocity_px: tuple[float, float] = _NAN2
    metric_valid: bool = False
    position_m: tuple[float, float, float] = _NAN3
    velocity_m: tuple[float, float, float] = _NAN3
    time_to_pick_line: float = math.nan


@dataclass(frozen=True)
class ObjectFrame:
    """All objects of one frame plus what the tracks say about the belt.

    Attributes:
        objects: Reports in detection order.
        belt_velocity_px: Belt velocity (vx, vy) px/s from the tracks, or None.
        metric_valid: The belt calibration is usable for this frame.
        geometry: The belt geometry used (None when metric fields are off).
        detect_ms: Time spent detecting, milliseconds.
        track_ms: Time spent tracking and projecting, milliseconds.
    """

    objects: list[ObjectReport]
    belt_velocity_px: tuple[float, float] | None
    metric_valid: bool
    detect_ms: float
    track_ms: float
    geometry: BeltGeometry | None = None


class ObjectProcessor:
    """Per-camera object pipeline with tracker state.

    Args:
        config: Validated ``objects.*`` settings.
        class_names: The model's class names (index = label value).
        on_warning: Called once per distinct problem (bad calibration, missing camera_info).
    """

    def __init__(self, config: ObjectsConfig, class_names: Sequence[str],
                 on_warning: Callable[[str], None] | None = None) -> None:
        self._class_names = tuple(class_names)
        self._on_warning = on_warning
        self._warned: set[str] = set()
        self._geometry_key: tuple | None = None
        self._geometry: BeltGeometry | None = None
        self.tracker = Tracker()
        self.configure(config)

    @property
    def config(self) -> ObjectsConfig:
        """The settings in use."""
        return self._config

    def configure(self, config: ObjectsConfig) -> None:
        """Apply new settings (runtime parameter change); tracks survive."""
        self._config = config
        self._parts = part_class_lut(self._class_names, config.ignore_classes,
                                     config.one_hole_classes)
        self._detector = DetectorSettings.from_config(config)
        for name in ('ignore_classes', 'one_hole_classes'):
            self._warn_unknown_classes(name, getattr(config, name))
        self.tracker.settings = TrackerSettings(
            max_distance_px=config.tracking_max_distance_px,
            confirm_frames=config.tracking_confirm_frames,
            max_missed_frames=config.tracking_max_missed_frames)
        self._geometry_key = None  # rebuilt (and re-checked) on the next frame

    def _warn_unknown_classes(self, field: str, entries: Sequence[str]) -> None:
        """A class list set by the user that names classes the model lacks is probably a
        typo, and would silently do nothing: say so once. The defaults name conveyor
        classes, which another model need not have, and are not reported."""
        if tuple(entries) == OBJECT_PARAMETER_SPECS[f'objects.{field}'].default:
            return
        _, unknown = class_ids(self._class_names, entries, f'objects.{field}')
        if unknown:
            self._warn(f'objects.{field} names {", ".join(map(repr, unknown))}, which this '
                       f'model does not have (its classes: {", ".join(self._class_names)}); '
                       f'those entries do nothing.')

    def _warn(self, text: str) -> None:
        if text not in self._warned:
            self._warned.add(text)
            if self._on_warning is not None:
                self._on_warning(text)

    def geometry(self, camera_k: Sequence[float] | None) -> BeltGeometry | None:
        """The belt geometry for these intrinsics, or None (with one warning) if unusable."""
        config = self._config
        if config.belt_calibration == 'none':
            return None
        key = (config.belt_calibration, config.belt_camera_height_m,
               config.belt_camera_tilt_deg, config.belt_homography,
               None if camera_k is None else tuple(float(v) for v in camera_k))
        if key == self._geometry_key:
            return self._geometry
        self._geometry_key = key
        self._geometry = None
        if camera_k is None:
            self._warn(f'objects.belt.calibration is {config.belt_calibration} but no '
                       f'camera_info has arrived: metric fields stay off until it does (set '
                       f'use_camera_info true and publish camera_info).')
            self._geometry_key = None  # try again when camera_info arrives
            return None
        try:
            k = intrinsics_matrix(camera_k)
            if config.belt_calibration == 'plane':
                self._geometry = BeltGeometry.from_plane(k, config.belt_camera_height_m,
                                                         config.belt_camera_tilt_deg)
            else:
                self._geometry = BeltGeometry.from_homography(k, config.homography)
        except CalibrationError as error:
            self._warn(f'belt calibration unusable, metric object fields disabled: {error}')
        return self._geometry

    def process(self, labels: np.ndarray, stamp: float,
                confidence: np.ndarray | None = None,
                camera_k: Sequence[float] | None = None,
                image: np.ndarray | None = None,
                boundary: np.ndarray | None = None,
                network_size: tuple[int, int] | None = None) -> ObjectFrame:
        """Objects of one frame.

        Args:
            labels: (H, W) class ids.
            stamp: Frame time in seconds (header stamp), for velocities and tracking.
            confidence: Optional (H, W) winning-class confidence, for scores.
            camera_k: CameraInfo ``k`` (nine numbers) when camera_info is available.
            image: Optional camera image (any channel order) for ``objects.split_edges``;
                resized to the labels' size when it differs (``max_side``).
            boundary: Optional part-boundary probability at the network's stride
                (``SegmentationResult.boundary``, from a model with that output): splits
                same-class parts along learned seams instead of the rules.
            network_size: (height, width) the network ran at
                (``SegmentationResult.network_size``); with ``objects.detect_at`` network,
                parts are found on that grid when the labels are a whole multiple of it.
        """
        start = time.perf_counter()
        if not self._config.split_edges:
            image = None
        elif image is not None and image.shape[:2] != labels.shape:
            image = cv2.resize(image, (labels.shape[1], labels.shape[0]),
                               interpolation=cv2.INTER_AREA)
        objects = detect_objects(labels, self._parts, self._detector, confidence, image,
                                 boundary, detection_step(labels.shape, network_size,
                                                          self._config.detect_at))
        detected = time.perf_counter()
        config = self._config
        names = self._class_names
        height, width = labels.shape
        if config.tracking_enabled:
            tracked = self.tracker.update(objects, stamp, (width, height))
            belt = self.tracker.belt_velocity
            # A track's first velocity is the belt's; before any belt estimate it is unknown.
            reports = [ObjectReport(
                t.object, _name(names, t.object.class_id), t.track_id, t.confirmed, t.age,
                t.hits, t.velocity if t.hits > 1 or belt is not None else _NAN2)
                for t in tracked]
        else:
            self.tracker.reset()
            reports = [ObjectReport(o, _name(names, o.class_id)) for o in objects]
            belt = None
        geometry = self.geometry(camera_k)
        if reports:
            reports = self._add_motion(reports, geometry)
        finished = time.perf_counter()
        return ObjectFrame(reports, belt, geometry is not None, (detected - start) * 1e3,
                           (finished - detected) * 1e3, geometry)

    def _add_motion(self, reports: list[ObjectReport], geometry: BeltGeometry | None,
                    ) -> list[ObjectReport]:
        """Metric position/velocity and pick-line times."""
        config = self._config
        picks = np.array([r.object.pick for r in reports], np.float64)
        velocity_px = np.array([r.velocity_px for r in reports], np.float64)
        axis = {'x': 0, 'y': 1}.get(config.pick_line_axis)
        times = np.full(len(reports), math.nan)
        positions = velocities = None
        if geometry is not None:
            positions = geometry.project(picks)
            velocities = geometry.velocity(picks, np.nan_to_num(velocity_px))
            velocities[~np.isfinite(velocity_px).all(axis=1)] = np.nan
            if axis is not None:
                times = time_to_line(positions, velocities, axis,
                                     config.pick_line_position_m, _MIN_SPEED_M_S)
        elif axis is not None and config.pick_line_position_px >= 0:
            times = time_to_line(picks, velocity_px, axis, config.pick_line_position_px,
                                 _MIN_SPEED_PX_S)
        out = []
        for index, report in enumerate(reports):
            valid = positions is not None and bool(np.isfinite(positions[index]).all())
            out.append(ObjectReport(
                report.object, report.class_name, report.track_id, report.confirmed,
                report.age, report.hits, report.velocity_px, valid,
                tuple(float(v) for v in positions[index]) if valid else _NAN3,
                tuple(float(v) for v in velocities[index]) if valid else _NAN3,
                float(times[index])))
        return out


def object_record(report: ObjectReport) -> dict[str, Any]:
    """One object as plain JSON-ready values (the offline ``segment --objects`` output; the
    node publishes the same fields as ``SegmentedObject``). NaN becomes None."""
    obj = report.object

    def number(value: float) -> float | None:
        return None if math.isnan(value) else round(float(value), 4)

    record: dict[str, Any] = {
        'id': report.track_id, 'class_id': obj.class_id, 'class_name': report.class_name,
        'score': number(obj.score), 'pixel_count': obj.pixel_count,
        'bbox': {'x': obj.bbox[0], 'y': obj.bbox[1], 'width': obj.bbox[2],
                 'height': obj.bbox[3]},
        'pick': {'x': obj.pick[0], 'y': obj.pick[1], 'clearance': number(obj.clearance)},
        'centroid': {'x': number(obj.centroid[0]), 'y': number(obj.centroid[1])},
        'orientation': number(obj.orientation),
        'major_axis_length': number(obj.major_length),
        'minor_axis_length': number(obj.minor_length),
        'touches_border': obj.touches_border,
        'tracked': report.track_id != 0, 'confirmed': report.confirmed,
        'velocity_px': {'x': number(report.velocity_px[0]), 'y': number(report.velocity_px[1])},
    }
    if obj.contour.size:
        record['contour'] = [[round(float(x), 1), round(float(y), 1)] for x, y in obj.contour]
    return record


def _name(names: Sequence[str], class_id: int) -> str:
    return names[class_id] if class_id < len(names) else str(class_id)
