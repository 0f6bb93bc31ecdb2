"""int8 calibration frames for the packaged default model, from the conveyor generator.

The default model was trained on the synthetic conveyor, so that is the domain its int8
activation ranges should come from: frames rendered with a training seed (scored nowhere) at
the size the network will run at. A user's own model calibrates on the user's frames
instead (``calibration_dir``, or camera frames passed to the engine).
"""

from __future__ import annotations

import numpy as np

from lw_refinenet_ros.engine.quantize import Int8Calibration

#: A training seed (docs/training.md): the frames are the model's own domain and are never
#: scored, so calibrating on them cannot flatter a reported number.
CALIBRATION_SEED = 1000
#: Enough for stable activation ranges on this model (mIoU change measured in
#: docs/benchmarks.md); NNCF takes about a second per frame on 2 cores at 640x480.
CALIBRATION_FRAMES = 32


def conveyor_calibration(size: tuple[int, int], count: int = CALIBRATION_FRAMES,
                         seed: int = CALIBRATION_SEED) -> Int8Calibration:
    """``count`` conveyor frames of ``size`` (height, width), as RGB uint8, deterministic.

    The identity in the cache key names the generator, seed, count and size, so the same
    frames are never hashed twice and a change of any of them builds a new model."""
    from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame

    height, width = size
    frames = [np.ascontiguousarray(render_conveyor_frame(frame_rng(seed, index),
                                                         (width, height))[0])
              for index in range(count)]
    source = f'conveyor generator, seed {seed}, {count} frames at {width}x{height}'
    return Int8Calibration(frames, source, identity=source)
