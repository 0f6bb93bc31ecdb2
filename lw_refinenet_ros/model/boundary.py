"""The optional part-boundary output: where one part ends and the next of its class begins.

Class labels cannot say where two touching or overlapping bolts meet: both are ``bolt``. A
small head on the decoder's fused stride-4 features (the classifier's input) predicts, per
stride-4 cell, whether the cell lies on a seam between two different parts of one class. Its
logit is appended to the class logits as channel K, so the network stays single-output and
every backend (torch, ONNX Runtime, OpenVINO, int8) runs it unchanged; the engine splits the
channel off before the argmax (``engine/frames.py``) and hands its probability to the object
detector (:mod:`lw_refinenet_ros.objects.boundary`).

A checkpoint says it has the head with ``metadata['boundary_channel'] = True`` and carries
the ``boundary.*`` weights; a checkpoint without both loads and runs exactly as before. The
head costs about 2 % of the network's multiply-accumulates (a 1x1 to 32 channels, two small
3x3s), and its receptive field (+-2 cells, +-8 px) sees both sides of a seam.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
import torch.nn.functional as F

from lw_refinenet_ros.errors import CheckpointError

#: Checkpoint metadata key that declares the boundary channel.
BOUNDARY_FLAG = 'boundary_channel'
#: State-dict prefix of the head's weights.
BOUNDARY_PREFIX = 'boundary.'
#: Width of the decoder features the head reads (the classifier's input).
FEATURE_CHANNELS = 256
_HIDDEN = 32
_INNER = 16


class BoundaryHead(nn.Module):
    """Decoder features (N, 256, h, w) -> one part-boundary logit per cell (N, 1, h, w)."""

    def __init__(self, in_channels: int = FEATURE_CHANNELS) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, _HIDDEN, 1)
        self.mix = nn.Conv2d(_HIDDEN, _INNER, 3, padding=1)
        self.out = nn.Conv2d(_INNER, 1, 3, padding=1)
        # Start at "no seam anywhere" (sigmoid(-4) = 0.018): an untrained head splits nothing.
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, -4.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.mix(F.relu(self.reduce(features)))))


def boundary_flag(metadata: Mapping[str, Any], state_dict: Mapping[str, Any],
                  source: str) -> bool:
    """Whether a checkpoint has the boundary channel, after checking that its metadata flag
    and its weights agree.

    Raises:
        CheckpointError: A flag that is not a bool, a flag without ``boundary.*`` weights, or
            such weights without the flag.
    """
    flag = metadata.get(BOUNDARY_FLAG, False)
    if not isinstance(flag, bool):
        raise CheckpointError(f'{source}: metadata {BOUNDARY_FLAG!r} is {flag!r}; it must be '
                              f'true or false (true: the file has the part-boundary head).')
    has_keys = any(str(key).startswith(BOUNDARY_PREFIX) for key in state_dict)
    if flag and not has_keys:
        raise CheckpointError(f'{source}: metadata says {BOUNDARY_FLAG}: true but the file '
                              f'has no {BOUNDARY_PREFIX}* weights; re-save it with the head '
                              f'(lw-refinenet train-boundary) or drop the flag.')
    if has_keys and not flag:
        raise CheckpointError(f'{source} has {BOUNDARY_PREFIX}* weights but its metadata '
                              f'does not declare {BOUNDARY_FLAG}: true; save it with '
                              f'save_checkpoint(..., metadata={{{BOUNDARY_FLAG!r}: True}}).')
    return flag

