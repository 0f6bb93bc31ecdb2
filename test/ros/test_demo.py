"""``lw-refinenet demo`` end to end, as a subprocess of the same venv.

Two runs: one against a stand-in node (the tests' one fake node,
``lw_refinenet_ros.testing.fake_node``: the real node around a fake engine that labels the
conveyor classes with a colour rule instead of a model), which tests the harness (processes,
recording, pairing by stamp, scoring, robot, outputs) on any machine; and one with the real
segmentation node and the packaged default model."""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import mcap_ros2.reader as mcap_reader
import pytest

from lw_refinenet_ros.demo.runner import OWN_NICE

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FAKE_NODE = 'lw_refinenet_ros.testing.fake_node'
RELATIVE_TOPICS = ('image', 'camera_info', 'ground_truth/labels', 'segmentation/labels',
                   'segmentation/stats', 'segmentation/class_map')


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, FAKE_NODE_RULE='conveyor', **extra)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(ROOT), str(HERE), env.get('PYTHONPATH')) if p)
    return env


def _namespace(out: Path) -> str:
    # Unique per test: parallel suites may share a DDS domain.
    return f'/demo_{abs(hash(str(out))) % 10**8}'


def _run_demo(out: Path, *extra: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'lw_refinenet_ros', 'demo', '--out', str(out),
         '--namespace', _namespace(out), *extra],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


def _check_outputs(out: Path, snapshots: int) -> dict:
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['node']['processed'] > 0
    assert summary['results']['labels_received'] > 0
    assert summary['camera']['published'] == summary['camera']['recorded'] > 0
    assert summary['latency_ms']['p50'] is not None
    assert summary['accuracy']['frames_scored'] > 0
    pngs = sorted(out.glob('overlay_*.png'))
    assert len(pngs) == snapshots and all(p.stat().st_size > 1000 for p in pngs)
    counts: dict[str, int] = {}
    for message in mcap_reader.read_ros2_messages(str(out / 'demo.mcap')):
        counts[message.channel.topic] = counts.get(message.channel.topic, 0) + 1
    ns = _namespace(out)
    assert {f'{ns}/{t}' for t in RELATIVE_TOPICS} | {'/diagnostics'} <= set(counts)
    assert counts == summary['recording']['messages']
    assert counts[f'{ns}/image'] == counts[f'{ns}/ground_truth/labels'] \
        == summary['camera']['recorded']
    assert counts[f'{ns}/segmentation/labels'] == summary['results']['labels_received']
    # The demo's bookkeeping yields to the node once it runs (demo/runner.py OWN_NICE).
    assert summary['cpu_s']['demo_nice'] == min(19, os.nice(0) + OWN_NICE)
    return summary


def test_image_decoding_handles_padding_and_bgr():
    import numpy as np
    from sensor_msgs.msg import Image

    from lw_refinenet_ros.demo.monitor import image_array

    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.zeros((2, 12), np.uint8)  # step 12 > 3 * 3: row padding
    padded[:, :9] = rgb[..., ::-1].reshape(2, 9)
    msg = Image(height=2, width=3, encoding='bgr8', step=12, data=padded.tobytes())
    np.testing.assert_array_equal(image_array(msg), rgb)
    mono = Image(height=2, width=3, encoding='mono8', step=4, data=bytes(range(8)))
    np.testing.assert_array_equal(image_array(mono), [[0, 1, 2], [4, 5, 6]])


@pytest.mark.slow
def test_demo_harness_with_stand_in_node(tmp_path):
    out = tmp_path / 'demo'
    result = _run_demo(out, '--duration', '3', '--device', 'cpu', '--snapshots', '3',
                       '--node-module', FAKE_NODE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Demo summary' in result.stdout and 'mIoU' in result.stdout
    summary = _check_outputs(out, snapshots=3)
    # The colour rule gets the belt/floor split roughly right: pairing by stamp works (a
    # mismatched pairing of a moving scene would score far lower).
    assert summary['accuracy']['pixel_accuracy'] > 0.4
    assert summary['node']['failed'] == 0
    assert summary['robot']['picks'] >= 1
    assert (out / 'logs' / 'camera.log').is_file()


@pytest.mark.slow
def test_ctrl_c_ends_the_run_with_the_summary_so_far(tmp_path):
    out = tmp_path / 'demo'
    process = subprocess.Popen(
        [sys.executable, '-m', 'lw_refinenet_ros', 'demo', '--out', str(out),
         '--namespace', _namespace(out), '--duration', '60',
         '--device', 'cpu', '--node-module', FAKE_NODE, '--snapshots', '30'],
        cwd=ROOT, env=_env(FAKE_NODE_NO_OVERLAY='1'), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        for line in process.stdout:  # wait until the camera runs, then let a second pass
            if line.startswith('Running for') or time.monotonic() > deadline:
                break
        # Past the first snapshot (due 1 s into the run; later on a loaded machine).
        snapshot_deadline = time.monotonic() + 30
        while not (out / 'overlay_00.png').is_file() and time.monotonic() < snapshot_deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert 'interrupted' in rest
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['interrupted'] and summary['duration_s'] < 30
    assert summary['results']['labels_received'] > 0
    assert (out / 'demo.mcap').stat().st_size > 0
    # The stand-in published no overlay: the snapshot was composed from camera + labels.
    assert (out / 'overlay_00.png').is_file()
    assert f'{_namespace(out)}/segmentation/overlay' not in summary['recording']['messages']


def test_missing_weights_is_a_clear_error(tmp_path):
    result = _run_demo(tmp_path / 'demo', '--weights', str(tmp_path / 'missing.pt'),
                       timeout=60)
    assert result.returncode == 2
    assert 'missing.pt' in result.stderr and 'does not exist' in result.stderr
    assert not (tmp_path / 'demo').exists()


@pytest.mark.slow
def test_node_failing_at_startup_is_reported_with_its_log(tmp_path):
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(b'not a checkpoint')
    result = _run_demo(tmp_path / 'demo', '--weights', str(corrupt), '--device', 'cpu',
                       timeout=120)
    assert result.returncode == 2
    assert 'segmentation node exited' in result.stderr
    assert 'corrupt.pt' in result.stderr  # the node's own reason, from its log


@pytest.mark.slow
def test_demo_with_real_node(tmp_path):
    """The real node on the packaged conveyor model."""
    from lw_refinenet_ros.model import DEFAULT_MODEL_PATH
    assert Path(DEFAULT_MODEL_PATH).is_file(), 'the packaged model is missing: make setup'
    out = tmp_path / 'demo'
    result = _run_demo(out, '--duration', '4', '--device', 'cpu', timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = _check_outputs(out, snapshots=5)
    assert summary['node']['failed'] == 0
    # The node's count comes from its last /diagnostics message, the monitor's from the labels
    # it received: the frame in flight when the diagnostics were sent can fall on either side.
    assert abs(summary['node']['processed'] - summary['results']['labels_received']) <= 1
    assert summary['results']['labels_received'] > 0
    assert summary['recording']['messages'][f'{_namespace(out)}/segmentation/overlay'] > 0
    # A trained conveyor model scores far above chance on its own generator.
    assert summary['accuracy']['miou'] > 0.3
    # The packaged model's conveyor int8 was checked before the run, and the node runs it
    # exactly when the check passed; every process's CPU seconds are in the summary.
    check = summary['int8_check']
    assert 'int8 checked before the run' in result.stdout or 'int8 not used' in result.stdout
    model = summary['node']['diagnostics']['model']
    assert model.endswith('via openvino/int8') is bool(check['use']), (check, model)
    cpu = summary['cpu_s']
    assert cpu['segmentation_node'] > 0 and cpu['camera'] > 0 and cpu['demo'] > 0
    assert 'cpu        node ' in result.stdout


def test_a_density_outside_the_supported_range_is_refused_with_the_range(tmp_path):
    result = _run_demo(tmp_path / 'demo', '--density', '25', timeout=60)
    assert result.returncode == 2
    assert '--density 25 is outside the supported range 1 to 10' in result.stderr
    assert not (tmp_path / 'demo').exists()


@pytest.mark.slow
def test_a_crowded_belt_of_a_chosen_seed_is_scored_for_pickable_parts(tmp_path):
    out = tmp_path / 'demo'
    result = _run_demo(out, '--duration', '3', '--device', 'cpu', '--density', '8',
                       '--seed', '31001', '--node-module', FAKE_NODE)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['config']['density'] == 8.0 and summary['config']['seed'] == 31001
    assert summary['config']['camera_loop_frames'] == 150
    assert 'density 8' in result.stdout and 'replays a 150-frame loop' in result.stdout
    pickable = summary['objects']['pickable']
    assert pickable is not None and pickable['frames'] > 0
    assert 'pickable   precision' in result.stdout
    parts_per_frame = [len(m.ros_msg.objects) for m in mcap_reader.read_ros2_messages(
        str(out / 'demo.mcap'), topics=[f'{_namespace(out)}/ground_truth/objects'])]
    assert parts_per_frame and sum(parts_per_frame) / len(parts_per_frame) > 4
    # The demo's own cost: compressed chunks, the writing time, the video at low priority.
    recording = summary['recording']
    assert recording['compression'] == 'lz4' and recording['write_s'] > 0
    assert recording['bytes'] < recording['payload_bytes']
    assert summary['video']['encoder']['nice'] == 19
    assert summary['processes']['segmentation_node']['exit_code'] == 0


@pytest.mark.slow
def test_a_node_that_does_not_exit_cleanly_fails_the_demo(tmp_path):
    out = tmp_path / 'demo'
    result = _run_demo(out, '--duration', '2', '--device', 'cpu',
                       '--node-module', 'exit_code_node')
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'segmentation node exited with code 3' in result.stdout
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['processes']['segmentation_node']['exit_code'] == 3
    assert summary['results']['labels_received'] > 0     # it did work: only its exit was bad
