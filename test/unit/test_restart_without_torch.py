"""A restart with a remembered OpenVINO choice and its runtime model cached gives the same
labels as the first start and never imports torch (about 2 s of CPU of a restart on a small
machine; docs/benchmarks.md "Restart"); a start that misses the cache still works.

The restarts run in fresh interpreters (torch must not be imported before the first labels),
through the two paths that build an engine from a file: the ``Segmenter`` facade and the
node's factory (``ros.inference.load_engine``).
"""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch

from lw_refinenet_ros.engine import EngineConfig, InferenceEngine, inference, select
from lw_refinenet_ros.engine.weights_card import WeightsCards
from lw_refinenet_ros.model import build_model, save_checkpoint
from lw_refinenet_ros.segmenter import Segmenter

pytest.importorskip('openvino')

ROOT = Path(__file__).resolve().parents[2]
SIZE = (48, 64)  # (height, width)

RESTART = """
import sys
import numpy as np
from lw_refinenet_ros.engine import EngineConfig
from lw_refinenet_ros.segmenter import Segmenter

checkpoint, cache, image_file, out = sys.argv[1:5]
image = np.load(image_file)
config = EngineConfig(device='auto', backend='openvino', precision='fp32', cache_dir=cache,
                      warmup_size=image.shape[:2])
segmenter = Segmenter.load(checkpoint, engine=config)
labels = segmenter.segment(image).labels
facade = ('torch' in sys.modules, segmenter.describe()['reason'], segmenter.class_names)

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.ros.inference import load_engine

node_config = NodeConfig.from_mapping({
    'model.weights': checkpoint, 'backend': 'openvino', 'precision': 'fp32',
    'cache_dir': cache, 'warmup_size': f'{image.shape[1]}x{image.shape[0]}'})
loaded = load_engine(node_config)
node_labels = loaded.segmenter.segment_batch([image], 'rgb')[0].labels
print(repr((facade, 'torch' in sys.modules, loaded.name)))
np.save(out, np.stack([labels, node_labels]))
"""


def _restart(checkpoint: Path, cache: Path, image: np.ndarray,
             tmp_path: Path) -> tuple[tuple, np.ndarray]:
    np.save(tmp_path / 'image.npy', image)
    result = subprocess.run(
        [sys.executable, '-c', RESTART, str(checkpoint), str(cache), str(tmp_path / 'image.npy'),
         str(tmp_path / 'labels.npy')], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return eval(result.stdout.strip().splitlines()[-1]), np.load(tmp_path / 'labels.npy')


def test_a_remembered_openvino_restart_does_not_import_torch(tmp_path: Path) -> None:
    torch.manual_seed(3)
    checkpoint = tmp_path / 'model.pt'
    save_checkpoint(checkpoint, build_model('mbv2', 4).eval(), arch='mbv2',
                    class_names=('belt', 'bolt', 'nut', 'washer'))
    image = np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    cache = tmp_path / 'cache'
    config = EngineConfig(device='cpu', backend='openvino', precision='fp32',
                          cache_dir=str(cache), warmup_size=SIZE)
    first = Segmenter.load(checkpoint, engine=config)  # exports, converts, remembers
    assert 'remembered' not in first.describe()['reason']
    expected = first.segment(image).labels

    (facade, node_torch, node_name), labels = _restart(checkpoint, cache, image, tmp_path)
    facade_torch, reason, names = facade
    assert not facade_torch, 'the facade imported torch on a remembered restart'
    assert not node_torch, "the node's factory imported torch on a remembered restart"
    assert 'remembered' in reason and names == ('belt', 'bolt', 'nut', 'washer')
    assert node_name == 'mbv2:model.pt via openvino/fp32'
    assert np.array_equal(labels[0], expected) and np.array_equal(labels[1], expected)

    # A miss (another, empty cache folder) loads the network and still gives those labels.
    (facade, _, _), labels = _restart(checkpoint, tmp_path / 'empty', image, tmp_path)
    assert facade[0] and 'remembered' not in facade[1]
    assert np.array_equal(labels[0], expected)


def test_a_remembered_start_draws_no_warmup_frame(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The synthetic frame only serves the timing and the agreement gate (a fifth of a
    second to draw at 640x480): a start that times nothing does not draw it."""
    from test_engine import StandIn

    # torch only, so the stand-in model needs no export (as test_engine_decisions does).
    monkeypatch.setattr(select, 'backend_unavailable',
                        lambda name, device: None if name == 'torch' else 'not here')
    config = EngineConfig(device='cpu', backend='auto', precision='auto',
                          cache_dir=str(tmp_path), warmup_size=(32, 48))
    first = InferenceEngine(StandIn(4), config)
    drawn: list[tuple[int, int]] = []
    real = inference.warmup_frame

    def counting(height: int, width: int) -> np.ndarray:
        drawn.append((height, width))
        return real(height, width)

    monkeypatch.setattr(inference, 'warmup_frame', counting)
    second = InferenceEngine(StandIn(4), config)
    assert 'remembered' in second.reason and drawn == []
    image = real(32, 48)
    assert np.array_equal(second(image).labels, first(image).labels)


def test_a_remembered_start_whose_runtime_model_was_removed_exports_it_again(
        tmp_path: Path) -> None:
    """The card and the decision are there but the cached runtime model is not: the deferred
    network is loaded to export it again, and the labels are the same."""
    import shutil

    torch.manual_seed(5)
    checkpoint = tmp_path / 'model.pt'
    save_checkpoint(checkpoint, build_model('mbv2', 3).eval(), arch='mbv2')
    image = np.random.default_rng(1).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    config = EngineConfig(device='cpu', backend='openvino', precision='fp32',
                          cache_dir=str(tmp_path / 'cache'), warmup_size=SIZE)
    expected = Segmenter.load(checkpoint, engine=config).segment(image).labels
    for kind in ('onnx', 'openvino', 'openvino-compiled'):
        shutil.rmtree(tmp_path / 'cache' / kind, ignore_errors=True)
    assert WeightsCards(tmp_path / 'cache').lookup(checkpoint) is not None  # a deferred start
    again = Segmenter.load(checkpoint, engine=config)
    assert 'remembered' in again.describe()['reason']
    assert np.array_equal(again.segment(image).labels, expected)


def test_device_auto_asks_torch_only_where_a_gpu_can_exist(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from lw_refinenet_ros.engine.backends import torch_support

    assert torch_support.cuda_possible()  # torch imported: torch answers
    monkeypatch.delitem(sys.modules, 'torch')
    found: list[str] = []
    monkeypatch.setattr(torch_support.glob, 'glob', lambda pattern: found)
    monkeypatch.setattr(torch_support.os.path, 'exists', lambda path: path in found)
    monkeypatch.setattr(torch_support.importlib.metadata, 'version', lambda name: '2.13.0+cpu')
    assert not torch_support.cuda_possible()  # a CPU-only build of torch
    monkeypatch.setattr(torch_support.importlib.metadata, 'version', lambda name: '2.13.0')
    assert torch_support.cuda_possible() is not sys.platform.startswith('linux')  # no device
    found.append('/dev/nvmap')  # a Jetson
    assert torch_support.cuda_possible()
