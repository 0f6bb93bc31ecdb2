"""Live object scores of the demo: the node's segmentation/objects against part ground truth.

Four streams meet by header stamp: the camera's ``ground_truth/labels`` and
``ground_truth/instances``, and the node's ``segmentation/labels`` and
``segmentation/objects``; a fifth, the camera's ``ground_truth/objects`` (each part's
unoccluded pixel count), adds the pickable-part scores when it is there. A SegmentedObject
carries no mask, so each object's mask is rebuilt from the node's labels: the pixels of its
class inside its outline (the demo runs the node with ``objects.contour_points`` set) and its
box. Scores are those of :class:`lw_refinenet_ros.evaluation.object_metrics.ObjectScorer`:
one-to-one precision/recall at mask IoU >= 0.5 for pickable parts and every visible piece,
pick points inside the matched part, id switches of confirmed tracks. No ROS imports: the
monitor hands in arrays and plain object records.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from lw_refinenet_ros.demo.scoring import remember
from lw_refinenet_ros.evaluation.object_metrics import ObjectScorer


@dataclass(frozen=True)
class ScoredObject:
    """What scoring needs of one published object (``mask`` is rebuilt, see module doc)."""

    class_id: int
    bbox: tuple[int, int, int, int]
    pick: tuple[float, float]
    track_id: int | None
    outline: np.ndarray  # float32 (N, 2) image pixels; empty = the whole box
    mask: np.ndarray | None = None


def objects_from_message(msg: Any) -> list[ScoredObject]:
    """ScoredObjects of a SegmentedObjects message (confirmed track ids only)."""
    out = []
    for obj in msg.objects:
        box = obj.bbox
        outline = np.array([[p.x, p.y] for p in obj.contour.points], np.float32).reshape(-1, 2)
        out.append(ScoredObject(
            int(obj.class_id), (int(box.x_offset), int(box.y_offset), int(box.width),
                                int(box.height)), (float(obj.pick_x), float(obj.pick_y)),
            int(obj.id) if obj.tracked and obj.confirmed else None, outline))
    return out


def with_masks(objects: Sequence[ScoredObject], labels: np.ndarray) -> list[ScoredObject]:
    """Each object's mask: pixels of its class in its box, inside its outline if it has one."""
    out = []
    for obj in objects:
        x, y, w, h = obj.bbox
        mask = labels[y:y + h, x:x + w] == obj.class_id
        if len(obj.outline) >= 3:
            inside = np.zeros((h, w), np.uint8)
            points = np.round(obj.outline - [x, y]).astype(np.int32)
            cv2.fillPoly(inside, [points], 1)
            cv2.polylines(inside, [points], True, 1)
            mask &= inside > 0
        out.append(ScoredObject(obj.class_id, obj.bbox, obj.pick, obj.track_id, obj.outline,
                                mask))
    return out


def full_areas_from_message(msg: Any) -> dict[int, int]:
    """By instance id, the unoccluded pixels of each part of a ``ground_truth/objects``
    message (the demo camera's SegmentedObjects: ``id`` = instance id, ``pixel_count``)."""
    return {int(obj.id): int(obj.pixel_count) for obj in msg.objects}


class ObjectStampScorer:
    """Pairs the streams by stamp and scores each complete frame once.

    A frame is complete with its truth, instances, labels and objects; the parts' unoccluded
    areas (``parts``), when they arrived first (the camera publishes them before the image),
    add the frame to the pickable scores.

    Args:
        num_classes: Classes of the scene.
    """

    _PARTS = ('truth', 'instances', 'labels', 'objects')
    _OPTIONAL = ('parts',)

    def __init__(self, num_classes: int) -> None:
        self.scorer = ObjectScorer(num_classes)
        self.frames_scored = 0
        self._pending: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def add(self, kind: str, stamp: int, value: Any) -> None:
        """One stream's message of frame ``stamp`` (kind: truth, instances, labels, objects,
        parts)."""
        if kind not in self._PARTS + self._OPTIONAL:
            raise ValueError(f'kind must be one of {self._PARTS + self._OPTIONAL}, got '
                             f'{kind!r}.')
        entry = self._pending.pop(stamp, None) or {}
        entry[kind] = value
        if all(part in entry for part in self._PARTS):
            self._score(entry)
        else:
            remember(self._pending, stamp, entry)

    def _score(self, entry: dict[str, Any]) -> None:
        truth, instances, labels = entry['truth'], entry['instances'], entry['labels']
        if not truth.shape == instances.shape == labels.shape:
            return
        objects = with_masks(entry['objects'], labels)
        self.scorer.add(objects, truth, instances, [o.track_id for o in objects],
                        entry.get('parts'))
        self.frames_scored += 1

    def summary(self, class_names: Sequence[str]) -> dict[str, Any]:
        """JSON-ready scores (see ObjectScorer.summary) plus the number of frames scored."""
        return {'frames_scored': self.frames_scored, **self.scorer.summary(class_names)}


#: The demo camera's height above the belt (its camera_info has fx = image width).
DEMO_CAMERA_HEIGHT_M = 0.5
#: Where the demo's robot picks: this fraction of the image width, downstream.
DEMO_PICK_LINE_FRACTION = 0.8


def object_parameters(width: int) -> list[str]:
    """Node arguments that turn on what the demo scores and the robot needs.

    Outlines (for the object masks above), a belt plane under the demo camera (its
    camera_info: fx = width, principal point at the centre) and a pick line at
    :data:`DEMO_PICK_LINE_FRACTION` of the width, in metres and in pixels.
    """
    line_px = DEMO_PICK_LINE_FRACTION * width
    line_m = (line_px - (width - 1) / 2.0) / width * DEMO_CAMERA_HEIGHT_M
    values = {'use_camera_info': 'true', 'objects.contour_points': '48',
              'objects.belt.calibration': 'plane',
              'objects.belt.camera_height_m': f'{DEMO_CAMERA_HEIGHT_M}',
              'objects.pick_line.position_m': f'{line_m:.6f}',
              'objects.pick_line.position_px': f'{line_px:.1f}'}
    return [arg for name, value in values.items() for arg in ('-p', f'{name}:={value}')]
