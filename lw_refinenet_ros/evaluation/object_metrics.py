"""Object-level scores against instance ground truth (numpy only, no torch, no ROS).

Pixel mIoU says little about whether a robot picks the right part: two touching nuts merged
into one object are fine pixels and a failed pick. These scores count parts:

* precision / recall / F1 per class, **one-to-one**: a predicted object matches a
  ground-truth piece of the same class when their masks overlap with IoU >= 0.5; each piece
  is claimed once (the pairs with the highest IoU first), so a second object on a piece
  already claimed (a duplicate detection) is a false positive. A piece is a visible
  8-connected region of one part: a part that another part lies across shows as two pieces,
  and each is an object to find (a picker may take either);
* **pickable parts**: the same scores for the parts a gripper can take: a piece holding at
  least ``min_visible`` (half) of its part's unoccluded area, off the image border; every
  other piece is don't-care there. Needs the part's unoccluded area (``full_areas``), which
  the conveyor generator knows;
* pick success: the matched object's pick pixel lies inside the part it matched (not merely
  on some part of its class), over the matched objects;
* id switches: a ground-truth part whose matched track id changes from one frame to the next
  (CLEAR-MOT style), per matched part-frame (a part matched in a frame, by any of its
  pieces, is one track-frame).

Pieces smaller than ``min_gt_area`` pixels (parts almost hidden under others) and pieces
cut by the image border (half in view) are "don't care": missing one is no error, and a
prediction lying mostly on one is not a false positive. Their number is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Callable, Sequence

import cv2
import numpy as np


@dataclass
class ClassCounts:
    """Matches of one class."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else math.nan

    @property
    def recall(self) -> float:
        present = self.true_positives + self.false_negatives
        return self.true_positives / present if present else math.nan

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else math.nan


@dataclass
class FrameMatch:
    """How one frame's objects matched its ground-truth pieces.

    Attributes:
        pairs: (object index, instance id) of every match, sorted by object index; each
            object and each piece appears at most once (one-to-one).
        false_positives: Indices of objects that match no piece (a duplicate of an object
            that claimed the piece included), unless they lie mostly on don't-care pieces.
        missed: (instance id, class id) of pieces that no object claimed.
        ignored: Number of "don't care" pieces (tiny or cut by the image border).
    """

    pairs: list[tuple[int, int]] = field(default_factory=list)
    false_positives: list[int] = field(default_factory=list)
    missed: list[tuple[int, int]] = field(default_factory=list)
    ignored: int = 0


@dataclass
class GroundTruthPieces:
    """Visible pieces of the ground-truth parts of one frame.

    Attributes:
        pieces: int32 (H, W) piece ids, 0 where no part lies.
        instance: Part (instance) id of each piece id.
        class_id: Class of each piece id.
        area: Pixels of each piece id.
        dont_care: True for pieces that are tiny or touch the image border.
    """

    pieces: np.ndarray
    instance: np.ndarray
    class_id: np.ndarray
    area: np.ndarray
    dont_care: np.ndarray


def ground_truth_pieces(gt_labels: np.ndarray, gt_instances: np.ndarray,
                        min_gt_area: int = 40) -> GroundTruthPieces:
    """Split every ground-truth part into its visible 8-connected pieces.

    A part lying half under another can show as two pieces; the camera sees two regions and
    a picker may take either, so each piece is one object to find.

    Raises:
        ValueError: When the ground-truth images differ in shape.
    """
    if gt_labels.shape != gt_instances.shape:
        raise ValueError(f'ground-truth labels {gt_labels.shape} and instances '
                         f'{gt_instances.shape} must have the same shape.')
    height, width = gt_instances.shape
    pieces = np.zeros((height, width), np.int32)
    instance, class_id, area, dont_care = [0], [0], [0], [False]
    ids = np.unique(gt_instances)
    for inst in ids[ids > 0]:
        # The box through OpenCV's scan, not np.nonzero's coordinate arrays: the demo scores
        # every 640x480 frame this way, and the coordinates took a fifth of its process.
        part = (gt_instances == inst).view(np.uint8)
        x0, y0, box_w, box_h = cv2.boundingRect(part)
        y1, x1 = y0 + box_h, x0 + box_w
        crop = part[y0:y1, x0:x1]
        first = int(np.argmax(crop))  # the part's first pixel in row-major order
        count, components, stats, _ = cv2.connectedComponentsWithStats(crop, connectivity=8)
        cls = int(gt_labels[y0 + first // box_w, x0 + first % box_w])
        for k in range(1, count):
            left, top, w, h, size = (int(v) for v in stats[k])
            piece_id = len(instance)
            pieces[y0:y1, x0:x1][components == k] = piece_id
            instance.append(int(inst))
            class_id.append(cls)
            area.append(size)
            border = (x0 + left == 0 or y0 + top == 0 or x0 + left + w == width
                      or y0 + top + h == height)
            dont_care.append(size < min_gt_area or border)
    return GroundTruthPieces(pieces, np.array(instance), np.array(class_id), np.array(area),
                             np.array(dont_care, bool))


def match_frame(objects: Sequence[Any], truth: GroundTruthPieces,
                iou_threshold: float = 0.5) -> FrameMatch:
    """Match one frame's objects (``class_id``, ``bbox``, ``mask``) to ground-truth pieces,
    one-to-one.

    Every (object, piece of its class) pair at IoU >= ``iou_threshold`` is a candidate; the
    candidates are taken by falling IoU, each object and each piece at most once. An object
    left without a piece is a false positive unless most of it lies on don't-care pieces.
    """
    result = FrameMatch(ignored=int(truth.dont_care[1:].sum()))
    candidates: list[tuple[float, int, int]] = []
    on_dont_care: list[bool] = []
    for index, obj in enumerate(objects):
        x, y, w, h = obj.bbox
        crop = truth.pieces[y:y + h, x:x + w][obj.mask]
        overlap = np.bincount(crop, minlength=1)
        size = int(crop.size)
        ignored = 0
        for piece in np.nonzero(overlap)[0]:
            if piece == 0 or truth.class_id[piece] != obj.class_id:
                continue
            inter = float(overlap[piece])
            if truth.dont_care[piece]:
                ignored += int(inter)
            iou = inter / (size + float(truth.area[piece]) - inter)
            if iou >= iou_threshold:
                candidates.append((iou, index, int(piece)))
        on_dont_care.append(2 * ignored >= size)
    taken_objects: set[int] = set()
    claimed: set[int] = set()
    # Highest IoU first; ties by object then piece order, so the result is deterministic.
    for _, index, piece in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if index in taken_objects or piece in claimed:
            continue
        taken_objects.add(index)
        claimed.add(piece)
        if not truth.dont_care[piece]:
            result.pairs.append((index, int(truth.instance[piece])))
    result.pairs.sort()
    result.false_positives = [index for index in range(len(objects))
                              if index not in taken_objects and not on_dont_care[index]]
    result.missed = [(int(truth.instance[p]), int(truth.class_id[p]))
                     for p in range(1, truth.area.size)
                     if p not in claimed and not truth.dont_care[p]]
    return result


def pickable_pieces(truth: GroundTruthPieces, full_areas: dict[int, int],
                    min_visible: float = 0.5) -> GroundTruthPieces:
    """``truth`` with every piece that a gripper cannot take made don't-care.

    A piece is pickable when it holds at least ``min_visible`` of its part's unoccluded area
    (``full_areas``, by instance id) and is not already don't-care (tiny, or cut by the image
    border). A part missing from ``full_areas`` counts as fully hidden.
    """
    visible = np.array([truth.area[p] / max(full_areas.get(int(i), 0), 1) if p else 1.0
                        for p, i in enumerate(truth.instance)])
    return GroundTruthPieces(truth.pieces, truth.instance, truth.class_id, truth.area,
                             truth.dont_care | (visible < min_visible))


def picks_in_matched_part(objects: Sequence[Any], pairs: Sequence[tuple[int, int]],
                          gt_instances: np.ndarray) -> int:
    """How many matched objects have their pick pixel inside the very part they matched."""
    height, width = gt_instances.shape
    inside = 0
    for index, instance in pairs:
        px, py = (int(round(v)) for v in objects[index].pick)
        if 0 <= px < width and 0 <= py < height and int(gt_instances[py, px]) == instance:
            inside += 1
    return inside


@dataclass
class MatchCounts:
    """Per-class matches and pick points of one way of scoring (all visible or pickable)."""

    classes: list[ClassCounts]
    picks_inside: int = 0
    picks_matched: int = 0

    @classmethod
    def empty(cls, num_classes: int) -> MatchCounts:
        return cls([ClassCounts() for _ in range(num_classes)])

    def add(self, objects: Sequence[Any], match: FrameMatch, gt_instances: np.ndarray) -> None:
        for index, _ in match.pairs:
            self.classes[objects[index].class_id].true_positives += 1
        for index in match.false_positives:
            self.classes[objects[index].class_id].false_positives += 1
        for _, class_id in match.missed:
            self.classes[class_id].false_negatives += 1
        self.picks_inside += picks_in_matched_part(objects, match.pairs, gt_instances)
        self.picks_matched += len(match.pairs)

    @property
    def total(self) -> ClassCounts:
        """Counts summed over classes."""
        return ClassCounts(sum(c.true_positives for c in self.classes),
                           sum(c.false_positives for c in self.classes),
                           sum(c.false_negatives for c in self.classes))

    @property
    def pick_success(self) -> float:
        return self.picks_inside / self.picks_matched if self.picks_matched else math.nan

    def summary(self, class_names: Sequence[str]) -> dict[str, Any]:
        per_class = {}
        for class_id, counts in enumerate(self.classes):
            if counts.true_positives + counts.false_positives + counts.false_negatives:
                name = class_names[class_id] if class_id < len(class_names) else str(class_id)
                per_class[name] = _scores(counts)
        return {**_scores(self.total), 'per_class': per_class,
                'pick_success': _json_float(self.pick_success),
                'picks_inside': self.picks_inside, 'picks_matched': self.picks_matched}


def _scores(counts: ClassCounts) -> dict[str, Any]:
    return {'precision': _json_float(counts.precision),
            'recall': _json_float(counts.recall), 'f1': _json_float(counts.f1),
            'true_positives': counts.true_positives,
            'false_positives': counts.false_positives,
            'false_negatives': counts.false_negatives}


class ObjectScorer:
    """Accumulates object scores over frames (and id switches over a video).

    Args:
        num_classes: Number of classes of the label images.
        iou_threshold: Mask IoU at which a prediction counts as finding a part.
        min_gt_area: Smaller ground-truth pieces are "don't care".
        min_visible: Share of its unoccluded area a piece must show to be pickable.
    """

    def __init__(self, num_classes: int, iou_threshold: float = 0.5,
                 min_gt_area: int = 40, min_visible: float = 0.5) -> None:
        self.num_classes = int(num_classes)
        self.iou_threshold = float(iou_threshold)
        self.min_gt_area = int(min_gt_area)
        self.min_visible = float(min_visible)
        self.visible = MatchCounts.empty(self.num_classes)
        self.pickable = MatchCounts.empty(self.num_classes)
        self.pickable_frames = 0
        self.id_switches = 0
        self.track_frames = 0
        self.ignored_parts = 0
        self._last_tracks: dict[int, set[int]] = {}

    @property
    def classes(self) -> list[ClassCounts]:
        """Per-class counts over every visible piece."""
        return self.visible.classes

    @property
    def total(self) -> ClassCounts:
        """Counts over every visible piece, summed over classes."""
        return self.visible.total

    def add(self, objects: Sequence[Any], gt_labels: np.ndarray, gt_instances: np.ndarray,
            track_ids: Sequence[int | None] | None = None,
            full_areas: dict[int, int] | None = None) -> FrameMatch:
        """Score one frame.

        Args:
            objects: Objects with ``class_id``, ``bbox``, ``mask`` and ``pick``.
            gt_labels: (H, W) ground-truth class ids.
            gt_instances: (H, W) ground-truth part ids, 0 = no part.
            track_ids: The objects' track ids (None where untracked) for id switches;
                None: this frame does not count toward id switches.
            full_areas: Unoccluded pixel count of each part by instance id, for the
                pickable scores; None: this frame does not count there.

        Returns:
            The one-to-one match over every visible piece.
        """
        truth = ground_truth_pieces(gt_labels, gt_instances, self.min_gt_area)
        match = match_frame(objects, truth, self.iou_threshold)
        self.visible.add(objects, match, gt_instances)
        self.ignored_parts += match.ignored
        if full_areas is not None:
            pickable = pickable_pieces(truth, full_areas, self.min_visible)
            self.pickable.add(objects, match_frame(objects, pickable, self.iou_threshold),
                              gt_instances)
            self.pickable_frames += 1
        if track_ids is not None:
            # A part seen as two pieces (another part lies across it) may carry two tracks;
            # it switched ids when none of this frame's tracks was on it last frame.
            tracks_now: dict[int, set[int]] = {}
            for index, inst in match.pairs:
                if track_ids[index] is not None:
                    tracks_now.setdefault(inst, set()).add(int(track_ids[index]))
            for inst, tracks in tracks_now.items():
                self.track_frames += 1
                previous = self._last_tracks.get(inst)
                if previous and not previous & tracks:
                    self.id_switches += 1
                self._last_tracks[inst] = tracks
        return match

    def summary(self, class_names: Sequence[str] = ()) -> dict[str, Any]:
        """JSON-ready scores: every visible piece (top level), the pickable parts (key
        ``pickable``, None when no frame knew the parts' unoccluded areas), id switches."""
        pickable = None
        if self.pickable_frames:
            pickable = {'min_visible': self.min_visible, 'frames': self.pickable_frames,
                        **self.pickable.summary(class_names)}
        return {
            'iou_threshold': self.iou_threshold, 'min_gt_area': self.min_gt_area,
            'matching': 'one-to-one', **self.visible.summary(class_names),
            'dont_care_pieces': self.ignored_parts,
            'id_switches': self.id_switches, 'track_frames': self.track_frames,
            'id_switch_rate': _json_float(self.id_switches / self.track_frames
                                          if self.track_frames else math.nan),
            'pickable': pickable,
        }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 5)


def evaluate_objects(engine: Any, dataset: Sequence, class_names: Sequence[str],
                     config: Any = None, *, limit: int | None = None,
                     transform: Callable[[np.ndarray], np.ndarray] | None = None,
                     progress: bool = False) -> tuple[ObjectScorer, str]:
    """Object scores of ``engine`` on ``dataset``, image by image (no tracking).

    Args:
        engine: ``engine(image, 'rgb', want_confidence=True, want_stats=False)`` returning
            ``labels`` and ``confidence`` (an InferenceEngine), and ``boundary`` when the
            model has the learned part-boundary output (the detector then splits along it).
        dataset: ``ds[i] -> (image RGB uint8, labels)``.
        class_names: The model's classes.
        config: ``ObjectsConfig`` (default: the node's defaults).
        limit: Only the first ``limit`` items.
        transform: Optional image-only perturbation (as in pixel evaluation).
        progress: Show a tqdm bar.

    Returns:
        ``(scorer, ground truth kind)``, see
        :func:`lw_refinenet_ros.data.instances.instance_source`.
    """
    from lw_refinenet_ros.data.datasets import scored_samples
    from lw_refinenet_ros.data.instances import instance_source
    from lw_refinenet_ros.objects.detect import (
        DetectorSettings,
        detect_objects,
        detection_step,
        part_class_lut,
    )
    from lw_refinenet_ros.objects.options import ObjectsConfig

    config = config or ObjectsConfig.defaults()
    parts = part_class_lut(class_names, config.ignore_classes, config.one_hole_classes)
    settings = DetectorSettings.from_config(config)
    instances_of, kind = instance_source(dataset, parts)
    # The scoring's own smallest piece (as in the benchmark and the demo), not the detector's
    # objects.min_area: a setting under test must not move the yardstick.
    scorer = ObjectScorer(len(class_names))
    for index, image, labels in scored_samples(dataset, limit=limit, transform=transform,
                                               progress=progress, desc='objects'):
        result = engine(image, 'rgb', want_confidence=True, want_stats=False)
        step = detection_step(result.labels.shape, getattr(result, 'network_size', None),
                              config.detect_at)
        # A model with the learned part-boundary output splits along it (else the rules).
        objects = detect_objects(result.labels, parts, settings, result.confidence, image,
                                 getattr(result, 'boundary', None), step)
        instances, full_areas = instances_of(index, labels)
        scorer.add(objects, labels, instances, full_areas=full_areas)
    return scorer, kind


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines of :meth:`ObjectScorer.summary` (the eval CLI prints them)."""
    def number(value: float | None) -> str:
        return '   n/a' if value is None else f'{value:.4f}'

    def line(scores: dict[str, Any]) -> str:
        return (f'precision {number(scores["precision"])}  recall {number(scores["recall"])}  '
                f'F1 {number(scores["f1"])}  pick in the matched part '
                f'{number(scores["pick_success"])}')

    lines = [f'objects (one-to-one, mask IoU >= {summary["iou_threshold"]})']
    pickable = summary.get('pickable')
    if pickable:
        lines.append(f'  pickable (>= {pickable["min_visible"]:.0%} in view, off the border): '
                     + line(pickable))
    lines.append('  all visible pieces: ' + line(summary))
    for name, scores in summary['per_class'].items():
        lines.append(f'  {name:>16s}  P {number(scores["precision"])}  R '
                     f'{number(scores["recall"])}  F1 {number(scores["f1"])}  '
                     f'(TP {scores["true_positives"]}, FP {scores["false_positives"]}, '
                     f'FN {scores["false_negatives"]})')
    return '\n'.join(lines)
