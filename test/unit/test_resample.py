"""The CPU preprocessing's shrink (engine/resample.py) is torch's antialiased bilinear
interpolation, without torch: equal to float32 rounding on the sizes a camera and
``max_side`` produce, and the CPU preprocessor uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lw_refinenet_ros.engine.preprocess import CpuPreprocessor, TorchPreprocessor
from lw_refinenet_ros.engine.resample import shrink_chw


def _torch_shrink(chw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return F.interpolate(torch.from_numpy(chw)[None], size=size, mode='bilinear',
                         align_corners=False, antialias=True)[0].numpy()


@pytest.mark.parametrize('source, size', [
    ((480, 640), (240, 320)),    # the packaged model's camera -> network size
    ((1080, 1920), (180, 320)),  # a 6x shrink
    ((481, 641), (240, 320)),    # a factor that is not an integer
    ((37, 53), (20, 29)),
    ((480, 640), (479, 639)),    # hardly any shrink
    ((10, 10), (10, 5)),         # one side unchanged
    ((7, 9), (1, 1)),            # max_side 1
])
def test_the_shrink_equals_torchs_antialiased_bilinear(source: tuple[int, int],
                                                       size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(source))
    chw = (rng.standard_normal((3, *source)) * 2).astype(np.float32)
    ours = shrink_chw(chw, size)
    assert ours.dtype == np.float32 and ours.shape == (3, *size) and ours.flags.c_contiguous
    np.testing.assert_allclose(ours, _torch_shrink(chw, size), rtol=0, atol=2e-6)


def test_a_constant_image_stays_constant_at_the_borders_too() -> None:
    """The weights are normalised per output pixel: no darkened border from padding."""
    chw = np.full((3, 45, 61), 1.5, np.float32)
    assert np.allclose(shrink_chw(chw, (20, 27)), 1.5, atol=1e-6)


def test_the_cpu_preprocessor_shrinks_like_the_torch_one() -> None:
    image = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    for order in ('rgb', 'bgr'):
        cpu = CpuPreprocessor()([image], [order], (48, 64))
        device = TorchPreprocessor('cpu')([image], [order], (48, 64)).numpy()
        assert cpu.shape == (1, 3, 48, 64)
        np.testing.assert_allclose(cpu, device, rtol=0, atol=2e-6)
