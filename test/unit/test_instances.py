"""Instance ground truth files and the connected-region fallback."""

from __future__ import annotations

import numpy as np
import pytest

from lw_refinenet_ros.data.instances import (
    instances_from_labels,
    read_instances,
    write_instances,
)
from lw_refinenet_ros.errors import ConfigError


def test_round_trip_keeps_ids_above_255(tmp_path) -> None:
    ids = np.zeros((10, 12), np.uint16)
    ids[2:5, 3:7] = 300
    ids[6:9, 1:3] = 65535
    write_instances(tmp_path / 'a.png', ids)
    assert np.array_equal(read_instances(tmp_path / 'a.png'), ids)


def test_unreadable_or_colour_files_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match='Cannot read'):
        read_instances(tmp_path / 'missing.png')
    import cv2

    cv2.imwrite(str(tmp_path / 'rgb.png'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ConfigError, match='single-channel'):
        read_instances(tmp_path / 'rgb.png')


def test_fallback_gives_one_id_per_region_of_each_part_class() -> None:
    labels = np.ones((20, 30), np.uint8)
    labels[2:6, 2:6] = 2
    labels[2:6, 20:26] = 2
    labels[10:15, 5:10] = 3
    labels[10:15, 10:15] = 2          # touches the class-3 region: still its own part
    parts = np.array([False, False, True, True])
    instances = instances_from_labels(labels, parts)
    assert np.array_equal(instances > 0, labels >= 2)
    assert len(np.unique(instances[instances > 0])) == 4
    assert instances[labels == 1].max() == 0


@pytest.mark.parametrize('density', [6.0, 14.0])
def test_generator_instances_are_those_of_the_rendered_item(density: float) -> None:
    # The instances must come from the very frame the dataset renders (same seed, epoch
    # offset and density), or every object score compares against another scene.
    from lw_refinenet_ros.data.conveyor import CLASS_NAMES
    from lw_refinenet_ros.data.datasets import ConveyorDataset
    from lw_refinenet_ros.data.instances import instance_source
    from lw_refinenet_ros.objects.detect import part_class_lut

    dataset = ConveyorDataset(77, 3, (160, 120), density=density)
    dataset.epoch = 2
    instances_of, kind = instance_source(dataset, part_class_lut(CLASS_NAMES, ()))
    assert kind == 'generator'
    for index in range(len(dataset)):
        _, labels = dataset[index]
        instances, areas = instances_of(index, labels)
        assert np.array_equal(instances > 0, labels >= 2)  # 0 background, 1 belt
        visible = np.bincount(instances.ravel())
        assert all(visible[i] <= areas[i] for i in np.unique(instances) if i)
