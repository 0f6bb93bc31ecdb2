"""The node's live int8 build (ros/live_int8.py) with the real cache: a full disk while the
int8 model is written ends the attempt with the reason, and leaves no int8 model, complete
or half-written, in the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lw_refinenet_ros.data.conveyor import render_conveyor_frame
from lw_refinenet_ros.engine import quantize
from lw_refinenet_ros.engine.live_calibration import LiveInt8, LiveInt8Settings
from lw_refinenet_ros.ros.live_int8 import build_candidate
from lw_refinenet_ros.segmenter import Segmenter

WIDTH, HEIGHT = 64, 48


def test_a_full_disk_leaves_nothing_in_the_cache(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / 'cache'
    segmenter = Segmenter.from_options({'device': 'cpu', 'backend': 'torch',
                                        'precision': 'fp32', 'cache_dir': str(cache),
                                        'objects.enabled': False},
                                       warmup_size=(HEIGHT, WIDTH))

    def full_disk(fp32_xml, out_xml, *args, **kwargs):
        Path(out_xml).write_bytes(b'<half an int8 model')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(quantize, 'quantize_batches', full_disk)
    live = LiveInt8(LiveInt8Settings(frames=8, check_frames=1, gather_s=0.0),
                    lambda calibration, sample: build_candidate(segmenter, 'openvino',
                                                                calibration, sample),
                    current='torch/fp32', low_priority=False)
    for index in range(9):
        image = render_conveyor_frame(index, (WIDTH, HEIGHT))[0]
        live.observe([image], ['rgb'], [np.zeros((HEIGHT, WIDTH), np.uint8)])
    live._thread.join(600)
    assert live.outcome == 'failed' and live.take() is None
    assert 'No space left on device' in live.status and 'running on torch/fp32' in live.status
    files = [p for p in cache.rglob('*') if p.is_file()]
    assert files, 'the fp32 model the int8 build starts from is cached as usual'
    assert not [p for p in files if p.read_bytes().startswith(b'<half')]
    assert not list(cache.rglob('.tmp-*'))
