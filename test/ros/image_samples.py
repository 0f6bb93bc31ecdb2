"""Build camera messages in the packed encodings (YUV 4:2:2, Bayer) from RGB test images."""

from __future__ import annotations

import numpy as np

# BT.601 limited-range Y, U, V of the colours OpenCV's YUV 4:2:2 decoder expects.
YUV_OF = {(0, 0, 0): (16, 128, 128), (255, 0, 0): (81, 90, 240), (0, 0, 255): (41, 240, 110)}

# Row/column of the red site in each 2x2 Bayer tile (blue is on the opposite corner).
BAYER_RED_SITE = {'bayer_rggb8': (0, 0), 'bayer_bggr8': (1, 1), 'bayer_gbrg8': (1, 0),
                  'bayer_grbg8': (0, 1)}


def pack_yuv422(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Pack black/red/blue pixel pairs as UYVY (``yuv422``) or YUYV (``yuv422_yuy2``).

    Both pixels of a pair must share U and V, so colour edges must fall on even columns.
    """
    height, width = rgb.shape[:2]
    packed = np.zeros((height, width * 2), np.uint8)
    for y in range(height):
        for x in range(0, width, 2):
            y0, u, v = YUV_OF[tuple(int(c) for c in rgb[y, x])]
            y1 = YUV_OF[tuple(int(c) for c in rgb[y, x + 1])][0]
            quad = (u, y0, v, y1) if encoding == 'yuv422' else (y0, u, y1, v)
            packed[y, 2 * x:2 * x + 4] = quad
    return packed.reshape(height, width, 2)


def bayer_mosaic(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Sample an RGB image the way a sensor with this Bayer pattern would."""
    red_row, red_col = BAYER_RED_SITE[encoding]
    mosaic = rgb[:, :, 1].copy()
    mosaic[red_row::2, red_col::2] = rgb[red_row::2, red_col::2, 0]
    mosaic[1 - red_row::2, 1 - red_col::2] = rgb[1 - red_row::2, 1 - red_col::2, 2]
    return mosaic
