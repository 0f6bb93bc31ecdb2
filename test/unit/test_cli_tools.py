"""The segment, export and bench subcommands, end to end on tiny inputs."""

from __future__ import annotations

import json
import pathlib

import cv2
import numpy as np
import pytest
import torch

from lw_refinenet_ros.cli import main
from lw_refinenet_ros.model import build_model, save_checkpoint


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    torch.manual_seed(0)
    model = build_model('mbv2', 3).eval()
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pt'
    save_checkpoint(path, model, arch='mbv2', class_names=['bg', 'box', 'can'],
                    colors=[(0, 0, 0), (255, 0, 0), (0, 0, 255)])
    return path


def test_segment_writes_three_pngs(tmp_path: pathlib.Path, checkpoint: pathlib.Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (27, 35, 3), dtype=np.uint8)
    inputs = tmp_path / 'in'
    inputs.mkdir()
    cv2.imwrite(str(inputs / 'part.png'), image)
    out = tmp_path / 'out'
    code = main(['segment', str(inputs), '--weights', str(checkpoint), '--out', str(out),
                 '--device', 'cpu', '--no-progress'])
    assert code == 0
    labels = cv2.imread(str(out / 'part_labels.png'), cv2.IMREAD_UNCHANGED)
    color = cv2.imread(str(out / 'part_color.png'), cv2.IMREAD_UNCHANGED)
    over = cv2.imread(str(out / 'part_overlay.png'), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (27, 35) and labels.dtype == np.uint8 and labels.max() < 3
    assert color.shape == (27, 35, 3) and over.shape == (27, 35, 3)
    # Class 1 is red in the checkpoint: BGR (0, 0, 255) on disk.
    if (labels == 1).any():
        assert color[labels == 1][0].tolist() == [0, 0, 255]


def test_segment_video_frames(tmp_path: pathlib.Path, checkpoint: pathlib.Path) -> None:
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 5, (32, 24))
    if not writer.isOpened():
        pytest.skip('no video encoder in this OpenCV build')
    for i in range(3):
        writer.write(np.full((24, 32, 3), 40 * i, dtype=np.uint8))
    writer.release()
    out = tmp_path / 'out'
    assert main(['segment', str(video), '--weights', str(checkpoint), '--out', str(out),
                 '--device', 'cpu', '--no-progress', '--video-stride', '2']) == 0
    assert sorted(p.name for p in out.glob('*_labels.png')) == [
        'clip_000000_labels.png', 'clip_000002_labels.png']


def test_segment_errors(tmp_path: pathlib.Path, checkpoint: pathlib.Path,
                        capsys: pytest.CaptureFixture) -> None:
    code = main(['segment', str(tmp_path / 'missing.png'), '--weights', str(checkpoint),
                 '--out', str(tmp_path)])
    assert code == 2 and 'does not exist' in capsys.readouterr().err


@pytest.mark.slow
def test_export_static_and_dynamic_onnx(tmp_path: pathlib.Path,
                                        capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip('onnxruntime')
    static = tmp_path / 'static.onnx'
    assert main(['export', '--onnx', str(static), '--num-classes', '3', '--height', '32',
                 '--width', '48', '--check']) == 0
    assert 'OK' in capsys.readouterr().out
    dynamic = tmp_path / 'dynamic.onnx'
    assert main(['export', '--onnx', str(dynamic), '--num-classes', '3', '--height', '40',
                 '--width', '56', '--dynamic', '--check']) == 0
    out = capsys.readouterr().out
    assert '40x56, 21x31' in out and 'OK' in out


def test_bench_json(tmp_path: pathlib.Path) -> None:
    target = tmp_path / 'bench.json'
    assert main(['bench', '--size', '40x24', '--device', 'cpu', '--iters', '2', '--warmup', '0',
                 '--num-classes', '3', '--backend', 'torch', '--json', str(target)]) == 0
    data = json.loads(target.read_text())
    (row,) = data['results']
    assert row['arch'] == 'mbv2' and (row['width'], row['height']) == (40, 24)
    assert row['device'] == 'cpu'
    assert row['label_agreement_pct'] == 100.0
    assert row['engine']['p50_ms'] > 0 and row['reference']['fps'] > 0
    assert row['speedup_p50'] > 0 and data['meta']['torch'] == torch.__version__



def test_bench_backends_compares_runtimes_against_torch_fp32(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / 'backends.json'
    assert main(['bench', '--backends', 'openvino', 'onnxruntime', '--precision', 'fp32',
                 '--size', '48x32', '--device', 'cpu', '--iters', '2', '--warmup', '0',
                 '--num-classes', '3', '--threads', '1', '--cache-dir', str(tmp_path / 'c'),
                 '--json', str(target)]) == 0
    data = json.loads(target.read_text())
    rows = {f'{r["backend"]}/{r["precision"]}': r for r in data['results']}
    assert set(rows) == {'torch/fp32', 'openvino/fp32', 'onnxruntime/fp32'}
    for row in rows.values():
        assert row['label_agreement_pct'] >= 99.0 and row['p50_ms'] > 0
    assert rows['torch/fp32']['speedup_vs_torch_fp32'] == 1.0
    # describe() says where the start-up time went (torch fp32 alone is built directly).
    assert set(rows['openvino/fp32']['engine_settings']['selection_phases_s']) == \
        {'reference', 'build', 'timing'}
    assert rows['torch/fp32']['engine_settings']['selection_phases_s'] == {}
    assert data['meta']['cpu'] and data['meta']['openvino']
    out = capsys.readouterr().out
    assert out.startswith('CPU: ') and '| 48x32 | openvino | fp32 |' in out

def test_segment_writes_16bit_labels_when_k_exceeds_256(tmp_path: pathlib.Path) -> None:
    torch.manual_seed(0)
    ckpt = tmp_path / 'wide.pt'
    save_checkpoint(ckpt, build_model('mbv2', 300).eval(), arch='mbv2')
    cv2.imwrite(str(tmp_path / 'img.png'), np.full((12, 20, 3), 90, dtype=np.uint8))
    out = tmp_path / 'out'
    assert main(['segment', str(tmp_path / 'img.png'), '--weights', str(ckpt), '--out',
                 str(out), '--device', 'cpu', '--no-progress']) == 0
    labels = cv2.imread(str(out / 'img_labels.png'), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint16 and labels.shape == (12, 20) and labels.max() < 300


def test_segment_without_weights_uses_the_default_model_or_explains(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    from lw_refinenet_ros.model import weights

    monkeypatch.setattr(weights, 'DEFAULT_MODEL_PATH', tmp_path / 'absent.pt')
    cv2.imwrite(str(tmp_path / 'img.png'), np.zeros((8, 8, 3), dtype=np.uint8))
    code = main(['segment', str(tmp_path / 'img.png'), '--out', str(tmp_path / 'out')])
    assert code == 2 and 'default model' in capsys.readouterr().err


def test_segment_objects_writes_parts_tracks_videos_and_takes_the_node_options(
        tmp_path: pathlib.Path) -> None:
    from lw_refinenet_ros.data.conveyor import CLASS_NAMES, ConveyorScene

    scene = ConveyorScene(31, (320, 240))
    frames = [scene.next_frame()[0][:, :, ::-1].copy() for _ in range(4)]  # BGR
    inputs = tmp_path / 'in'
    inputs.mkdir()
    cv2.imwrite(str(inputs / 'still.png'), frames[0])
    video = inputs / 'belt.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 30, (320, 240))
    assert writer.isOpened(), 'this OpenCV build cannot write MJPG AVI files'
    for frame in frames:
        writer.write(frame)
    writer.release()
    out = tmp_path / 'out'
    engine = ['--device', 'cpu', '--backend', 'torch', '--precision', 'fp32', '--no-progress']
    assert main(['segment', str(inputs), '--out', str(out), '--objects', *engine]) == 0

    still = json.loads((out / 'still_objects.json').read_text())
    assert (still['width'], still['height']) == (320, 240) and still['objects']
    for part in still['objects']:
        box, pick = part['bbox'], part['pick']
        assert part['class_name'] in CLASS_NAMES[2:] and part['id'] == 0
        assert box['x'] <= pick['x'] < box['x'] + box['width']
        assert box['y'] <= pick['y'] < box['y'] + box['height']
        assert 0.0 < part['score'] <= 1.0
    # Within the video, a part keeps its id from frame to frame.
    video_frames = [json.loads((out / f'belt_{i:06d}_objects.json').read_text())
                    for i in range(4)]
    ids = [{p['id'] for p in frame['objects']} for frame in video_frames]
    assert all(ids) and 0 not in ids[0] and ids[0] & ids[3]
    assert any(p['confirmed'] for p in video_frames[3]['objects'])
    # The overlay shows the objects: it differs from a run without them.
    plain = tmp_path / 'plain'
    assert main(['segment', str(inputs / 'still.png'), '--out', str(plain), *engine]) == 0
    assert not (plain / 'still_objects.json').exists()
    assert not np.array_equal(cv2.imread(str(out / 'still_overlay.png')),
                              cv2.imread(str(plain / 'still_overlay.png')))
    # The objects.* options are flags: a huge minimum area leaves nothing.
    big = tmp_path / 'big'
    assert main(['segment', str(inputs / 'still.png'), '--out', str(big), '--objects',
                 '--objects-min-area', '100000', *engine]) == 0
    assert json.loads((big / 'still_objects.json').read_text())['objects'] == []


def test_segment_finds_parts_on_the_network_grid_unless_told_camera(
        tmp_path: pathlib.Path) -> None:
    """A 640x480 image on a network run at 320x240 (--max-side 320): by default the parts
    are found on every second pixel (pick points are grid samples: even coordinates) and
    reported in camera pixels; --objects-detect-at camera finds them on every pixel."""
    from lw_refinenet_ros.data.conveyor import ConveyorScene

    scene = ConveyorScene(31, (640, 480))
    for _ in range(20):
        image = scene.next_frame()[0]
    cv2.imwrite(str(tmp_path / 'belt.png'), image[:, :, ::-1])
    engine = ['--device', 'cpu', '--backend', 'torch', '--precision', 'fp32', '--no-progress',
              '--max-side', '320', '--objects']
    found = {}
    for mode in ('network', 'camera'):
        out = tmp_path / mode
        assert main(['segment', str(tmp_path / 'belt.png'), '--out', str(out), *engine,
                     '--objects-detect-at', mode]) == 0
        record = json.loads((out / 'belt_objects.json').read_text())
        assert (record['width'], record['height']) == (640, 480) and record['objects']
        found[mode] = record['objects']
        for part in record['objects']:
            box, pick = part['bbox'], part['pick']
            assert box['x'] <= pick['x'] < box['x'] + box['width']
            assert box['y'] <= pick['y'] < box['y'] + box['height']
    assert all(p['pick']['x'] % 2 == 0 and p['pick']['y'] % 2 == 0 for p in found['network'])
    assert not all(p['pick']['x'] % 2 == 0 and p['pick']['y'] % 2 == 0
                   for p in found['camera'])


def test_segment_splits_overlapping_washers_at_their_holes_unless_told_otherwise(
        tmp_path: pathlib.Path) -> None:
    """A validation belt (seed 20009, frame 44) where two washers lie on each other: the
    packaged model labels them as one washer blob with two holes. By default they are two
    objects; ``--objects-one-hole-classes`` with no class leaves them one."""
    from lw_refinenet_ros.data.conveyor import ConveyorScene

    scene = ConveyorScene(20009, (320, 240))
    for _ in range(44):
        image = scene.next_frame()[0]
    cv2.imwrite(str(tmp_path / 'belt.png'), image[:, :, ::-1])
    engine = ['--device', 'cpu', '--backend', 'torch', '--precision', 'fp32', '--no-progress',
              '--objects']
    washers = {}
    for name, extra in (('default', []), ('off', ['--objects-one-hole-classes'])):
        out = tmp_path / name
        assert main(['segment', str(tmp_path / 'belt.png'), '--out', str(out), *engine,
                     *extra]) == 0
        record = json.loads((out / 'belt_objects.json').read_text())
        washers[name] = sum(p['class_name'] == 'washer' for p in record['objects'])
    assert washers['default'] == washers['off'] + 1
