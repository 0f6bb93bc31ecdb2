"""The files every dataset reader opens: images as RGB and class files, plus VOC colours.

They sit below :mod:`.datasets` and the annotation readers (:mod:`.coco`, :mod:`.labelme`,
:mod:`.annotated`) so that the dispatcher can import the readers and the readers these helpers
without an import circle.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from lw_refinenet_ros.classes import read_class_file
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.palette import voc_palette


def voc_colors(n: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC colour map (:func:`lw_refinenet_ros.palette.voc_palette`) as tuples."""
    return tuple((int(r), int(g), int(b)) for r, g, b in voc_palette(n))


# --------------------------------------------------------------------------- class files


def load_class_file(path: str | os.PathLike[str]) -> tuple[tuple[str, ...],
                                                            tuple[tuple[int, int, int], ...]
                                                            | None]:
    """Class names and colours (None when the file gives none) from a class file in any form
    :mod:`lw_refinenet_ros.classes` reads; colours the file leaves out get VOC colours.

    Raises:
        ConfigError: Missing file, or content in none of the accepted forms.
    """
    class_file = read_class_file(path)
    class_file.class_map()  # unique, non-empty names: the same check the node makes
    given = any(color is not None for color in class_file.colors)
    return class_file.names, (class_file.filled_colors() if given else None)


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError(f'Cannot read image {path}; is it a valid image file?')
    return np.ascontiguousarray(image[..., ::-1])
