"""The demo's process supervisor and live scoring, without ROS (benchmarks share both)."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess

import numpy as np

from lw_refinenet_ros.demo import scoring, supervisor


def test_child_runs_this_copy_of_the_package_and_logs_to_a_file(tmp_path: Path) -> None:
    log = tmp_path / 'child.log'
    code = 'import lw_refinenet_ros.demo.supervisor as s; print(s.SOURCE_ROOT); print(1/0)'
    child = supervisor.start(['-c', code], log_path=log)
    assert child.wait(timeout=60) == 1
    tail = supervisor.log_tail(log, lines=50)
    assert tail.splitlines()[0] == str(supervisor.SOURCE_ROOT)
    assert 'ZeroDivisionError' in supervisor.log_tail(log, lines=1)


def test_module_main_argv_exits_with_main_return_value(tmp_path: Path) -> None:
    (tmp_path / 'fake_main.py').write_text('import sys\ndef main():\n    return len(sys.argv)\n')
    env = supervisor.child_env(PYTHONPATH=os.pathsep.join(
        [str(tmp_path), supervisor.child_env()['PYTHONPATH']]))
    child = supervisor.start(supervisor.module_main_argv('fake_main', ['a', 'b']), env=env)
    assert child.wait(timeout=60) == 3  # argv[0] is '-c', then a and b


def test_stop_escalates_when_sigint_and_sigterm_are_ignored() -> None:
    code = ('import signal, sys, time\n'
            'signal.signal(signal.SIGINT, signal.SIG_IGN)\n'
            'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
            'print("READY", flush=True)\n'
            'time.sleep(60)\n')
    child = supervisor.start(['-c', code], stdout=subprocess.PIPE, text=True)
    assert supervisor.wait_for_line(child, 'READY', 60)
    spins: list[int] = []
    result = supervisor.stop(child, timeout_s=0.3, spin=lambda: spins.append(1))
    assert result.exit_code == -signal.SIGKILL
    assert result.signal == signal.SIGKILL
    assert spins  # the caller's executor kept running while it waited


def test_stop_of_a_clean_child_sends_only_sigint() -> None:
    code = ('import time\ntry:\n    print("READY", flush=True)\n    time.sleep(60)\n'
            'except KeyboardInterrupt:\n    raise SystemExit(7)\n')
    child = supervisor.start(['-c', code], stdout=subprocess.PIPE, text=True)
    assert supervisor.wait_for_line(child, 'READY', 60)  # its SIGINT handler is in place
    result = supervisor.stop(child, timeout_s=20)
    assert (result.exit_code, result.signal) == (7, signal.SIGINT)


def test_wait_for_line_is_false_when_the_child_exits_first() -> None:
    child = supervisor.start(['-c', 'print("starting")'], stdout=subprocess.PIPE, text=True)
    assert not supervisor.wait_for_line(child, 'READY', 60)


def test_child_env_puts_the_package_first_once() -> None:
    env = supervisor.child_env({'PYTHONPATH': f'/elsewhere{os.pathsep}{supervisor.SOURCE_ROOT}'})
    assert env['PYTHONPATH'].split(os.pathsep) == [str(supervisor.SOURCE_ROOT), '/elsewhere']


def test_scorer_pairs_by_stamp_in_either_order() -> None:
    scorer = scoring.StampPairingScorer(num_classes=2)
    truth = np.array([[0, 1], [1, 1]], np.uint8)
    scorer.add_labels(20, truth.copy())       # labels first
    scorer.add_truth(10, truth)               # truth first, labels later
    scorer.add_truth(20, truth)
    scorer.add_labels(10, np.zeros_like(truth))
    assert scorer.frames_scored == 2
    np.testing.assert_array_equal(scorer.meter.matrix, [[2, 0], [3, 3]])


def test_scorer_grows_for_more_predicted_classes_and_keeps_counts() -> None:
    scorer = scoring.StampPairingScorer(num_classes=2)
    scorer.add_truth(1, np.array([[1]], np.uint8))
    scorer.add_labels(1, np.array([[1]], np.uint8))
    scorer.add_truth(2, np.array([[1]], np.uint8))
    scorer.add_labels(2, np.array([[4]], np.uint8))
    assert scorer.meter.num_classes == 5
    assert scorer.meter.matrix[1, 1] == 1 and scorer.meter.matrix[1, 4] == 1
    summary = scoring.accuracy_summary(scorer, ('a', 'b'))
    assert summary['frames_scored'] == 2 and summary['pixel_accuracy'] == 0.5
    assert set(summary['iou']) == {'b', '4'}


def test_a_class_never_in_view_but_predicted_counts_in_the_miou_and_not_in_the_in_view_one(
        ) -> None:
    scorer = scoring.StampPairingScorer(num_classes=3)
    scorer.add_truth(1, np.array([[0, 0, 1, 1]], np.uint8))
    scorer.add_labels(1, np.array([[0, 2, 1, 1]], np.uint8))  # class 2 is not in view
    summary = scoring.accuracy_summary(scorer, ('belt', 'bolt', 'washer'))
    assert summary['iou'] == {'belt': 0.5, 'bolt': 1.0, 'washer': 0.0}
    assert summary['miou'] == 0.5 and summary['miou_in_view'] == 0.75


def test_scorer_forgets_unmatched_frames_beyond_the_window() -> None:
    scorer = scoring.StampPairingScorer(num_classes=2)
    frame = np.zeros((1, 1), np.uint8)
    for stamp in range(scoring.PAIRING_WINDOW + 1):
        scorer.add_truth(stamp, frame)
    scorer.add_labels(0, frame)  # its truth was forgotten
    scorer.add_labels(1, frame)
    assert scorer.frames_scored == 1


def test_number_and_rounded() -> None:
    assert scoring.number('12') == 12 and isinstance(scoring.number('12.0'), int)
    assert scoring.number('1.5') == 1.5
    assert scoring.number('n/a') is None and scoring.number(None) is None
    assert scoring.rounded(float('nan')) is None and scoring.rounded(1.23456, 3) == 1.235


def test_the_video_worker_runs_jobs_in_order_at_the_lowest_priority() -> None:
    import os
    import threading

    import pytest

    from lw_refinenet_ros.demo.encoder import LOWEST_PRIORITY, LowPriorityWorker

    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    done: list[int] = []
    worker = LowPriorityWorker('test-worker', max_queued=2)
    for index in range(6):                     # more than max_queued: submit waits its turn
        worker.submit(lambda index=index: done.append(index))
    worker.submit(lambda: 1 / 0)               # a failing job is counted, not fatal
    worker.submit(lambda: done.append(99))
    worker.close()
    worker.close()                             # twice is harmless
    assert done == [0, 1, 2, 3, 4, 5, 99]
    report = worker.describe()
    assert report['jobs'] == 8 and report['errors'] == ['ZeroDivisionError: division by zero']
    assert report['nice'] == min(main_nice + LOWEST_PRIORITY, 19)
    # Only the worker thread was lowered, not the demo's own threads.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice
    with pytest.raises(RuntimeError, match='after close'):
        worker.submit(lambda: None)
