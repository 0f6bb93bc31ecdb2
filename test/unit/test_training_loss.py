"""The training loss: plain cross-entropy by default, label edges weighted on request."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lw_refinenet_ros.constants import IGNORE_INDEX
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.training.loss import label_edges, segmentation_loss
from lw_refinenet_ros.training.trainer import TrainConfig


def square_labels() -> torch.Tensor:
    labels = torch.zeros(1, 12, 12, dtype=torch.long)
    labels[:, 4:8, 4:8] = 3
    return labels


def test_weight_one_is_exactly_torch_cross_entropy_with_ignore() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 12, 12)
    labels = torch.randint(0, 5, (2, 12, 12))
    labels[:, :2] = IGNORE_INDEX
    expected = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
    assert torch.equal(segmentation_loss(logits, labels), expected)


def test_edges_are_the_pixels_on_both_sides_of_a_class_change_widened_by_width() -> None:
    edges = label_edges(square_labels(), 0)[0]
    ring = torch.zeros(12, 12, dtype=torch.bool)
    ring[3:9, 3:9] = True
    ring[5:7, 5:7] = False
    ring[3, 3] = ring[3, 8] = ring[8, 3] = ring[8, 8] = False  # corners touch diagonally only
    assert torch.equal(edges, ring)
    wide = label_edges(square_labels(), 1)[0]
    assert bool(wide[2, 5]) and bool(wide[5, 5]) and not bool(wide[0, 0])


def test_a_border_with_ignored_pixels_is_no_edge() -> None:
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[:, :, 5:] = IGNORE_INDEX  # crop padding
    assert not label_edges(labels, 2).any()


def test_edge_pixels_get_the_weight_and_ignored_pixels_none() -> None:
    labels = square_labels()
    labels[:, 0, :] = IGNORE_INDEX
    logits = torch.zeros(1, 4, 12, 12, requires_grad=True)
    segmentation_loss(logits, labels, boundary_weight=3.0, boundary_px=0).backward()
    grad = logits.grad.abs().sum(dim=1)[0]
    assert grad[0].abs().sum() == 0                      # ignored row
    assert grad[4, 4] == pytest.approx(3 * grad[10, 10])  # edge vs. surface pixel
    assert grad[5, 5] == pytest.approx(grad[10, 10])      # inside the square, off the edge


def test_the_config_refuses_a_non_positive_weight() -> None:
    with pytest.raises(ConfigError, match='boundary_weight'):
        TrainConfig(data='conveyor:1', boundary_weight=0.0).validate()
