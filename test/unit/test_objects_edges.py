"""Overlapping parts of one class, split along the edge the camera image shows between them.

The scenes are drawn like the conveyor generator draws parts: shaded surfaces, a darker rim at
each part's outline and a soft shadow cast on what lies below, plus sensor noise. The labels
are exact, so the union of two overlapping bolts is one ``bolt`` blob with no neck.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lw_refinenet_ros.data.conveyor import CLASS_NAMES
from lw_refinenet_ros.objects.detect import DetectorSettings, detect_objects, part_class_lut
from lw_refinenet_ros.objects.edges import (
    EdgeSplitSettings,
    dark_line_contrast,
    grey,
    split_by_edges,
)
from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.objects.processor import ObjectProcessor

PARTS = part_class_lut(CLASS_NAMES, ('background', 'belt'))
BELT, BOLT = CLASS_NAMES.index('belt'), CLASS_NAMES.index('bolt')
SIZE = (120, 160)  # (height, width)


def bar(center: tuple[float, float], length: float, width: float, angle_deg: float,
        ) -> np.ndarray:
    """A rotated rectangle (a bolt's shaft) as polygon points."""
    box = cv2.boxPoints(((center[0], center[1]), (length, width), angle_deg))
    return np.round(box).astype(np.int32)


def draw(parts: list[tuple[np.ndarray, float]], *, rim: float = 0.3, shadow: float = 0.4,
         noise: float = 4.0, band: float = 0.0, seed: int = 0,
         ) -> tuple[np.ndarray, np.ndarray]:
    """Render ``(polygon, brightness)`` parts bottom to top; returns (RGB image, labels)."""
    height, width = SIZE
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 90.0, np.float32)
    labels = np.full((height, width), BELT, np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for polygon, brightness in parts:
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [polygon], 255)
        cast = cv2.GaussianBlur(np.roll(mask, (3, 3), axis=(0, 1)), (0, 0), 1.5)
        image *= (1.0 - shadow * cast.astype(np.float32) / 255.0)[..., None]
        surface = brightness * (0.85 + 0.3 * xx / width)          # shading gradient
        if band:  # a specular band along the part, as on metal
            cx = polygon[:, 0].mean()
            surface = surface + band * np.exp(-((xx - cx) / 4.0) ** 2)
        inside = mask > 0
        image[inside] = surface[inside, None]
        outline = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        image[outline] *= 1.0 - rim
        labels[inside] = BOLT
    image += rng.normal(0.0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def detect(labels: np.ndarray, image: np.ndarray | None, **settings) -> list:
    return detect_objects(labels, PARTS, DetectorSettings(**settings), None, image)


def crossed_bolts(**style) -> tuple[np.ndarray, np.ndarray]:
    """Two bolts of one class, the second lying across the middle of the first."""
    lower = bar((80, 60), 110, 22, 0)
    upper = bar((80, 60), 100, 22, 70)
    return draw([(lower, 170.0), (upper, 175.0)], **style)


def test_crossed_parts_of_one_class_are_one_blob_without_the_image() -> None:
    image, labels = crossed_bolts()
    assert len(detect(labels, None)) == 1


def test_the_image_edge_splits_crossed_parts_into_the_upper_part_and_the_visible_pieces(
        ) -> None:
    image, labels = crossed_bolts()
    objects = detect(labels, image)
    assert len(objects) == 3  # the upper bolt whole, the lower one in two visible pieces
    upper = max(objects, key=lambda o: o.pixel_count)
    expected = np.zeros(SIZE, np.uint8)
    cv2.fillPoly(expected, [bar((80, 60), 100, 22, 70)], 1)
    mask = upper.full_mask(SIZE)
    iou = np.count_nonzero(mask & (expected > 0)) / np.count_nonzero(mask | (expected > 0))
    assert iou > 0.85
    assert sum(o.pixel_count for o in objects) == np.count_nonzero(labels == BOLT)
    for obj in objects:  # every pick point still lies on the part it was computed for
        x, y, w, h = obj.bbox
        px, py = obj.pick
        assert obj.mask[py - y, px - x]


def test_seeds_decide_the_split_and_min_area_which_pieces_are_reported() -> None:
    image, labels = crossed_bolts()
    sizes = sorted(o.pixel_count for o in detect(labels, image))
    upper, pieces = sizes[-1], sizes[:-1]
    # Surfaces this large cannot seed a part: no split, one blob.
    assert len(detect(labels, image, split_min_seed_area=upper)) == 1
    # The split stands, but the lower bolt's visible pieces are under min_area: the upper
    # bolt alone is reported, not the blob.
    (only,) = detect(labels, image, min_area=max(pieces) + 1)
    assert only.pixel_count == upper


def test_bgr_and_grey_images_split_the_same_way() -> None:
    image, labels = crossed_bolts()
    boxes = {tuple(o.bbox) for o in detect(labels, image)}
    assert {tuple(o.bbox) for o in detect(labels, image[:, :, ::-1].copy())} == boxes
    assert {tuple(o.bbox) for o in detect(labels, grey(image))} == boxes


def test_split_edges_off_keeps_the_blob() -> None:
    image, labels = crossed_bolts()
    assert len(detect(labels, image, split_edges=False)) == 1


@pytest.mark.parametrize('seed', range(5))
def test_one_part_with_shading_a_specular_band_and_noise_stays_whole(seed: int) -> None:
    # An L-shaped part: its outline is not convex, so the edge split looks at it.
    l_shape = np.array([[30, 20], [130, 20], [130, 45], [60, 45], [60, 100], [30, 100]],
                       np.int32)
    image, labels = draw([(l_shape, 160.0)], band=70.0, noise=8.0, seed=seed)
    assert len(detect(labels, image)) == 1


@pytest.mark.parametrize('seed', range(5))
def test_a_thin_noisy_ring_is_not_cut_into_arcs(seed: int) -> None:
    labels = np.full(SIZE, BELT, np.uint8)
    cv2.circle(labels, (80, 60), 30, BOLT, -1)
    cv2.circle(labels, (80, 60), 22, BELT, -1)
    labels[55:66, 105:111] = BELT  # a gap makes the ring's outline non-convex (a C)
    ring = (labels == BOLT).astype(np.uint8) * 255
    contours, _ = cv2.findContours(ring, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    image, _ = draw([(contours[0][:, 0, :], 150.0)], noise=8.0, seed=seed)
    image[labels != BOLT] = 90
    assert len(detect(labels, image)) == 1


def test_no_line_no_split_and_a_sliver_is_not_a_part() -> None:
    mask = np.zeros((40, 80), bool)
    mask[5:35, 5:75] = True
    flat = np.zeros(mask.shape, np.float32)
    assert split_by_edges(flat, mask, min_seed=40) is None
    line = flat.copy()
    line[:, 7] = 0.5  # cuts off a 1-pixel-wide sliver: 28 px, less than a part
    assert split_by_edges(line, mask, min_seed=40) is None
    line[:, 40] = 0.5
    regions = split_by_edges(line, mask, min_seed=40)
    assert regions is not None and int(regions.max()) == 2


def test_a_faint_line_separates_surfaces_but_is_no_boundary_between_parts() -> None:
    settings = EdgeSplitSettings()
    mask = np.zeros((40, 80), bool)
    mask[5:35, 5:75] = True
    faint = np.zeros(mask.shape, np.float32)
    faint[:, 40] = (settings.line_contrast + settings.boundary_contrast) / 2
    assert split_by_edges(faint, mask, 40, settings) is None
    strong = np.zeros(mask.shape, np.float32)
    strong[:, 40] = 2 * settings.boundary_contrast
    assert int(split_by_edges(strong, mask, 40, settings).max()) == 2
    # Two surfaces that meet over a couple of pixels only touch: no boundary to trust.
    bridge = np.zeros((40, 80), bool)
    bridge[5:35, 5:35] = bridge[5:35, 45:75] = True
    bridge[19:21, 35:45] = True
    across = np.zeros(bridge.shape, np.float32)
    across[:, 40] = 2 * settings.boundary_contrast
    assert split_by_edges(across, bridge, 40, settings) is None


def test_dark_line_contrast_sees_dark_lines_not_bright_bands_or_gradients() -> None:
    line = EdgeSplitSettings().line_contrast
    ramp = np.tile(np.linspace(60, 200, 100, dtype=np.float32), (50, 1))
    assert float(dark_line_contrast(ramp)[:, 8:-8].max()) < line / 5
    bright = ramp.copy()
    bright[:, 48:52] += 80
    assert float(dark_line_contrast(bright)[:, 30:70].max()) < line / 2
    dark = ramp.copy()
    dark[:, 48:50] *= 0.6
    assert float(dark_line_contrast(dark)[25, 48]) > 2 * line


def test_the_image_must_match_the_labels() -> None:
    image, labels = crossed_bolts()
    with pytest.raises(ValueError, match='image has shape'):
        detect(labels, image[:-1])


def test_the_processor_resizes_a_larger_image_to_the_labels() -> None:
    image, labels = crossed_bolts(noise=2.0)
    processor = ObjectProcessor(ObjectsConfig.defaults(), CLASS_NAMES)
    big = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    frame = processor.process(labels, 0.0, image=big)
    assert len(frame.objects) == 3
    off = ObjectProcessor(ObjectsConfig.from_mapping({'objects.split_edges': False}),
                          CLASS_NAMES)
    assert len(off.process(labels, 0.0, image=image).objects) == 1
