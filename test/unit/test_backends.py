"""OpenVINO and ONNX Runtime backends against torch fp32 on the default model (small frames),
the registry's messages for missing runtimes, and the cache as the backends use it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from lw_refinenet_ros.engine import backends
from lw_refinenet_ros.engine.backends import (
    BackendRequest,
    backend_unavailable,
    check_batch,
    cpu_description,
    create_backend,
    native_precisions,
)
from lw_refinenet_ros.engine.quantize import preprocess_for_network
from lw_refinenet_ros.errors import ConfigError, EngineError

SIZE = (58, 90)  # (height, width): not multiples of 4, so the logits are ceil(h/4) x ceil(w/4)


@pytest.fixture(scope='module')
def model():
    from lw_refinenet_ros.model import load_model

    return load_model(None)[0]


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp('runtime_cache')


@pytest.fixture(scope='module')
def frames() -> np.ndarray:
    """Two conveyor frames, preprocessed as the engine does it: (2, 3, 58, 90)."""
    from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame

    batch = [preprocess_for_network(
        render_conveyor_frame(frame_rng(4242, i), (SIZE[1], SIZE[0]))[0][:, :, ::-1], SIZE)
        for i in range(2)]
    return np.ascontiguousarray(np.concatenate(batch))


@pytest.fixture(scope='module')
def reference(model, frames: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(frames)).numpy()


def request(cache_dir: Path, precision: str = 'fp32', **kwargs) -> BackendRequest:
    return BackendRequest(precision=precision, device='cpu', input_size=SIZE, max_batch=2,
                          cache_dir=cache_dir, num_threads=1, weights_id='default-model',
                          **kwargs)


@pytest.mark.parametrize('name', ['openvino', 'onnxruntime'])
def test_fp32_backend_matches_torch_fp32(name: str, model, cache_dir: Path,
                                         frames: np.ndarray, reference: np.ndarray) -> None:
    backend = create_backend(name, model, request(cache_dir))
    single = backend.forward(frames[:1])
    assert single.shape == (1, model.num_classes, 15, 23) and single.dtype == np.float32
    assert np.abs(single - reference[:1]).max() < 1e-3
    both = backend.forward(frames)  # a batch of two: compiled/loaded lazily
    assert both.shape == reference.shape
    assert np.abs(both - reference).max() < 1e-3
    assert (both.argmax(1) == reference.argmax(1)).mean() >= 0.999
    assert single is not backend.forward(frames[:1])  # a new array the caller may keep
    info = backend.describe()
    assert info['backend'] == name and info['precision'] == 'fp32'
    assert info['cache'] == str(cache_dir)


@pytest.mark.slow
def test_openvino_other_input_size_is_compiled_on_demand(model, cache_dir: Path) -> None:
    backend = create_backend('openvino', model, request(cache_dir))
    x = np.zeros((1, 3, 33, 41), np.float32)
    assert backend.forward(x).shape == (1, model.num_classes, 9, 11)


@pytest.mark.skipif('bf16' not in native_precisions('openvino', 'cpu'),
                    reason='this CPU has no native bf16 (checked: OpenVINO capabilities)')
def test_openvino_bf16_labels_close_to_fp32(model, cache_dir: Path, frames: np.ndarray,
                                            reference: np.ndarray) -> None:
    backend = create_backend('openvino', model, request(cache_dir, 'bf16'))
    assert backend.describe()['config']['INFERENCE_PRECISION_HINT'] == 'bf16'
    labels = backend.forward(frames).argmax(1)
    assert (labels == reference.argmax(1)).mean() >= 0.98


def test_openvino_fp32_sets_its_precision_explicitly(model, cache_dir: Path) -> None:
    # OpenVINO's CPU default is bf16 on bf16-capable CPUs: fp32 must be asked for.
    backend = create_backend('openvino', model, request(cache_dir))
    assert backend.describe()['config']['INFERENCE_PRECISION_HINT'] == 'f32'


def test_corrupt_cached_model_is_rebuilt_and_still_correct(model, cache_dir: Path,
                                                           tmp_path: Path, frames: np.ndarray,
                                                           reference: np.ndarray) -> None:
    import shutil

    create_backend('openvino', model, request(cache_dir))  # built once for the module
    shutil.copytree(cache_dir, tmp_path, dirs_exist_ok=True)
    (weights,) = [p for p in (tmp_path / 'openvino').glob('*/model.bin')
                  if json.loads((p.parent / 'manifest.json').read_text())['parts']['size']
                  == list(SIZE)]
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    backend = create_backend('openvino', model, request(tmp_path))
    assert np.abs(backend.forward(frames[:1]) - reference[:1]).max() < 1e-3
    assert not list(tmp_path.rglob('.tmp-*'))


def test_bad_batches_are_engine_errors() -> None:
    for bad in (np.zeros((1, 3, 8, 8), np.float64), np.zeros((1, 4, 8, 8), np.float32),
                np.zeros((3, 8, 8), np.float32),
                np.zeros((1, 3, 8, 16), np.float32)[:, :, :, ::2], [1, 2, 3]):
        with pytest.raises(EngineError, match=r'C-contiguous \(N, 3, h, w\) float32'):
            check_batch(bad)


@pytest.mark.parametrize('name', ['openvino', 'onnxruntime'])
def test_forward_rejects_a_wrong_batch(name: str, model, cache_dir: Path) -> None:
    backend = create_backend(name, model, request(cache_dir))
    with pytest.raises(EngineError):
        backend.forward(np.zeros((1, 3, SIZE[0], SIZE[1]), np.float64))


def test_unknown_backend_and_precision_are_config_errors(model, cache_dir: Path) -> None:
    with pytest.raises(ConfigError, match='Unknown backend'):
        backend_unavailable('tflite', 'cpu')
    with pytest.raises(ConfigError, match='Unknown precision'):
        create_backend('openvino', model, request(cache_dir, 'fp8'))


def test_missing_runtime_names_the_package(monkeypatch: pytest.MonkeyPatch, model,
                                           cache_dir: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name in ('openvino', 'onnxruntime')
                        else real(name, *a))
    assert 'pip install openvino' in backend_unavailable('openvino', 'cpu')
    assert 'pip install onnxruntime' in backend_unavailable('onnxruntime', 'cpu')
    with pytest.raises(ConfigError, match=r'pip install openvino'):
        create_backend('openvino', model, request(cache_dir))


def test_gpu_runtimes_missing_here_name_their_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    monkeypatch.setattr(onnxruntime, 'get_available_providers',
                        lambda: ['CPUExecutionProvider'])
    reason = backend_unavailable('onnxruntime', 'cuda')
    assert reason is not None and 'onnxruntime-gpu' in reason
    assert 'NVIDIA' in backend_unavailable('openvino', 'cuda:0')
    assert backend_unavailable('onnxruntime', 'cpu') is None
    assert backend_unavailable('openvino', 'cpu') is None


def test_onnxruntime_int8_without_calibration_says_how_to_build_one(model,
                                                                     tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='calibration_dir'):
        create_backend('onnxruntime', model, request(tmp_path, 'int8'))


@pytest.mark.slow
def test_onnxruntime_static_int8_from_frames_is_cached_and_close_to_fp32(
        model, tmp_path: Path, frames: np.ndarray, reference: np.ndarray) -> None:
    """The second int8 path (QDQ): built once from in-memory frames, found again without
    them, labels close to torch fp32."""
    from lw_refinenet_ros.data.calibration import conveyor_calibration

    calibration = conveyor_calibration(SIZE, count=8)
    backend = create_backend('onnxruntime', model, request(
        tmp_path, 'int8', extra={'calibration': calibration}))
    labels = backend.forward(frames).argmax(1)
    assert (labels == reference.argmax(1)).mean() >= 0.95
    assert backend.describe()['precision'] == 'int8'
    again = create_backend('onnxruntime', model, request(tmp_path, 'int8'))  # from the cache
    assert np.array_equal(again.forward(frames).argmax(1), labels)
    assert len(list(tmp_path.rglob('model_int8.onnx'))) == 1


def test_openvino_int8_without_calibration_says_what_to_do(model, cache_dir: Path) -> None:
    if 'int8' not in native_precisions('openvino', 'cpu'):
        pytest.skip('this CPU has no int8 support in OpenVINO')
    with pytest.raises(ConfigError, match='calibration_dir'):
        create_backend('openvino', model, request(cache_dir, 'int8'))


def test_native_precisions_follow_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, 'cpu_flags', lambda: frozenset({'avx2'}))
    assert native_precisions('torch', 'cpu') == ('fp32',)
    monkeypatch.setattr(backends, 'cpu_flags', lambda: frozenset({'avx2', 'avx512_bf16'}))
    assert native_precisions('torch', 'cpu') == ('fp32', 'bf16')
    assert native_precisions('onnxruntime', 'cpu') == ('fp32', 'int8')  # static QDQ
    assert native_precisions('openvino', 'cpu')[0] == 'fp32'


def test_cpu_description_names_the_model_and_isa() -> None:
    text = cpu_description()
    assert '(' in text and text.endswith(')') and len(text) > 5


def test_device_check_stops_clearly_without_cuda(tmp_path: Path) -> None:
    import subprocess
    import sys

    import torch

    if torch.cuda.is_available():
        pytest.skip('a GPU is present: the script would run the whole 8-minute matrix')
    script = Path(__file__).resolve().parents[2] / 'benchmarks' / 'device_check.sh'
    done = subprocess.run(['bash', str(script)], capture_output=True, text=True, timeout=120,
                          env={'PATH': '/usr/bin:/bin', 'PYTHON': sys.executable,
                               'OUT': str(tmp_path / 'out')})
    assert done.returncode == 2
    assert 'no CUDA here' in done.stdout and 'DEVICE=cpu' in done.stdout
    assert 'CPU-only build' in done.stdout  # why: the probe's reason
    # Nothing measured; only the probe and the report that says so.
    assert not (tmp_path / 'out' / 'gpu_matrix.json').exists()
    assert 'Probe: **no_cuda**' in (tmp_path / 'out' / 'device_check.md').read_text()


def test_openvino_releases_a_much_larger_input_once_it_goes_unused(
        model, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lw_refinenet_ros.engine.backends import openvino as openvino_backend

    monkeypatch.setattr(openvino_backend, 'IDLE_CALLS', 3)
    backend = create_backend('openvino', model, request(cache_dir))
    small = np.zeros((1, 3, *SIZE), np.float32)
    big = np.zeros((1, 3, 2 * SIZE[0], 2 * SIZE[1]), np.float32)
    big_name = f'1x3x{2 * SIZE[0]}x{2 * SIZE[1]}'
    backend.forward(big)  # one odd frame from the camera
    for _ in range(3):
        backend.forward(small)
        assert big_name in backend.describe()['compiled_inputs']
    backend.forward(small)  # idle for more than IDLE_CALLS inferences: released
    assert backend.describe()['compiled_inputs'] == [f'1x3x{SIZE[0]}x{SIZE[1]}']
    # A camera that alternates sizes keeps both compiled.
    for frame in (big, small, big, small, small, small, big):
        backend.forward(frame)
    assert len(backend.describe()['compiled_inputs']) == 2


# ----------------------------------------------------------------- threads reach each runtime

def _runtime_threads(backend) -> int:
    """The thread count the runtime itself reports for the built network."""
    if backend.name == 'openvino':
        compiled = next(iter(backend._compiled.values()))[0]
        return int(compiled.get_property('INFERENCE_NUM_THREADS'))
    session = next(iter(backend._sessions.values()))
    return int(session.get_session_options().intra_op_num_threads)


@pytest.mark.parametrize('name', ['openvino', 'onnxruntime'])
@pytest.mark.parametrize('threads', [1, 2])
def test_num_threads_reaches_the_runtime(name: str, threads: int, model,
                                         cache_dir: Path) -> None:
    backend = create_backend(name, model, BackendRequest(
        precision='fp32', device='cpu', input_size=SIZE, cache_dir=cache_dir,
        num_threads=threads, weights_id='default-model'))
    assert _runtime_threads(backend) == threads


@pytest.mark.parametrize('name', ['openvino', 'onnxruntime'])
def test_engine_num_threads_reaches_the_runtime(name: str, model, cache_dir: Path) -> None:
    from lw_refinenet_ros.engine import EngineConfig, InferenceEngine

    config = EngineConfig(device='cpu', backend=name, precision='fp32', num_threads=1,
                          cache_dir=str(cache_dir), warmup_size=SIZE, remember_selection=False)
    engine = InferenceEngine(model, config)
    assert _runtime_threads(engine.backend) == 1 and engine.describe()['threads'] == 1


@pytest.mark.slow
def test_engine_auto_threads_times_a_one_thread_runtime(model, cache_dir: Path) -> None:
    """num_threads=-1 on a runtime other than torch builds a one-thread copy and keeps the
    faster; describe() and the runtime agree on the count."""
    from lw_refinenet_ros.engine import EngineConfig, InferenceEngine

    config = EngineConfig(device='cpu', backend='openvino', precision='fp32', num_threads=-1,
                          cache_dir=str(cache_dir), warmup_size=SIZE, remember_selection=False)
    engine = InferenceEngine(model, config)
    assert engine.threads in (0, 1)
    if engine.threads == 1:
        assert _runtime_threads(engine.backend) == 1
    assert engine.describe()['threads'] == (engine.threads or 'default')


def test_torch_fp16_on_the_cpu_is_named_fp32_in_the_selection(model, cache_dir: Path) -> None:
    from lw_refinenet_ros.engine import EngineConfig, InferenceEngine

    config = EngineConfig(device='cpu', backend='torch', precision='fp16',
                          cache_dir=str(cache_dir), warmup_size=SIZE, remember_selection=False)
    engine = InferenceEngine(model, config)
    assert engine.describe()['precision'] == 'fp32'
    assert engine.reason.startswith('torch/fp32')


# ----------------------------------------------------------------- the registry

@pytest.mark.parametrize('name', ['tensorrt', 'ONNXRuntime', '', 'auto'])
def test_an_unknown_backend_name_is_refused_everywhere(name: str, model) -> None:
    """No question about an unregistered name falls through to some other runtime."""
    for ask in (lambda: backends.backend_spec(name),
                lambda: backend_unavailable(name, 'cpu'),
                lambda: native_precisions(name, 'cpu'),
                lambda: create_backend(name, model, BackendRequest())):
        with pytest.raises(ConfigError, match='Unknown backend') as error:
            ask()
        for known in backends.BACKEND_NAMES:
            assert known in str(error.value)


def test_every_registered_backend_is_complete() -> None:
    """One registry entry is all a runtime needs besides its module: the class and the two
    questions are where the entry says, and the option's choices come from the registry."""
    import importlib

    from lw_refinenet_ros.engine.config import ENGINE_PARAMETER_SPECS

    assert ENGINE_PARAMETER_SPECS['backend'].choices == ('auto',) + backends.BACKEND_NAMES
    for name, spec in backends.BACKENDS.items():
        module = importlib.import_module(f'lw_refinenet_ros.engine.backends.{spec.module}')
        checks = importlib.import_module(
            f'lw_refinenet_ros.engine.backends.{spec.checks or spec.module}')
        assert isinstance(getattr(module, spec.class_name), type)
        assert getattr(module, spec.class_name).name == name
        assert callable(checks.device_unavailable) and callable(checks.native_precisions)
        assert set(native_precisions(name, 'cpu')) <= set(spec.precisions)


def test_a_precision_a_backend_cannot_run_names_the_ones_that_can(model) -> None:
    with pytest.raises(ConfigError, match='"openvino"'):
        create_backend('torch', model, BackendRequest(precision='int8'))


def test_device_tensors_are_a_declared_capability() -> None:
    class Runtime:
        def __init__(self, name: str, tensors: bool) -> None:
            self.name = name
            if tensors:
                self.forward_tensor = lambda batch: batch

    assert backends.takes_device_tensors(Runtime('torch', True))
    assert not backends.takes_device_tensors(Runtime('torch', False))  # declared, not there
    assert not backends.takes_device_tensors(Runtime('openvino', True))  # not declared
    assert not backends.takes_device_tensors(Runtime('unknown', True))
