"""ONNX Runtime on a GPU must run on the provider it was asked for, never silently on another.

ONNX Runtime moves a session to the next provider in its list when one cannot load (TensorRT
-> CUDA -> CPU) and only logs it; a benchmark row or a node would then report "CUDA" for a
CPU run. These tests make that happen without a GPU: a CPU-only onnxruntime told (through a
patched availability list) that CUDA exists builds a CPU session, which the backend refuses.
"""

from __future__ import annotations

import pytest
import torch

from lw_refinenet_ros.engine.backends import onnxruntime as ort_backend
from lw_refinenet_ros.engine.backends.base import BackendRequest
from lw_refinenet_ros.errors import EngineError


class _FakeSession:
    def __init__(self, providers: list[str]) -> None:
        self._providers = providers

    def get_providers(self) -> list[str]:
        return list(self._providers)


class _TinyNet(torch.nn.Module):
    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, stride=4, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_a_session_on_the_requested_provider_is_accepted() -> None:
    requested = [('CUDAExecutionProvider', {'device_id': 0})]
    session = _FakeSession(['CUDAExecutionProvider', 'CPUExecutionProvider'])
    assert ort_backend.check_providers(session, requested, 'cuda') == [
        'CUDAExecutionProvider', 'CPUExecutionProvider']


@pytest.mark.parametrize('requested, in_use', [
    ('TensorrtExecutionProvider', ['CUDAExecutionProvider', 'CPUExecutionProvider']),
    ('CUDAExecutionProvider', ['CPUExecutionProvider']),
    ('CUDAExecutionProvider', []),
])
def test_a_session_that_fell_back_to_another_provider_is_refused(requested, in_use) -> None:
    with pytest.raises(EngineError) as caught:
        ort_backend.check_providers(_FakeSession(in_use), [(requested, {})], 'cuda:0')
    message = str(caught.value)
    assert f'asked for {requested} on cuda:0' in message
    assert (in_use[0] if in_use else 'no provider') in message
    assert 'onnxruntime-gpu' in message  # what to do about it


def test_the_backend_refuses_a_real_cpu_session_when_cuda_was_asked_for(monkeypatch,
                                                                         tmp_path) -> None:
    """The real CPU-only onnxruntime, told CUDA is available, quietly builds a CPU session
    for a CUDA request: the backend must stop with both names instead of running it."""
    import onnxruntime

    assert 'CUDAExecutionProvider' not in onnxruntime.get_available_providers()
    monkeypatch.setattr(ort_backend, '_providers_available',
                        lambda: ['CUDAExecutionProvider', 'CPUExecutionProvider'])
    request = BackendRequest(device='cuda', precision='fp32', input_size=(16, 24),
                             cache_dir=tmp_path, extra={'ort_provider': 'cuda'})
    with pytest.raises(EngineError, match='asked for CUDAExecutionProvider on cuda but the '
                                          'session runs on CPUExecutionProvider'):
        ort_backend.OnnxRuntimeBackend(_TinyNet().eval(), request)


def test_tensorrt_gets_a_shape_profile_for_batch_one_to_max_batch(monkeypatch,
                                                                  tmp_path) -> None:
    from lw_refinenet_ros.engine.cache import ArtifactCache

    monkeypatch.setattr(ort_backend, '_providers_available',
                        lambda: ['TensorrtExecutionProvider', 'CUDAExecutionProvider',
                                 'CPUExecutionProvider'])
    monkeypatch.setattr(ort_backend, 'runtime_version', lambda: 'test')
    request = BackendRequest(device='cuda:1', precision='fp16', input_size=(48, 64),
                             max_batch=4, cache_dir=tmp_path)
    providers = ort_backend._providers(request, ArtifactCache(tmp_path), 'w', (48, 64))
    assert [name for name, _ in providers] == ['TensorrtExecutionProvider',
                                                'CUDAExecutionProvider']
    trt = providers[0][1]
    assert trt['device_id'] == 1 and trt['trt_fp16_enable'] is True
    assert (trt['trt_profile_min_shapes'], trt['trt_profile_opt_shapes'],
            trt['trt_profile_max_shapes']) == ('image:1x3x48x64', 'image:1x3x48x64',
                                               'image:4x3x48x64')


def test_a_cpu_session_describes_the_provider_it_runs_on(tmp_path) -> None:
    request = BackendRequest(device='cpu', precision='fp32', input_size=(16, 24),
                             cache_dir=tmp_path)
    backend = ort_backend.OnnxRuntimeBackend(_TinyNet().eval(), request)
    info = backend.describe()
    assert info['provider'] == 'CPUExecutionProvider'
    assert info['providers'][0] == 'CPUExecutionProvider'
