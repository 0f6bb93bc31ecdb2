"""Remembered backend choices: a hit skips timing; any change of CPU, software, weights or
size is a miss; ties keep the previous choice; nothing half-written is ever read."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

# The fakes of the selection tests: runtimes with faked labels and times.
from test_select import FakeBackend, World, labels_of

from lw_refinenet_ros.engine import EngineConfig, InferenceEngine, decisions, select
from lw_refinenet_ros.engine.backends import BackendRequest
from lw_refinenet_ros.engine.decisions import Decision, DecisionStore, keep_previous

SUBJECT = {'weights': 'abc', 'size': [480, 640], 'backend': 'auto', 'precision': 'auto'}
MACHINE = {'machine': {'cpu': 'AMD EPYC (avx2)', 'cpu_flags': '1234', 'cores': '2'},
           'versions': {'lw_refinenet_ros': '0.1.0', 'torch': '2.13.0', 'openvino': '2025.3'}}
CHOICE = Decision('openvino', 'fp32', threads=2, agreement=0.999,
                  timings_ms={'openvino/fp32': 150.0, 'onnxruntime/fp32': 160.0},
                  reason='openvino/fp32 (fastest)')


def _changed(path: tuple[str, ...], value: str) -> dict:
    machine = json.loads(json.dumps(MACHINE))
    target = machine
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    return machine


def test_a_stored_decision_is_found_for_the_same_key(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path)
    assert store.load(SUBJECT, MACHINE) == (None, None)
    path = store.save(SUBJECT, CHOICE, MACHINE)
    assert path is not None and path.parent == tmp_path / decisions.FOLDER
    hit, previous = DecisionStore(tmp_path).load(SUBJECT, MACHINE)
    assert hit is not None and hit == previous
    assert (hit.backend, hit.precision, hit.threads, hit.agreement) == ('openvino', 'fp32', 2,
                                                                       0.999)
    assert hit.created > 0
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


@pytest.mark.parametrize('change', [
    (('machine', 'cpu_flags'), 'ffff'),            # a changed CPU flag (e.g. AVX-512 hidden)
    (('machine', 'cpu'), 'Intel Xeon (avx512f)'),  # another CPU
    (('versions', 'openvino'), '2026.0'),          # a runtime upgrade
    (('versions', 'lw_refinenet_ros'), '0.2.0'),   # this package upgraded
])
def test_a_changed_machine_or_version_is_a_miss_that_keeps_the_previous_choice(
        tmp_path: Path, change: tuple[tuple[str, ...], str],
        caplog: pytest.LogCaptureFixture) -> None:
    store = DecisionStore(tmp_path)
    store.save(SUBJECT, CHOICE, MACHINE)
    with caplog.at_level(logging.INFO, logger='lw_refinenet_ros.engine.decisions'):
        hit, previous = store.load(SUBJECT, _changed(*change))
    assert hit is None
    assert previous is not None and previous.label == 'openvino/fp32'
    assert 'choosing again' in caplog.text


@pytest.mark.parametrize('field, value', [('weights', 'def'), ('size', [240, 320]),
                                          ('precision', 'int8')])
def test_other_weights_size_or_request_are_a_miss(tmp_path: Path, field: str,
                                                  value: object) -> None:
    store = DecisionStore(tmp_path)
    store.save(SUBJECT, CHOICE, MACHINE)
    assert store.load({**SUBJECT, field: value}, MACHINE) == (None, None)


@pytest.mark.parametrize('content', ['{"format": 1, "key": ', '[]', '{"format": 1}',
                                     '{"format": 99, "key": {}, "decision": {}}'])
def test_an_unreadable_or_foreign_file_is_a_miss(tmp_path: Path, content: str) -> None:
    store = DecisionStore(tmp_path)
    path = store.save(SUBJECT, CHOICE, MACHINE)
    path.write_text(content, encoding='utf-8')
    assert store.load(SUBJECT, MACHINE) == (None, None)


def test_a_failed_write_leaves_the_old_decision_and_warns_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    store = DecisionStore(tmp_path)
    store.save(SUBJECT, CHOICE, MACHINE)

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(decisions.json, 'dump', full_disk)
    with caplog.at_level(logging.WARNING):
        assert store.save(SUBJECT, Decision('torch', 'fp32'), MACHINE) is None
        assert store.save(SUBJECT, Decision('torch', 'fp32'), MACHINE) is None
    assert caplog.text.count('could not remember') == 1
    monkeypatch.undo()
    hit, _ = store.load(SUBJECT, MACHINE)
    assert hit is not None and hit.label == 'openvino/fp32'
    assert len(list((tmp_path / decisions.FOLDER).iterdir())) == 1


def test_no_cache_folder_remembers_nothing() -> None:
    store = DecisionStore(None)
    assert store.save(SUBJECT, CHOICE) is None
    assert store.load(SUBJECT) == (None, None)


def test_ties_keep_the_previous_choice() -> None:
    medians = {'openvino/fp32': 100.0, 'onnxruntime/fp32': 104.0, 'torch/fp32': 300.0}
    assert keep_previous(medians, 'openvino/fp32', 'onnxruntime/fp32') == 'onnxruntime/fp32'
    assert keep_previous({**medians, 'onnxruntime/fp32': 106.0}, 'openvino/fp32',
                         'onnxruntime/fp32') == 'openvino/fp32'
    assert keep_previous(medians, 'openvino/fp32', 'torch/bf16') == 'openvino/fp32'
    assert keep_previous(medians, 'openvino/fp32', None) == 'openvino/fp32'


# ----------------------------------------------------------------- in the selection

def _select(world: World, **kwargs: object) -> select.Selection:
    return select.select_backend(
        object(), backend='auto', precision='auto', request=BackendRequest(),
        warmup_batch=np.zeros((1, 3, 4, 4), np.float32), labels_of=labels_of,
        agreement_min=0.99, fallback=False, timer=world.timer, **kwargs)


def test_a_remembered_decision_builds_only_its_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, ms={'openvino/fp32': 10.0})
    chosen = _select(world, remembered=Decision('onnxruntime', 'fp32', agreement=0.998,
                                                created=1.0))
    assert world.built == ['onnxruntime/fp32']  # no reference, no other candidate
    assert chosen.remembered and chosen.agreement == 0.998
    assert chosen.backend.name == 'onnxruntime' and 'nothing timed' in chosen.reason


def test_a_remembered_runtime_that_is_gone_or_broken_is_chosen_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, missing={'onnxruntime': 'not installed'},
                  ms={'openvino/fp32': 10.0})
    chosen = _select(world, remembered=Decision('onnxruntime', 'fp32'))
    assert not chosen.remembered and chosen.backend.name == 'openvino'
    world = World(monkeypatch, broken={'openvino/bf16': select.EngineError('no')},
                  ms={'openvino/fp32': 10.0})
    chosen = _select(world, remembered=Decision('openvino', 'bf16'))
    assert not chosen.remembered and chosen.backend.precision == 'fp32'


def test_a_tie_in_the_timing_keeps_the_previous_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    ms = {'torch/fp32': 40.0, 'torch/bf16': 45.0, 'openvino/fp32': 20.0,
          'openvino/bf16': 30.0, 'onnxruntime/fp32': 20.8}
    world = World(monkeypatch, ms=ms)
    chosen = _select(world, previous=Decision('onnxruntime', 'fp32'))
    assert chosen.backend.name == 'onnxruntime' and 'previous choice' in chosen.reason
    world = World(monkeypatch, ms={**ms, 'onnxruntime/fp32': 21.5})  # 7.5 % slower
    assert _select(world, previous=Decision('onnxruntime', 'fp32')).backend.name == 'openvino'


def test_every_contender_gets_at_least_three_interleaved_rounds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, native={'torch': ('fp32',), 'openvino': ('fp32',),
                                       'onnxruntime': ('fp32',)},
                  ms={'torch/fp32': 40.0, 'openvino/fp32': 20.0, 'onnxruntime/fp32': 21.0})
    counts: dict[str, int] = {}

    def timer(backend: FakeBackend, batch: np.ndarray) -> float:
        counts[backend.name] = counts.get(backend.name, 0) + 1
        return world.timer(backend, batch)

    select.select_backend(object(), backend='auto', precision='auto', request=BackendRequest(),
                          warmup_batch=np.zeros((1, 3, 4, 4), np.float32), labels_of=labels_of,
                          agreement_min=0.99, fallback=False, timer=timer)
    assert counts['openvino'] >= 3 and counts['onnxruntime'] >= 3


# ----------------------------------------------------------------- through the engine

def test_the_engine_remembers_and_a_restart_skips_the_timing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real engine (torch only, so it is quick): the second start finds the decision and
    builds nothing else; a changed runtime version starts the timing again."""
    from test_engine import StandIn

    monkeypatch.setattr(select, 'backend_unavailable',
                        lambda name, device: None if name == 'torch' else 'not here')
    config = EngineConfig(device='cpu', backend='auto', precision='auto', cache_dir=str(tmp_path),
                          warmup_size=(32, 48))
    first = InferenceEngine(StandIn(4), config)
    assert first.backend.name == 'torch' and 'remembered' not in first.reason
    assert len(list((tmp_path / decisions.FOLDER).glob('*.json'))) == 1
    built: list[str] = []
    real_create = select.create_backend

    def counting(name: str, model: object, request: BackendRequest) -> object:
        built.append(f'{name}/{request.precision}')
        return real_create(name, model, request)

    monkeypatch.setattr(select, 'create_backend', counting)
    second = InferenceEngine(StandIn(4), config)
    # fp32, or bf16 where the CPU has bf16 units and it timed faster: whichever was chosen.
    chosen = f"torch/{first.describe()['precision']}"
    assert 'remembered' in second.reason and built == [chosen]
    labels = second(np.zeros((32, 48, 3), np.uint8)).labels
    assert np.array_equal(labels, first(np.zeros((32, 48, 3), np.uint8)).labels)
    versions = dict(decisions.runtime_versions())
    versions['torch'] = '99.0'
    monkeypatch.setattr(decisions, 'runtime_versions', lambda: versions)
    built.clear()
    third = InferenceEngine(StandIn(4), config)
    assert 'remembered' not in third.reason and built.count('torch/fp32') >= 1
    monkeypatch.setattr(decisions, 'runtime_versions', lambda: dict(versions, torch='2.0'))
    other_weights = InferenceEngine(StandIn(4, seed=9), config)
    assert 'remembered' not in other_weights.reason
