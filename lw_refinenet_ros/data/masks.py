"""Region masks from annotation files: COCO run-length encoding and polygons, painted into
class-id and instance-id maps (numpy + OpenCV; no pycocotools).

COCO stores a mask either as polygons (``[[x0, y0, x1, y1, ...], ...]`` in pixel
coordinates, the top-left corner of the image at (0, 0)) or as run-length encoding over the
mask in *column-major* order, runs alternating background/foreground and starting with
background. The counts are a plain list ("uncompressed", typical for ``iscrowd`` regions) or
a string ("compressed": each count a little-endian sequence of 5-bit groups offset by 48,
bit 0x20 = more groups follow, bit 0x10 of the last group = negative; from the third count
on, the value is stored as the difference to the count two places before).

Overlaps are resolved as annotators mean them: where regions overlap, the *smaller* one
wins (a whole part is outlined, and the part lying on it too), so regions are painted from
the largest to the smallest. Ignored regions (``iscrowd``) are painted last as 255.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lw_refinenet_ros.constants import IGNORE_INDEX
from lw_refinenet_ros.errors import ConfigError

# --------------------------------------------------------------------------- run lengths


def rle_string_to_counts(text: str) -> list[int]:
    """Decode a compressed COCO RLE string into its run lengths.

    Raises:
        ValueError: A character outside the encoding, or a string that ends inside a count.
    """
    counts: list[int] = []
    position = 0
    data = text.encode('ascii') if isinstance(text, str) else bytes(text)
    while position < len(data):
        value = 0
        shift = 0
        while True:
            if position >= len(data):
                raise ValueError('the string ends inside a count')
            group = data[position] - 48
            if not 0 <= group < 64:
                raise ValueError(f'character {chr(data[position])!r} is not RLE data')
            position += 1
            value |= (group & 0x1F) << shift
            shift += 5
            if not group & 0x20:
                if group & 0x10:
                    value -= 1 << shift  # sign-extend the last group
                break
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def counts_to_rle_string(counts: Sequence[int]) -> str:
    """Encode run lengths as a compressed COCO RLE string (inverse of the decoder)."""
    out = []
    for index, count in enumerate(counts):
        value = int(count) - (int(counts[index - 2]) if index > 2 else 0)
        while True:
            group = value & 0x1F
            value >>= 5  # arithmetic shift: negative values end at -1
            more = value != -1 if group & 0x10 else value != 0
            if more:
                group |= 0x20
            out.append(chr(group + 48))
            if not more:
                break
    return ''.join(out)


def rle_decode(counts: Sequence[int] | str, height: int, width: int) -> np.ndarray:
    """A COCO RLE (counts list or compressed string) as a bool (height, width) mask.

    Raises:
        ValueError: Negative runs, or runs that do not add up to height x width.
    """
    runs = rle_string_to_counts(counts) if isinstance(counts, (str, bytes)) else \
        [int(c) for c in counts]
    if any(r < 0 for r in runs):
        raise ValueError('a run length is negative')
    total = sum(runs)
    if total != height * width:
        raise ValueError(f'the runs cover {total} pixels but the mask is {width}x{height} = '
                         f'{height * width}')
    values = np.zeros(len(runs), np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, runs)
    return flat.reshape(width, height).T.astype(bool)


def rle_encode(mask: np.ndarray) -> list[int]:
    """Run lengths (column-major, starting with background) of a bool mask."""
    flat = np.asarray(mask, bool).T.reshape(-1)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(edges).tolist()
    if flat.size and flat[0]:
        runs.insert(0, 0)
    return [int(r) for r in runs]


# --------------------------------------------------------------------------- polygons


def polygon_bounds(polygons: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """(min x, min y, max x, max y) over every vertex."""
    points = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in polygons])
    return (float(points[:, 0].min()), float(points[:, 1].min()),
            float(points[:, 0].max()), float(points[:, 1].max()))


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int
                     ) -> np.ndarray:
    """Fill COCO polygons (flat ``x, y`` lists) into a bool mask; several polygons form one
    region (their union).

    A pixel is inside when its centre is (even-odd rule): pixel (i, j) covers
    [j, j+1) x [i, i+1), so a rectangle from (2, 3) to (8, 6) covers exactly the 6 x 3
    pixels it encloses, and area in pixels equals polygon area for axis-aligned shapes.
    (OpenCV's fillPoly also fills every pixel the outline touches, a pixel too many on two
    sides of every shape, which would shift every small part's labels.)
    """
    mask = np.zeros((height, width), bool)
    centres = np.arange(height, dtype=np.float64) + 0.5
    for polygon in polygons:
        points = np.asarray(polygon, np.float64).reshape(-1, 2)
        if len(points) < 3:
            continue
        x0, y0 = points[:, 0], points[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        ys = centres[:, None]
        crosses = (y0 <= ys) != (y1 <= ys)  # (H, E): the edge spans this row's centre
        with np.errstate(divide='ignore', invalid='ignore'):
            xs = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        rows, edges = np.nonzero(crosses)
        if rows.size == 0:
            continue
        # First pixel whose centre lies right of the crossing; toggling there and taking the
        # running parity fills between pairs of crossings.
        starts = np.clip(np.ceil(xs[rows, edges] - 0.5), 0, width).astype(np.int64)
        toggles = np.zeros((height, width + 1), np.int32)
        np.add.at(toggles, (rows, starts), 1)
        mask |= (np.cumsum(toggles, axis=1)[:, :width] % 2).astype(bool)
    return mask


def check_polygons(polygons: object) -> list[list[float]]:
    """Validate the shape of COCO polygons: a list of flat lists of >= 6 numbers.

    Raises:
        ValueError: What is wrong with them.
    """
    if not isinstance(polygons, list) or not polygons:
        raise ValueError('segmentation must be a non-empty list of polygons or an RLE dict')
    out = []
    for polygon in polygons:
        if not isinstance(polygon, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in polygon):
            raise ValueError('a polygon must be a flat list of numbers x0, y0, x1, y1, ...')
        if len(polygon) % 2 or len(polygon) < 6:
            raise ValueError(f'a polygon has {len(polygon)} numbers; it needs an even number, '
                             f'at least 6 (three points)')
        out.append([float(v) for v in polygon])
    return out


# --------------------------------------------------------------------------- painting


@dataclass(frozen=True)
class Region:
    """One annotated region of an image.

    Attributes:
        class_id: Contiguous class id (0 = background), or IGNORE_INDEX.
        mask: bool (H, W).
        instance: Instance number within the image (0 = not an object: background, ignore).
    """

    class_id: int
    mask: np.ndarray
    instance: int = 0

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def paint_regions(regions: Sequence[Region], height: int, width: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Class ids (uint8) and instance ids (uint16) of an image from its regions.

    Unannotated pixels are background (0). Where regions overlap the smaller one wins;
    ignored regions (class IGNORE_INDEX) are painted last, over everything.
    """
    labels = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.uint16)
    ordered = sorted((r for r in regions if r.class_id != IGNORE_INDEX),
                     key=lambda r: -r.area)  # stable: equal areas keep file order
    for region in ordered:
        labels[region.mask] = region.class_id
        instances[region.mask] = region.instance
    for region in regions:
        if region.class_id == IGNORE_INDEX:
            labels[region.mask] = IGNORE_INDEX
            instances[region.mask] = 0
    return labels, instances


def check_size(what: str, width: object, height: object) -> tuple[int, int]:
    """(width, height) as positive ints, or a ConfigError naming ``what``."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
               for v in (width, height)):
        raise ConfigError(f'{what}: width and height must be positive integers, got '
                          f'{width!r} x {height!r}.')
    return int(width), int(height)  # type: ignore[arg-type]
