"""Objects from a label image: one object per part, not one blob per class.

For every part class present, the outer contours of its pixels give candidate regions
(``cv2.findContours`` is several times cheaper than connected components with statistics on a
640x480 frame). Each region is then cleaned and measured in its own small crop:

* specks (fewer than ``min_area`` pixels) are dropped, and so are pieces that small after a
  split (fragments: an arm end cut off by a part lying across it);
* pinholes (holes of at most ``max_hole_area`` pixels) are filled, real holes (a nut's bore)
  stay, so the pick point never lands in a bore;
* a region of a class whose parts each have one hole (nuts, washers, gears) that shows two or
  more such holes is that many parts, split between the holes
  (:mod:`lw_refinenet_ros.objects.bores`); the rules below do not run on it;
* touching parts of the same class are split where the mask (with its real holes) narrows
  between two centres (see :func:`split_regions`), and, given the camera image, overlapping
  ones where the image shows the upper part's edge (:mod:`lw_refinenet_ros.objects.edges`;
  not along a hole's rim); given the model's learned part-boundary map instead, along the
  seams it shows (:mod:`lw_refinenet_ros.objects.boundary`), and the two rules do not run;
* pick point, principal axes, score and optional outline come from the cleaned mask.

When the network ran on a shrunken frame (``max_side``, ``model.trained_scale``), the camera
labels hold no finer detail than the network's grid, and the parts are larger in camera
pixels than the detector's pixel settings were made for. So the detector samples the labels
on the network's grid (``step``, :func:`detection_step`), finds the parts there and scales
them back to camera pixels (:func:`_to_camera`; outlines from the camera labels): a
640x480 camera on a model trained at 320x240 costs a quarter of the pixels, and
``min_area``, ``split_min_radius`` and ``max_hole_area`` mean the same at every camera
resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Sequence

import cv2
import numpy as np

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.objects.bores import enclosed_holes, split_at_holes
from lw_refinenet_ros.objects.boundary import BoundaryMap, check_boundary, split_by_boundary
from lw_refinenet_ros.objects.edges import (
    PAD,
    dark_line_contrast,
    grey,
    grow_regions,
    split_by_edges,
)
from lw_refinenet_ros.objects.geometry import clearance_map, outline, pick_point, principal_axes
from lw_refinenet_ros.objects.options import DetectorSettings  # noqa: F401 - the detector's API


@dataclass(frozen=True)
class DetectedObject:
    """One part in one frame. Coordinates are image pixels, pixel centres at integers.

    Attributes:
        class_id: Label value.
        pixel_count: Pixels of the part (after pinhole filling).
        bbox: (x, y, width, height), top-left pixel and extent.
        centroid: (x, y) mean pixel position.
        pick: (x, y) pixel inside the part that lies farthest from its edge.
        clearance: Distance from the pick point to the part's edge, pixels.
        orientation: Major-axis angle from +x toward +y, radians in (-pi/2, pi/2].
        major_length: Full major-axis length of the equivalent ellipse, pixels.
        minor_length: Full minor-axis length, pixels.
        score: Mean model confidence over the part's pixels; NaN without confidences.
        touches_border: The part is cut by the image border (it may be partly outside).
        mask: bool (height, width) crop of the part at ``bbox``.
        contour: float32 (N, 2) outline in image pixels; empty unless requested.
    """

    class_id: int
    pixel_count: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    pick: tuple[int, int]
    clearance: float
    orientation: float
    major_length: float
    minor_length: float
    score: float
    touches_border: bool
    mask: np.ndarray = field(repr=False, compare=False)
    contour: np.ndarray = field(repr=False, compare=False,
                                default_factory=lambda: np.zeros((0, 2), np.float32))

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The part's mask as a full-frame bool image of ``shape`` (height, width)."""
        out = np.zeros(shape, bool)
        x, y, w, h = self.bbox
        out[y:y + h, x:x + w] = self.mask
        return out


#: :func:`part_class_lut` values: no part (scene), a part, a part with one hole through it.
SCENE, PART, ONE_HOLE_PART = 0, 1, 2


def class_ids(class_names: Sequence[str], items: Sequence[str],
              parameter: str) -> tuple[list[int], list[str]]:
    """The class ids named by ``items`` (names or ids), and the names the model lacks
    (skipped: the caller decides whether to warn).

    Raises:
        ConfigError: For an id beyond the class count (``parameter`` names the option).
    """
    ids, unknown = [], []
    for item in items:
        if item in class_names:
            ids.append(list(class_names).index(item))
        elif item.isdigit():
            if int(item) >= len(class_names):
                raise ConfigError(f'{parameter} entry {item!r} is not a class id of this '
                                  f'model (it has {len(class_names)} classes).')
            ids.append(int(item))
        else:
            unknown.append(item)
    return ids, unknown


def part_class_lut(class_names: Sequence[str], ignore: Sequence[str],
                   one_hole: Sequence[str] = ()) -> np.ndarray:
    """What each class id is: :data:`SCENE` (the ignored names or ids), :data:`PART`, or
    :data:`ONE_HOLE_PART` (named in ``one_hole``: each part has one hole through it, see
    :mod:`lw_refinenet_ros.objects.bores`). Truthy for parts, so it also reads as "is a part".

    Names the model does not have are skipped (the default ignores ``belt``, which a VOC
    model lacks); an id beyond the class count is a configuration error.
    """
    lut = np.full(max(len(class_names), 1), PART, np.uint8)
    lut[class_ids(class_names, one_hole, 'objects.one_hole_classes')[0]] = ONE_HOLE_PART
    lut[class_ids(class_names, ignore, 'objects.ignore_classes')[0]] = SCENE
    return lut


def _present_classes(labels: np.ndarray, parts: np.ndarray) -> list[int]:
    if labels.dtype == np.uint8:
        hist = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel()
    else:
        hist = np.bincount(labels.ravel(), minlength=parts.size)
    count = min(hist.size, parts.size)
    return [int(c) for c in np.nonzero((hist[:count] > 0) & (parts[:count] != SCENE))[0]]


def _fill_pinholes(mask: np.ndarray, filled: np.ndarray,
                   max_hole_area: int) -> tuple[np.ndarray, int]:
    """Fill holes of at most ``max_hole_area`` pixels (contours: cheaper than components).
    ``mask`` and ``filled`` (its outline filled) are bool. Also how many holes stay (the
    hole split needs two; -1 when not counted, with ``max_hole_area`` 0)."""
    if max_hole_area <= 0:
        return mask, -1
    holes = filled & ~mask
    total = int(np.count_nonzero(holes))
    if total == 0:
        return mask, 0
    if total <= max_hole_area:
        return mask | holes, 0
    contours, _ = cv2.findContours(holes.view(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    small = np.zeros(holes.shape, np.uint8)
    kept = len(contours)
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if w * h <= max_hole_area:
            cv2.drawContours(small, [contour], -1, 1, cv2.FILLED)
            kept -= 1
        elif cv2.contourArea(contour) <= max_hole_area:
            one = np.zeros(holes.shape, np.uint8)
            cv2.drawContours(one, [contour], -1, 1, cv2.FILLED)
            if np.count_nonzero(one.view(bool) & holes) <= max_hole_area:
                small |= one
                kept -= 1
    if kept == len(contours):
        return mask, kept
    return mask | (small.view(bool) & holes), kept


def _is_convex(contour: np.ndarray, solidity: float) -> bool:
    """Nearly convex outlines hold one part: two overlapping parts leave notches. Nearly:
    area at least ``solidity`` of the convex hull's."""
    hull = cv2.contourArea(cv2.convexHull(contour))
    return hull <= 0 or cv2.contourArea(contour) >= solidity * hull


@dataclass
class _Seed:
    point: tuple[int, int]  # (row, col) of a highest pixel of the seed (see _component_peak)
    height: float
    region: tuple[np.ndarray, int]  # (a level's component labels, its label): lazy mask
    final: bool = False


def _component_peak(components: np.ndarray, label: int, distance: np.ndarray,
                    ) -> tuple[tuple[int, int], float]:
    """A component's highest pixel ``(row, col)`` and its height.

    Which of several equally high pixels does not matter: a seed's pixel only tells which
    component holds the seed at the lower levels, and those only grow, each holding whole
    components of the levels above.
    """
    _, height, _, (col, row) = cv2.minMaxLoc(distance, (components == label).view(np.uint8))
    return (row, col), height


def _seed_regions(distance: np.ndarray, min_radius: float, neck_ratio: float,
                  min_body_radius: float = 0.0) -> list[np.ndarray]:
    """Regions around part centres that the mask's neck criterion keeps apart.

    Flooding the distance map from its top down, two centres (peaks of heights h1 >= h2)
    first meet at their saddle s; they are different parts when ``s <= neck_ratio * h2``
    (a narrow neck between two round bodies), and one part otherwise (a bolt's shaft is as
    wide as the path to its head). Levels are geometric, so the cost is a handful of
    connected-component passes over the part's crop; a region's mask is only built for the
    centres that end up apart.

    No two centres can be apart where the flood meets above ``neck_ratio * top`` (the saddle
    would exceed the criterion for any centre height), so the flood starts at the last level
    before that: its components are the centres, exactly as if it had come from the top.
    It stops once a single centre is left below ``min_radius``, where no new one can rise.

    A region whose top is under ``min_body_radius`` is not flooded at all: it holds no part
    body, only thin structure (a spring's coils, joined by necks narrow enough to cut).
    """
    top = cv2.minMaxLoc(distance)[1]  # its max, cheaper than numpy's on a crop's view
    if top < max(min_radius, min_body_radius):
        return []
    stop = neck_ratio * min_radius
    levels = []
    level = top * 0.9
    while level > stop:
        levels.append(level)
        level *= 0.75
    levels.append(stop)
    first = 0
    while first + 1 < len(levels) and \
            0.5 * (levels[first] + levels[first + 1]) > neck_ratio * top:
        first += 1
    markers: list[tuple[np.ndarray, int]] = []
    active: list[_Seed] = []
    previous = top
    for level in levels[first:]:
        count, components = cv2.connectedComponents((distance >= level).view(np.uint8),
                                                    connectivity=8)
        groups: dict[int, list[_Seed]] = {}
        for seed in active:
            groups.setdefault(int(components[seed.point]), []).append(seed)
        saddle = 0.5 * (level + previous)
        next_active: list[_Seed] = []
        for component in range(1, count):
            members = groups.get(component, [])
            if not members:  # a new centre: seeds if high enough
                point, height = _component_peak(components, component, distance)
                if height >= min_radius:
                    next_active.append(_Seed(point, height, (components, component)))
                continue
            members.sort(key=lambda s: s.height, reverse=True)
            highest = members[0]
            apart = [m for m in members[1:] if saddle <= neck_ratio * m.height]
            for member in apart:
                if not member.final:
                    markers.append(member.region)
            if apart and not highest.final:
                markers.append(highest.region)
                highest.final = True
            highest.region = (components, component)
            next_active.append(highest)
        active = next_active
        previous = level
        if level <= min_radius and len(active) <= 1 \
                and (not markers or all(seed.final for seed in active)):
            break  # a new centre would peak below this level: too low to be one
    # Seeds still apart at the lowest level meet (if at all) through a neck narrower than
    # neck_ratio * min_radius: separate parts.
    markers.extend(seed.region for seed in active if not seed.final)
    if len(markers) < 2:
        return []
    return [components == label for components, label in markers]


def split_regions(mask: np.ndarray, min_radius: float, neck_ratio: float,
                  distance: np.ndarray | None = None,
                  min_body_radius: float = 0.0) -> np.ndarray | None:
    """Split a mask of touching parts into one region per part.

    The detector passes the mask with its real holes (pinholes filled): a hole is part of
    the shape, and a ring of material around a bolt hole is no body to split off.

    Seeds come from :func:`_seed_regions`; every other mask pixel joins the seed it reaches
    first through the mask. ``distance`` is the mask's clearance map when the caller has it.

    Returns:
        uint16 region ids (1..n) per pixel of ``mask``, 0 outside; None when the mask is
        one part.
    """
    if distance is None:
        distance = clearance_map(mask)
    seeds = _seed_regions(distance, min_radius, neck_ratio, min_body_radius)
    if len(seeds) < 2:
        return None
    inside = mask > 0
    regions = np.zeros(mask.shape, np.uint16)
    for index, seed in enumerate(seeds, start=1):
        regions[seed & inside] = index
    # The rest of the mask joins the seed it reaches first: a watershed on a flat image.
    return grow_regions(regions, inside)


def _mean(values: np.ndarray) -> float:
    """``float(values.mean())`` of a non-empty vector, bit for bit, without the overhead of
    ``mean``'s generic path: for float32 and float64 it is the sum in that type, divided in
    float64 and rounded back to the type."""
    if values.dtype == np.float32 or values.dtype == np.float64:
        return float(values.dtype.type(float(values.sum()) / values.size))
    return float(values.mean())


def _measure(class_id: int, mask: np.ndarray, x0: int, y0: int, image_shape: tuple[int, int],
             confidence: np.ndarray | None, settings: DetectorSettings,
             distance: np.ndarray | None = None) -> DetectedObject | None:
    """Crop ``mask`` (placed at x0, y0) to its pixels and measure it (``distance``: the
    uncropped mask's clearance map, when the split computed it)."""
    c0, r0, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0:
        return None
    mask = mask[r0:r0 + h, c0:c0 + w]
    count = int(np.count_nonzero(mask))
    if count < settings.min_area:
        return None
    x, y = x0 + c0, y0 + r0
    score = math.nan
    if confidence is not None:  # first: a dropped fragment needs no more measuring
        score = _mean(confidence[y:y + h, x:x + w][mask])
        if score < settings.min_score:
            return None
    axes = principal_axes(mask)
    # Outside the crop the mask is empty, so the crop of its map is the crop's own map.
    (px, py), clearance = pick_point(
        mask, axes.centroid, None if distance is None else distance[r0:r0 + h, c0:c0 + w])
    height, width = image_shape
    contour = outline(mask, settings.contour_points)
    if contour.size:
        contour = contour + np.array([x, y], np.float32)
    return DetectedObject(
        class_id=class_id, pixel_count=count, bbox=(x, y, w, h),
        centroid=(axes.centroid[0] + x, axes.centroid[1] + y), pick=(px + x, py + y),
        clearance=clearance, orientation=axes.orientation, major_length=axes.major_length,
        minor_length=axes.minor_length, score=score,
        touches_border=x == 0 or y == 0 or x + w == width or y + h == height,
        mask=mask, contour=contour)


class _Contrast:
    """Dark-line contrast of the image, computed per region crop and only when a region
    needs it (most frames have no overlapping parts of one class)."""

    def __init__(self, image: np.ndarray) -> None:
        self._image = image
        # On the network's grid the image is a view that skips pixels, and numpy copies a
        # crop of it one channel value at a time; viewed as one item per pixel (when the
        # channels are adjacent in memory), a crop copies a pixel per move, twice as fast.
        self._pixels = None
        if image.ndim == 3 and image.strides[2] == image.itemsize:
            self._pixels = image.view(np.dtype((np.void, image.shape[2] * image.itemsize)))

    def crop(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        height, width = self._image.shape[:2]
        x0, y0 = max(0, x - PAD), max(0, y - PAD)
        x1, y1 = min(width, x + w + PAD), min(height, y + h + PAD)
        if self._pixels is None:
            pixels = self._image[y0:y1, x0:x1]
        else:
            pixels = np.ascontiguousarray(self._pixels[y0:y1, x0:x1]).view(
                self._image.dtype).reshape(y1 - y0, x1 - x0, self._image.shape[2])
        contrast = dark_line_contrast(grey(pixels))
        return contrast[y - y0:y - y0 + h, x - x0:x - x0 + w]


def _split_learned(mask: np.ndarray, box: tuple[int, int, int, int],
                   settings: DetectorSettings, seams: BoundaryMap) -> list[np.ndarray]:
    """The parts in one region along the learned seams (no convexity gate: two parts side by
    side can have a convex union; the map's peak over the box is the cheaper gate)."""
    threshold = settings.split_boundary_threshold
    if seams.peak(box) < threshold:
        return [mask]
    regions = split_by_boundary(seams.crop(box), mask, threshold,
                                max(1, settings.split_min_seed_area // 2))
    if regions is None:
        return [mask]
    return [mask & (regions == k) for k in range(1, int(regions.max()) + 1)]


def _split_at_holes(mask: np.ndarray, filled: np.ndarray, convex: bool,
                    holes_left: int, labels: np.ndarray, scene_classes: np.ndarray,
                    settings: DetectorSettings) -> list[np.ndarray] | None:
    """The parts of a one-hole class's region, one per hole it shows, or None (fewer than
    two holes: the other rules decide). A hole must be as large as a split's seed, and holes
    closer than ``split_min_radius`` are one (see :mod:`lw_refinenet_ros.objects.bores`).
    With fewer than two closed holes, a region whose outline is not convex (two parts leave
    notches) is searched for bores that a part lying across the ring opened to the belt.
    ``convex``: :func:`_is_convex` of the region's outline."""
    if holes_left == 0 or holes_left == 1:
        if convex:
            return None
        holes = enclosed_holes(mask, labels, scene_classes, settings.split_min_seed_area)
        if holes is None:
            return None
    else:
        holes = filled & ~mask
    regions = split_at_holes(mask, holes, labels, scene_classes,
                             settings.split_min_seed_area, settings.split_min_radius)
    if regions is None:
        return None
    return [mask & (regions == k) for k in range(1, int(regions.max()) + 1)]


def _split(mask: np.ndarray, filled: np.ndarray, convex: bool, box: tuple[int, ...],
           settings: DetectorSettings, contrast: _Contrast | None,
           seams: BoundaryMap | None = None) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The parts in one region (bool ``mask``; ``filled``: its outline filled, bool): the
    learned seams when there is a map; else necks first, then the image's edges inside each
    piece. Also the region's clearance map when the neck split computed it and the region
    stayed one part (its pick point reuses it). ``convex``: :func:`_is_convex` of the
    region's outline (not read with seams)."""
    if seams is not None:
        return _split_learned(mask, box, settings, seams), None  # type: ignore[arg-type]
    if convex:
        return [mask], None
    pieces = [mask]
    distance = None
    if settings.split_touching:
        # On the mask with its real holes: a hole narrows the part around it, so the end of
        # a bracket's arm around its bolt hole is no round body (filled, it was one, and a
        # bracket whose elbow the labels show narrow was cut in two there).
        distance = clearance_map(mask)
        regions = split_regions(mask, settings.split_min_radius, settings.split_neck_ratio,
                                distance, settings.split_min_body_radius)
        if regions is not None:
            pieces = [mask & (regions == k) for k in range(1, int(regions.max()) + 1)]
            distance = None
    if contrast is None:
        return pieces, distance
    crop = None
    holes = filled & ~mask  # the parts' own holes: their rims are no seams
    out = []
    for piece in pieces:
        regions = None
        if np.count_nonzero(piece) >= 2 * settings.split_min_seed_area:
            crop = contrast.crop(*box) if crop is None else crop
            regions = split_by_edges(crop, piece, settings.split_min_seed_area, holes=holes)
        out.extend([piece] if regions is None else
                   [piece & (regions == k) for k in range(1, int(regions.max()) + 1)])
    return out, distance if len(out) == 1 else None


def detection_step(shape: tuple[int, int], network_size: tuple[int, int] | None,
                   detect_at: str = 'network') -> int:
    """The whole factor by which labels of ``shape`` (height, width) exceed the network's
    input ``network_size`` (height, width): 2 for a 640x480 camera on a 320x240 network, 1
    when the network ran at camera size, the size is unknown ((0, 0) or None), or
    ``detect_at`` (``objects.detect_at``) is ``camera``."""
    if detect_at == 'camera' or not network_size or min(network_size) <= 0:
        return 1
    return max(1, min(shape[0] // network_size[0], shape[1] // network_size[1]))


def _to_camera(obj: DetectedObject, step: int, labels: np.ndarray) -> DetectedObject:
    """An object found on labels sampled every ``step`` pixels (from pixel ``(step - 1) //
    2``), in camera pixels: each grid pixel stands for a step x step block, and the mask
    keeps the block pixels of the object's class (so its outline follows the camera labels)
    and the blocks of the pinholes filled on the grid. The pick point is the grid pixel's
    own sample, which is of the part's class."""
    offset = (step - 1) // 2
    centre = (step - 1) / 2.0
    height, width = labels.shape
    x, y, w, h = obj.bbox
    x0, y0 = x * step, y * step
    x1, y1 = min(width, (x + w) * step), min(height, (y + h) * step)
    size = (w * step, h * step)

    def blocks(grid_mask: np.ndarray) -> np.ndarray:
        return cv2.resize(grid_mask.view(np.uint8), size,
                          interpolation=cv2.INTER_NEAREST)[:y1 - y0, :x1 - x0].view(bool)

    mask = blocks(obj.mask) & (labels[y0:y1, x0:x1] == obj.class_id)
    pinholes = obj.mask & (labels[y0 + offset:y1:step, x0 + offset:x1:step] != obj.class_id)
    if pinholes.any():  # grid pixels of the part not of its class: filled pinholes
        mask |= blocks(pinholes)
    c0, r0, w, h = cv2.boundingRect(mask.view(np.uint8))
    contour = obj.contour
    if contour.size:
        contour = contour * np.float32(step) + np.float32(centre)
    return DetectedObject(
        class_id=obj.class_id, pixel_count=int(np.count_nonzero(mask)),
        bbox=(x0 + c0, y0 + r0, w, h),
        centroid=(obj.centroid[0] * step + centre, obj.centroid[1] * step + centre),
        pick=(obj.pick[0] * step + offset, obj.pick[1] * step + offset),
        clearance=obj.clearance * step, orientation=obj.orientation,
        major_length=obj.major_length * step, minor_length=obj.minor_length * step,
        score=obj.score, touches_border=obj.touches_border,
        mask=mask[r0:r0 + h, c0:c0 + w], contour=contour)


def detect_objects(labels: np.ndarray, parts: np.ndarray, settings: DetectorSettings,
                   confidence: np.ndarray | None = None,
                   image: np.ndarray | None = None,
                   boundary: np.ndarray | None = None,
                   step: int = 1) -> list[DetectedObject]:
    """All parts in a label image.

    Args:
        labels: (H, W) integer class ids.
        parts: Lookup by class id (:func:`part_class_lut`): truthy for classes that are
            parts, :data:`ONE_HOLE_PART` for those split at their holes; ids beyond it are
            not parts.
        settings: Detector settings.
        confidence: Optional (H, W) confidence of the winning class, for ``score``.
        image: Optional camera image of the same (H, W), any channel order, for
            ``settings.split_edges``; without it overlapping parts are split by the mask alone.
        boundary: Optional part-boundary probability at the network's stride
            (``SegmentationResult.boundary``); with it (and ``split_boundary_threshold`` < 1)
            same-class parts are split along its seams instead of by the rules.

    Returns:
        Objects sorted by class id, then top-to-bottom and left-to-right; empty for an
        all-background frame.

    Raises:
        ValueError: When ``labels`` is not 2-D, ``confidence`` or ``image`` has another
            size, or ``boundary`` is not a stride map of this frame.
    """
    if labels.ndim != 2:
        raise ValueError(f'labels must be a 2-D (H, W) class-id image, got shape '
                         f'{labels.shape}.')
    if confidence is not None and confidence.shape != labels.shape:
        raise ValueError(f'confidence has shape {confidence.shape} but labels have '
                         f'{labels.shape}; pass the confidence of the same frame.')
    if image is not None and image.shape[:2] != labels.shape:
        raise ValueError(f'image has shape {image.shape} but labels have {labels.shape}; '
                         f'pass the image the labels were computed for, at their size.')
    if step > 1:
        offset = (step - 1) // 2
        grid = np.s_[offset::step, offset::step]
        found = detect_objects(
            np.ascontiguousarray(labels[grid]), parts, settings,
            None if confidence is None else confidence[grid],
            None if image is None else image[grid], boundary)
        return [_to_camera(obj, step, labels) for obj in found]
    shape = (int(labels.shape[0]), int(labels.shape[1]))
    check_boundary(boundary, shape)
    seams = None
    if boundary is not None and settings.split_boundary_threshold < 1.0:
        seams = BoundaryMap(boundary, shape)
    contrast = _Contrast(image) if image is not None and settings.split_edges else None
    scene_classes = parts == SCENE
    objects: list[DetectedObject] = []
    for class_id in _present_classes(labels, parts):
        class_mask = labels == class_id
        contours, _ = cv2.findContours(class_mask.view(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        found: list[DetectedObject] = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h < settings.min_area:
                continue
            filled = np.zeros((h, w), np.uint8)
            cv2.drawContours(filled, [contour], -1, 1, cv2.FILLED, offset=(-x, -y))
            filled = filled.view(bool)  # drawn with 1: a valid bool image
            mask = filled & class_mask[y:y + h, x:x + w]
            if np.count_nonzero(mask) < settings.min_area:
                continue
            mask, holes_left = _fill_pinholes(mask, filled, settings.max_hole_area)
            pieces, distance = None, None
            one_hole = parts[class_id] == ONE_HOLE_PART
            # Once per region: both the hole split and the rules gate on it.
            convex = ((seams is None or one_hole)
                      and _is_convex(contour, settings.split_max_solidity))
            if one_hole:
                pieces = _split_at_holes(mask, filled, convex, holes_left,
                                         labels[y:y + h, x:x + w], scene_classes, settings)
            if pieces is None:
                pieces, distance = _split(mask, filled, convex, (x, y, w, h), settings,
                                          contrast, seams)
            for piece in pieces:
                obj = _measure(class_id, piece, x, y, shape, confidence, settings, distance)
                if obj is not None:
                    found.append(obj)
        found.sort(key=lambda o: (o.bbox[1], o.bbox[0]))
        objects.extend(found)
    return objects
