"""The synthetic conveyor generator: determinism, exact labels, motion, dataset writing."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from lw_refinenet_ros.data import conveyor
from lw_refinenet_ros.data.conveyor import (
    BACKGROUND,
    BELT,
    CLASS_NAMES,
    ConveyorScene,
    frame_rng,
    render_conveyor_frame,
    write_conveyor_dataset,
)
from lw_refinenet_ros.errors import ConfigError

SIZE = (96, 72)


def test_same_seed_gives_identical_bytes() -> None:
    a_img, a_lab = render_conveyor_frame(frame_rng(7, 3), SIZE)
    b_img, b_lab = render_conveyor_frame(frame_rng(7, 3), SIZE)
    assert a_img.tobytes() == b_img.tobytes()
    assert a_lab.tobytes() == b_lab.tobytes()


def test_different_seed_or_index_differs() -> None:
    base = render_conveyor_frame(frame_rng(7, 3), SIZE)[0]
    assert base.tobytes() != render_conveyor_frame(frame_rng(8, 3), SIZE)[0].tobytes()
    assert base.tobytes() != render_conveyor_frame(frame_rng(7, 4), SIZE)[0].tobytes()
    # (seed, index) pairs never collide the way seed + index would.
    assert base.tobytes() != render_conveyor_frame(frame_rng(8, 2), SIZE)[0].tobytes()


def test_shapes_dtypes_and_label_set() -> None:
    image, labels = render_conveyor_frame(1, (320, 240))
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    assert labels.shape == (240, 320) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= set(range(len(CLASS_NAMES)))
    assert {BACKGROUND, BELT} <= set(np.unique(labels))


def test_at_least_five_part_classes_appear_over_a_few_frames() -> None:
    seen: set[int] = set()
    for index in range(12):
        seen |= set(np.unique(render_conveyor_frame(frame_rng(0, index), SIZE)[1]).tolist())
    assert len(seen - {BACKGROUND, BELT}) >= 5


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_labels_are_exactly_the_drawn_parts(seed: int) -> None:
    image, labels, parts = render_conveyor_frame(seed, SIZE, return_parts=True)
    assert parts, 'expected parts on the belt'
    # Painter's order: the label of a pixel is the class of the last part covering it.
    expected = np.full(labels.shape, -1, np.int64)
    for part in parts:
        expected[part.footprint(SIZE)] = part.class_id
    covered = expected >= 0
    assert np.array_equal(labels[covered], expected[covered].astype(np.uint8))
    # Outside every part there is only belt or background.
    assert set(np.unique(labels[~covered]).tolist()) <= {BACKGROUND, BELT}
    # The topmost part's footprint carries its class everywhere.
    top = parts[-1]
    assert np.all(labels[top.footprint(SIZE)] == top.class_id)


def test_clean_frames_match_augmented_labels() -> None:
    """Photometric augmentation changes the image, never the labels."""
    clean_img, clean_lab = render_conveyor_frame(5, SIZE, augment=False)
    aug_img, aug_lab = render_conveyor_frame(5, SIZE, augment=True)
    assert np.array_equal(clean_lab, aug_lab)
    assert not np.array_equal(clean_img, aug_img)


def test_scene_moves_parts_along_the_belt() -> None:
    scene = ConveyorScene(3, SIZE, speed=2.0, augment=False)
    before = {id(p): p.x for p in scene._parts}
    first = scene.parts
    _, labels0 = scene.render()
    _, labels1 = scene.next_frame()
    assert scene.frame_index == 1
    moved = [p.x - before[id(p)] for p in scene._parts if id(p) in before]
    assert moved and np.allclose(moved, 2.0 * scene.unit)
    assert first and not np.array_equal(labels0, labels1)
    # Replaying the same seed replays the same video.
    replay = ConveyorScene(3, SIZE, speed=2.0, augment=False)
    replay.render()
    assert np.array_equal(replay.next_frame()[1], labels1)


def test_long_sequence_keeps_parts_flowing() -> None:
    scene = ConveyorScene(11, SIZE, speed=6.0)
    counts = []
    for _ in range(60):
        scene.next_frame()
        counts.append(len(scene.parts))
    assert max(counts) > 0 and counts[-1] > 0


def test_write_dataset_layout_and_index_stability(tmp_path) -> None:
    small = write_conveyor_dataset(tmp_path / 'a', 2, seed=4, size=(64, 48))
    large = write_conveyor_dataset(tmp_path / 'b', 3, seed=4, size=(64, 48))
    assert sorted(p.name for p in (small / 'images').iterdir()) == ['000000.png', '000001.png']
    for name in ('000000.png', '000001.png'):
        for sub in ('images', 'labels'):
            assert (small / sub / name).read_bytes() == (large / sub / name).read_bytes()
    classes = yaml.safe_load((small / 'classes.yaml').read_text())
    assert classes['names'] == list(CLASS_NAMES)
    assert len(classes['colors']) == len(CLASS_NAMES)


def test_bad_sizes_raise_config_error() -> None:
    with pytest.raises(ConfigError):
        conveyor.parse_size('320by240')
    with pytest.raises(ConfigError):
        ConveyorScene(0, (8, 8))
    assert conveyor.parse_size('320x240') == (320, 240)


def test_instances_cover_exactly_the_part_pixels_and_persist_along_the_belt() -> None:
    scene = ConveyorScene(11, (160, 120))
    previous: set[int] = set()
    for _ in range(6):
        _, labels = scene.next_frame()
        instances = scene.render_instances()
        assert instances.dtype == np.uint16
        assert np.array_equal(instances > 0, labels >= 2)
        # One class per part: every pixel of an id carries the same label.
        for part in np.unique(instances[instances > 0]):
            assert np.unique(labels[instances == part]).size == 1
        ids = set(np.unique(instances[instances > 0]).tolist())
        assert ids & previous or not previous
        previous = ids
    assert {p.instance_id for p in scene.parts} >= previous
    # A part's unoccluded area is at least what shows of it.
    same, areas = scene.instances_and_areas()
    assert np.array_equal(same, instances)
    shown = np.bincount(instances.ravel())
    assert all(areas[int(i)] >= shown[i] for i in previous)


def test_dataset_writes_16_bit_instances(tmp_path) -> None:
    from lw_refinenet_ros.data.instances import read_instances

    write_conveyor_dataset(tmp_path / 'ds', 2, seed=5, size=(64, 48))
    _, labels, instances = render_conveyor_frame(frame_rng(5, 1), (64, 48),
                                                 return_instances=True)
    stored = read_instances(tmp_path / 'ds' / 'instances' / '000001.png')
    assert stored.dtype == np.uint16 and np.array_equal(stored, instances)
    write_conveyor_dataset(tmp_path / 'plain', 1, seed=5, size=(64, 48), instances=False)
    assert not (tmp_path / 'plain' / 'instances').exists()
