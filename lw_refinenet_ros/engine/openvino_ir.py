"""The OpenVINO IR of the network: converted from the exported ONNX file and cached.

Shared by the OpenVINO backend (which compiles it) and :mod:`..quantize` (which quantizes it to
int8), so neither imports the other for it. The IR is kept at fp32 (``save_model`` would
otherwise compress the weights to fp16) with a symbolic batch.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from lw_refinenet_ros.engine.backends.base import BackendRequest
from lw_refinenet_ros.engine.cache import ArtifactCache
from lw_refinenet_ros.engine.export import cached_onnx, export_identity

IR_FILES = ('model.xml', 'model.bin')


def runtime_version() -> str:
    """The installed OpenVINO version (part of every cache key)."""
    return importlib.metadata.version('openvino')


def ir_cache_parts(request: BackendRequest, weights_id: str, size: tuple[int, int],
                   calibration_id: str | None) -> dict[str, Any]:
    """The cache key of one IR: everything that changes its contents (the export's identity
    included: package version, model code, exporter)."""
    parts: dict[str, Any] = {'artifact': 'openvino-ir', 'weights': weights_id,
                             'size': list(size), 'runtime': f'openvino {runtime_version()}',
                             'precision': 'int8' if calibration_id else 'fp32',
                             **export_identity()}
    if calibration_id:
        parts['calibration'] = calibration_id
    return parts


def build_fp32_ir(model: Any, folder: Path, size: tuple[int, int], onnx_path: Path) -> None:
    """Convert the exported ONNX file to an fp32 IR in ``folder`` (dynamic batch)."""
    import openvino

    converted = openvino.convert_model(str(onnx_path))
    openvino.save_model(converted, str(folder / IR_FILES[0]), compress_to_fp16=False)


def cached_ir(model: Any, request: BackendRequest, cache: ArtifactCache, weights_id: str,
              size: tuple[int, int]) -> Path:
    """Folder holding the fp32 IR for ``size`` (built from ``model`` on a cache miss)."""
    def build(folder: Path) -> None:
        onnx_path = cached_onnx(model, cache, weights_id, size)
        build_fp32_ir(model, folder, size, onnx_path / 'model.onnx')

    return cache.get_or_build('openvino', ir_cache_parts(request, weights_id, size, None),
                              IR_FILES, build,
                              what=f'OpenVINO fp32 model {size[0]}x{size[1]}')
