"""The training step's arithmetic: bf16 only where the CPU has it, AMP on CUDA, compile."""

from __future__ import annotations

import logging
from pathlib import Path
import subprocess
import sys

import pytest
import torch

from lw_refinenet_ros.data.conveyor import write_conveyor_dataset
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.training import precision
from lw_refinenet_ros.training.precision import (
    NATIVE_BF16_FLAGS,
    CompiledForward,
    choose_precision,
    cpu_flags,
    normalize_amp,
    use_compile,
)
from lw_refinenet_ros.training.trainer import TrainConfig, train

AVX2_ONLY = {'fpu', 'sse4_2', 'avx', 'avx2', 'fma'}


def test_a_cpu_without_native_bf16_keeps_fp32() -> None:
    chosen = choose_precision('auto', 'cpu', flags=AVX2_ONLY | {'avx512f', 'avx512_vnni'})
    assert chosen.dtype is None and not chosen.scaled
    assert 'no native bf16' in chosen.reason


@pytest.mark.parametrize('flag', sorted(NATIVE_BF16_FLAGS))
def test_a_cpu_with_native_bf16_trains_in_bf16(flag) -> None:
    chosen = choose_precision('auto', 'cpu', flags=AVX2_ONLY | {flag})
    assert chosen.dtype is torch.bfloat16 and not chosen.scaled and flag in chosen.reason


def test_this_machines_choice_follows_its_own_flags() -> None:
    native = bool(NATIVE_BF16_FLAGS & cpu_flags())
    assert (choose_precision('auto', 'cpu').dtype is torch.bfloat16) == native


def test_cuda_uses_bf16_where_the_gpu_has_it_else_scaled_fp16() -> None:
    assert choose_precision('auto', 'cuda', cuda_bf16=True).name == 'bf16'
    assert not choose_precision('auto', 'cuda', cuda_bf16=True).scaled
    fp16 = choose_precision('auto', 'cuda', cuda_bf16=False)
    assert fp16.dtype is torch.float16 and fp16.scaled
    assert choose_precision('fp16', 'cuda', cuda_bf16=True).scaled


def test_off_and_the_old_true_false_values() -> None:
    assert choose_precision('off', 'cuda', cuda_bf16=True).dtype is None
    assert normalize_amp(True) == 'auto' and normalize_amp(False) == 'off'
    assert normalize_amp('false') == 'off'
    with pytest.raises(ValueError, match='amp must be one of'):
        normalize_amp('int8')
    with pytest.raises(ValueError, match='fp16 is for CUDA'):
        choose_precision('fp16', 'cpu', flags=AVX2_ONLY)
    with pytest.raises(ConfigError, match='--amp'):
        TrainConfig(data='x', amp='half').validate()
    with pytest.raises(ConfigError, match='--compile'):
        TrainConfig(data='x', compile='maybe').validate()


def test_cpu_flags_are_read_from_cpuinfo(tmp_path) -> None:
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\nbugs\t\t: none\n')
    assert cpu_flags(info) == {'fpu', 'avx2', 'amx_bf16'}
    assert cpu_flags(tmp_path / 'missing') == frozenset()


def test_compile_is_automatic_on_cuda_only() -> None:
    assert use_compile('auto', 'cuda') and not use_compile('auto', 'cpu')
    assert use_compile('on', 'cpu') and not use_compile('off', 'cuda')


def test_a_failing_compile_falls_back_to_the_eager_network(monkeypatch, caplog) -> None:
    def broken(*args):
        raise RuntimeError('no C compiler\nmore lines')

    monkeypatch.setattr(precision.torch, 'compile', lambda net: broken)
    net = torch.nn.Conv2d(3, 2, 1)
    forward = CompiledForward(net)
    image = torch.ones(1, 3, 4, 4)
    with caplog.at_level(logging.WARNING):
        first, second = forward(image), forward(image)
    assert torch.equal(first, net(image)) and torch.equal(second, first)
    assert sum('torch.compile failed' in r.message for r in caplog.records) == 1


_BF16_STEP = """
import logging, sys
from lw_refinenet_ros.training.trainer import TrainConfig, train
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
config = TrainConfig(data=sys.argv[1], out=sys.argv[2], stage_epochs=(1,), encoder_lrs=(1e-3,),
                     optimizer='adam', freeze_bn=False, crop_size=48, scale_min=1.0,
                     scale_max=1.0, min_short_side=0, flip=False, batch_size=2, workers=0,
                     device='cpu', threads=2, amp='bf16', report=False)
result = train(config)
print('steps', result.global_step, 'finite', result.last_loss == result.last_loss)
"""


def test_a_bf16_training_step_runs_on_the_cpu(tmp_path: Path) -> None:
    """Asked for explicitly, bf16 trains on any CPU (emulated where it is not native).

    In a process of its own: oneDNN's bf16 kernels on a CPU without native bf16 have crashed
    a long pytest process after earlier tests had used other thread pools, while the same
    step in a fresh process, as a user runs ``train``, works.
    """
    data = write_conveyor_dataset(tmp_path / 'data', 4, seed=5, size=(64, 48), augment=False)
    done = subprocess.run([sys.executable, '-c', _BF16_STEP, str(data), str(tmp_path / 'run')],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert 'steps 2 finite True' in done.stdout
    assert 'training step: bf16 autocast' in done.stdout + done.stderr


def test_fp16_on_a_cpu_is_refused_before_training(tmp_path: Path) -> None:
    data = write_conveyor_dataset(tmp_path / 'data', 2, seed=5, size=(64, 48), augment=False)
    config = TrainConfig(data=str(data), out=str(tmp_path / 'run'), batch_size=2, workers=0,
                         device='cpu', amp='fp16', report=False)
    with pytest.raises(ConfigError, match='fp16 is for CUDA'):
        train(config)
    assert not (tmp_path / 'run' / 'last.pt').exists()
