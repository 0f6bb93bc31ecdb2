"""The torch backend and its CPU rewrites; the engine with an explicitly named backend."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lw_refinenet_ros.data.conveyor import render_conveyor_frame
from lw_refinenet_ros.engine import EngineConfig, InferenceEngine
from lw_refinenet_ros.engine.backends import create_backend
from lw_refinenet_ros.engine.backends.base import Backend, BackendRequest
from lw_refinenet_ros.engine.backends.torch import TorchBackend
from lw_refinenet_ros.engine.backends.torch_rewrites import (
    FastCRPBlock,
    PointwiseConv,
    max_pool5_same,
    rewrite_for_cpu,
)
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.model import build_model, fold_batchnorm, load_model
from lw_refinenet_ros.reference_pipeline import reference_preprocess, reference_segment


@pytest.mark.parametrize('shape', [(1, 3, 1, 1), (2, 5, 7, 3), (1, 16, 13, 21)])
@pytest.mark.parametrize('channels_last', [False, True])
def test_shifted_max_pool_is_bit_identical_to_max_pool2d(shape, channels_last) -> None:
    x = torch.randn(shape)
    x[0, 0, 0, 0] = float('-inf')
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(max_pool5_same(x), F.max_pool2d(x, 5, stride=1, padding=2))


@pytest.mark.parametrize('height', [5, 33, 70])
def test_banded_max_pool_is_bit_identical(height: int) -> None:
    x = torch.randn(1, 8, height, 9).contiguous(memory_format=torch.channels_last)
    expected = F.max_pool2d(x, 5, stride=1, padding=2)
    for band_rows in (1, 3, 16):
        assert torch.equal(max_pool5_same(x, band_rows), expected)


def test_cpu_rewrites_keep_the_default_model_labels() -> None:
    model, _ = load_model(None)
    base = fold_batchnorm(model).to(memory_format=torch.channels_last)
    fast = copy.deepcopy(base)
    counts = rewrite_for_cpu(fast)
    assert counts['crp_blocks'] == 4 and counts['pointwise_convs'] > 40
    assert sum(isinstance(m, FastCRPBlock) for m in fast.modules()) == 4
    assert any(isinstance(m, PointwiseConv) for m in fast.modules())
    for seed in (1, 2):
        image = render_conveyor_frame(seed, (160, 120))[0]
        x = torch.from_numpy(reference_preprocess(image)).contiguous(
            memory_format=torch.channels_last)
        with torch.inference_mode():
            expected, got = base(x), fast(x)
        # oneDNN sums the 1x1 convolutions in another order: logits move by ~1e-5 only.
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-3)
        assert torch.equal(got.argmax(1), expected.argmax(1))


def test_torch_backend_leaves_the_callers_model_alone_and_matches_the_reference() -> None:
    torch.manual_seed(0)
    model = build_model('mbv2', 6).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    backend = create_backend('torch', model, BackendRequest(device='cpu'))
    assert isinstance(backend, TorchBackend) and isinstance(backend, Backend)
    assert {k: torch.equal(v, before[k]) for k, v in model.state_dict().items()} == \
        {k: True for k in before}
    assert not any(isinstance(m, FastCRPBlock) for m in model.modules())
    image = np.random.default_rng(2).integers(0, 256, (45, 38, 3), dtype=np.uint8)
    engine = InferenceEngine(model, EngineConfig(device='cpu', backend='torch', precision='fp32',
                                                 warmup_iters=0))
    assert np.array_equal(engine(image).labels, reference_segment(model, image))
    info = engine.describe()
    assert (info['backend'], info['precision'], info['device']) == ('torch', 'fp32', 'cpu')
    assert 'reference' in info['reason'] and info['cpu_rewrites']['crp_blocks'] == 4


def test_torch_backend_refuses_int8_and_names_the_backend_that_runs_it() -> None:
    with pytest.raises(ConfigError, match='openvino'):
        TorchBackend(build_model('mbv2', 3), BackendRequest(device='cpu', precision='int8'))


@pytest.mark.slow
def test_engine_with_an_explicit_runtime_backend_reports_it_and_agrees(tmp_path) -> None:
    """backend=onnxruntime: the engine runs it (through selection and its agreement gate),
    describe() says so with the reason and agreement, and labels equal torch fp32's."""
    model, _ = load_model(None)
    image = np.ascontiguousarray(render_conveyor_frame(5, (96, 64))[0])
    config = EngineConfig(device='cpu', backend='onnxruntime', precision='fp32',
                          cache_dir=str(tmp_path),
                          warmup_size=(64, 96))
    engine = InferenceEngine(model, config, warmup_image=image)
    info = engine.describe()
    assert (info['backend'], info['precision']) == ('onnxruntime', 'fp32')
    assert info['agreement'] >= 0.99 and 'onnxruntime/fp32' in info['reason']
    torch_engine = InferenceEngine(model, EngineConfig(device='cpu', backend='torch',
                                                       precision='fp32', warmup_iters=0))
    assert (engine(image).labels == torch_engine(image).labels).mean() >= 0.99


class _TinyNet(torch.nn.Module):
    """(N, 3, H, W) -> (N, 4, ceil(H/4), ceil(W/4)) logits: a network that compiles in seconds."""

    num_classes = 4

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=4, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_cuda_graphs_requested_on_the_cpu_is_reported_as_not_running() -> None:
    backend = TorchBackend(_TinyNet().eval(), BackendRequest(
        device='cpu', extra={'cuda_graphs': True, 'fold_batchnorm': False}))
    info = backend.describe()
    assert info['cuda_graphs_requested'] is True and info['cuda_graphs'] is False
    assert any(f.startswith('cuda_graphs:') and 'CUDA device' in f for f in info['fallbacks'])


def test_a_graph_capture_that_fails_at_first_use_falls_back_to_eager_and_says_so() -> None:
    """What the CUDA path does on a GPU whose capture fails: here the real capture class
    fails on the CPU (no CUDA streams), the frame still comes out of eager, and describe()
    stops claiming graphs."""
    from lw_refinenet_ros.engine.backends import torch as torch_backend

    backend = TorchBackend(_TinyNet().eval(), BackendRequest(
        device='cpu', extra={'fold_batchnorm': False}))
    backend._forward_fn = torch_backend._GraphForward(backend.model)  # as _wrap does on CUDA
    backend._graphs = True
    x = torch.randn(1, 3, 16, 20)
    logits = backend.forward_tensor(x)
    with torch.inference_mode():
        expected = backend.model(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(logits, expected)
    info = backend.describe()
    assert info['cuda_graphs'] is False
    assert len(info['fallbacks']) == 1 and 'running eager' in info['fallbacks'][0]
    assert info['fallbacks'][0].startswith('cuda_graphs: failed on a (1, 3, 16, 20) input')


@pytest.mark.slow
def test_a_torch_compile_that_fails_falls_back_to_eager_and_describe_says_so() -> None:
    """A real torch.compile whose compiler raises on the first call (as inductor does on a
    machine without a working toolchain): labels still come out, describe() says eager."""

    def broken_compiler(graph_module, example_inputs):
        raise RuntimeError('no C compiler here')

    model = _TinyNet().eval()
    backend = TorchBackend(model, BackendRequest(
        device='cpu', extra={'compile': True, 'compile_backend': broken_compiler,
                             'fold_batchnorm': False}))
    assert backend.describe()['compile'] is True  # nothing has failed yet: not called
    x = torch.randn(2, 3, 8, 12)
    logits = backend.forward_tensor(x)
    assert logits.shape == (2, 4, 2, 3)
    info = backend.describe()
    assert info['compile_requested'] is True and info['compile'] is False
    assert info['fallbacks'][0].startswith('compile: failed on a (2, 3, 8, 12) input')
    assert 'no C compiler here' in info['fallbacks'][0]
    assert backend.forward_tensor(x).shape == (2, 4, 2, 3) and len(backend.fallbacks) == 1
