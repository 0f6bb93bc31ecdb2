"""`lw-refinenet segment` calibrates int8 on its own images, and uses it only when it agrees.

End to end through the CLI's main function on tiny images and tiny generated models, each
with its own runtime cache folder, so that what the job leaves in the cache can be checked.
``--input-int8-min-speedup 0`` takes speed out of the decision where a test is about the
agreement gate (on this CPU int8 may well be slower than fp32; speed is the benchmarks'
business).
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from lw_refinenet_ros.cli import main
from lw_refinenet_ros.cli.segment_int8 import InputInt8Settings, split_sample, why_not
from lw_refinenet_ros.engine.cache import files_sha256
from lw_refinenet_ros.engine.config import EngineConfig
from lw_refinenet_ros.model import build_model, save_checkpoint

pytest.importorskip('openvino')
pytest.importorskip('nncf')

CHECKS = '4'   # 8 calibration images + 4 check images: a job needs 12
# The job's start-up engine: fp32, or bf16 where the CPU has bf16 units and it timed faster.
START_UP = r'openvino/(fp32|bf16)'


def _checkpoint(path: pathlib.Path, *, near_tie: bool = False) -> pathlib.Path:
    torch.manual_seed(0)
    model = build_model('mbv2', 3).eval()
    if near_tie:
        # Classes 0 and 1 differ by less than one int8 step of the classifier's weights:
        # fp32 decides between them pixel by pixel, int8 cannot follow.
        with torch.no_grad():
            weight = model.segm.weight
            weight[1] = weight[0] + 1e-4 * torch.randn_like(weight[0])
            model.segm.bias[1] = model.segm.bias[0]
            model.segm.bias[2] = model.segm.bias[0] - 100.0
    save_checkpoint(path, model, arch='mbv2')
    return path


@pytest.fixture(scope='module')
def weights(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _checkpoint(tmp_path_factory.mktemp('ckpt') / 'tiny.pt')


@pytest.fixture(scope='module')
def fp32_cache(tmp_path_factory: pytest.TempPathFactory, weights: pathlib.Path) -> pathlib.Path:
    """A runtime cache holding only the tiny model's fp32 export, built once for the module."""
    root = tmp_path_factory.mktemp('fp32')
    cache = root / 'cache'
    assert _run(_images(root / 'in', 1), weights, root / 'out', cache, '--no-input-int8') == 0
    assert _int8_entries(cache) == []
    return cache


def _cache(tmp_path: pathlib.Path, fp32_cache: pathlib.Path) -> pathlib.Path:
    """This test's own cache, starting from the shared fp32 export (no int8 in it)."""
    shutil.copytree(fp32_cache, tmp_path / 'cache')
    return tmp_path / 'cache'


def _images(folder: pathlib.Path, count: int) -> pathlib.Path:
    folder.mkdir()
    rng = np.random.default_rng(3)
    for index in range(count):
        image = np.zeros((48, 64, 3), dtype=np.uint8) + rng.integers(40, 200, 3,
                                                                       dtype=np.uint8)
        cv2.rectangle(image, (8 + index, 10), (40, 36), rng.integers(0, 256, 3).tolist(), -1)
        cv2.imwrite(str(folder / f'img{index:02d}.png'), image)
    return folder


def _run(inputs: pathlib.Path, weights: pathlib.Path, out: pathlib.Path,
         cache: pathlib.Path, *extra: str) -> int:
    return main(['segment', str(inputs), '--weights', str(weights), '--out', str(out),
                 '--device', 'cpu', '--backend', 'openvino', '--cache-dir', str(cache),
                 '--input-int8-check-frames', CHECKS, '--no-progress', '--outputs', 'labels',
                 *extra])


def _int8_entries(cache: pathlib.Path) -> list[dict]:
    manifests = [json.loads(p.read_text()) for p in cache.glob('*/*/manifest.json')]
    return [m['parts'] for m in manifests if m['parts'].get('precision') == 'int8'
            or 'int8' in str(m['parts'].get('artifact', ''))]


def _leftovers(cache: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in cache.rglob('*') if p.name.startswith('.tmp-')]


def test_enough_images_that_agree_switch_to_int8_calibrated_on_them(
        tmp_path: pathlib.Path, weights: pathlib.Path, fp32_cache: pathlib.Path,
        capsys: pytest.CaptureFixture) -> None:
    inputs = _images(tmp_path / 'in', 12)
    cache = _cache(tmp_path, fp32_cache)
    assert _run(inputs, weights, tmp_path / 'out', cache, '--agreement-min', '0',
                '--input-int8-min-speedup', '0') == 0
    captured = capsys.readouterr()
    assert 'int8 calibrated on 8 of the job' in captured.err
    assert re.search(rf'% of labels equal to {START_UP} on 4 other images of the job',
                     captured.err)
    assert 'with openvino/int8 on cpu' in captured.out
    assert len(list((tmp_path / 'out').glob('*_labels.png'))) == 12
    # Cached, keyed by the calibration's identity: the 8 images spread over the job.
    calibration, _ = split_sample(sorted(inputs.iterdir()), InputInt8Settings(check_frames=4))
    (entry,) = _int8_entries(cache)
    assert entry['calibration'] == files_sha256(calibration)
    assert not _leftovers(cache)


def test_int8_below_the_gate_is_refused_with_the_figure_and_not_kept(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture) -> None:
    weights = _checkpoint(tmp_path / 'near_tie.pt', near_tie=True)
    inputs = _images(tmp_path / 'in', 12)
    cache = tmp_path / 'cache'
    assert _run(inputs, weights, tmp_path / 'out', cache, '--agreement-min', '0.999',
                '--input-int8-min-speedup', '0') == 0
    captured = capsys.readouterr()
    assert 'int8 not used: ' in captured.err
    refused = re.search(rf'% of labels equal to {START_UP} on 4 other images of the job, '
                        rf'below agreement_min 99.9 %; running on {START_UP} ', captured.err)
    assert refused and refused[1] == refused[2], captured.err  # judged against what runs
    assert captured.err.count('int8 not used') == 1  # said once
    assert f'with openvino/{refused[2]} on cpu' in captured.out
    # The refused model is gone, so that a later start cannot offer it.
    assert _int8_entries(cache) == [] and not _leftovers(cache)


def test_too_few_images_keep_fp32_and_say_how_many_are_needed(
        tmp_path: pathlib.Path, weights: pathlib.Path, fp32_cache: pathlib.Path,
        capsys: pytest.CaptureFixture) -> None:
    inputs = _images(tmp_path / 'in', 5)
    cache = _cache(tmp_path, fp32_cache)
    assert _run(inputs, weights, tmp_path / 'out', cache) == 0
    captured = capsys.readouterr()
    assert ('int8 not calibrated on the inputs: 5 still image(s), at least 12 needed (8 to '
            'calibrate, 4 others to check it') in captured.err
    assert re.search(rf'with {START_UP} on cpu', captured.out)
    assert _int8_entries(cache) == [] and not _leftovers(cache)


def test_a_failing_calibration_keeps_fp32_and_leaves_nothing_half_written(
        tmp_path: pathlib.Path, weights: pathlib.Path, fp32_cache: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from lw_refinenet_ros.engine import quantize

    def disk_full(fp32_xml: pathlib.Path, out_xml: pathlib.Path, *args: object,
                  **kwargs: object) -> int:
        out_xml.write_bytes(b'<net')  # half a model, then the disk is full
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(quantize, 'quantize_batches', disk_full)
    inputs = _images(tmp_path / 'in', 12)
    cache = _cache(tmp_path, fp32_cache)
    assert _run(inputs, weights, tmp_path / 'out', cache, '--agreement-min', '0',
                '--input-int8-min-speedup', '0') == 0
    captured = capsys.readouterr()
    failed = re.search(r"int8 not used: calibrating on 8 of the job's images failed "
                       rf'\(\[Errno 28\] No space left on device\); running on {START_UP}\n',
                       captured.err)
    assert failed, captured.err
    assert f'with openvino/{failed[1]} on cpu' in captured.out
    assert len(list((tmp_path / 'out').glob('*_labels.png'))) == 12
    assert _int8_entries(cache) == [] and not _leftovers(cache)


def test_the_flag_turns_it_off_without_a_word(tmp_path: pathlib.Path, weights: pathlib.Path,
                                              fp32_cache: pathlib.Path,
                                              capsys: pytest.CaptureFixture) -> None:
    inputs = _images(tmp_path / 'in', 12)
    cache = _cache(tmp_path, fp32_cache)
    assert _run(inputs, weights, tmp_path / 'out', cache, '--no-input-int8',
                '--agreement-min', '0', '--input-int8-min-speedup', '0') == 0
    assert 'int8' not in capsys.readouterr().err
    assert _int8_entries(cache) == []


def _fake(described: dict, **config: object) -> SimpleNamespace:
    return SimpleNamespace(engine_config=EngineConfig(**config),
                           describe=lambda: described)


def test_int8_timed_slower_at_start_up_is_not_calibrated_again() -> None:
    settings = InputInt8Settings()
    slower = _fake({'backend': 'openvino', 'precision': 'fp32', 'device': 'cpu',
                    'int8_model': 'openvino: abc',
                    'selection_ms': {'openvino/fp32': 10.0, 'openvino/int8': 12.0}})
    reason, say = why_not(slower, settings, 100)
    assert say and 'openvino/int8 (openvino: abc) was timed at start-up at 12.0 ms against ' \
                   '10.0 ms for openvino/fp32, not 1.05x faster on this CPU' in reason
    # int8 faster at start-up but not chosen (it failed the warm-up gate): calibrate.
    faster = _fake({'backend': 'openvino', 'precision': 'fp32', 'device': 'cpu',
                    'selection_ms': {'openvino/fp32': 10.0, 'openvino/int8': 5.0}})
    assert why_not(faster, settings, 100) == ('', False)
    # A precision asked for, or already int8: nothing to say.
    asked = _fake({'backend': 'openvino', 'precision': 'fp32', 'device': 'cpu'},
                  precision='fp32')
    assert why_not(asked, settings, 100)[1] is False
    running = _fake({'backend': 'openvino', 'precision': 'int8', 'device': 'cpu'})
    assert why_not(running, settings, 100)[1] is False


def test_the_sample_is_spread_over_the_job_and_checks_are_other_images() -> None:
    images = [pathlib.Path(f'{i:03d}.png') for i in range(100)]
    calibration, checks = split_sample(images, InputInt8Settings(frames=32, check_frames=8))
    assert len(calibration) == 32 and len(checks) == 8
    assert not set(calibration) & set(checks)
    assert calibration[0] == images[0] and calibration[-1] == images[-1]
    assert checks[-1].name > '080'  # the checks reach the end of the job too
    few, few_checks = split_sample(images[:12], InputInt8Settings(frames=32, check_frames=4))
    assert len(few) == 8 and len(few_checks) == 4 and not set(few) & set(few_checks)


def test_images_of_another_size_run_on_the_start_up_engine(
        tmp_path: pathlib.Path, weights: pathlib.Path, fp32_cache: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from lw_refinenet_ros.segmenter import Segmenter

    inputs = _images(tmp_path / 'in', 12)
    cv2.imwrite(str(inputs / 'zz_small.png'), np.full((40, 56, 3), 90, dtype=np.uint8))
    ran: dict[str, str] = {}
    original = Segmenter.segment

    def spy(self, image, order='rgb', **kwargs):  # type: ignore[no-untyped-def]
        result = original(self, image, order, **kwargs)
        ran[f'{image.shape[0]}x{image.shape[1]}'] = self.describe()['precision']
        return result

    monkeypatch.setattr(Segmenter, 'segment', spy)
    assert _run(inputs, weights, tmp_path / 'out', _cache(tmp_path, fp32_cache),
                '--agreement-min', '0', '--input-int8-min-speedup', '0') == 0
    assert 'running on openvino/int8' in capsys.readouterr().err
    # The int8 model is built for the first image's size; the small one runs on the
    # start-up engine.
    assert ran['48x64'] == 'int8' and ran['40x56'] in ('fp32', 'bf16') and len(ran) == 2
    labels = cv2.imread(str(tmp_path / 'out' / 'zz_small_labels.png'), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (40, 56)
