"""The frame the engine warms up and checks agreement on when the caller passes none.

A blank or uniform frame would let any backend agree with the reference trivially, so the
frame has what the gate needs to see: texture, sharp and soft edges, small and large regions
in several colours. It is drawn here (numpy and OpenCV, seeded, the same every time) so that
the engine needs nothing from the data package. It looks like a top-down view of parts on a
belt: a textured grey band on a darker floor, with discs, rings, bars and plates in saturated
colours, each with a dark rim and a soft shadow. Callers that have a real frame (``segment``,
``eval``, a camera) pass it instead.
"""

from __future__ import annotations

import cv2
import numpy as np

_COLORS = ((200, 40, 40), (40, 160, 60), (210, 180, 40), (60, 90, 200), (180, 180, 190),
           (150, 70, 160))


#: Frames with more pixels are drawn at this many and enlarged (a 4K frame in milliseconds).
_DRAWN_PIXELS = 640 * 480


def warmup_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic textured RGB uint8 frame of ``height`` x ``width`` (see the module
    docstring)."""
    if height * width > _DRAWN_PIXELS:
        scale = (_DRAWN_PIXELS / (height * width)) ** 0.5
        small = _draw(max(1, round(height * scale)), max(1, round(width * scale)), seed)
        return np.ascontiguousarray(cv2.resize(small, (width, height),
                                               interpolation=cv2.INTER_LINEAR))
    return _draw(height, width, seed)


def _draw(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = max(min(height, width), 1)
    image = np.empty((height, width, 3), np.float32)
    image[:] = (55, 50, 45)  # the floor beside the belt
    top, bottom = int(height * 0.15), int(np.ceil(height * 0.85))
    image[top:bottom] = (118, 118, 112)  # the belt
    # Fine belt texture and a slow lighting gradient across the frame.
    image += 6.0 * rng.standard_normal((height, width, 1), dtype=np.float32)
    image *= np.linspace(0.85, 1.1, width, dtype=np.float32)[None, :, None]
    count = max(4, (width * height) // 6000)  # at most 51: see _DRAWN_PIXELS
    for index in range(count):
        color = np.array(_COLORS[index % len(_COLORS)], np.float32) * rng.uniform(0.8, 1.1)
        cx = int(rng.uniform(0.05, 0.95) * width)
        cy = int(rng.uniform(top + 0.05 * height, bottom - 0.05 * height))
        radius = max(2, int(rng.uniform(0.03, 0.09) * size))
        # Everything below happens in the part's neighbourhood only (cheap at 4K too).
        reach = 3 * radius + 4
        x0, x1 = max(0, cx - reach), min(width, cx + reach)
        y0, y1 = max(0, cy - reach), min(height, cy + reach)
        if x1 <= x0 or y1 <= y0:
            continue
        center = (cx - x0, cy - y0)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        shape = index % 4
        if shape in (0, 1):  # disc, or ring (a washer) whose hole shows the belt
            cv2.circle(mask, center, radius, 255, -1, cv2.LINE_AA)
            if shape == 1:
                cv2.circle(mask, center, max(1, radius // 2), 0, -1, cv2.LINE_AA)
        else:  # bar (a bolt) or plate (a bracket), rotated
            extent = (radius * 4, max(2, radius)) if shape == 2 else (radius * 2.5,
                                                                      radius * 1.6)
            box = (center, extent, float(rng.uniform(0, 180)))
            cv2.fillPoly(mask, [cv2.boxPoints(box).astype(np.int32)], 255, cv2.LINE_AA)
        patch = image[y0:y1, x0:x1]
        alpha = mask.astype(np.float32)[:, :, None] / 255.0
        offset = max(1, radius // 4)
        shadow = np.roll(cv2.GaussianBlur(alpha[:, :, 0], (0, 0), max(1.0, radius / 4)),
                         (offset, offset), axis=(0, 1))[:, :, None]
        patch *= 1.0 - 0.45 * shadow
        rim = cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(np.float32)[:, :, None]
        rim /= 255.0
        patch[:] = patch * (1.0 - rim) + rim * color * 0.35
        patch[:] = patch * (1.0 - alpha) + alpha * color
    return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
