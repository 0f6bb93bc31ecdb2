"""ROS messages -> Foxglove payloads: JSON documents for the small topics, image annotations.

The small topics (stats, class map, diagnostics) go out as JSON with a JSON schema, so
Foxglove's Raw Messages, Table and Plot panels can browse and plot every field (e.g.
``/segmentation/stats.processing_latency_ms``) without knowing the ROS message definitions.
Diagnostic values arrive as strings; numeric ones are converted so that they can be plotted.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from foxglove.messages import (
    CircleAnnotation,
    Color,
    ImageAnnotations,
    Point2,
    PointsAnnotation,
    PointsAnnotationType,
    TextAnnotation,
    Timestamp,
)

from lw_refinenet_ros.ros.conversions import stamp_seconds

#: A part is drawn as a box when its class covers at most this share of the frame; larger
#: classes (background, belt, floor) are scenery, and a box around them is the whole image.
MAX_BOX_AREA_FRACTION = 0.25

_NUMBER = {'type': 'number'}
_STRING = {'type': 'string'}
_INTEGER = {'type': 'integer'}

STATS_SCHEMA: dict[str, Any] = {
    'title': 'lw_refinenet_ros.SegmentationStats',
    'type': 'object',
    'properties': {
        'stamp': _NUMBER, 'frame_id': _STRING, 'width': _INTEGER, 'height': _INTEGER,
        'num_classes': _INTEGER, 'processing_latency_ms': _NUMBER, 'frame_age_ms': _NUMBER,
        'classes': {'type': 'array', 'items': {'type': 'object', 'properties': {
            'class_id': _INTEGER, 'class_name': _STRING, 'pixel_count': _INTEGER,
            'area_fraction': _NUMBER, 'mean_confidence': _NUMBER,
            'bbox': {'type': 'object', 'properties': {
                'x': _INTEGER, 'y': _INTEGER, 'width': _INTEGER, 'height': _INTEGER}},
            'centroid_x': _NUMBER, 'centroid_y': _NUMBER}}},
    },
}
CLASS_MAP_SCHEMA: dict[str, Any] = {
    'title': 'lw_refinenet_ros.ClassMap',
    'type': 'object',
    'properties': {
        'model': _STRING,
        'classes': {'type': 'array', 'items': {'type': 'object', 'properties': {
            'id': _INTEGER, 'name': _STRING, 'color': _STRING}}},
    },
}
DIAGNOSTICS_SCHEMA: dict[str, Any] = {
    'title': 'diagnostic_msgs.DiagnosticArray (values as numbers where numeric)',
    'type': 'object',
    'properties': {
        'stamp': _NUMBER,
        'status': {'type': 'array', 'items': {'type': 'object', 'properties': {
            'name': _STRING, 'hardware_id': _STRING, 'level': _INTEGER, 'message': _STRING,
            'values': {'type': 'object', 'additionalProperties': True}}}},
    },
}


def _finite(value: float) -> float | None:
    # JSON has no NaN (mean_confidence is NaN when the node skips confidence).
    return float(value) if math.isfinite(value) else None


def stats_to_dict(msg: Any) -> dict[str, Any]:
    """lw_refinenet_ros/SegmentationStats -> a JSON document (field names kept)."""
    return {
        'stamp': stamp_seconds(msg.header.stamp), 'frame_id': msg.header.frame_id,
        'width': int(msg.width), 'height': int(msg.height),
        'num_classes': int(msg.num_classes),
        'processing_latency_ms': _finite(msg.processing_latency_ms),
        'frame_age_ms': _finite(msg.frame_age_ms),
        'classes': [{
            'class_id': int(c.class_id), 'class_name': c.class_name,
            'pixel_count': int(c.pixel_count), 'area_fraction': _finite(c.area_fraction),
            'mean_confidence': _finite(c.mean_confidence),
            'bbox': {'x': int(c.bbox.x_offset), 'y': int(c.bbox.y_offset),
                     'width': int(c.bbox.width), 'height': int(c.bbox.height)},
            'centroid_x': _finite(c.centroid_x), 'centroid_y': _finite(c.centroid_y),
        } for c in msg.classes],
    }


def class_map_to_dict(msg: Any) -> dict[str, Any]:
    """lw_refinenet_ros/ClassMap -> ``{'model', 'classes': [{'id', 'name', 'color'}]}``.

    Colours are ``#rrggbb`` so that the Raw Messages panel shows them readably.
    """
    classes = []
    for class_id, name, color in zip(msg.ids, msg.names, msg.colors):
        rgb = ''.join(f'{round(255 * max(0.0, min(1.0, v))):02x}'
                      for v in (color.r, color.g, color.b))
        classes.append({'id': int(class_id), 'name': name, 'color': f'#{rgb}'})
    return {'model': msg.model, 'classes': classes}


def _diagnostic_value(text: str) -> float | str:
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _level(level: Any) -> int:
    # diagnostic_msgs' level is a ROS ``byte``, which rclpy hands out as a 1-byte bytes object.
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


def diagnostics_to_dict(msg: Any) -> dict[str, Any]:
    """diagnostic_msgs/DiagnosticArray -> JSON, numeric values as numbers (for the Plot panel)."""
    return {
        'stamp': stamp_seconds(msg.header.stamp),
        'status': [{
            'name': s.name, 'hardware_id': s.hardware_id, 'level': _level(s.level),
            'message': s.message,
            'values': {kv.key: _diagnostic_value(kv.value) for kv in s.values},
        } for s in msg.status],
    }


def class_colors(class_map: dict[str, Any] | None) -> dict[int, tuple[float, float, float]]:
    """Class id -> RGB in [0, 1] from a :func:`class_map_to_dict` document."""
    colors: dict[int, tuple[float, float, float]] = {}
    for entry in (class_map or {}).get('classes', []):
        code = entry['color'].lstrip('#')
        colors[entry['id']] = tuple(int(code[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    return colors


def _timestamp(seconds: float) -> Timestamp:
    whole = math.floor(seconds)
    return Timestamp(int(whole), int(round((seconds - whole) * 1e9)) % 1_000_000_000)


def _color(rgb: tuple[float, float, float], alpha: float = 1.0) -> Color:
    return Color(r=rgb[0], g=rgb[1], b=rgb[2], a=alpha)


def _box(x: float, y: float, width: float, height: float, rgb: tuple[float, float, float],
         scale: float) -> PointsAnnotation:
    corners = [(x, y), (x + width, y), (x + width, y + height), (x, y + height)]
    return PointsAnnotation(type=PointsAnnotationType.LineLoop,
                            points=[Point2(x=px * scale, y=py * scale) for px, py in corners],
                            outline_color=_color(rgb), thickness=2.0)


def _label(x: float, y: float, text: str, rgb: tuple[float, float, float],
           scale: float) -> TextAnnotation:
    return TextAnnotation(position=Point2(x=x * scale, y=max(0.0, y * scale - 2.0)), text=text,
                          font_size=12.0, text_color=_color((1.0, 1.0, 1.0)),
                          background_color=_color(rgb, 0.7))


def annotations_from_stats(stats: dict[str, Any], colors: dict[int, tuple[float, float, float]],
                           scale: float = 1.0) -> ImageAnnotations:
    """Per-class boxes, names and centroids of the small classes in one stats document.

    ``scale`` maps input-image pixels to the served image's pixels (the view may downscale).
    Stats aggregate every blob of a class, so a box may span several parts; instance boxes
    come from ``segmentation/objects`` (:func:`annotations_from_objects`).
    """
    points, texts, circles = [], [], []
    for entry in stats['classes']:
        area = entry['area_fraction']
        if area is None or area > MAX_BOX_AREA_FRACTION:
            continue
        rgb = colors.get(entry['class_id'], (1.0, 1.0, 1.0))
        box = entry['bbox']
        points.append(_box(box['x'], box['y'], box['width'], box['height'], rgb, scale))
        confidence = entry['mean_confidence']
        suffix = '' if confidence is None else f' {confidence:.2f}'
        texts.append(_label(box['x'], box['y'], f'{entry["class_name"]}{suffix}', rgb, scale))
        if entry['centroid_x'] is not None:
            circles.append(CircleAnnotation(
                position=Point2(x=entry['centroid_x'] * scale, y=entry['centroid_y'] * scale),
                diameter=6.0, thickness=2.0, outline_color=_color(rgb),
                fill_color=_color((1.0, 1.0, 1.0), 0.8)))
    return ImageAnnotations(timestamp=_timestamp(stats['stamp']), points=points, texts=texts,
                            circles=circles)


def object_label(obj: Any) -> str:
    """``#7 gear`` for a confirmed track, ``?7 gear`` for a tentative one, ``gear`` without
    tracking (the same convention as the node's overlay)."""
    if obj.tracked:
        return f'{"#" if obj.confirmed else "?"}{obj.id} {obj.class_name}'
    return obj.class_name


def objects_to_dicts(msg: Any) -> list[dict[str, Any]]:
    """lw_refinenet_ros/SegmentedObjects -> the object dicts :func:`annotations_from_objects`
    draws (input-image pixels)."""
    return [{'id': int(o.id), 'class_id': int(o.class_id), 'class_name': o.class_name,
             'label': object_label(o), 'score': _finite(o.score),
             'bbox': {'x': int(o.bbox.x_offset), 'y': int(o.bbox.y_offset),
                      'width': int(o.bbox.width), 'height': int(o.bbox.height)},
             'pick': (float(o.pick_x), float(o.pick_y))
             if math.isfinite(o.pick_x) and math.isfinite(o.pick_y) else None}
            for o in msg.objects]


def annotations_from_objects(stamp: float, objects: Iterable[dict[str, Any]],
                             colors: dict[int, tuple[float, float, float]],
                             scale: float = 1.0) -> ImageAnnotations:
    """Boxes with ``#id class`` labels and pick points for segmented object instances.

    Each object is a :func:`objects_to_dicts` entry: ``{'class_id', 'label', 'bbox': {'x',
    'y', 'width', 'height'}, 'pick': (x, y) | None, ...}`` in input-image pixels.
    """
    points, texts, circles = [], [], []
    for obj in objects:
        rgb = colors.get(obj['class_id'], (1.0, 1.0, 1.0))
        box = obj['bbox']
        points.append(_box(box['x'], box['y'], box['width'], box['height'], rgb, scale))
        texts.append(_label(box['x'], box['y'], obj['label'], rgb, scale))
        if obj.get('pick') is not None:
            px, py = obj['pick']
            circles.append(CircleAnnotation(
                position=Point2(x=px * scale, y=py * scale), diameter=8.0, thickness=2.0,
                outline_color=_color((1.0, 1.0, 1.0)), fill_color=_color(rgb)))
    return ImageAnnotations(timestamp=_timestamp(stamp), points=points, texts=texts,
                            circles=circles)
