"""Synthetic conveyor-belt scenes with exact per-pixel labels (numpy + OpenCV only).

A belt seen from above runs left to right through the frame; the floor and the metal rails on
either side are ``background``. Parts (bolts, nuts, washers, gears, brackets, springs) lie on
the belt in random poses, overlapping each other, and cast soft shadows.

Why the labels are exact: every part is a list of polygons (fills and holes) drawn twice, in the
same order, once anti-aliased into an alpha mask that blends the shaded part into the image and
once with hard edges into the label map. Shadows, lighting, blur, noise and colour jitter touch
the image only. A pixel's label is therefore the class of the last part whose hard polygon
covers it, or ``belt``/``background`` from the scene layout.

Determinism: frame ``i`` of a dataset with seed ``s`` is rendered from
``np.random.default_rng((s, i))``, so it is the same whatever the dataset size, and datasets
with different seeds never share frames (``seed + i`` would make seed 1 frame 0 equal seed 0
frame 1).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from lw_refinenet_ros import sizes
from lw_refinenet_ros.errors import ConfigError

CLASS_NAMES: tuple[str, ...] = (
    'background', 'belt', 'bolt', 'nut', 'washer', 'gear', 'bracket', 'spring')
"""Class names; the label value is the index."""

CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (110, 110, 110), (230, 25, 75), (255, 225, 25), (70, 240, 240),
    (245, 130, 48), (0, 130, 200), (60, 180, 75))
"""Display colours (RGB) for overlays, one per class."""

NUM_CLASSES = len(CLASS_NAMES)
BACKGROUND, BELT, BOLT, NUT, WASHER, GEAR, BRACKET, SPRING = range(NUM_CLASSES)
DEFAULT_SIZE = (320, 240)
"""(width, height) of the demo camera; part sizes scale with ``min(W/320, H/240)``."""

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel polygon vertices for smooth motion.
_ONE = 1 << _SHIFT

# Part base colours (RGB) and whether the surface is metallic (gets a specular band).
# Chosen so that shape AND colour separate the classes, as on a real sorting line where
# parts differ in material: zinc-plated steel, brass, painted parts.
_STYLE: dict[int, tuple[tuple[int, int, int], bool]] = {
    BOLT: ((178, 182, 190), True),      # bright zinc-plated steel
    NUT: ((205, 165, 60), True),        # brass
    WASHER: ((150, 175, 200), True),    # blue-tinted zinc
    GEAR: ((190, 105, 55), True),       # bronze / copper
    BRACKET: ((40, 95, 190), False),    # blue powder coat
    SPRING: ((60, 170, 60), False),     # green die spring
}


@dataclass(frozen=True)
class DrawnPart:
    """One part as it was drawn: class, pose and the exact polygons that made its label.

    Attributes:
        class_id: Label value (index into :data:`CLASS_NAMES`).
        name: Class name.
        center: (x, y) in pixels.
        angle: Rotation in radians.
        scale: Size factor relative to the nominal part size.
        shapes: ``(polygon (N, 2) float32 in frame pixels, is_fill)`` in draw order; holes
            (``is_fill=False``) show whatever lies beneath the part.
        instance_id: The part's id, unique within its scene and kept while it rides the belt
            (>= 1; the value of its pixels in :meth:`ConveyorScene.render_instances`).
    """

    class_id: int
    name: str
    center: tuple[float, float]
    angle: float
    scale: float
    shapes: tuple[tuple[np.ndarray, bool], ...]
    instance_id: int = 0

    def footprint(self, size: tuple[int, int]) -> np.ndarray:
        """The hard-edged pixels this part covers, as drawn into the labels (bool (H, W))."""
        width, height = size
        mask = np.zeros((height, width), np.uint8)
        for polygon, is_fill in self.shapes:
            pts = np.round(polygon * _ONE).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1 if is_fill else 0, cv2.LINE_8, shift=_SHIFT)
        return mask.astype(bool)


# --------------------------------------------------------------------------- part shapes
# Each builder returns local polygons (centred on 0, nominal size at scale 1 and 320x240)
# plus the long-axis length so spawning can keep parts on the belt.


def _circle(radius: float, n: int = 32, phase: float = 0.0) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False) + phase
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _bolt(rng: np.random.Generator) -> list[tuple[np.ndarray, bool]]:
    length = rng.uniform(38, 56)
    half_w = rng.uniform(4.5, 6.0)
    head = rng.uniform(10.0, 12.5)
    shaft = _rect(-length / 2 + head * 0.6, -half_w, length / 2, half_w)
    hexagon = _circle(head, 6, phase=rng.uniform(0, math.pi / 3)) + [-length / 2 + head * 0.6, 0]
    return [(shaft, True), (hexagon, True)]


def _nut(rng: np.random.Generator) -> list[tuple[np.ndarray, bool]]:
    radius = rng.uniform(13, 18)
    return [(_circle(radius, 6), True), (_circle(radius * rng.uniform(0.42, 0.52), 24), False)]


def _washer(rng: np.random.Generator) -> list[tuple[np.ndarray, bool]]:
    radius = rng.uniform(13, 19)
    return [(_circle(radius, 40), True), (_circle(radius * rng.uniform(0.38, 0.5), 24), False)]


def _gear(rng: np.random.Generator) -> list[tuple[np.ndarray, bool]]:
    outer = rng.uniform(19, 27)
    teeth = int(rng.integers(9, 15))
    root = outer * 0.78
    # Each tooth: root, rise, tip, tip, fall -> a trapezoidal tooth profile.
    angles = []
    radii = []
    for k in range(teeth):
        base = 2 * math.pi * k / teeth
        step = 2 * math.pi / teeth
        for frac, r in ((0.0, root), (0.2, outer), (0.45, outer), (0.65, root)):
            angles.append(base + frac * step)
            radii.append(r)
    angles_a = np.array(angles)
    radii_a = np.array(radii)
    body = np.stack([radii_a * np.cos(angles_a), radii_a * np.sin(angles_a)], axis=1)
    return [(body, True), (_circle(outer * rng.uniform(0.22, 0.32), 24), False)]


def _bracket(rng: np.random.Generator) -> list[tuple[np.ndarray, bool]]:
    arm_a = rng.uniform(40, 56)
    arm_b = rng.uniform(26, 40)
    thick = rng.uniform(11, 15)
    # L shape centred roughly on its bounding box.
    cx, cy = arm_a / 2, arm_b / 2
    outline = np.array([[0, 0], [arm_a, 0], [arm_a, thick], [thick, thick], [thick, arm_b],
                        [0, arm_b]], np.float64) - [cx, cy]
    hole_r = thick * 0.22
    holes = [(_circle(hole_r, 16) + [arm_a - thick * 0.8 - cx, thick / 2 - cy], False),
             (_circle(hole_r, 16) + [thick / 2 - cx, arm_b - thick * 0.8 - cy], False)]
    return [(outline, True)] + holes


def _spring(rng: np.random.Generator) -> list[tuple[np.ndarray, bool]]:
    length = rng.uniform(40, 58)
    radius = rng.uniform(7.5, 10.0)
    turns = int(rng.integers(4, 7))
    wire = rng.uniform(2.3, 2.9)
    # A coil seen from the side: a zig-zag of thick wire segments between the two edges.
    xs = np.linspace(-length / 2, length / 2, 2 * turns + 1)
    ys = np.where(np.arange(xs.size) % 2 == 0, -radius, radius)
    shapes = []
    for i in range(xs.size - 1):
        p0 = np.array([xs[i], ys[i]])
        p1 = np.array([xs[i + 1], ys[i + 1]])
        direction = p1 - p0
        normal = np.array([-direction[1], direction[0]]) / np.linalg.norm(direction) * wire
        shapes.append((np.stack([p0 + normal, p1 + normal, p1 - normal, p0 - normal]), True))
    # End coils are closed (flat ground ends): a short bar across each end.
    for x in (-length / 2, length / 2):
        shapes.append((_rect(x - wire, -radius - wire, x + wire, radius + wire), True))
    return shapes


_BUILDERS: dict[int, Callable[[np.random.Generator], list[tuple[np.ndarray, bool]]]] = {
    BOLT: _bolt, NUT: _nut, WASHER: _washer, GEAR: _gear, BRACKET: _bracket, SPRING: _spring}
PART_CLASSES: tuple[int, ...] = tuple(sorted(_BUILDERS))


@dataclass
class _Part:
    """A part in scene coordinates (mutable: it moves with the belt)."""

    class_id: int
    local: list[tuple[np.ndarray, bool]]
    x: float
    y: float
    angle: float
    spin: float
    scale: float
    color: np.ndarray
    light_dir: float
    radius: float
    instance_id: int = 0

    def shapes(self) -> tuple[tuple[np.ndarray, bool], ...]:
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        rot = np.array([[cos, -sin], [sin, cos]]) * self.scale
        return tuple(((poly @ rot.T + [self.x, self.y]).astype(np.float32), fill)
                     for poly, fill in self.local)


# --------------------------------------------------------------------------- scene


def lowfreq_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int,
                  amplitude: float) -> np.ndarray:
    """Smooth (H, W) float32 noise: a coarse normal grid, one value per ``cells`` pixels,
    upsampled bilinearly and scaled by ``amplitude`` (floor and belt texture)."""
    h, w = shape
    small = rng.standard_normal((max(2, h // cells), max(2, w // cells)))
    return cv2.resize(small.astype(np.float32), (w, h),
                      interpolation=cv2.INTER_LINEAR) * amplitude


def sensor_variation(image: np.ndarray, rng: np.random.Generator,
                     unit: float) -> np.ndarray:
    """Per-frame camera effects on a float (H, W, 3) image: exposure, illumination gradient,
    white balance, motion blur along the belt, defocus and sensor noise (image only; the labels
    stay exact). ``unit`` is the frame's scale relative to 320x240."""
    height, width = image.shape[:2]
    # Lighting: global exposure, a smooth illumination gradient and per-channel white
    # balance (colour jitter); per frame, like auto-exposure flicker.
    gain = rng.uniform(0.65, 1.35)
    gx, gy = rng.uniform(-0.25, 0.25, 2)
    ramp_x = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    ramp_y = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    illum = gain * (1.0 + gx * ramp_x + gy * ramp_y)
    balance = rng.uniform(0.88, 1.12, 3).astype(np.float32)
    image *= illum[..., None] * balance
    image += rng.uniform(-12, 12)
    # Motion blur along the belt (x), then optional defocus.
    if rng.random() < 0.5:
        length = int(rng.integers(2, max(3, int(9 * unit) + 1)))
        kernel = np.full((1, length), 1.0 / length, np.float32)
        image = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)
    if rng.random() < 0.25:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.2) * unit)
    sigma = rng.uniform(1.0, 8.0)
    image += rng.standard_normal(image.shape, dtype=np.float32) * sigma
    return image


class ConveyorScene:
    """A continuous conveyor: parts ride the belt from left to right, new ones enter on the left.

    ``render()`` draws the current state; ``step()`` advances the belt by ``speed`` pixels.
    Scene-level properties (belt colour, floor, light) are fixed per scene; sensor noise,
    blur and flicker vary per frame. Everything comes from the one generator, so a scene built
    from the same seed replays the same video.

    Args:
        rng_or_seed: ``np.random.Generator``, an int seed, or a seed sequence (tuple of ints).
        size: (width, height) in pixels.
        speed: Belt speed in pixels per frame at 320x240 (scaled with the frame).
        density: Mean number of parts per 320 pixels of belt.
        augment: Apply the photometric variation (lighting, blur, noise, jitter). Off gives
            clean frames (useful in tests).
        fill: Spread parts over the whole belt at start (not only the entry edge).
    """

    def __init__(self, rng_or_seed: np.random.Generator | int | Sequence[int] | None = None,
                 size: tuple[int, int] = DEFAULT_SIZE, *, speed: float = 2.0,
                 density: float = 6.0, augment: bool = True, fill: bool = True) -> None:
        width, height = (int(v) for v in size)
        if width < 16 or height < 16:
            raise ConfigError(f'Conveyor frame size {size} is too small; use at least 16x16 '
                              f'(the demo uses 320x240).')
        self.size = (width, height)
        self._rng = (rng_or_seed if isinstance(rng_or_seed, np.random.Generator)
                     else np.random.default_rng(rng_or_seed))
        rng = self._rng
        self.unit = min(width / 320.0, height / 240.0)
        self.speed = float(speed) * self.unit
        self.density = float(density)
        self.augment = bool(augment)
        self.frame_index = 0
        # Layout: belt band across the frame, rails just outside it, floor beyond.
        belt_h = rng.uniform(0.58, 0.78) * height
        top = rng.uniform(0.08 * height, height - belt_h - 0.08 * height)
        self.belt_top = float(top)
        self.belt_bottom = float(top + belt_h)
        self.rail_width = float(rng.uniform(5, 11) * self.unit)
        self.belt_phase = 0.0
        self._belt_color = np.array([rng.uniform(38, 80)] * 3) * rng.uniform(0.92, 1.08, 3)
        self._stripe_period = rng.uniform(18, 40) * self.unit
        self._stripe_width = rng.uniform(2, 5) * self.unit
        self._stripe_gain = rng.uniform(-0.35, 0.35)
        self._floor_color = np.array(rng.uniform(85, 170, 3))
        self._floor_color = self._floor_color.mean() * 0.7 + self._floor_color * 0.3
        self._rail_color = rng.uniform(140, 215)
        self._light_dir = rng.uniform(0, 2 * math.pi)
        self._shadow_offset = rng.uniform(2, 6) * self.unit
        self._shadow_strength = rng.uniform(0.25, 0.6)
        # Static textures, generated once; the belt texture wraps around as the belt moves.
        self._floor = self._make_floor()
        self._belt_tex = lowfreq_noise(self._rng, (height, width * 2), 10, 7.0)
        self._parts: list[_Part] = []
        self._next_instance = 1
        if fill:
            self._populate(0.0, float(width))

    # ----------------------------------------------------------------- textures

    def _make_floor(self) -> np.ndarray:
        width, height = self.size
        floor = np.empty((height, width, 3), np.float32)
        floor[:] = self._floor_color
        floor += lowfreq_noise(self._rng, (height, width), 12, 14.0)[..., None]
        floor += self._rng.standard_normal((height, width, 1)).astype(np.float32) * 6.0
        # Rails: brushed metal strips along both belt edges, brighter toward their centre.
        rw = max(2, int(round(self.rail_width)))
        profile = (0.75 + 0.25 * np.sin(np.linspace(0, math.pi, rw)))[:, None, None]
        for edge in (int(self.belt_top) - rw, int(self.belt_bottom)):
            y0, y1 = max(0, edge), min(height, edge + rw)
            if y1 > y0:
                floor[y0:y1] = self._rail_color * profile[y0 - edge:y1 - edge]
        return floor

    # ----------------------------------------------------------------- parts

    def _new_part(self, x: float) -> _Part:
        rng = self._rng
        class_id = int(rng.choice(PART_CLASSES))
        local = _BUILDERS[class_id](rng)
        radius = float(max(np.abs(poly).max() for poly, _ in local))
        scale = float(rng.uniform(0.9, 1.35) * self.unit)
        base, _ = _STYLE[class_id]
        color = np.clip(np.array(base, np.float64) * rng.uniform(0.85, 1.12)
                        + rng.normal(0, 8, 3), 0, 255)
        margin = radius * scale * 0.4
        y = rng.uniform(self.belt_top + margin, self.belt_bottom - margin)
        self._next_instance += 1
        return _Part(class_id=class_id, local=local, x=float(x), y=float(y),
                     angle=float(rng.uniform(0, 2 * math.pi)),
                     spin=float(rng.normal(0, 0.004)), scale=scale,
                     color=color.astype(np.float32), light_dir=self._light_dir,
                     radius=radius * scale, instance_id=self._next_instance - 1)

    def _populate(self, x0: float, x1: float) -> None:
        count = self._rng.poisson(self.density * (x1 - x0) / (320.0 * self.unit))
        for _ in range(int(count)):
            self._parts.append(self._new_part(self._rng.uniform(x0, x1)))

    def step(self) -> None:
        """Advance the belt by one frame: parts translate, leave on the right, enter left."""
        self.frame_index += 1
        self.belt_phase = (self.belt_phase + self.speed) % (self.size[0] * 2)
        for part in self._parts:
            part.x += self.speed
            part.angle += part.spin
        self._parts = [p for p in self._parts if p.x - p.radius < self.size[0]]
        # New parts enter from beyond the left edge at the mean belt density.
        self._populate(-self.speed - 40 * self.unit, -40 * self.unit)

    @property
    def parts(self) -> tuple[DrawnPart, ...]:
        """The parts in draw order (later ones lie on top), as :class:`DrawnPart`."""
        return tuple(DrawnPart(class_id=p.class_id, name=CLASS_NAMES[p.class_id],
                               center=(p.x, p.y), angle=p.angle, scale=p.scale,
                               shapes=p.shapes(), instance_id=p.instance_id)
                     for p in self._parts)

    # ----------------------------------------------------------------- rendering

    def _draw_belt(self, image: np.ndarray, labels: np.ndarray) -> None:
        width, height = self.size
        y0 = max(0, int(round(self.belt_top)))
        y1 = min(height, int(round(self.belt_bottom)))
        if y1 <= y0:
            return
        labels[y0:y1] = BELT
        shift = int(self.belt_phase) % (2 * width)
        tex = np.roll(self._belt_tex, shift, axis=1)[y0:y1, :width]
        xs = np.arange(width, dtype=np.float32) - self.belt_phase
        stripe = (np.mod(xs, self._stripe_period) < self._stripe_width).astype(np.float32)
        gain = 1.0 + self._stripe_gain * stripe
        belt = self._belt_color.astype(np.float32)[None, None, :] * gain[None, :, None]
        image[y0:y1] = belt + tex[..., None]

    def _draw_part(self, image: np.ndarray, labels: np.ndarray, part: _Part) -> None:
        width, height = self.size
        shapes = part.shapes()
        points = np.concatenate([poly for poly, _ in shapes])
        pad = int(math.ceil(self._shadow_offset)) + 3
        x0 = max(0, int(points[:, 0].min()) - pad)
        y0 = max(0, int(points[:, 1].min()) - pad)
        x1 = min(width, int(points[:, 0].max()) + pad + 1)
        y1 = min(height, int(points[:, 1].max()) + pad + 1)
        if x1 <= x0 or y1 <= y0:
            return
        h, w = y1 - y0, x1 - x0
        alpha = np.zeros((h, w), np.uint8)
        hard = np.zeros((h, w), np.uint8)
        shadow = np.zeros((h, w), np.uint8)
        offset = np.array([x0, y0], np.float32)
        sdx = -math.cos(self._light_dir) * self._shadow_offset
        sdy = -math.sin(self._light_dir) * self._shadow_offset
        for poly, is_fill in shapes:
            pts = np.round((poly - offset) * _ONE).astype(np.int32)
            value = 255 if is_fill else 0
            cv2.fillPoly(alpha, [pts], value, cv2.LINE_AA, shift=_SHIFT)
            cv2.fillPoly(hard, [pts], 1 if is_fill else 0, cv2.LINE_8, shift=_SHIFT)
            spts = np.round((poly - offset + [sdx, sdy]) * _ONE).astype(np.int32)
            cv2.fillPoly(shadow, [spts], value, cv2.LINE_8, shift=_SHIFT)
        roi = image[y0:y1, x0:x1]
        if self.augment:
            soft = cv2.GaussianBlur(shadow, (0, 0), 1.5 * self.unit + 0.5)
            roi *= (1.0 - self._shadow_strength * soft.astype(np.float32) / 255.0)[..., None]
        # Shading: a linear light gradient across the part, plus a specular band on metal.
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = part.x - x0, part.y - y0
        lx, ly = math.cos(part.light_dir), math.sin(part.light_dir)
        proj = ((xx - cx) * lx + (yy - cy) * ly) / max(part.radius, 1.0)
        shade = 0.82 + 0.22 * proj
        _, metallic = _STYLE[part.class_id]
        rgb = part.color[None, None, :] * shade[..., None]
        if metallic:
            along = ((xx - cx) * -ly + (yy - cy) * lx) / max(part.radius, 1.0)
            rgb = rgb + (70.0 * np.exp(-((along - 0.25) / 0.18) ** 2))[..., None]
        a = alpha.astype(np.float32)[..., None] / 255.0
        roi[:] = roi * (1.0 - a) + rgb * a
        # Edge darkening (image only): parts have a visible rim like real machined edges.
        rim = cv2.morphologyEx(alpha, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        roi *= (1.0 - 0.25 * rim.astype(np.float32) / 255.0)[..., None]
        labels[y0:y1, x0:x1][hard > 0] = part.class_id

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """Draw the current state.

        Returns:
            ``(image, labels)``: RGB uint8 (H, W, 3) and uint8 (H, W) class ids.
        """
        width, height = self.size
        image = self._floor.copy()
        labels = np.full((height, width), BACKGROUND, np.uint8)
        self._draw_belt(image, labels)
        for part in self._parts:
            self._draw_part(image, labels, part)
        if self.augment:
            image = sensor_variation(image, self._rng, self.unit)
        return np.clip(image, 0, 255).astype(np.uint8), labels

    def render_instances(self) -> np.ndarray:
        """Instance ground truth of the current state: uint16 (H, W), 0 where no part lies.

        Each pixel holds the ``instance_id`` of the part that made its label (the last one
        drawn over it, holes showing what lies beneath), so ``render()``'s labels are a part
        class exactly where this image is non-zero. Ids persist while a part rides the belt.
        """
        return self.instances_and_areas()[0]

    def instances_and_areas(self) -> tuple[np.ndarray, dict[int, int]]:
        """:meth:`render_instances` and, by instance id, the pixels each part would cover in
        the frame if nothing lay on it, from one pass over the parts.

        A part's visible pixels divided by its area is how much of it is in view (object
        scores count mostly hidden parts separately).
        """
        width, height = self.size
        instances = np.zeros((height, width), np.uint16)
        areas: dict[int, int] = {}
        for part in self._parts:
            shapes = part.shapes()
            points = np.concatenate([poly for poly, _ in shapes])
            x0 = max(0, int(points[:, 0].min()) - 2)
            y0 = max(0, int(points[:, 1].min()) - 2)
            x1 = min(width, int(points[:, 0].max()) + 3)
            y1 = min(height, int(points[:, 1].max()) + 3)
            if x1 <= x0 or y1 <= y0:
                continue
            hard = np.zeros((y1 - y0, x1 - x0), np.uint8)
            offset = np.array([x0, y0], np.float32)
            for poly, is_fill in shapes:
                pts = np.round((poly - offset) * _ONE).astype(np.int32)
                cv2.fillPoly(hard, [pts], 1 if is_fill else 0, cv2.LINE_8, shift=_SHIFT)
            instances[y0:y1, x0:x1][hard > 0] = part.instance_id
            areas[part.instance_id] = int(np.count_nonzero(hard))
        return instances, areas

    def next_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Advance one frame and render it (the synthetic camera's 30 Hz loop body)."""
        self.step()
        return self.render()


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of frame ``index`` in a dataset with ``seed`` (independent of N)."""
    return np.random.default_rng((int(seed), int(index)))


def render_conveyor_frame(rng_or_seed: np.random.Generator | int | Sequence[int] | None,
                          size: tuple[int, int] = DEFAULT_SIZE, *, augment: bool = True,
                          density: float = 6.0, return_parts: bool = False,
                          return_instances: bool = False) -> tuple[np.ndarray, ...]:
    """Render one independent conveyor frame.

    Args:
        rng_or_seed: Generator or seed (see :class:`ConveyorScene`).
        size: (width, height).
        augment: Photometric variation on/off.
        density: Mean parts per 320 px of belt.
        return_parts: Also return the drawn parts (tuple of :class:`DrawnPart`).
        return_instances: Also return the instance ids (uint16 (H, W), 0 = no part).

    Returns:
        ``(image_rgb uint8 (H, W, 3), labels uint8 (H, W))``, then ``parts`` and
        ``instances`` if asked (in that order).
    """
    scene = ConveyorScene(rng_or_seed, size, augment=augment, density=density)
    # A random belt phase so stripes are not always aligned with the frame edge.
    scene.belt_phase = float(scene._rng.uniform(0, scene.size[0]))
    image, labels = scene.render()
    extra: tuple = ()
    if return_parts:
        extra += (scene.parts,)
    if return_instances:
        extra += (scene.render_instances(),)
    return (image, labels) + extra


def parse_size(text: str) -> tuple[int, int]:
    """A generated frame's size: ``'320x240'`` -> (width, height), at least 16x16 (the
    package's one size parser, :func:`lw_refinenet_ros.sizes.parse_size`)."""
    return sizes.parse_size(text, minimum=16, what='Size')


def write_classes_yaml(path: str | os.PathLike[str],
                       names: Sequence[str] = CLASS_NAMES,
                       colors: Sequence[Sequence[int]] = CLASS_COLORS) -> None:
    """Write ``classes.yaml`` in the one class-file format (:mod:`lw_refinenet_ros.classes`)."""
    from lw_refinenet_ros.classes import write_class_file

    write_class_file(path, names, colors)


def write_conveyor_dataset(out: str | os.PathLike[str], count: int, seed: int,
                           size: tuple[int, int] = DEFAULT_SIZE, *, start: int = 0,
                           augment: bool = True, instances: bool = True,
                           progress: Callable[[int], None] | None = None) -> Path:
    """Write ``count`` frames in the generic folder layout.

    Layout: ``images/NNNNNN.png`` (RGB), ``labels/NNNNNN.png`` (8-bit class ids) and
    ``classes.yaml``; readable by :class:`lw_refinenet_ros.data.datasets.FolderDataset`.
    With ``instances``, also ``instances/NNNNNN.png``: 16-bit part ids, 0 where no part
    lies (read with :func:`lw_refinenet_ros.data.instances.read_instances`).

    Returns:
        The output folder.
    """
    if count < 1:
        raise ConfigError(f'count must be >= 1, got {count}.')
    root = Path(out)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'labels').mkdir(parents=True, exist_ok=True)
    write_classes_yaml(root / 'classes.yaml')
    if instances:
        (root / 'instances').mkdir(exist_ok=True)
    for index in range(start, start + count):
        image, labels, *rest = render_conveyor_frame(frame_rng(seed, index), size,
                                                     augment=augment,
                                                     return_instances=instances)
        stem = f'{index:06d}'
        cv2.imwrite(str(root / 'images' / f'{stem}.png'), image[..., ::-1])
        cv2.imwrite(str(root / 'labels' / f'{stem}.png'), labels)
        if instances:
            cv2.imwrite(str(root / 'instances' / f'{stem}.png'), rest[0])
        if progress is not None:
            progress(index - start + 1)
    return root
