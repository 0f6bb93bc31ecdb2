"""Backend selection: fastest passing candidate, the agreement gate, fallback, missing runtimes.

The runtimes are replaced by fakes whose labels differ from the reference on a chosen share
of pixels and whose forward times are faked through the injectable timer, so every decision
is deterministic.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pytest

from lw_refinenet_ros.engine import select
from lw_refinenet_ros.engine.backends import BackendRequest
from lw_refinenet_ros.errors import ConfigError, EngineError

PIXELS = 1000
K = 3


def reference_logits() -> np.ndarray:
    logits = np.zeros((1, K, 1, PIXELS), np.float32)
    logits[0, np.arange(PIXELS) % K, 0, np.arange(PIXELS)] = 1.0
    return logits


def labels_of(logits: np.ndarray) -> np.ndarray:
    return logits[0].argmax(0)


class FakeBackend:
    """Reference logits with ``wrong`` pixels moved to another class."""

    def __init__(self, name: str, precision: str, wrong: int) -> None:
        self.name, self.precision, self.device = name, precision, 'cpu'
        self.wrong = wrong
        self.calls = 0

    def forward(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        logits = reference_logits()
        for index in range(self.wrong):
            logits[0, :, 0, index] = 0.0
            logits[0, (index + 1) % K, 0, index] = 1.0
        return logits

    def describe(self) -> dict[str, Any]:
        return {'backend': self.name, 'precision': self.precision, 'device': self.device}


class World:
    """Which runtimes exist, what they run natively, how wrong and how fast they are."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, wrong: dict[str, int] | None = None,
                 ms: dict[str, float] | None = None, missing: dict[str, str] | None = None,
                 native: dict[str, tuple[str, ...]] | None = None,
                 broken: dict[str, Exception] | None = None) -> None:
        self.wrong = wrong or {}
        self.ms = ms or {}
        self.missing = missing or {}
        self.native = native or {'torch': ('fp32', 'bf16'),
                                 'openvino': ('fp32', 'bf16', 'int8'),
                                 'onnxruntime': ('fp32',)}
        self.broken = broken or {}
        self.built: list[str] = []
        monkeypatch.setattr(select, 'create_backend', self.create)
        monkeypatch.setattr(select, 'backend_unavailable',
                            lambda name, device: self.missing.get(name))
        monkeypatch.setattr(select, 'native_precisions',
                            lambda name, device: self.native[name])

    def create(self, name: str, model: Any, request: BackendRequest) -> FakeBackend:
        key = f'{name}/{request.precision}'
        self.built.append(key)
        if key in self.broken:
            raise self.broken[key]
        return FakeBackend(name, request.precision, self.wrong.get(key, 0))

    def timer(self, backend: FakeBackend, batch: np.ndarray) -> float:
        return self.ms.get(f'{backend.name}/{backend.precision}', 100.0)


def choose(world: World, *, backend: str = 'auto', precision: str = 'auto',
           agreement_min: float = 0.99, fallback: bool = False) -> select.Selection:
    return select.select_backend(
        object(), backend=backend, precision=precision, request=BackendRequest(),
        warmup_batch=np.zeros((1, 3, 4, 4), np.float32), labels_of=labels_of,
        agreement_min=agreement_min, fallback=fallback, timer=world.timer)


def test_auto_keeps_the_fastest_candidate_and_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, wrong={'openvino/bf16': 2},  # 99.8 % agree: passes
                  ms={'torch/fp32': 40.0, 'torch/bf16': 30.0, 'openvino/fp32': 20.0,
                      'openvino/bf16': 12.0, 'onnxruntime/fp32': 25.0})
    chosen = choose(world)
    assert (chosen.backend.name, chosen.backend.precision) == ('openvino', 'bf16')
    assert chosen.agreement == pytest.approx(0.998)
    assert chosen.timings_ms == {'torch/fp32': 40.0, 'torch/bf16': 30.0, 'openvino/fp32': 20.0,
                                 'openvino/bf16': 12.0, 'onnxruntime/fp32': 25.0}
    assert chosen.reason.startswith('openvino/bf16 (fastest')
    for text in ('openvino/bf16 12.0 ms', 'torch/fp32 40.0 ms', 'onnxruntime/fp32 25.0 ms',
                 'labels 99.80%'):
        assert text in chosen.reason
    assert 'openvino/int8' not in world.built  # int8 needs calibration: never automatic


def test_auto_refuses_bf16_below_the_995_gate_even_if_fastest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, wrong={'openvino/bf16': 10, 'torch/bf16': 10},  # 99.0 %
                  ms={'torch/fp32': 40.0, 'torch/bf16': 5.0, 'openvino/fp32': 20.0,
                      'openvino/bf16': 4.0, 'onnxruntime/fp32': 25.0})
    chosen = choose(world, agreement_min=0.98)  # the bf16 floor is 99.5 % whatever this is
    assert (chosen.backend.name, chosen.backend.precision) == ('openvino', 'fp32')
    assert 'openvino/bf16 4.0 ms, labels 99.00% < gate 99.5%' in chosen.reason


def test_candidates_are_timed_interleaved(monkeypatch: pytest.MonkeyPatch) -> None:
    World(monkeypatch, native={'torch': ('fp32',), 'openvino': ('fp32',),
                               'onnxruntime': ('fp32',)})
    order: list[str] = []

    def timer(backend: FakeBackend, batch: np.ndarray) -> float:
        order.append(backend.name)
        return 1.0

    select.select_backend(object(), backend='auto', precision='fp32', request=BackendRequest(),
                          warmup_batch=np.zeros((1, 3, 4, 4), np.float32), labels_of=labels_of,
                          agreement_min=0.99, fallback=False, timer=timer)
    names = ['torch', 'openvino', 'onnxruntime']
    assert order == names * select.TIMING_ROUNDS


def timing_order(monkeypatch: pytest.MonkeyPatch, ms: dict[str, float]
                 ) -> tuple[list[str], select.Selection]:
    """The order fp32 candidates were timed in, and the selection, with faked times."""
    world = World(monkeypatch, native={'torch': ('fp32',), 'openvino': ('fp32',),
                                       'onnxruntime': ('fp32',)}, ms=ms)
    order: list[str] = []

    def timer(backend: FakeBackend, batch: np.ndarray) -> float:
        order.append(backend.name)
        return world.timer(backend, batch)

    chosen = select.select_backend(
        object(), backend='auto', precision='fp32', request=BackendRequest(),
        warmup_batch=np.zeros((1, 3, 4, 4), np.float32), labels_of=labels_of,
        agreement_min=0.99, fallback=False, timer=timer)
    return order, chosen


def test_clearly_slower_candidates_are_timed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    order, chosen = timing_order(monkeypatch, {'torch/fp32': 40.0, 'openvino/fp32': 10.0,
                                               'onnxruntime/fp32': 14.0})
    assert order == ['torch', 'openvino', 'onnxruntime'] + ['openvino', 'onnxruntime'] * 2
    assert chosen.backend.name == 'openvino' and chosen.timings_ms['torch/fp32'] == 40.0


def test_no_more_rounds_once_a_single_candidate_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    order, chosen = timing_order(monkeypatch, {'torch/fp32': 40.0, 'openvino/fp32': 10.0,
                                               'onnxruntime/fp32': 25.0})
    assert order == ['torch', 'openvino', 'onnxruntime']  # openvino alone within 1.5x
    assert chosen.backend.name == 'openvino'


def test_start_up_phases_are_measured_and_logged(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    world = World(monkeypatch, ms={'openvino/bf16': 12.0})
    with caplog.at_level(logging.DEBUG, logger=select.__name__):
        chosen = choose(world)
    assert set(chosen.phases_s) == {'reference', 'build', 'timing'}
    assert all(seconds >= 0.0 for seconds in chosen.phases_s.values())
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    (summary,) = [m for m in info if m.startswith('backend selection took')]
    assert re.search(r'torch/fp32 reference \d+\.\d s; .* run once \d+\.\d s \(torch/bf16 '
                     r'\d+\.\d s, openvino/fp32 \d+\.\d s, openvino/bf16 \d+\.\d s, '
                     r'onnxruntime/fp32 \d+\.\d s\); timing \d+\.\d s', summary), summary
    assert 'openvino/bf16 x1' in summary  # the rounds each candidate was timed
    details = caplog.text  # per candidate, at DEBUG
    assert 'backend candidate openvino/bf16: ready in' in details and 'first forward' in details


def test_auto_skips_missing_runtimes_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, missing={'openvino': 'OpenVINO is not installed (pip install '
                                                    'openvino).'},
                  ms={'torch/fp32': 40.0, 'onnxruntime/fp32': 25.0})
    chosen = choose(world, precision='fp32')
    assert chosen.backend.name == 'onnxruntime'
    assert 'unavailable: openvino (OpenVINO is not installed (pip install openvino).)' \
        in chosen.reason
    assert not any(key.startswith('openvino') for key in world.built)


def test_auto_survives_a_candidate_that_fails_to_build(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    world = World(monkeypatch, broken={'openvino/fp32': EngineError('compile failed')},
                  ms={'torch/fp32': 40.0, 'openvino/fp32': 1.0, 'onnxruntime/fp32': 25.0})
    caplog.set_level(logging.WARNING)
    chosen = choose(world, precision='fp32')
    assert chosen.backend.name == 'onnxruntime'
    assert 'failed: openvino/fp32 (compile failed)' in chosen.reason
    assert 'compile failed' in caplog.text


def test_explicit_backend_below_agreement_min_refuses_with_the_figure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, wrong={'openvino/int8': 30})  # 97.0 %
    with pytest.raises(EngineError) as error:
        choose(world, backend='openvino', precision='int8', agreement_min=0.99)
    message = str(error.value)
    assert 'openvino/int8 97.00%' in message and 'agreement_min 99.00%' in message
    assert 'backend_fallback' in message and 'lower agreement_min' in message


def test_explicit_backend_below_the_gate_falls_back_to_torch_fp32_when_allowed(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    world = World(monkeypatch, wrong={'openvino/int8': 30})
    caplog.set_level(logging.WARNING)
    chosen = choose(world, backend='openvino', precision='int8', agreement_min=0.99,
                    fallback=True)
    assert (chosen.backend.name, chosen.backend.precision) == ('torch', 'fp32')
    assert chosen.reason.startswith('torch/fp32 (fallback:') and '97.00%' in chosen.reason
    assert 'falling back to torch fp32' in caplog.text


def test_explicit_backend_passing_the_gate_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, wrong={'openvino/int8': 5})
    chosen = choose(world, backend='openvino', precision='int8', agreement_min=0.99)
    assert (chosen.backend.name, chosen.backend.precision) == ('openvino', 'int8')
    assert chosen.agreement == pytest.approx(0.995)


def test_explicit_backend_with_auto_precision_tries_its_native_precisions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, ms={'openvino/fp32': 20.0, 'openvino/bf16': 10.0})
    chosen = choose(world, backend='openvino', precision='auto')
    assert chosen.backend.precision == 'bf16'
    assert set(chosen.timings_ms) == {'openvino/fp32', 'openvino/bf16'}


def test_torch_fp32_requested_builds_only_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    chosen = choose(world, backend='torch', precision='fp32')
    assert world.built == ['torch/fp32'] and chosen.agreement == 1.0
    assert chosen.timings_ms == {}


def test_explicit_missing_runtime_is_a_config_error_naming_the_package(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, missing={'onnxruntime': 'ONNX Runtime is not installed (pip '
                                                       'install onnxruntime).'})
    with pytest.raises(ConfigError, match='pip install onnxruntime'):
        choose(world, backend='onnxruntime', precision='fp32')


def test_explicit_missing_runtime_falls_back_when_allowed(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    world = World(monkeypatch, missing={'openvino': 'OpenVINO is not installed (pip install '
                                                    'openvino).'})
    caplog.set_level(logging.WARNING)
    chosen = choose(world, backend='openvino', precision='fp32', fallback=True)
    assert (chosen.backend.name, chosen.backend.precision) == ('torch', 'fp32')
    assert 'pip install openvino' in chosen.reason and 'falling back' in caplog.text


def test_explicit_config_errors_are_not_hidden_by_fallback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, broken={'openvino/int8': ConfigError('needs calibration_dir')})
    with pytest.raises(ConfigError, match='calibration_dir'):
        choose(world, backend='openvino', precision='int8', fallback=True)


@pytest.mark.parametrize('backend, precision, match', [
    ('tensorflow', 'fp32', 'Unknown backend'), ('auto', 'fp8', 'Unknown precision')])
def test_unknown_names_are_config_errors(monkeypatch: pytest.MonkeyPatch, backend: str,
                                         precision: str, match: str) -> None:
    world = World(monkeypatch)
    with pytest.raises(ConfigError, match=match):
        choose(world, backend=backend, precision=precision)


def test_agreement_min_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    with pytest.raises(ConfigError, match='agreement_min'):
        choose(world, agreement_min=1.5)


@pytest.mark.slow
def test_real_runtimes_on_the_default_model(tmp_path) -> None:
    """No fakes: every installed runtime at fp32 on a small conveyor frame."""
    from lw_refinenet_ros.data.conveyor import render_conveyor_frame
    from lw_refinenet_ros.engine.quantize import preprocess_for_network
    from lw_refinenet_ros.model import load_model

    model = load_model(None)[0]
    rgb = render_conveyor_frame(0, (64, 48), augment=False)[0]
    batch = preprocess_for_network(rgb[:, :, ::-1], (48, 64))
    chosen = select.select_backend(
        model, backend='auto', precision='fp32',
        request=BackendRequest(input_size=(48, 64), cache_dir=tmp_path, num_threads=1),
        warmup_batch=batch, labels_of=labels_of, agreement_min=0.99, fallback=False)
    assert set(chosen.timings_ms) == {'torch/fp32', 'openvino/fp32', 'onnxruntime/fp32'}
    assert chosen.agreement is not None and chosen.agreement >= 0.99
    assert chosen.backend.forward(batch).shape == (1, model.num_classes, 12, 16)
    for name in ('torch/fp32', 'openvino/fp32', 'onnxruntime/fp32'):
        assert name in chosen.reason
