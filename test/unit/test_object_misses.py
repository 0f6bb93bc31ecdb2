"""benchmarks/object_misses.py puts every missed pickable part and false positive in one bin."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))

from object_misses import classify_frame, summarise  # noqa: E402

from lw_refinenet_ros.evaluation.object_metrics import (  # noqa: E402
    ground_truth_pieces,
    pickable_pieces,
)

NUT = 3  # the conveyor's class table: background, belt, bolt, nut, ...


@dataclass(frozen=True)
class Obj:
    class_id: int
    bbox: tuple[int, int, int, int]
    mask: np.ndarray
    pick: tuple[int, int]


def obj(full: np.ndarray) -> Obj:
    ys, xs = np.nonzero(full)
    x, y = int(xs.min()), int(ys.min())
    w, h = int(xs.max()) - x + 1, int(ys.max()) - y + 1
    return Obj(NUT, (x, y, w, h), full[y:y + h, x:x + w], (x + w // 2, y + h // 2))


def two_nuts() -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """Two 20x20 nuts side by side (touching), off the border."""
    truth = np.zeros((60, 100), np.uint8)
    instances = np.zeros((60, 100), np.uint16)
    truth[20:40, 20:60] = NUT
    instances[20:40, 20:40] = 1
    instances[20:40, 40:60] = 2
    return truth, instances, {1: 400, 2: 400}


def classify(objects: list, relaxed: list, labels: np.ndarray,
             scene: tuple[np.ndarray, np.ndarray, dict[int, int]] | None = None) -> Counter:
    truth, instances, areas = scene or two_nuts()
    pieces = ground_truth_pieces(truth, instances)
    causes: Counter = Counter()
    classify_frame(objects, relaxed, labels, pieces, pickable_pieces(pieces, areas), instances,
                   causes)
    return causes


def test_one_object_on_two_parts_is_a_merge() -> None:
    truth, instances, _ = two_nuts()
    blob = truth == NUT
    blob[40, 20:60] = True                   # a little more than the two nuts
    causes = classify([obj(blob)], [], truth)
    assert causes == Counter({'miss/merged/nut': 2, 'fp/merged/nut': 1})


def test_a_part_lost_to_a_neighbour_that_took_the_object_is_a_merge() -> None:
    # The object matches the larger part (IoU >= 0.5); the smaller one under it is merged.
    truth, instances, _ = two_nuts()
    instances[20:40, 36:40] = 2              # the right nut is larger: 480 px against 320
    causes = classify([obj(truth == NUT)], [], truth, (truth, instances, {1: 320, 2: 480}))
    assert causes['tp/nut'] == 1 and causes['miss/merged/nut'] == 1


def test_a_part_cut_in_three_is_over_split() -> None:
    truth, instances, _ = two_nuts()
    thirds = [obj((instances == 1) & (np.arange(100) // 7 == k)[None, :]) for k in (3, 4, 5)]
    causes = classify(thirds + [obj(instances == 2)], [], truth)
    assert causes['miss/over_split/nut'] == 1
    assert causes['fp/fragment/nut'] == 3
    assert causes['tp/nut'] == 1
    assert summarise(causes)['recall'] == 0.5


def test_a_part_only_the_relaxed_filters_find_was_filtered() -> None:
    truth, instances, _ = two_nuts()
    causes = classify([obj(instances == 2)], [obj(instances == 1)], truth)
    assert causes == Counter({'tp/nut': 1, 'miss/filtered/nut': 1})


def test_a_part_the_labels_do_not_show_was_not_labelled() -> None:
    truth, instances, _ = two_nuts()
    labels = truth.copy()
    labels[instances == 1] = 0
    causes = classify([obj(instances == 2)], [], labels)
    assert causes == Counter({'tp/nut': 1, 'miss/not_labelled/nut': 1})


def test_a_pick_outside_the_matched_part_is_counted() -> None:
    truth, instances, _ = two_nuts()
    left = obj(instances == 1)
    stray = Obj(NUT, left.bbox, left.mask, (50, 30))   # on the other nut
    causes = classify([stray, obj(instances == 2)], [], truth)
    assert causes['pick_outside/nut'] == 1 and causes['tp/nut'] == 2
