"""Check a dataset before training on it: classes and their pixel shares, images without
annotations, unreadable or missing files, size mismatches, annotations outside the image.

Every finding names its file. Nothing here raises for a problem in the data: problems are
collected so that one run lists them all (``lw-refinenet data check``); only a dataset that
cannot be opened at all (no such folder, not a COCO file) is a ConfigError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lw_refinenet_ros.constants import IGNORE_INDEX
from lw_refinenet_ros.data.annotated import Problem
from lw_refinenet_ros.errors import ConfigError, LWRefineNetError


@dataclass
class CheckReport:
    """What :func:`check_dataset` found."""

    data: str
    layout: str
    images: int
    class_names: tuple[str, ...]
    pixels: np.ndarray  # pixel count per class
    images_with: np.ndarray  # images showing each class
    ignored_pixels: int = 0
    unannotated: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    previews: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # 'WxH' -> image count

    @property
    def ok(self) -> bool:
        return not self.problems

    def shares(self) -> np.ndarray:
        total = self.pixels.sum()
        return self.pixels / total if total else self.pixels.astype(float)

    def as_dict(self) -> dict[str, Any]:
        shares = self.shares()
        return {'data': self.data, 'layout': self.layout, 'images': self.images,
                'sizes': self.sizes,
                'classes': [{'id': i, 'name': n, 'pixel_share': float(shares[i]),
                             'images': int(self.images_with[i])}
                            for i, n in enumerate(self.class_names)],
                'ignored_pixels': self.ignored_pixels, 'unannotated_images': self.unannotated,
                'problems': [{'file': p.file, 'message': p.message, 'fix': p.fix}
                             for p in self.problems],
                'previews': self.previews}

    def format(self) -> str:
        shares = self.shares()
        lines = [f'{self.data}: {self.layout}, {self.images} images '
                 f'({", ".join(f"{n} x {s}" for s, n in sorted(self.sizes.items()))})',
                 f'{"id":>3}  {"class":<20} {"pixels":>8} {"images":>7}']
        for i, name in enumerate(self.class_names):
            lines.append(f'{i:>3}  {name:<20} {shares[i]:>7.1%} {int(self.images_with[i]):>7}')
        empty = [n for i, n in enumerate(self.class_names) if i > 0 and not self.pixels[i]]
        if empty:
            lines.append(f'classes never annotated: {", ".join(empty)} (the model cannot learn '
                         f'them; label some or drop them from the categories)')
        if self.ignored_pixels:
            lines.append(f'ignored (255 / iscrowd) pixels: {self.ignored_pixels}')
        if self.unannotated:
            shown = ', '.join(self.unannotated[:10])
            more = f' and {len(self.unannotated) - 10} more' if len(self.unannotated) > 10 \
                else ''
            lines.append(f'{len(self.unannotated)} image(s) without annotations (trained as '
                         f'all background; label them or leave them out): {shown}{more}')
        if self.problems:
            lines.append(f'{len(self.problems)} problem(s):')
            lines += [f'  {p}' for p in self.problems]
        else:
            lines.append('no problems found')
        if self.previews:
            lines.append(f'previews: {", ".join(self.previews)}')
        return '\n'.join(lines)


def _open(data: str, layout: str, images: str | None, classes: str | None) -> Any:
    from lw_refinenet_ros.data.datasets import annotation_dataset, detect_layout, open_dataset

    path = Path(data)
    if not path.exists():
        raise ConfigError(f'{path} does not exist.')
    if layout == 'auto':
        layout = detect_layout(path)
    if layout in ('coco', 'labelme'):
        return annotation_dataset(path, layout, images=images, classes=classes, strict=False)
    return open_dataset(path, layout, classes=classes)


def _file_of(dataset: Any, index: int) -> str:
    if hasattr(dataset, 'items'):
        return str(dataset.items[index].path)
    if hasattr(dataset, 'pairs'):
        return str(dataset.pairs[index][0])
    return dataset.name(index)


def overlay_preview(image: np.ndarray, labels: np.ndarray,
                    colors: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """RGB image with the labels blended in their colours, outlines in white, ignore grey."""
    palette = np.zeros((256, 3), np.uint8)
    palette[:len(colors)] = np.asarray(colors, np.uint8)
    palette[IGNORE_INDEX] = (128, 128, 128)
    painted = palette[labels]
    annotated = labels > 0
    out = image.copy()
    out[annotated] = (0.45 * image[annotated] + 0.55 * painted[annotated]).astype(np.uint8)
    edges = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges] = 255
    return out


def check_dataset(data: str | os.PathLike[str], *, layout: str = 'auto',
                  images: str | None = None, classes: str | None = None,
                  previews: int = 4, preview_dir: str | os.PathLike[str] | None = None
                  ) -> CheckReport:
    """Read every image and label of a dataset and report what is wrong with it.

    Args:
        data: Dataset path (COCO file or folder, LabelMe folder, VOC/folder/Cityscapes).
        layout: Layout name or ``'auto'``.
        images: Image folder of a COCO/LabelMe dataset.
        classes: Class file.
        previews: How many overlay previews to write (images with the most classes first).
        preview_dir: Where to write them (None: none are written).

    Raises:
        ConfigError: The dataset cannot be opened at all.
    """
    dataset = _open(str(data), layout, images, classes)
    k = dataset.num_classes
    problems: list[Problem] = list(getattr(dataset, 'problems', []))
    reported = {p.file for p in problems}
    pixels = np.zeros(k, np.int64)
    images_with = np.zeros(k, np.int64)
    ignored = 0
    unannotated: list[str] = []
    sizes: dict[str, int] = {}
    candidates: list[tuple[int, int]] = []
    for index in range(len(dataset)):
        file = _file_of(dataset, index)
        if hasattr(dataset, 'items') and not dataset.items[index].path.is_file():
            continue  # the reader has reported the missing image
        try:
            image, labels = dataset[index]
        except LWRefineNetError as error:
            if file not in reported:
                problems.append(Problem(file, str(error)))
            continue
        except Exception as error:  # noqa: BLE001 - report any unreadable item by its file
            problems.append(Problem(file, f'cannot be read ({type(error).__name__}: {error})'))
            continue
        size = f'{image.shape[1]}x{image.shape[0]}'
        sizes[size] = sizes.get(size, 0) + 1
        counts = np.bincount(labels.ravel(), minlength=256)
        ignored += int(counts[IGNORE_INDEX])
        unknown = [v for v in np.flatnonzero(counts[k:IGNORE_INDEX]) + k]
        if unknown:
            problems.append(Problem(file, f'label values {unknown} are not classes (0..{k - 1}) '
                                    f'or 255', 'fix the labels or the class file'))
        pixels += counts[:k]
        present = counts[:k] > 0
        images_with += present
        if not present[1:].any() and not counts[IGNORE_INDEX]:
            unannotated.append(Path(file).name)
        candidates.append((int(present.sum()), index))
    report = CheckReport(str(data), getattr(dataset, 'layout', layout), len(dataset),
                         tuple(dataset.class_names), pixels, images_with, ignored, unannotated,
                         problems, sizes=sizes)
    if preview_dir is not None and previews > 0 and candidates:
        out = Path(preview_dir)
        out.mkdir(parents=True, exist_ok=True)
        chosen = sorted(candidates, key=lambda c: (-c[0], c[1]))[:previews]
        for _, index in chosen:
            image, labels = dataset[index]
            target = out / f'{Path(_file_of(dataset, index)).stem}_check.png'
            preview = overlay_preview(image, labels, tuple(dataset.colors))
            cv2.imwrite(str(target), np.concatenate([image, preview], axis=1)[..., ::-1])
            report.previews.append(str(target))
    return report
