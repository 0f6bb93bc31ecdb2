"""The inference engine: image in, full-resolution labels, confidence and statistics out.

Layout (each module one job; no ROS anywhere here):

* :mod:`.config` -- the engine's options, declared once (node parameters, YAML keys and CLI
  flags derive from them), and :class:`EngineConfig`; no torch.
* :mod:`.preprocess` -- exact normalisation through a lookup table, ``max_side`` shrink.
* :mod:`.backends` -- the runtimes behind one small interface (:mod:`.backends.base`):
  ``torch`` (the reference), ``openvino``, ``onnxruntime``.
* :mod:`.select` -- which backend and precision, timed on the warm-up image and gated on
  label agreement with torch fp32; :mod:`.cache` and :mod:`.export` build and keep the
  runtimes' models on disk.
* :mod:`.postprocess` -- bicubic upsampling, argmax, confidence and statistics, shared by
  every backend (tiled on the CPU so large frames stay within memory).
* :mod:`.inference` -- :class:`InferenceEngine`, composing the stages.

Labels are those of the reference pipeline (float64 normalisation, fp32 forward, bicubic
upsampling of the stride-4 logits, argmax) unless an option says otherwise: ``max_side``,
``upsample='nearest'``, a reduced precision, or a backend that passed the agreement gate.
See docs/engine.md.
"""

from lw_refinenet_ros.constants import IMAGENET_MEAN, IMAGENET_STD, OUTPUT_STRIDE
from lw_refinenet_ros.engine.config import (
    ENGINE_PARAMETERS,
    EngineConfig,
    add_engine_arguments,
    engine_config_from_args,
)
from lw_refinenet_ros.engine.inference import InferenceEngine, resolve_device
from lw_refinenet_ros.engine.preprocess import normalization_lut
from lw_refinenet_ros.engine.result import SegmentationResult

__all__ = ['ENGINE_PARAMETERS', 'IMAGENET_MEAN', 'IMAGENET_STD', 'OUTPUT_STRIDE',
           'EngineConfig', 'InferenceEngine', 'SegmentationResult', 'add_engine_arguments',
           'engine_config_from_args', 'normalization_lut', 'resolve_device']
