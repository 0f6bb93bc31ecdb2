"""Draw objects onto an RGB image: box, pick point and id (for segmentation/overlay)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from lw_refinenet_ros.objects.processor import ObjectReport


def draw_objects(rgb: np.ndarray, reports: Sequence[ObjectReport],
                 colors: np.ndarray) -> np.ndarray:
    """Draw every object's box in its class colour, its pick point and its id, in place.

    Confirmed tracks are labelled ``#id``; tentative ones ``?id``, untracked objects get
    their class name only. The pick point is a white-ringed dot so it shows on any colour.

    Args:
        rgb: (H, W, 3) uint8 image, C-contiguous (drawn on and returned).
        reports: Objects of this frame.
        colors: (K, 3) uint8 RGB class colours.
    """
    for report in reports:
        obj = report.object
        color = tuple(int(c) for c in colors[obj.class_id % len(colors)])
        x, y, w, h = obj.bbox
        cv2.rectangle(rgb, (x, y), (x + w - 1, y + h - 1), color, 1)
        px, py = obj.pick
        cv2.circle(rgb, (px, py), 3, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(rgb, (px, py), 2, color, -1, cv2.LINE_AA)
        if report.track_id:
            text = f'{"#" if report.confirmed else "?"}{report.track_id}'
        else:
            text = report.class_name
        origin = (x, max(y - 2, 8))
        cv2.putText(rgb, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 2,
                    cv2.LINE_AA)
        cv2.putText(rgb, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return rgb
