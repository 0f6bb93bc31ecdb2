"""The training loss: per-pixel cross-entropy, optionally weighted toward label edges.

Most errors of a stride-4 segmentation model lie on part outlines and in thin details (a nut
showing as slivers between a gear's teeth, a spring's coils), yet those pixels are a small
share of a frame, so plain cross-entropy spends most of its gradient on easy surface pixels.
``boundary_weight > 1`` multiplies the loss of every pixel within ``boundary_px`` of an edge
between two (non-ignored) classes. Edges next to the ignore label (crop padding, unsure
annotations) do not count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lw_refinenet_ros.constants import IGNORE_INDEX


def label_edges(labels: torch.Tensor, width: int) -> torch.Tensor:
    """bool (N, H, W): pixels within ``width`` pixels of an edge between two classes.

    Args:
        labels: (N, H, W) integer labels, ``IGNORE_INDEX`` for ignored pixels.
        width: Half-width of the edge band in pixels (0: only the pixels on either side).
    """
    valid = labels != IGNORE_INDEX
    edge = torch.zeros_like(valid)
    horizontal = (labels[:, :, 1:] != labels[:, :, :-1]) & valid[:, :, 1:] & valid[:, :, :-1]
    vertical = (labels[:, 1:, :] != labels[:, :-1, :]) & valid[:, 1:, :] & valid[:, :-1, :]
    edge[:, :, 1:] |= horizontal
    edge[:, :, :-1] |= horizontal
    edge[:, 1:, :] |= vertical
    edge[:, :-1, :] |= vertical
    if width > 0:
        size = 2 * width + 1
        edge = F.max_pool2d(edge[:, None].float(), size, stride=1, padding=width)[:, 0] > 0
    return edge & valid


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, boundary_weight: float = 1.0,
                      boundary_px: int = 2) -> torch.Tensor:
    """Mean cross-entropy over non-ignored pixels, edge pixels weighted ``boundary_weight``.

    With ``boundary_weight == 1`` this is exactly ``F.cross_entropy(..., ignore_index=255)``.
    """
    if boundary_weight == 1.0:
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
    per_pixel = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction='none')
    valid = labels != IGNORE_INDEX
    weights = valid.float()
    weights[label_edges(labels, boundary_px)] = float(boundary_weight)
    return (per_pixel * weights).sum() / weights.sum().clamp_min(1.0)
