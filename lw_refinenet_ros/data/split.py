"""Seeded train/validation split of a dataset by image, for data that comes without one.

A split by image (never by crop or by pixel) keeps every validation image unseen; the seed
makes it the same on every run, so a resumed or repeated training validates on the same
images and the report can name them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lw_refinenet_ros.errors import ConfigError


class DatasetView:
    """Some items of a dataset, in a given order, with its classes and helpers."""

    def __init__(self, base: Any, indices: Sequence[int]) -> None:
        self.base = base
        self.indices = [int(i) for i in indices]
        self.class_names = base.class_names
        self.colors = base.colors
        self.layout = getattr(base, 'layout', 'folder')
        if callable(getattr(base, 'instances', None)):
            self.instances = lambda index: base.instances(self.indices[index])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.base[self.indices[index]]

    def name(self, index: int) -> str:
        return self.base.name(self.indices[index])

    def image_sizes(self) -> list[tuple[int, int]]:
        sizes = self.base.image_sizes()
        return [sizes[i] for i in self.indices]


def holdout_count(total: int, fraction: float) -> int:
    """How many of ``total`` images go to validation: ``fraction`` of them, at least 1."""
    return min(total - 1, max(1, int(round(total * fraction))))


def split_by_image(dataset: Any, fraction: float, seed: int) -> tuple[DatasetView, DatasetView]:
    """(train, validation) views; validation holds :func:`holdout_count` images.

    Raises:
        ConfigError: Fewer than two images (nothing would be left to train or to validate).
    """
    total = len(dataset)
    if total < 2:
        where = getattr(dataset, 'root', None) or 'the dataset'
        raise ConfigError(f'{where} has {total} image(s): a model cannot be trained and '
                          f'validated on that. Label more images (a few dozen is a start), '
                          f'or pass --val-data with separate validation images.')
    order = np.random.default_rng(seed).permutation(total)
    count = holdout_count(total, fraction)
    return DatasetView(dataset, sorted(order[count:])), DatasetView(dataset, sorted(order[:count]))
