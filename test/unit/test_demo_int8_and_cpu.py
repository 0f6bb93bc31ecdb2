"""The demo's own measurements and its int8 choice (issue 18, "The demo's own cost").

- CPU seconds per process over the run come from the kernel's counters (a busy child
  counts, a finished one is None, this process counts itself);
- the demo readies the packaged model's conveyor int8 only where the precision is left to it,
  and asks the node for int8 only on a passing check;
- the check itself, on the packaged model at a small size: it builds the int8 model into the
  cache it is given, reports the agreement with fp32 on conveyor frames, and a failure of any
  kind answers "not used" with the reason instead of stopping the demo.
"""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys
import time

import pytest

from lw_refinenet_ros.cli.demo import wants_int8_check
from lw_refinenet_ros.demo import int8_check
from lw_refinenet_ros.demo.cpu_usage import CpuWindow, process_cpu_s

BUSY = 'import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n' \
       'time.sleep(30)'


def test_a_busy_child_counts_its_cpu_seconds_and_a_finished_one_is_none() -> None:
    child = subprocess.Popen([sys.executable, '-c', BUSY])
    try:
        window = CpuWindow({'busy': child.pid, 'me': None})
        window.start()
        deadline = time.monotonic() + 60
        while (process_cpu_s(child.pid) or 0) < 0.6 and time.monotonic() < deadline:
            time.sleep(0.1)
        sum(i * i for i in range(300_000))  # this process works too
        window.stop()
        seconds = window.seconds()
        assert seconds['busy'] is not None and 0.3 <= seconds['busy'] <= 5
        assert seconds['me'] is not None and seconds['me'] > 0
    finally:
        child.kill()
        child.wait()
    assert process_cpu_s(child.pid) is None
    gone = CpuWindow({'gone': child.pid})
    gone.start()
    gone.stop()
    assert gone.seconds() == {'gone': None}


@pytest.mark.parametrize(('weights', 'device', 'values', 'module', 'expected'), [
    (None, 'cpu', {}, None, True),
    (None, 'cpu', {'backend': 'openvino', 'num_threads': 1}, None, True),
    (None, 'cpu', {'precision': 'fp32'}, None, False),       # the user chose the precision
    (None, 'cpu', {'backend': 'onnxruntime'}, None, False),  # the int8 is OpenVINO's
    ('my.pt', 'cpu', {}, None, False),                       # not the packaged model
    (None, 'cuda', {}, None, False),
    (None, 'cpu', {}, 'lw_refinenet_ros.testing.fake_node', False),  # no real node
])
def test_the_int8_check_runs_only_where_the_precision_is_left_to_the_demo(
        weights, device, values, module, expected) -> None:
    assert wants_int8_check(weights, device, values, module) is expected


def test_the_node_is_asked_for_int8_only_on_a_passing_check() -> None:
    assert int8_check.node_parameters({'use': False, 'why': 'x'}) == []
    assert int8_check.node_parameters({}) == []
    assert int8_check.node_parameters({'use': True}) == [
        'backend:=openvino', 'precision:=int8',
        f'agreement_min:={int8_check.NODE_AGREEMENT_MIN}']


def test_a_failing_check_answers_not_used_with_the_reason(monkeypatch, capsys) -> None:
    def broken(*_args):
        raise OSError('No space left on device')

    monkeypatch.setattr(int8_check, 'check', broken)
    assert int8_check.main(['320', '240']) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer == {'use': False, 'why': 'OSError: No space left on device'}


@pytest.mark.slow
def test_the_check_builds_the_conveyor_int8_and_measures_it(tmp_path: Path) -> None:
    cache = tmp_path / 'cache'
    answer = int8_check.check(64, 48, str(cache))
    assert answer['int8_model'].startswith('openvino: ')
    assert answer['frames'] == int8_check.CHECK_FRAMES
    # Judged against what precision auto runs without int8: fp32, or bf16 on a bf16 CPU.
    assert answer['reference'] in ('openvino/fp32', 'openvino/bf16')
    assert 0.0 <= answer['agreement_min'] <= answer['agreement_median'] <= 1.0
    assert answer['use'] is (answer['agreement_median'] >= answer['gate'] and
                             answer['warmup_frame_agreement'] >= int8_check.NODE_AGREEMENT_MIN)
    assert answer['use'] or answer['why']
    assert any((cache / 'openvino').iterdir())  # built into the cache it was given
    again = int8_check.check(64, 48, str(cache))  # cached: the same model and figures
    assert again['int8_model'] == answer['int8_model']
    assert again['agreement_median'] == answer['agreement_median']
