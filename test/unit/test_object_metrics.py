"""Object precision/recall, pick success and id switches against instance ground truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lw_refinenet_ros.data.conveyor import CLASS_NAMES, frame_rng, render_conveyor_frame
from lw_refinenet_ros.evaluation.object_metrics import ObjectScorer, ground_truth_pieces
from lw_refinenet_ros.objects.detect import DetectorSettings, detect_objects, part_class_lut

BOLT, NUT = 2, 3


def scene() -> tuple[np.ndarray, np.ndarray]:
    labels = np.ones((60, 100), np.uint8)
    instances = np.zeros((60, 100), np.uint16)
    labels[10:30, 10:30], instances[10:30, 10:30] = BOLT, 1
    labels[10:30, 30:50], instances[10:30, 30:50] = BOLT, 2    # touches part 1
    labels[35:50, 60:80], instances[35:50, 60:80] = NUT, 3
    return labels, instances


def detect(labels: np.ndarray) -> list:
    return detect_objects(labels, part_class_lut(CLASS_NAMES, ('background', 'belt')),
                          DetectorSettings(min_area=20, split_touching=False))


def test_perfect_objects_score_one() -> None:
    labels, instances = scene()
    truth = instances.copy()
    truth[10:30, 30:50] = 0            # score a prediction without the merge: one bolt less
    labels_one = np.where(truth > 0, labels, 1).astype(np.uint8)
    scorer = ObjectScorer(len(CLASS_NAMES))
    scorer.add(detect(labels_one), labels_one, truth)
    summary = scorer.summary(CLASS_NAMES)
    assert summary['precision'] == summary['recall'] == summary['f1'] == 1.0
    assert summary['pick_success'] == 1.0 and summary['picks_matched'] == 2
    assert summary['matching'] == 'one-to-one'
    assert set(summary['per_class']) == {'bolt', 'nut'}


def test_merged_parts_are_a_false_positive_and_misses() -> None:
    labels, instances = scene()
    labels[10:30, 50:70], instances[10:30, 50:70] = BOLT, 4     # three bolts in a row
    scorer = ObjectScorer(len(CLASS_NAMES))
    objects = detect(labels)                     # the bolts merge into one object
    assert len(objects) == 2
    match = scorer.add(objects, labels, instances)
    bolt = scorer.classes[BOLT]
    assert (bolt.true_positives, bolt.false_positives, bolt.false_negatives) == (0, 1, 3)
    assert scorer.classes[NUT].true_positives == 1
    assert sorted(match.missed) == [(1, BOLT), (2, BOLT), (4, BOLT)]
    # Only matched objects count for picks: the nut; the merged bolts are a false positive.
    assert (scorer.visible.picks_inside, scorer.visible.picks_matched) == (1, 1)


def test_two_objects_on_one_part_are_one_true_positive_and_one_false_positive() -> None:
    labels, instances = scene()
    labels[10:30, 30:50], instances[10:30, 30:50] = 1, 0
    nut = next(o for o in detect(labels) if o.class_id == NUT)
    scorer = ObjectScorer(len(CLASS_NAMES))
    match = scorer.add([nut, nut], labels, instances)          # the same part twice
    assert (scorer.classes[NUT].true_positives, scorer.classes[NUT].false_positives) == (1, 1)
    assert match.pairs == [(0, 3)] and match.false_positives == [1]
    assert scorer.summary()['precision'] == 0.5


def test_a_duplicate_on_a_dont_care_piece_is_no_false_positive() -> None:
    labels = np.ones((40, 40), np.uint8)
    instances = np.zeros((40, 40), np.uint16)
    labels[0:10, 5:15], instances[0:10, 5:15] = NUT, 1         # cut by the top border
    cut = detect(labels)
    scorer = ObjectScorer(len(CLASS_NAMES))
    scorer.add(cut + cut, labels, instances)
    assert scorer.total.false_positives == 0 and scorer.total.true_positives == 0


def test_the_better_of_two_overlapping_objects_claims_the_part() -> None:
    labels, instances = scene()
    labels[10:30, 30:50], instances[10:30, 30:50] = 1, 0
    nut = next(o for o in detect(labels) if o.class_id == NUT)
    x, y, w, h = nut.bbox
    partial_mask = nut.mask.copy()
    partial_mask[:, : w // 3] = False                           # IoU 2/3 with the nut
    partial = SimpleNamespace(class_id=NUT, bbox=nut.bbox, mask=partial_mask, pick=nut.pick)
    match = ObjectScorer(len(CLASS_NAMES)).add([partial, nut], labels, instances)
    assert match.pairs == [(1, 3)] and match.false_positives == [0]


def test_a_pick_point_counts_only_inside_the_part_the_object_matched() -> None:
    labels, instances = scene()                 # bolts 1 and 2 touch at x = 30
    truth = instances.copy()
    one = np.where(truth == 1, labels, 1).astype(np.uint8)
    bolt = next(o for o in detect(one) if o.class_id == BOLT)
    assert bolt.bbox == (10, 10, 20, 20)
    on_its_neighbour = SimpleNamespace(class_id=BOLT, bbox=bolt.bbox, mask=bolt.mask,
                                       pick=(35.0, 20.0))       # on bolt 2: same class
    scorer = ObjectScorer(len(CLASS_NAMES))
    match = scorer.add([on_its_neighbour], labels, instances)
    assert match.pairs == [(0, 1)]
    assert scorer.summary()['pick_success'] == 0.0
    scorer.add([bolt], labels, instances)
    assert (scorer.visible.picks_inside, scorer.visible.picks_matched) == (1, 2)


def test_pickable_parts_are_half_in_view_and_off_the_border() -> None:
    labels = np.ones((60, 100), np.uint8)
    instances = np.zeros((60, 100), np.uint16)
    labels[10:30, 10:30], instances[10:30, 10:30] = NUT, 1     # 400 of 400 px in view
    labels[10:30, 40:50], instances[10:30, 40:50] = NUT, 2     # 200 of 500: mostly hidden
    labels[10:30, 60:70], instances[10:30, 60:70] = NUT, 3     # 200 of 400: exactly half
    labels[40:60, 80:100], instances[40:60, 80:100] = NUT, 4   # whole, but cut by the border
    full = {1: 400, 2: 500, 3: 400, 4: 400}
    scorer = ObjectScorer(len(CLASS_NAMES))
    scorer.add([], labels, instances, full_areas=full)           # nothing found
    pickable = scorer.summary()['pickable']
    assert pickable['false_negatives'] == 2                      # parts 1 and 3
    assert scorer.total.false_negatives == 3                     # all visible: 1, 2, 3
    found = scorer.add(detect(labels), labels, instances, full_areas=full)
    assert sorted(inst for _, inst in found.pairs) == [1, 2, 3]
    summary = scorer.summary()
    assert summary['pickable']['true_positives'] == 2
    assert summary['pickable']['false_positives'] == 0           # 2 and 4: don't care
    assert summary['pickable']['frames'] == 2


def test_iou_of_one_half_is_a_match() -> None:
    labels, instances = scene()                  # two equal bolts merged: IoU 0.5 with each
    scorer = ObjectScorer(len(CLASS_NAMES))
    scorer.add(detect(labels), labels, instances)
    bolt = scorer.classes[BOLT]
    assert (bolt.true_positives, bolt.false_positives, bolt.false_negatives) == (1, 0, 1)


def test_a_wrong_class_is_a_false_positive_and_a_miss() -> None:
    labels, instances = scene()
    predicted = labels.copy()
    predicted[35:50, 60:80] = BOLT
    predicted[10:30, 30:50] = 1
    scorer = ObjectScorer(len(CLASS_NAMES))
    scorer.add(detect(predicted), labels, instances)
    assert scorer.classes[NUT].false_negatives == 1
    assert scorer.classes[BOLT].false_positives == 1
    assert (scorer.visible.picks_inside, scorer.visible.picks_matched) == (1, 1)


def test_parts_cut_by_the_border_and_tiny_pieces_do_not_count() -> None:
    labels = np.ones((40, 40), np.uint8)
    instances = np.zeros((40, 40), np.uint16)
    labels[0:10, 5:15], instances[0:10, 5:15] = NUT, 1        # cut by the top border
    labels[20:24, 20:24], instances[20:24, 20:24] = NUT, 2    # 16 px: hidden under others
    scorer = ObjectScorer(len(CLASS_NAMES), min_gt_area=40)
    scorer.add([], labels, instances)                          # found nothing: no misses
    assert scorer.total.false_negatives == 0 and scorer.ignored_parts == 2
    scorer.add(detect(labels), labels, instances)              # found the cut one: no FP
    assert scorer.total.false_positives == 0 and scorer.total.true_positives == 0


def test_a_part_split_by_an_occluder_is_two_pieces() -> None:
    labels = np.ones((40, 60), np.uint8)
    instances = np.zeros((40, 60), np.uint16)
    labels[10:30, 5:55], instances[10:30, 5:55] = NUT, 1
    labels[5:35, 28:32], instances[5:35, 28:32] = BOLT, 2      # a bolt lies across the nut
    truth = ground_truth_pieces(labels, instances)
    assert list(truth.instance[1:]) == [1, 1, 2]
    assert not truth.dont_care[1:].any()
    scorer = ObjectScorer(len(CLASS_NAMES))
    scorer.add(detect(labels), labels, instances)
    assert scorer.total.true_positives == 3 and scorer.total.false_negatives == 0


def test_id_switches_count_changes_of_the_matched_track() -> None:
    labels, instances = scene()
    labels[10:30, 30:50], instances[10:30, 30:50] = 1, 0
    scorer = ObjectScorer(len(CLASS_NAMES))
    objects = detect(labels)
    for ids in ([7, 8], [7, 8], [9, 8], [9, None]):
        scorer.add(objects, labels, instances, ids)
    summary = scorer.summary()
    assert summary['id_switches'] == 1
    assert summary['track_frames'] == 7
    assert summary['id_switch_rate'] == pytest.approx(1 / 7, abs=1e-4)


def test_ground_truth_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match='same shape'):
        ground_truth_pieces(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint16))


def test_exact_labels_of_the_generator_find_nearly_every_part() -> None:
    """On exact labels the only misses are same-class parts overlapping too deeply."""
    scorer = ObjectScorer(len(CLASS_NAMES))
    for index in range(6):
        _, labels, instances = render_conveyor_frame(frame_rng(4242, index), (320, 240),
                                                     return_instances=True)
        scorer.add(detect_objects(labels, part_class_lut(CLASS_NAMES, ('background', 'belt')),
                                  DetectorSettings()), labels, instances)
    summary = scorer.summary()
    assert summary['precision'] >= 0.95 and summary['recall'] >= 0.85
    assert summary['pick_success'] == 1.0


def test_a_part_seen_as_two_tracked_pieces_is_no_id_switch() -> None:
    labels = np.ones((40, 60), np.uint8)
    instances = np.zeros((40, 60), np.uint16)
    labels[10:30, 5:55], instances[10:30, 5:55] = NUT, 1
    labels[5:35, 28:32], instances[5:35, 28:32] = BOLT, 2      # splits the nut in two
    objects = sorted(detect(labels), key=lambda o: (o.class_id, o.bbox[0]))
    assert [o.class_id for o in objects] == [BOLT, NUT, NUT]
    scorer = ObjectScorer(len(CLASS_NAMES))
    for ids in ([1, 2, 3], [1, 2, 3], [1, 3, 2], [1, 4, 5]):
        scorer.add(objects, labels, instances, ids)
    # Two parts matched in four frames; only the last frame's nut tracks are all new.
    assert scorer.track_frames == 8 and scorer.id_switches == 1


class _TruthEngine:
    """An engine that returns the ground truth (objects then depend on detection only)."""

    def __init__(self, dataset) -> None:
        self.frames = [dataset[i] for i in range(len(dataset))]

    def __call__(self, image, order, want_confidence=True, want_stats=False):
        labels = next(lab for img, lab in self.frames if np.array_equal(img, image))
        return SimpleNamespace(labels=labels, confidence=np.ones(labels.shape, np.float32))


def test_evaluate_objects_reads_instance_files_or_renders_them(tmp_path) -> None:
    from lw_refinenet_ros.data.conveyor import write_conveyor_dataset
    from lw_refinenet_ros.data.datasets import ConveyorDataset, folder_dataset
    from lw_refinenet_ros.evaluation.object_metrics import evaluate_objects, format_summary

    write_conveyor_dataset(tmp_path / 'ds', 3, seed=31, size=(160, 120))
    folder = folder_dataset(tmp_path / 'ds')
    rendered = ConveyorDataset(31, 3, (160, 120), fresh_per_epoch=False)
    results = {}
    for dataset in (folder, rendered):
        scorer, kind = evaluate_objects(_TruthEngine(dataset), dataset, CLASS_NAMES)
        results[kind] = scorer.summary(CLASS_NAMES)
    assert set(results) == {'files', 'generator'}
    # The generator also knows how much of each part is hidden: extra scores, same others.
    pickable = results['generator'].pop('pickable')
    assert results['files'].pop('pickable') is None
    assert results['files'] == results['generator']
    assert pickable['recall'] >= results['files']['recall']
    assert pickable['frames'] == 3
    assert results['files']['precision'] >= 0.95 and results['files']['pick_success'] == 1.0
    assert 'objects (one-to-one, mask IoU >= 0.5)' in format_summary(results['files'])
    assert 'pickable (>= 50% in view, off the border)' in format_summary(
        {**results['files'], 'pickable': pickable})
    # Without instances/, each connected region of a part class is one part.
    for path in (tmp_path / 'ds' / 'instances').iterdir():
        path.unlink()
    (tmp_path / 'ds' / 'instances').rmdir()
    _, kind = evaluate_objects(_TruthEngine(folder), folder, CLASS_NAMES)
    assert kind == 'connected regions'


def test_mostly_hidden_parts_are_dont_care_in_the_pickable_scores() -> None:
    labels = np.ones((40, 60), np.uint8)
    instances = np.zeros((40, 60), np.uint16)
    labels[5:35, 5:25], instances[5:35, 5:25] = NUT, 1         # 600 px, fully in view
    labels[5:35, 35:45], instances[5:35, 35:45] = BOLT, 2      # 300 of its 900 px in view
    predicted = labels.copy()
    predicted[5:35, 35:45] = 1                                 # the model misses the bolt
    scorer = ObjectScorer(len(CLASS_NAMES))
    scorer.add(detect(predicted), labels, instances, full_areas={1: 600, 2: 900})
    summary = scorer.summary(CLASS_NAMES)
    assert summary['recall'] == 0.5
    assert summary['pickable']['recall'] == 1.0
    assert summary['pickable']['min_visible'] == 0.5


@pytest.mark.slow
def test_eval_cli_reports_object_scores_unless_asked_not_to(tmp_path, capsys) -> None:
    import json

    from lw_refinenet_ros.cli import main

    weights = tmp_path / 'model.pt'
    _save_tiny_model(weights)
    common = ['eval', '--weights', str(weights), '--data', 'conveyor:12', '--count', '2',
              '--device', 'cpu', '--backend', 'torch', '--precision', 'fp32']
    assert main([*common, '--json', str(tmp_path / 'scores.json')]) == 0
    out = capsys.readouterr().out
    assert 'objects (one-to-one, mask IoU >= 0.5)' in out and '(ground truth: generator)' in out
    assert 'pickable (>= 50% in view, off the border)' in out
    objects = json.loads((tmp_path / 'scores.json').read_text())['objects']
    assert objects['ground_truth'] == 'generator' and 'per_class' in objects
    assert objects['pickable'] is not None
    assert main([*common, '--no-objects', '--json', str(tmp_path / 'plain.json')]) == 0
    assert 'objects (one-to-one' not in capsys.readouterr().out
    assert json.loads((tmp_path / 'plain.json').read_text())['objects'] is None


def _save_tiny_model(path) -> None:
    import torch

    from lw_refinenet_ros.data.conveyor import CLASS_COLORS
    from lw_refinenet_ros.model import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(path, build_model('mbv2', len(CLASS_NAMES)), arch='mbv2',
                    class_names=CLASS_NAMES, colors=CLASS_COLORS)
