"""Numbers the package agrees on are defined once, in ``lw_refinenet_ros/constants.py``
(normalisation, ignore index, output stride) and ``palette.py`` (the VOC names and colours)."""

from __future__ import annotations

from pathlib import Path
import re

import numpy as np

from lw_refinenet_ros import constants

PACKAGE = Path(__file__).resolve().parents[2] / 'lw_refinenet_ros'
# A second definition of any of these is what the test looks for.
DEFINITIONS = {
    'ImageNet mean/std literal': re.compile(r'0\.485|0\.229'),
    'ignore index': re.compile(r'^\s*IGNORE_INDEX\s*=', re.M),
    'output stride': re.compile(r'^\s*OUTPUT_STRIDE\s*=', re.M),
    'VOC class names': re.compile(r"'aeroplane'"),
    'VOC colour map': re.compile(r'\(7 - (bit|shift)\)'),
}
HOMES = {'ImageNet mean/std literal': 'constants.py', 'ignore index': 'constants.py',
         'output stride': 'constants.py', 'VOC class names': 'palette.py',
         'VOC colour map': 'palette.py'}


def test_each_constant_is_defined_in_one_module() -> None:
    found: dict[str, list[str]] = {what: [] for what in DEFINITIONS}
    for path in sorted(PACKAGE.rglob('*.py')):
        text = path.read_text(encoding='utf-8')
        for what, pattern in DEFINITIONS.items():
            if pattern.search(text):
                found[what].append(str(path.relative_to(PACKAGE)))
    assert found == {what: [HOMES[what]] for what in DEFINITIONS}


def test_users_get_the_same_values() -> None:
    from lw_refinenet_ros import reference_pipeline
    from lw_refinenet_ros.data import datasets
    from lw_refinenet_ros.evaluation import metrics
    from lw_refinenet_ros.palette import VOC_CLASSES, voc_palette
    from lw_refinenet_ros.training import transforms

    for module in (transforms, reference_pipeline):
        np.testing.assert_allclose(module.IMAGENET_MEAN, constants.IMAGENET_MEAN, rtol=1e-6)
        np.testing.assert_allclose(module.IMAGENET_STD, constants.IMAGENET_STD, rtol=1e-6)
    assert transforms.IGNORE_INDEX == metrics.IGNORE_INDEX == datasets.IGNORE_INDEX == 255
    assert datasets.VOC_CLASSES is VOC_CLASSES
    assert datasets.voc_colors(21) == tuple(tuple(int(v) for v in c) for c in voc_palette(21))
