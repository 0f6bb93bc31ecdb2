"""Instance ground truth: which part each pixel belongs to (numpy + OpenCV, no torch).

Object scores (``lw-refinenet eval``, the demo) need to know where one part ends and the
next begins, which class labels cannot say when two parts of one class touch. Three sources,
best first:

* the conveyor generator, which knows every part it drew (``conveyor:SEED`` data);
* the annotation files of COCO and LabelMe data, one instance per region
  (:meth:`~lw_refinenet_ros.data.annotated.AnnotatedDataset.instances`);
* ``instances/<stem>.png`` next to ``labels/`` in the folder layout: 16-bit PNGs of part ids,
  0 where no part lies (``lw-refinenet make-dataset`` writes them);
* otherwise, one part per connected region of each part class in the labels: exact when
  parts never touch, and an approximation (touching parts count as one) when they do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from lw_refinenet_ros.errors import ConfigError

INSTANCES_DIR = 'instances'


def read_instances(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an instance PNG as uint16 part ids (H, W).

    Raises:
        ConfigError: When the file is missing or not a single-channel 8/16-bit image.
    """
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ConfigError(f'Cannot read instance ground truth {path}: expected a 16-bit '
                          f'greyscale PNG of part ids (0 = no part).')
    if data.ndim != 2 or data.dtype not in (np.uint8, np.uint16):
        raise ConfigError(f'{path} is {data.dtype} with shape {data.shape}; instance ground '
                          f'truth must be a single-channel 8- or 16-bit PNG of part ids.')
    return data.astype(np.uint16, copy=False)


def write_instances(path: str | os.PathLike[str], instances: np.ndarray) -> None:
    """Write part ids as a 16-bit PNG (lossless, readable by :func:`read_instances`)."""
    if instances.ndim != 2 or instances.min(initial=0) < 0 or instances.max(initial=0) > 65535:
        raise ValueError(f'instances must be (H, W) ids in 0..65535, got shape '
                         f'{instances.shape}.')
    if not cv2.imwrite(str(path), instances.astype(np.uint16)):
        raise ConfigError(f'Cannot write {path}.')


def instances_from_labels(labels: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """One id per 8-connected region of each part class (the fallback ground truth)."""
    out = np.zeros(labels.shape, np.uint16)
    next_id = 1
    for class_id in np.unique(labels):
        if class_id >= parts.size or not parts[class_id]:
            continue
        count, components = cv2.connectedComponents((labels == class_id).astype(np.uint8),
                                                    connectivity=8)
        if count > 1:
            region = components > 0
            out[region] = (components[region] + next_id - 1).astype(np.uint16)
            next_id += count - 1
    return out


InstancesOf = Callable[[int, np.ndarray], tuple[np.ndarray, 'dict[int, int] | None']]


def instance_source(dataset: Any, parts: np.ndarray) -> tuple[InstancesOf, str]:
    """How to get the instance ground truth of item ``i`` of ``dataset``.

    Args:
        dataset: A dataset from :func:`lw_refinenet_ros.data.datasets.open_dataset`.
        parts: bool lookup by class id of the part classes (for the fallback).

    Returns:
        ``(instances_of(index, labels), kind)``: ``instances_of`` gives the part ids and,
        from the generator only, each part's unoccluded area by id (else None); kind is
        ``'generator'``, ``'annotations'``, ``'files'`` or ``'connected regions'`` (say
        which in reports: the last is an approximation).
    """
    if getattr(dataset, 'layout', None) == 'conveyor':
        def rendered(index: int, labels: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
            _, _, drawn, instances = dataset.render(index, return_parts=True,
                                                    return_instances=True)
            areas = {p.instance_id: int(p.footprint(dataset.size).sum()) for p in drawn}
            return instances, areas
        return rendered, 'generator'
    if callable(getattr(dataset, 'instances', None)):
        return lambda index, labels: (dataset.instances(index), None), 'annotations'
    pairs: Sequence[tuple[Path, Path]] = getattr(dataset, 'pairs', ())
    files = [Path(label).parent.parent / INSTANCES_DIR / f'{Path(label).stem}.png'
             for _, label in pairs]
    if files and all(path.is_file() for path in files):
        return lambda index, labels: (read_instances(files[index]), None), 'files'
    return (lambda index, labels: (instances_from_labels(labels, parts), None),
            'connected regions')
