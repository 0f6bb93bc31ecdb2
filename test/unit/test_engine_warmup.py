"""The engine's own warm-up frame: deterministic, textured, any size, drawn without data/."""

from __future__ import annotations

import numpy as np
import pytest

from lw_refinenet_ros.engine.warmup import warmup_frame


@pytest.mark.parametrize('height, width', [(1, 1), (37, 53), (240, 320), (480, 640),
                                           (1080, 1920)])
def test_any_size_is_an_rgb_frame(height: int, width: int) -> None:
    frame = warmup_frame(height, width)
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
    assert frame.flags.c_contiguous


def test_the_same_frame_every_time_and_not_trivial() -> None:
    frame = warmup_frame(240, 320)
    assert np.array_equal(frame, warmup_frame(240, 320))
    assert not np.array_equal(frame, warmup_frame(240, 320, seed=1))
    # Texture, edges and several colours: a gate on a blank frame would agree trivially.
    colours = {tuple(c) for c in (frame // 32).reshape(-1, 3)}
    assert len(colours) >= 20
    edges = np.abs(np.diff(frame.astype(int), axis=1)).max(axis=2)
    assert (edges > 60).mean() > 0.001
    assert frame.std() > 20
