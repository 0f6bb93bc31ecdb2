"""Object-level scores against instance ground truth (numpy only, no torch, no ROS).

Pixel mIoU says little about whether a robot picks the right part: two touching nuts merged
into one object are fine pixels and a failed pick. These scores count parts:

* precision / recall / F1 per class: a predicted object matches a ground-truth piece of the
  same class when their masks overlap with IoU >= 0.5 (so at most one match each). A piece
  is a visible 8-connected region of one part: a part that another part lies across shows as
  two pieces, and each is an object to find (a picker may take either);
* pick success: the object's pick pixel lies on a ground-truth part of the object's class;
* id switches: a ground-truth part whose matched track id changes from one frame to the next
  (CLEAR-MOT style), per matched part-frame (a part matched in a frame, by any of its
  pieces, is one track-frame).

Pieces smaller than ``min_gt_area`` pixels (parts almost hidden under others) and pieces
cut by the image border (half in view) are "don't care": missing one is no error, and a
prediction lying mostly on one is not a false positive. Their number is reported.

When the ground truth also knows each part's full (unoccluded) area, as the conveyor
generator does, the scores are repeated for the parts at least ``min_visible`` in view
(``mostly_visible``): the ones a picker would take; a part showing a few slivers between the
teeth of a gear on top of it is don't-care there.
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
        pairs: (object index, instance id) of every match.
        false_positives: Indices of objects that match no piece.
        missed: (instance id, class id) of pieces that no object matches.
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
        part = (gt_instances == inst).astype(np.uint8)
        ys, xs = np.nonzero(part)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        count, components, stats, _ = cv2.connectedComponentsWithStats(
            part[y0:y1, x0:x1], connectivity=8)
        cls = int(gt_labels[ys[0], xs[0]])
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
    """Match one frame's objects (``class_id``, ``bbox``, ``mask``) to ground-truth pieces."""
    result = FrameMatch(ignored=int(truth.dont_care[1:].sum()))
    matched: set[int] = set()
    for index, obj in enumerate(objects):
        x, y, w, h = obj.bbox
        crop = truth.pieces[y:y + h, x:x + w][obj.mask]
        overlap = np.bincount(crop, minlength=1)
        size = int(crop.size)
        best, best_iou, ignored = 0, 0.0, 0
        for piece in np.nonzero(overlap)[0]:
            if piece == 0 or truth.class_id[piece] != obj.class_id:
                continue
            inter = float(overlap[piece])
            if truth.dont_care[piece]:
                ignored += int(inter)
            iou = inter / (size + float(truth.area[piece]) - inter)
            if iou > best_iou:
                best, best_iou = int(piece), iou
        if best_iou >= iou_threshold:
            if not truth.dont_care[best]:
                result.pairs.append((index, int(truth.instance[best])))
            matched.add(best)
        elif 2 * ignored < size:
            result.false_positives.append(index)
    result.missed = [(int(truth.instance[p]), int(truth.class_id[p]))
                     for p in range(1, truth.area.size)
                     if p not in matched and not truth.dont_care[p]]
    return result


class ObjectScorer:
    """Accumulates object scores over frames (and id switches over a video).

    Args:
        num_classes: Number of classes of the label images.
        iou_threshold: Mask IoU at which a prediction counts as finding a part.
        min_gt_area: Smaller ground-truth parts are "don't care".
    """

    def __init__(self, num_classes: int, iou_threshold: float = 0.5,
                 min_gt_area: int = 40, min_visible: float = 0.5) -> None:
        self.num_classes = int(num_classes)
        self.iou_threshold = float(iou_threshold)
        self.min_gt_area = int(min_gt_area)
        self.min_visible = float(min_visible)
        self.classes = [ClassCounts() for _ in range(self.num_classes)]
        self.visible_classes = [ClassCounts() for _ in range(self.num_classes)]
        self.visible_frames = 0
        self.picks_ok = 0
        self.picks_total = 0
        self.id_switches = 0
        self.track_frames = 0
        self.ignored_parts = 0
        self._last_tracks: dict[int, set[int]] = {}

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
                ``mostly_visible`` scores; None: this frame does not count there.
        """
        truth = ground_truth_pieces(gt_labels, gt_instances, self.min_gt_area)
        match = match_frame(objects, truth, self.iou_threshold)
        if full_areas is not None:
            visible = np.array([truth.area[p] / max(full_areas.get(int(i), 0), 1) if p else 1.0
                                for p, i in enumerate(truth.instance)])
            hidden = GroundTruthPieces(truth.pieces, truth.instance, truth.class_id, truth.area,
                                       truth.dont_care | (visible < self.min_visible))
            mostly = match_frame(objects, hidden, self.iou_threshold)
            self.visible_frames += 1
            for index, _ in mostly.pairs:
                self.visible_classes[objects[index].class_id].true_positives += 1
            for index in mostly.false_positives:
                self.visible_classes[objects[index].class_id].false_positives += 1
            for _, class_id in mostly.missed:
                self.visible_classes[class_id].false_negatives += 1
        for index, _ in match.pairs:
            self.classes[objects[index].class_id].true_positives += 1
        for index in match.false_positives:
            self.classes[objects[index].class_id].false_positives += 1
        self.ignored_parts += match.ignored
        for _, class_id in match.missed:
            self.classes[class_id].false_negatives += 1
        height, width = gt_labels.shape
        for obj in objects:
            px, py = (int(round(v)) for v in obj.pick)
            self.picks_total += 1
            if 0 <= px < width and 0 <= py < height and gt_instances[py, px] != 0 \
                    and gt_labels[py, px] == obj.class_id:
                self.picks_ok += 1
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

    @property
    def total(self) -> ClassCounts:
        """Counts summed over classes."""
        return ClassCounts(sum(c.true_positives for c in self.classes),
                           sum(c.false_positives for c in self.classes),
                           sum(c.false_negatives for c in self.classes))

    def summary(self, class_names: Sequence[str] = ()) -> dict[str, Any]:
        """JSON-ready scores: overall, per class present, picks and id switches."""
        def scores(counts: ClassCounts) -> dict[str, Any]:
            return {'precision': _json_float(counts.precision),
                    'recall': _json_float(counts.recall), 'f1': _json_float(counts.f1),
                    'true_positives': counts.true_positives,
                    'false_positives': counts.false_positives,
                    'false_negatives': counts.false_negatives}

        def by_class(table: list[ClassCounts]) -> dict[str, Any]:
            out = {}
            for class_id, counts in enumerate(table):
                if counts.true_positives + counts.false_positives + counts.false_negatives:
                    name = class_names[class_id] if class_id < len(class_names) \
                        else str(class_id)
                    out[name] = scores(counts)
            return out

        per_class = by_class(self.classes)
        visible = None
        if self.visible_frames:
            total = ClassCounts(sum(c.true_positives for c in self.visible_classes),
                                sum(c.false_positives for c in self.visible_classes),
                                sum(c.false_negatives for c in self.visible_classes))
            visible = {'min_visible': self.min_visible, **scores(total),
                       'per_class': by_class(self.visible_classes)}
        return {
            'iou_threshold': self.iou_threshold, 'min_gt_area': self.min_gt_area,
            **scores(self.total), 'per_class': per_class,
            'pick_success': _json_float(self.picks_ok / self.picks_total
                                        if self.picks_total else math.nan),
            'picks': self.picks_total, 'dont_care_pieces': self.ignored_parts,
            'id_switches': self.id_switches, 'track_frames': self.track_frames,
            'id_switch_rate': _json_float(self.id_switches / self.track_frames
                                          if self.track_frames else math.nan),
            'mostly_visible': visible,
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
            ``labels`` and ``confidence`` (an InferenceEngine).
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
    from lw_refinenet_ros.objects.detect import DetectorSettings, detect_objects, part_class_lut
    from lw_refinenet_ros.objects.options import ObjectsConfig

    config = config or ObjectsConfig.defaults()
    parts = part_class_lut(class_names, config.ignore_classes)
    settings = DetectorSettings.from_config(config)
    instances_of, kind = instance_source(dataset, parts)
    scorer = ObjectScorer(len(class_names), min_gt_area=config.min_area)
    for index, image, labels in scored_samples(dataset, limit=limit, transform=transform,
                                               progress=progress, desc='objects'):
        result = engine(image, 'rgb', want_confidence=True, want_stats=False)
        objects = detect_objects(result.labels, parts, settings, result.confidence, image)
        instances, full_areas = instances_of(index, labels)
        scorer.add(objects, labels, instances, full_areas=full_areas)
    return scorer, kind


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines of :meth:`ObjectScorer.summary` (the eval CLI prints them)."""
    def number(value: float | None) -> str:
        return '   n/a' if value is None else f'{value:.4f}'

    lines = [f'objects (mask IoU >= {summary["iou_threshold"]}): precision '
             f'{number(summary["precision"])}  recall {number(summary["recall"])}  F1 '
             f'{number(summary["f1"])}  pick success {number(summary["pick_success"])}']
    for name, scores in summary['per_class'].items():
        lines.append(f'  {name:>16s}  P {number(scores["precision"])}  R '
                     f'{number(scores["recall"])}  F1 {number(scores["f1"])}  '
                     f'(TP {scores["true_positives"]}, FP {scores["false_positives"]}, '
                     f'FN {scores["false_negatives"]})')
    visible = summary.get('mostly_visible')
    if visible:
        lines.append(f'  parts at least {visible["min_visible"]:.0%} in view: precision '
                     f'{number(visible["precision"])}  recall {number(visible["recall"])}  '
                     f'F1 {number(visible["f1"])}')
    return '\n'.join(lines)
