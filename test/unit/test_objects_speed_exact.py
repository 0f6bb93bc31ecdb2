"""The detector's shortcuts give exactly what the plain computations give.

The detector runs every frame, so a few of its steps take a cheaper route to the same numbers
(``lw_refinenet_ros/objects/detect.py``): a score without ``ndarray.mean``'s overhead, a crop
of the network's grid copied a pixel at a time, a bool mask handed to OpenCV without a copy,
a flooded component's height from ``cv2.minMaxLoc``. Objects must not change by a bit.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lw_refinenet_ros.objects.detect import _component_peak, _Contrast, _mean
from lw_refinenet_ros.objects.edges import dark_line_contrast, grey
from lw_refinenet_ros.objects.geometry import as_uint8


@pytest.mark.parametrize('dtype', [np.float32, np.float64, np.float16])
def test_the_score_mean_is_ndarrays_mean_bit_for_bit(dtype) -> None:
    rng = np.random.default_rng(7)
    for size in (1, 2, 7, 128, 129, 1000, 4099):
        values = (rng.random(size) * rng.random()).astype(dtype)
        assert _mean(values) == float(values.mean())


def test_a_crop_of_the_grid_is_the_plain_crops_contrast() -> None:
    rng = np.random.default_rng(3)
    camera = rng.integers(0, 256, (97, 131, 3), np.uint8)
    for image in (camera[::2, ::2], camera[1::3, 1::3], camera[::2, ::2, ::-1],
                  np.ascontiguousarray(camera[::2, ::2, 0]), camera.astype(np.float32)[::2, ::2]):
        contrast = _Contrast(image)
        height, width = image.shape[:2]
        for x, y, w, h in ((0, 0, 10, 8), (5, 7, 20, 15), (width - 12, height - 9, 12, 9),
                           (0, 3, width, height - 3)):
            x0, y0 = max(0, x - 4), max(0, y - 4)
            plain = dark_line_contrast(grey(image[y0:y + h + 4, x0:x + w + 4]))
            expected = plain[y - y0:y - y0 + h, x - x0:x - x0 + w]
            assert np.array_equal(contrast.crop(x, y, w, h), expected)


def test_as_uint8_views_bool_masks_and_converts_others() -> None:
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    viewed = as_uint8(mask[:, 1:])
    assert viewed.dtype == np.uint8 and np.shares_memory(viewed, mask)
    assert np.array_equal(viewed, mask[:, 1:])
    assert as_uint8(viewed) is viewed
    assert np.array_equal(as_uint8(mask.astype(np.int64)), mask)


def test_a_components_peak_is_its_highest_pixel() -> None:
    distance = np.zeros((9, 12), np.float32)
    distance[2:5, 1:4] = [[1, 2, 1], [2, 3, 2], [1, 2, 1]]
    distance[3:8, 6:11] = 1.5
    distance[5, 8] = 4.0
    count, components = cv2.connectedComponents((distance > 0).view(np.uint8))
    assert count == 3
    for label, (point, height) in ((1, ((3, 2), 3.0)), (2, ((5, 8), 4.0))):
        found_point, found_height = _component_peak(components, label, distance)
        assert (found_point, found_height) == (point, height)
        assert components[found_point] == label
