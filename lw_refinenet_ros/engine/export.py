"""ONNX export of the network alone: the interchange format every non-torch runtime starts from.

The graph takes ImageNet-normalised RGB ``image`` (N, 3, H, W) float32 and returns stride-4
``logits`` (N, K, ceil(H/4), ceil(W/4)); pre- and post-processing stay in the engine (see
docs/engine.md), so that every runtime is compared on the same input and output. The
TorchScript exporter (``dynamo=False``) is used on purpose: it exports these models cleanly and
quickly, without pulling in the dynamo exporter's extra dependencies.
"""

from __future__ import annotations

import copy
import functools
import logging
from pathlib import Path
from typing import Any
import warnings

from lw_refinenet_ros.errors import ConfigError, EngineError

_LOG = logging.getLogger(__name__)

INPUT_NAME = 'image'
OUTPUT_NAME = 'logits'
DEFAULT_OPSET = 17


def build_for_export(arch: str | None, num_classes: int | None, weights: str | None,
                     seed: int) -> Any:
    """The fp32 CPU eval model to export: loaded from ``weights``, or seeded random."""
    import torch

    from lw_refinenet_ros.model import build_model, load_model

    if weights:
        model, _ = load_model(weights, arch=arch, num_classes=num_classes)
        return model.eval()
    torch.manual_seed(seed)
    return build_model(arch or 'mbv2', num_classes or 21).eval()


def cpu_fp32_copy(model: Any) -> Any:
    """``model`` itself when it is already an fp32 CPU module, else an fp32 CPU copy.

    The engine may have moved or cast its model (CUDA, bf16, channels_last); the exporter
    needs plain fp32 on the CPU, and the engine's own copy must stay as it is.
    """
    import torch

    params = list(model.parameters()) + list(model.buffers())
    if all(p.device.type == 'cpu' and (not p.is_floating_point() or p.dtype == torch.float32)
           for p in params):
        return model.eval()
    return copy.deepcopy(model).to(device='cpu', dtype=torch.float32).eval()


def export_onnx(model: Any, path: str | Path, height: int, width: int, *,
                dynamic: bool = False, dynamic_batch: bool = False,
                opset: int = DEFAULT_OPSET) -> None:
    """Write ``model`` as ONNX to ``path``.

    Args:
        model: The network (any device/dtype; an fp32 CPU copy is exported).
        path: Output file.
        height/width: Example input size (the static size unless ``dynamic``).
        dynamic: Symbolic batch, height and width.
        dynamic_batch: Symbolic batch only (static height and width).
        opset: ONNX opset; >= 11 for Resize with ``align_corners``.

    Raises:
        ConfigError: opset too old.
        EngineError: the exporter failed (the message carries its reason).
    """
    import torch

    if opset < 11:
        raise ConfigError(f'--opset {opset} is too old: Resize with align_corners needs >= 11.')
    model = cpu_fp32_copy(model)
    example = torch.zeros(1, 3, height, width)
    axes = None
    if dynamic:
        axes = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'},
                OUTPUT_NAME: {0: 'batch', 2: 'height_4', 3: 'width_4'}}
    elif dynamic_batch:
        axes = {INPUT_NAME: {0: 'batch'}, OUTPUT_NAME: {0: 'batch'}}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings('ignore', category=DeprecationWarning)
            torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=axes, do_constant_folding=True)
    except Exception as error:  # the exporter raises many types; callers need one
        raise EngineError(f'ONNX export of the model failed: {error}') from error


def check_onnx(model: Any, path: str | Path, sizes: list[tuple[int, int]],
               seed: int = 0) -> float:
    """Max |ONNX Runtime - PyTorch| over random inputs of the given sizes."""
    import numpy as np
    import onnxruntime
    import torch

    model = cpu_fp32_copy(model)
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for height, width in sizes:
        x = rng.standard_normal((1, 3, height, width)).astype(np.float32)
        (ort,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        if ort.shape != ref.shape:
            raise AssertionError(f'ONNX output {ort.shape} != PyTorch {ref.shape}')
        worst = max(worst, float(np.abs(ort - ref).max()))
    return worst


def model_fingerprint(model: Any) -> str:
    """SHA-256 of the architecture name, class count and every parameter and buffer.

    Used as the cache key's weights part when the engine did not pass a weights hash.
    """
    import hashlib

    import numpy as np
    import torch

    digest = hashlib.sha256()
    digest.update(f'{getattr(model, "arch", type(model).__name__)}/'
                  f'{getattr(model, "num_classes", "?")}'.encode('utf-8'))
    for name, tensor in model.state_dict().items():
        digest.update(name.encode('utf-8'))
        data = tensor.detach().to(device='cpu')
        if data.is_floating_point():
            data = data.to(torch.float32)
        digest.update(np.ascontiguousarray(data.numpy()).tobytes())
    return digest.hexdigest()


def package_version() -> str:
    """This package's installed version ('unknown' when run from a tree that is not
    installed; the model code's hash still tells versions apart)."""
    import importlib.metadata

    try:
        return importlib.metadata.version('lw_refinenet_ros')
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


#: The module that defines the network; what it imports from the package is part of it.
NETWORK_MODULE = 'model/lwrefinenet.py'


def network_sources() -> list[Path]:
    """The package's source files the exported network is defined by: the network module and
    everything it imports from the package, transitively (not checkpoint I/O, training or
    BatchNorm folding, which change no export), read from the import statements."""
    import ast

    package = Path(__file__).resolve().parents[1]
    todo, seen = [package / NETWORK_MODULE], set()
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith('lw_refinenet_ros.'):
                    target = package.joinpath(*name.split('.')[1:])
                    todo += [target.with_suffix('.py'), target / '__init__.py']
    return sorted(seen)


@functools.lru_cache(maxsize=1)
def model_code_hash() -> str:
    """SHA-256 of :func:`network_sources` (names and contents): what ``forward`` does, and
    so what an export contains, beyond the weights."""
    import hashlib

    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in network_sources():
        digest.update(path.relative_to(package).as_posix().encode('utf-8'))
        digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def export_identity() -> dict[str, str]:
    """What besides the weights decides an exported file: this package's version, the model
    code and the exporter's (torch's) version. Part of every key of an artefact derived from
    an export (ONNX, OpenVINO IR, int8 models, optimised ONNX Runtime models, TensorRT
    engines), so an upgrade that changes ``forward`` never reuses an old file."""
    import importlib.metadata
    import sys

    # torch.__version__ once torch is imported; before, the installed distribution's version
    # (the same text) without importing it, which a restart that never needs torch avoids.
    torch = sys.modules.get('torch')
    try:
        exporter = torch.__version__ if torch is not None else importlib.metadata.version('torch')
    except importlib.metadata.PackageNotFoundError:
        import torch

        exporter = torch.__version__
    return {'package': package_version(), 'model_code': model_code_hash(),
            'exporter': f'torch {exporter}'}


def onnx_cache_parts(weights_id: str, size: tuple[int, int],
                     opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Cache key of one exported ONNX file (dynamic batch, static height and width)."""
    return {'artifact': 'onnx', 'weights': weights_id, 'size': list(size), 'opset': opset,
            **export_identity()}


def cached_onnx(model: Any, cache: Any, weights_id: str, size: tuple[int, int]) -> Path:
    """Folder holding ``model.onnx`` for ``size``, exported from ``model`` on a cache miss.

    Args:
        model: The torch network.
        cache: An :class:`~lw_refinenet_ros.engine.cache.ArtifactCache`.
        weights_id: The weights' hash (cache key).
        size: ``(height, width)`` of the static network input; the batch stays symbolic.
    """
    height, width = size

    def build(folder: Path) -> None:
        export_onnx(model, folder / 'model.onnx', height, width, dynamic_batch=True)

    return cache.get_or_build('onnx', onnx_cache_parts(weights_id, size), ('model.onnx',),
                              build, what=f'ONNX export {height}x{width}')
