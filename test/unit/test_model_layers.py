"""Building blocks: the chained CRP against hand-computed numbers, and decoder upsampling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lw_refinenet_ros.model.layers import CRPBlock, crp, upsample_like


def _crp_with_scalar_weights(weight: float, num_stages: int = 4) -> CRPBlock:
    block = CRPBlock(1, num_stages)
    with torch.no_grad():
        for conv in block.values():
            conv.weight.fill_(weight)
    return block


def test_crp_is_chained_hand_computed() -> None:
    # One channel, one row, a spike of 10 at the left end, every 1x1 weight 0.5.
    # Chained: stage i pools the previous stage's output, so the spike widens by 2 columns per
    # stage and halves: t1 = 5 on cols 0-2, t2 = 2.5 on 0-4, t3 = 1.25 on 0-6, t4 = 0.625 on
    # 0-8. The sum x + t1 + t2 + t3 + t4 is:
    expected = [19.375, 9.375, 9.375, 4.375, 4.375, 1.875, 1.875, 0.625, 0.625, 0.0, 0.0, 0.0]
    # Pooling the block input at every stage would give 10+4*... on cols 0-2 and 0 beyond.
    x = torch.zeros(1, 1, 1, 12)
    x[..., 0] = 10.0
    with torch.no_grad():
        out = _crp_with_scalar_weights(0.5)(x)
    assert out.flatten().tolist() == expected


def test_crp_pool_pads_with_minus_infinity_and_keeps_the_size() -> None:
    # With zero padding the border of an all-negative map would pick up 0s.
    x = -torch.ones(2, 1, 6, 7)
    with torch.no_grad():
        out = _crp_with_scalar_weights(1.0)(x)
    assert out.shape == x.shape
    assert torch.equal(out, torch.full_like(x, -5.0))


def test_crp_pool_window_is_five_by_five() -> None:
    # A spike reaches exactly 2 pixels away after one stage (5x5, stride 1), not 1 (3x3).
    x = torch.zeros(1, 1, 9, 9)
    x[..., 4, 4] = 1.0
    with torch.no_grad():
        out = _crp_with_scalar_weights(1.0, num_stages=1)(x)
    assert out[0, 0, 2, 2] == 1.0 and out[0, 0, 6, 6] == 1.0 and out[0, 0, 1, 4] == 0.0


def test_crp_has_no_bias_and_the_reference_key_names() -> None:
    block = crp(8)
    assert list(block.state_dict()) == [f'0.{i}_outvar_dimred.weight' for i in range(1, 5)]
    assert all(isinstance(m, nn.Conv2d) and m.bias is None and m.kernel_size == (1, 1)
               for m in block[0].values())


def test_upsampling_is_bilinear_with_align_corners_to_the_skip_size() -> None:
    x = torch.tensor([[[[0.0, 3.0]]]])
    skip = torch.zeros(1, 5, 1, 4)
    out = upsample_like(x, skip)
    # align_corners=True spaces the 4 outputs evenly over [0, 3]; False would give
    # [0, 0.75, 2.25, 3].
    assert out.flatten().tolist() == pytest.approx([0.0, 1.0, 2.0, 3.0])
    odd = upsample_like(torch.zeros(1, 2, 3, 4), torch.zeros(1, 1, 5, 7))
    assert odd.shape == (1, 2, 5, 7)
