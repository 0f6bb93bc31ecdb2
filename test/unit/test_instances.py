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
