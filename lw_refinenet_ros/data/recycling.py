"""A second synthetic domain: a recycling sorting line seen from above (numpy + OpenCV).

Why a second domain: the packaged model knows the conveyor generator (:mod:`.conveyor`);
fine-tuning and the one-command recipe (``lw-refinenet train --data ...``) must be judged on
data the project has never trained on. This line differs in everything but the camera:
a dark ribbed rubber belt with cleats and dirt instead of a grey belt between rails, other
object classes, other shapes and materials, and translucency:

* ``bottle``: PET bottle (capsule body, shoulder, neck and an opaque cap), *translucent*:
  the belt shows through the body, only the rim and a highlight are strong;
* ``can``: aluminium can, lying (metallic shading across, printed band) or crushed flat;
* ``carton``: drinks carton or cardboard piece (kraft or white, printed blocks, a fold);
* ``film``: plastic film / bag, an irregular wrinkled blob, semi-transparent.

Labels are exact: each object is a list of polygons in COCO pixel coordinates (corners at
integers); the label of a pixel is the last drawn object whose polygons contain the pixel
centre (:func:`~lw_refinenet_ros.data.masks.polygons_to_mask`, the rasteriser the COCO
reader uses). Shadows and photometric effects touch the image only. Frame ``i`` of seed
``s`` comes from ``np.random.default_rng((s, i))``.

:func:`write_recycling_coco` exports frames as an annotation tool does, in CVAT's COCO
layout (``images/`` + ``annotations/instances_default.json``): an object fully in view as
its polygons, an object partly hidden under others as the compressed RLE of its visible
pixels, so importing the export gives back the generator's labels exactly (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from lw_refinenet_ros.data.masks import counts_to_rle_string, polygons_to_mask, rle_encode
from lw_refinenet_ros.errors import ConfigError

CLASS_NAMES: tuple[str, ...] = ('background', 'bottle', 'can', 'carton', 'film')
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (0, 160, 255), (230, 25, 75), (170, 110, 40), (120, 230, 120))
BACKGROUND, BOTTLE, CAN, CARTON, FILM = range(len(CLASS_NAMES))
DEFAULT_SIZE = (320, 240)
_AA = 4  # fixed-point bits for anti-aliased drawing


@dataclass(frozen=True)
class RecyclingObject:
    """One object as drawn: class, polygons (COCO pixel coordinates) and pose."""

    class_id: int
    polygons: tuple[np.ndarray, ...]
    center: tuple[float, float]
    angle: float

    def footprint(self, size: tuple[int, int]) -> np.ndarray:
        """The pixels whose centres it covers (bool (H, W)), as the labels have it."""
        width, height = size
        return polygons_to_mask([p.reshape(-1) for p in self.polygons], height, width)


# --------------------------------------------------------------------------- shapes


def _place(points: np.ndarray, center: tuple[float, float], angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    return points @ rotation.T + np.asarray(center)


def _capsule(length: float, width: float, n: int = 10) -> np.ndarray:
    """A rectangle with round ends along x, centred on 0."""
    r, half = width / 2, max(length / 2 - width / 2, 0.0)
    right = [(half + r * np.cos(a), r * np.sin(a)) for a in np.linspace(-np.pi / 2, np.pi / 2, n)]
    left = [(-half + r * np.cos(a), r * np.sin(a))
            for a in np.linspace(np.pi / 2, 3 * np.pi / 2, n)]
    return np.array(right + left)


def _bottle(rng: np.random.Generator, s: float) -> tuple[list[np.ndarray], dict]:
    length, width = rng.uniform(80, 125) * s, rng.uniform(26, 38) * s
    neck_w, neck_l = width * rng.uniform(0.32, 0.42), length * rng.uniform(0.14, 0.2)
    body = _capsule(length - neck_l, width) + np.array([-neck_l / 2, 0])
    x0 = (length - neck_l) / 2 - neck_l / 2 - width * 0.25
    shoulder_and_neck = np.array([
        [x0, -width / 2 * 0.9], [x0 + width * 0.45, -neck_w / 2], [length / 2, -neck_w / 2],
        [length / 2, neck_w / 2], [x0 + width * 0.45, neck_w / 2], [x0, width / 2 * 0.9]])
    cap = np.array([[length / 2 - 0.5, -neck_w * 0.62], [length / 2 + 6 * s, -neck_w * 0.62],
                    [length / 2 + 6 * s, neck_w * 0.62], [length / 2 - 0.5, neck_w * 0.62]])
    return [body, shoulder_and_neck, cap], {'length': length, 'width': width}


def _can(rng: np.random.Generator, s: float) -> tuple[list[np.ndarray], dict]:
    if rng.random() < 0.7:
        length, width = rng.uniform(48, 64) * s, rng.uniform(27, 33) * s
        outline = np.array([[-length / 2, -width / 2], [length / 2, -width / 2],
                            [length / 2 + 2 * s, 0], [length / 2, width / 2],
                            [-length / 2, width / 2], [-length / 2 - 2 * s, 0]])
    else:  # crushed flat: an irregular octagon
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radius = rng.uniform(20, 27) * s * rng.uniform(0.75, 1.0, 9)
        outline = np.stack([np.cos(angles) * radius * 1.3, np.sin(angles) * radius], 1)
        length, width = 2.6 * radius.mean(), 2 * radius.mean()
    return [outline], {'length': length, 'width': width}


def _carton(rng: np.random.Generator, s: float) -> tuple[list[np.ndarray], dict]:
    length, width = rng.uniform(50, 90) * s, rng.uniform(38, 62) * s
    jitter = rng.uniform(-3, 3, (4, 2)) * s
    corners = np.array([[-length / 2, -width / 2], [length / 2, -width / 2],
                        [length / 2, width / 2], [-length / 2, width / 2]]) + jitter
    return [corners], {'length': length, 'width': width}


def _film(rng: np.random.Generator, s: float) -> tuple[list[np.ndarray], dict]:
    n = 18
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 0.2, n)
    base = rng.uniform(28, 50) * s
    wobble = 1 + 0.22 * np.sin(angles * rng.integers(2, 4) + rng.uniform(0, 6)) + \
        rng.uniform(-0.12, 0.12, n)
    radius = base * wobble
    stretch = rng.uniform(1.0, 1.5)
    outline = np.stack([np.cos(angles) * radius * stretch, np.sin(angles) * radius], 1)
    return [outline], {'length': 2 * base * stretch, 'width': 2 * base}


_BUILDERS = {BOTTLE: _bottle, CAN: _can, CARTON: _carton, FILM: _film}


# --------------------------------------------------------------------------- drawing


def _aa_mask(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] (vertices moved -0.5 px onto OpenCV's centre grid)."""
    canvas = np.zeros((height, width), np.uint8)
    one = 1 << _AA
    shapes = [np.round((p - 0.5) * one).astype(np.int32) for p in polygons]
    cv2.fillPoly(canvas, shapes, 255, cv2.LINE_AA, shift=_AA)
    return canvas.astype(np.float32) / 255.0


def _belt(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Dark ribbed rubber with cleats across the belt, wear and dirt (RGB float 0..255)."""
    base = np.array([rng.uniform(38, 55), rng.uniform(42, 58), rng.uniform(46, 64)])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ribs = 4.0 * np.sin(ys * (2 * np.pi / rng.uniform(5, 8)))
    pitch = rng.uniform(70, 110)
    phase = rng.uniform(0, pitch)
    cleat = np.abs(((xs + phase) % pitch) - pitch / 2) > pitch / 2 - rng.uniform(4, 7)
    low = cv2.resize(rng.normal(0, 1, (6, 8)).astype(np.float32), (width, height),
                     interpolation=cv2.INTER_CUBIC) * 6.0
    shade = ribs + low + np.where(cleat, 14.0, 0.0)
    image = base[None, None, :] + shade[..., None]
    dirt = rng.random((height, width)) < 0.004
    image[dirt] += rng.uniform(25, 60)
    return image.astype(np.float32)


def _local(center: tuple[float, float], angle: float, height: int, width: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's coordinates along and across an object's long axis."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = xs + 0.5 - center[0], ys + 0.5 - center[1]
    c, s = np.cos(angle), np.sin(angle)
    return dx * c + dy * s, -dx * s + dy * c


def _paint(image: np.ndarray, obj: RecyclingObject, info: dict, rng: np.random.Generator
           ) -> None:
    """Blend one object into ``image`` (RGB float) in place."""
    height, width = image.shape[:2]
    alpha = _aa_mask(list(obj.polygons), height, width)
    if not alpha.any():
        return
    u, v = _local(obj.center, obj.angle, height, width)
    across = np.clip(np.abs(v) / (info['width'] / 2), 0, 1)
    if obj.class_id == BOTTLE:
        tint = np.array(rng.choice([(200, 225, 235), (150, 205, 160), (160, 190, 230),
                                    (215, 215, 215)]), np.float32)
        opacity = 0.22 + 0.55 * across ** 4  # the rim is strong, the body shows the belt
        highlight = np.exp(-((v / (info['width'] / 2) + 0.45) ** 2) / 0.01)
        colour = tint[None, None, :] * (0.85 + 0.15 * highlight[..., None]) + \
            60 * highlight[..., None]
        cap = _aa_mask([obj.polygons[-1]], height, width)
        cap_colour = np.array(rng.choice([(30, 90, 200), (220, 40, 40), (240, 240, 240),
                                          (40, 160, 60)]), np.float32)
        colour = colour * (1 - cap[..., None]) + cap_colour * cap[..., None]
        opacity = np.maximum(opacity, cap) * 0.9 + 0.1 * highlight
    elif obj.class_id == CAN:
        metal = 120 + 110 * np.cos(np.clip(v / (info['width'] / 2), -1, 1) * 1.45) ** 2
        colour = np.repeat(metal[..., None], 3, axis=2)
        band = np.abs(u) < info['length'] * rng.uniform(0.15, 0.3)
        paint = np.array(rng.choice([(200, 30, 30), (30, 70, 190), (230, 200, 40),
                                     (30, 140, 60)]), np.float32)
        colour = np.where(band[..., None], paint * (metal[..., None] / 230.0), colour)
        opacity = np.ones_like(alpha)
    elif obj.class_id == CARTON:
        base = np.array(rng.choice([(185, 145, 100), (225, 220, 210), (200, 170, 120)]),
                        np.float32)
        colour = np.broadcast_to(base, image.shape).copy()
        block = (np.abs(u - rng.uniform(-10, 10)) < info['length'] * 0.22) & \
            (np.abs(v - rng.uniform(-6, 6)) < info['width'] * 0.2)
        colour[block] = np.array(rng.choice([(40, 80, 170), (200, 40, 40), (30, 130, 80)]))
        fold = np.abs(u - rng.uniform(-0.3, 0.3) * info['length']) < 1.2
        colour[fold] *= 0.7
        opacity = np.ones_like(alpha)
    else:  # film
        tone = rng.uniform(190, 245)
        tint = np.array([tone, tone, tone]) * np.array(rng.choice(
            [(1.0, 1.0, 1.0), (0.85, 0.95, 1.0), (1.0, 0.95, 0.8)]))
        wrinkles = np.zeros((height, width), np.float32)
        for _ in range(4):
            theta = rng.uniform(0, np.pi)
            wrinkles += np.sin((u * np.cos(theta) + v * np.sin(theta)) /
                               rng.uniform(2.0, 5.0) + rng.uniform(0, 6))
        colour = tint[None, None, :] * (0.88 + 0.05 * wrinkles[..., None])
        opacity = np.full_like(alpha, rng.uniform(0.5, 0.7)) + 0.06 * wrinkles
    a = (np.clip(opacity, 0, 1) * alpha)[..., None]
    # Soft shadow (image only): the object's silhouette, offset and blurred.
    shadow = cv2.GaussianBlur(np.roll(alpha, (4, 3), axis=(0, 1)), (0, 0), 3.0)
    strength = 0.35 if obj.class_id != FILM else 0.15
    image *= (1 - strength * shadow * (1 - alpha))[..., None]
    image[:] = image * (1 - a) + colour * a


def render_recycling_frame(rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE,
                           *, augment: bool = True
                           ) -> tuple[np.ndarray, np.ndarray, list[RecyclingObject],
                                      np.ndarray]:
    """One frame: ``(image RGB uint8, labels uint8, objects in draw order, instances)``.

    ``instances`` (uint16) numbers the objects 1.. in draw order where they are visible.
    """
    width, height = size
    scale = min(width / 320, height / 240)
    image = _belt(rng, width, height)
    labels = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.uint16)
    objects: list[RecyclingObject] = []
    count = int(rng.integers(3, 9))
    for _ in range(count):
        class_id = int(rng.choice([BOTTLE, CAN, CARTON, FILM], p=[0.3, 0.27, 0.23, 0.2]))
        local, info = _BUILDERS[class_id](rng, scale)
        center = (float(rng.uniform(-0.05, 1.05) * width),
                  float(rng.uniform(0.08, 0.92) * height))
        angle = float(rng.uniform(-np.pi, np.pi))
        polygons = tuple(_place(p, center, angle) for p in local)
        obj = RecyclingObject(class_id, polygons, center, angle)
        footprint = obj.footprint(size)
        if footprint.sum() < 30:
            continue
        _paint(image, obj, info, rng)
        labels[footprint] = class_id
        instances[footprint] = len(objects) + 1
        objects.append(obj)
    if augment:
        image *= rng.uniform(0.8, 1.2) * rng.uniform(0.93, 1.07, 3)[None, None, :]
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        vignette = 1 - 0.18 * (((xs - width / 2) / width) ** 2 + ((ys - height / 2) / height) ** 2)
        image *= vignette[..., None]
        sigma = rng.uniform(0, 0.9)
        if sigma > 0.3:
            image = cv2.GaussianBlur(image, (0, 0), sigma)
        image += rng.normal(0, rng.uniform(1.5, 5.0), image.shape).astype(np.float32)
    rgb = np.clip(image, 0, 255).astype(np.uint8)
    return rgb, labels, objects, instances


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of frame ``index`` of ``seed`` (independent of the dataset size)."""
    return np.random.default_rng((int(seed), int(index), 7))


def clip_polygon(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """The part of a polygon inside the image rectangle (Sutherland-Hodgman), as annotation
    tools clip what was drawn past the border. Pixel centres inside the image are inside
    the clipped polygon exactly when they were inside the original."""
    def clip(poly: list, inside: Callable, cut: Callable) -> list:
        out = []
        for index, current in enumerate(poly):
            previous = poly[index - 1]
            if inside(current):
                if not inside(previous):
                    out.append(cut(previous, current))
                out.append(current)
            elif inside(previous):
                out.append(cut(previous, current))
        return out

    def at_x(x: float) -> Callable:
        return lambda a, b: (x, a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0]))

    def at_y(y: float) -> Callable:
        return lambda a, b: (a[0] + (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]), y)

    poly = [tuple(map(float, p)) for p in points]
    for inside, cut in ((lambda q: q[0] >= 0, at_x(0.0)), (lambda q: q[0] <= width, at_x(width)),
                        (lambda q: q[1] >= 0, at_y(0.0)),
                        (lambda q: q[1] <= height, at_y(height))):
        poly = clip(poly, inside, cut) if poly else poly
    return np.array(poly, np.float64).reshape(-1, 2)


def coco_annotations(objects: list[RecyclingObject], instances: np.ndarray, image_id: int,
                     first_id: int) -> list[dict]:
    """COCO annotations of one frame: polygons for objects fully in view, compressed RLE
    of the visible pixels for objects partly hidden under later ones."""
    height, width = instances.shape
    out = []
    for number, obj in enumerate(objects, start=1):
        visible = instances == number
        area = int(visible.sum())
        if area == 0:
            continue
        whole = obj.footprint((width, height))
        ys, xs = np.nonzero(visible)
        bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                int(ys.max() - ys.min() + 1)]
        clipped = [np.round(clip_polygon(p, width, height), 3) for p in obj.polygons]
        clipped = [c for c in clipped if len(c) >= 3]
        # Polygons as drawn (clipped to the image, 3 decimals) when they give exactly the
        # visible pixels; otherwise the visible pixels as RLE.
        if np.array_equal(visible, whole) and np.array_equal(
                polygons_to_mask([c.reshape(-1) for c in clipped], height, width), whole):
            segmentation: object = [[float(v) for v in c.reshape(-1)] for c in clipped]
        else:
            segmentation = {'size': [height, width],
                            'counts': counts_to_rle_string(rle_encode(visible))}
        out.append({'id': first_id + len(out), 'image_id': image_id,
                    'category_id': obj.class_id, 'segmentation': segmentation, 'area': area,
                    'bbox': bbox, 'iscrowd': 0})
    return out


def write_recycling_coco(out: str | os.PathLike[str], count: int, seed: int,
                         size: tuple[int, int] = DEFAULT_SIZE, *, start: int = 0,
                         augment: bool = True,
                         progress: Callable[[int], None] | None = None) -> Path:
    """Write ``count`` frames in CVAT's COCO layout; returns the JSON's path."""
    if count < 1:
        raise ConfigError(f'count must be >= 1, got {count}.')
    root = Path(out)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for number, index in enumerate(range(start, start + count), start=1):
        image, _, objects, instances = render_recycling_frame(frame_rng(seed, index), size,
                                                              augment=augment)
        name = f'{index:06d}.png'
        cv2.imwrite(str(root / 'images' / name), image[..., ::-1])
        images.append({'id': number, 'file_name': name, 'width': size[0], 'height': size[1]})
        annotations += coco_annotations(objects, instances, number, len(annotations) + 1)
        if progress is not None:
            progress(number)
    categories = [{'id': i, 'name': n, 'supercategory': ''}
                  for i, n in enumerate(CLASS_NAMES) if i != BACKGROUND]
    path = root / 'annotations' / 'instances_default.json'
    path.write_text(json.dumps({'licenses': [], 'info': {'description': 'synthetic recycling '
                                                         'line (lw_refinenet_ros)'},
                                'categories': categories, 'images': images,
                                'annotations': annotations}))
    return path
