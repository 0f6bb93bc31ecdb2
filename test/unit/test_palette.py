"""Class maps, the VOC palette, colourising and overlays on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.palette import (
    VOC_CLASSES,
    ClassMap,
    colorize,
    overlay,
    voc_palette,
)


def test_voc_palette_known_colours() -> None:
    palette = voc_palette(256)
    assert palette.dtype == np.uint8 and palette.shape == (256, 3)
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[3].tolist() == [128, 128, 0]
    assert palette[4].tolist() == [0, 0, 128]
    assert palette[8].tolist() == [64, 0, 0]
    assert palette[15].tolist() == [192, 128, 128]  # VOC 'person'
    assert palette[20].tolist() == [0, 64, 128]     # VOC 'tvmonitor'
    assert palette[255].tolist() == [224, 224, 192]  # VOC 'void'
    assert len({tuple(c) for c in palette}) == 256


def test_default_class_map() -> None:
    voc = ClassMap.default(21)
    assert voc.names == VOC_CLASSES and voc.num_classes == 21
    small = ClassMap.default(3)
    assert small.names == ('class_0', 'class_1', 'class_2')
    assert np.array_equal(small.colors, voc_palette(3))
    assert not small.colors.flags.writeable
    with pytest.raises(ConfigError):
        ClassMap.default(0)


def test_class_map_validation() -> None:
    with pytest.raises(ConfigError, match='Duplicate'):
        ClassMap(('a', 'a'), voc_palette(2))
    with pytest.raises(ConfigError, match='2 names but 3'):
        ClassMap(('a', 'b'), voc_palette(3))
    with pytest.raises(ConfigError, match='0..255'):
        ClassMap(('a',), np.array([[0, 0, 300]]))
    with pytest.raises(ConfigError, match='shape'):
        ClassMap(('a',), np.array([1, 2, 3]))


def test_from_checkpoint_defaults_and_values() -> None:
    cmap = ClassMap.from_checkpoint(['bg', 'box'], [(1, 2, 3), (4, 5, 6)], 2)
    assert cmap.names == ('bg', 'box') and cmap.colors.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert ClassMap.from_checkpoint(None, None, 21) == ClassMap.default(21)
    with pytest.raises(ConfigError):
        ClassMap.from_checkpoint(['a'], None, 2)


def test_colorize_uint8_and_uint16_with_out_of_range() -> None:
    colors = np.array([[0, 0, 0], [10, 20, 30], [40, 50, 60]], dtype=np.uint8)
    labels = np.array([[0, 1], [2, 7]], dtype=np.uint8)
    out = colorize(labels, colors)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 1].tolist() == [10, 20, 30] and out[1, 0].tolist() == [40, 50, 60]
    assert out[1, 1].tolist() == [0, 0, 0]  # label outside the palette -> black
    wide = np.array([[300, 1]], dtype=np.uint16)
    big = voc_palette(301)
    assert colorize(wide, big)[0, 0].tolist() == big[300].tolist()
    with pytest.raises(ConfigError):
        colorize(np.zeros((2, 2), np.float32), colors)


def test_overlay_blend_values() -> None:
    image = np.full((1, 3, 3), 100, dtype=np.uint8)
    labels = np.array([[0, 1, 1]], dtype=np.uint8)
    colors = np.array([[0, 0, 0], [200, 0, 255]], dtype=np.uint8)
    assert np.array_equal(overlay(image, labels, colors, 0.0), image)
    assert np.array_equal(overlay(image, labels, colors, 1.0), colorize(labels, colors))
    half = overlay(image, labels, colors, 0.5)
    assert half[0, 0].tolist() == [50, 50, 50]
    assert half[0, 1].tolist() == [150, 50, 178]  # 177.5 rounds to 178
    with pytest.raises(ConfigError, match='alpha'):
        overlay(image, labels, colors, 1.5)
    with pytest.raises(ConfigError, match='differ'):
        overlay(image, labels[:, :2], colors, 0.5)


def test_colorize_takes_non_contiguous_labels_and_overlay_reuses_a_given_colour_image() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, (48, 64), dtype=np.uint8)
    colors = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    strided = labels[::2, ::3]  # a view, as the node's crops can be
    assert np.array_equal(colorize(strided, colors), colors[strided])
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    color = colorize(labels, colors)
    assert np.array_equal(overlay(image, labels, colors, 0.4, color),
                          overlay(image, labels, colors, 0.4))
