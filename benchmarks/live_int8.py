"""Live int8 on the packaged model: how long the calibration takes, its agreement, its speed.

The node's path without ROS: a :class:`~lw_refinenet_ros.engine.live_calibration.LiveInt8`
fed like the node's worker feeds it (each frame segmented by the current engine, OpenVINO
fp32, then observed), with the node's builder (``ros/live_int8.py``: NNCF on a background
thread at nice +10). Frames come from the conveyor generator (seeds 9000+, not a training
seed): ``--frames`` calibration frames, ``--check`` other frames for the agreement, then
``--timed`` frames segmented by fp32 and int8 in turn (median milliseconds of whole
``segment_batch`` calls, confidence and statistics included). The runtime cache is a fresh
temporary folder, so the build is a cold one.

Usage::

    .venv/bin/python benchmarks/live_int8.py [--size 320x240] [--frames 200] [--check 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from lw_refinenet_ros.data.conveyor import render_conveyor_frame
from lw_refinenet_ros.engine.live_calibration import LiveInt8, LiveInt8Settings
from lw_refinenet_ros.ros.live_int8 import build_candidate
from lw_refinenet_ros.segmenter import Segmenter
from lw_refinenet_ros.sizes import parse_size_hw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='320x240', help='WIDTHxHEIGHT of the frames')
    parser.add_argument('--frames', type=int, default=200, help='calibration frames')
    parser.add_argument('--check', type=int, default=30, help='agreement frames')
    parser.add_argument('--timed', type=int, default=30, help='frames timed per precision')
    args = parser.parse_args()
    height, width = parse_size_hw(args.size)
    segmenter = Segmenter.from_options(
        {'device': 'cpu', 'backend': 'openvino', 'precision': 'fp32',
         'cache_dir': tempfile.mkdtemp(), 'objects.enabled': False},
        warmup_size=(height, width))
    frames = [render_conveyor_frame(9000 + i, (width, height))[0]
              for i in range(args.frames + args.check + args.timed)]
    live = LiveInt8(LiveInt8Settings(frames=args.frames, check_frames=args.check, gather_s=0.0),
                    lambda calibration, sample: build_candidate(segmenter, 'openvino',
                                                                calibration, sample),
                    current='openvino/fp32')
    start = time.perf_counter()
    for frame in frames[:args.frames + args.check]:
        (result,) = segmenter.segment_batch([frame], ['rgb'], want_confidence=False,
                                            want_stats=False)
        live.observe([frame], ['rgb'], [result.labels])
    assert live._thread is not None
    live._thread.join()
    report: dict[str, object] = {'status': live.status, 'agreement': live.agreement,
                                 'seconds_to_decision': time.perf_counter() - start}
    candidate = live.take()
    if candidate is not None:
        fp32, int8 = [], []
        for frame in frames[args.frames + args.check:]:
            for engine, times in ((segmenter, fp32), (candidate, int8)):
                begin = time.perf_counter()
                engine.segment_batch([frame], ['rgb'])
                times.append(time.perf_counter() - begin)
        report.update(fp32_ms=1e3 * statistics.median(fp32),
                      int8_ms=1e3 * statistics.median(int8))
    print(json.dumps(report, indent=1))


if __name__ == '__main__':
    main()
