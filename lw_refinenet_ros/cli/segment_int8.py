"""int8 for ``lw-refinenet segment``, calibrated on the job's own images.

A job of many images carries the best calibration frames there are: the images it will
segment. With ``precision: auto`` on a CPU, after the engine is built on the first image,
:func:`input_int8` takes up to ``input_int8.frames`` of the job's still images (evenly spread
over the job) to calibrate an int8 model through the engine's own code
(:func:`~lw_refinenet_ros.engine.startup.build_int8`: OpenVINO with NNCF, else ONNX Runtime
QDQ; cached keyed with the calibration's identity, a hash of the files' names and contents),
then segments ``input_int8.check_frames`` *other* images of the job with both engines,
interleaved. int8 is used only when its labels agree with the current engine's on at least
``agreement_min`` of the pixels (the node's live int8 gate) **and** it is at least
``input_int8.min_speedup`` times faster on those images: on a CPU without VNNI int8 can be
slower than fp32, and then the job keeps fp32 and says so.

The job needs at least :func:`minimum_images` still images (the calibration code's minimum,
:data:`~lw_refinenet_ros.engine.quantize.MIN_CALIBRATION_FRAMES`, plus the check images);
video frames are not sampled. Too few images, a calibration that fails or disagrees, a slower
int8: the job runs on at its start-up precision and one line on stderr says why. A failed
build leaves nothing in the cache (the cache builds in a temporary folder); an int8 model that
failed its check is removed again, so that a later start cannot offer it.

An int8 model timed at start-up (one cached earlier, or the packaged model's from the conveyor
generator) that lost on speed is not calibrated again: another calibration does not change
its speed. Options come from :data:`INPUT_INT8_PARAMETERS` (``--input-int8-*`` flags, named
like the node's ``live_int8.*`` parameters).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from pathlib import Path
import shutil
import statistics
import time
from typing import Any, Sequence

import numpy as np

from lw_refinenet_ros.engine.decisions import TIE_RATIO
from lw_refinenet_ros.engine.quantize import MAX_CALIBRATION_IMAGES, MIN_CALIBRATION_FRAMES
from lw_refinenet_ros.options import ParameterSpec, values_from_args

INPUT_INT8_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec('input_int8.enabled', True,
                  'With precision auto on a CPU and no faster int8 model judged at start-up: '
                  "calibrate int8 on some of the job's images and use it when its labels on "
                  'other images of the job agree (agreement_min) and it is faster '
                  '(input_int8.min_speedup); cached for the next job. --no-input-int8: never.',
                  flags=('--input-int8',)),
    ParameterSpec('input_int8.frames', 32,
                  'Images of the job int8 is calibrated on at most (evenly spread over the '
                  f'job; at least {MIN_CALIBRATION_FRAMES} are needed).',
                  minimum=MIN_CALIBRATION_FRAMES, maximum=MAX_CALIBRATION_IMAGES),
    ParameterSpec('input_int8.check_frames', 8,
                  'Other images of the job on which int8 labels and speed are compared with '
                  'the start-up engine before switching.', minimum=1, maximum=1000),
    ParameterSpec('input_int8.min_speedup', TIE_RATIO,
                  'int8 is used only when it segments the check images at least this many '
                  'times faster than the start-up engine (1.05: ties keep it, as in the '
                  'remembered selection); 0: whenever it agrees.', minimum=0.0, maximum=100.0),
)


@dataclasses.dataclass(frozen=True)
class InputInt8Settings:
    """The values of :data:`INPUT_INT8_PARAMETERS`."""

    enabled: bool = True
    frames: int = 32
    check_frames: int = 8
    min_speedup: float = TIE_RATIO

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> InputInt8Settings:
        """From the ``--input-int8-*`` flags (unset ones keep the table's defaults)."""
        given = values_from_args(args, INPUT_INT8_PARAMETERS)
        values = {spec.name: given.get(spec.name, spec.default)
                  for spec in INPUT_INT8_PARAMETERS}
        return cls(**{name.split('.', 1)[1]: value for name, value in values.items()})


def minimum_images(settings: InputInt8Settings) -> int:
    """Still images a job needs before int8 is calibrated on it."""
    return MIN_CALIBRATION_FRAMES + settings.check_frames


@dataclasses.dataclass
class InputInt8Outcome:
    """What :func:`input_int8` did.

    Attributes:
        segmenter: The int8 segmenter to run (None: keep the start-up one).
        size: The network input size (height, width) the int8 model was built for; images
            of another size run on the start-up segmenter.
        message: One line for stderr ('' when there is nothing to say).
        agreement: Share of equal labels on the check images once measured, else None.
    """

    segmenter: Any = None
    size: tuple[int, int] | None = None
    message: str = ''
    agreement: float | None = None


def _current(segmenter: Any) -> str:
    described = segmenter.describe()
    return f'{described.get("backend")}/{described.get("precision")}'


def int8_runtime(backend: str) -> str | None:
    """The runtime the job's int8 is built for (OpenVINO with NNCF, else ONNX Runtime; only
    ``backend`` when one was named); None when none is installed."""
    from lw_refinenet_ros.engine.backends import backend_unavailable, native_precisions

    for name in ('openvino', 'onnxruntime'):
        if backend not in ('auto', name) or backend_unavailable(name, 'cpu') is not None:
            continue
        if name == 'openvino' and importlib.util.find_spec('nncf') is None:
            continue
        if 'int8' in native_precisions(name, 'cpu'):
            return name
    return None


def why_not(segmenter: Any, settings: InputInt8Settings, image_count: int) -> tuple[str, bool]:
    """Why the job does not calibrate int8 ('' when it does), and whether to say so (a user
    who turned it off or chose a precision needs no line about it)."""
    config = segmenter.engine_config
    described = segmenter.describe()
    current = _current(segmenter)
    if not settings.enabled:
        return 'off (--no-input-int8)', False
    if config.precision != 'auto' or config.calibration_dir:
        return 'off (a precision or a calibration folder was given)', False
    if described.get('device') != 'cpu' or described.get('precision') == 'int8':
        return f'off (running {current} on {described.get("device")})', False
    timed = {label: ms for label, ms in (described.get('selection_ms') or {}).items()
             if label.endswith('/int8')}
    current_ms = (described.get('selection_ms') or {}).get(current)
    if timed and current_ms:
        label, int8_ms = min(timed.items(), key=lambda item: item[1])
        if int8_ms * settings.min_speedup > current_ms:
            return (f'int8 not calibrated on the inputs: {label} ({described.get("int8_model")}) '
                    f'was timed at start-up at {int8_ms:.1f} ms against {current_ms:.1f} ms '
                    f'for {current}, not {settings.min_speedup:g}x faster on this CPU; running '
                    f'on {current}'), True
    if int8_runtime(config.backend) is None:
        return (f'int8 not calibrated on the inputs: no int8 runtime (pip install openvino '
                f'nncf, or onnxruntime); running on {current}'), True
    needed = minimum_images(settings)
    if image_count < needed:
        return (f'int8 not calibrated on the inputs: {image_count} still image(s), at least '
                f'{needed} needed ({MIN_CALIBRATION_FRAMES} to calibrate, '
                f'{settings.check_frames} others to check it; video frames are not sampled); '
                f'running on {current}'), True
    return '', False


def split_sample(images: Sequence[Path], settings: InputInt8Settings
                 ) -> tuple[list[Path], list[Path]]:
    """(calibration images, check images): disjoint, each evenly spread over the job."""
    count = len(images)
    calibrate = min(settings.frames, count - settings.check_frames)
    chosen = sorted({int(i) for i in np.linspace(0, count - 1, calibrate).round()})
    rest = [i for i in range(count) if i not in set(chosen)]
    checks = sorted({rest[int(i)] for i in np.linspace(0, len(rest) - 1,
                                                       settings.check_frames).round()})
    return [images[i] for i in chosen], [images[i] for i in checks]


def _read_bgr(paths: Sequence[Path]) -> list[np.ndarray]:
    import cv2

    frames = [cv2.imread(str(path), cv2.IMREAD_COLOR) for path in paths]
    return [frame for frame in frames if frame is not None]


def _cache_entries(root: Path) -> set[Path]:
    return {entry for kind in root.iterdir() if kind.is_dir() for entry in kind.iterdir()} \
        if root.is_dir() else set()


def input_int8(segmenter: Any, images: Sequence[Path], first_frame: np.ndarray,
               settings: InputInt8Settings) -> InputInt8Outcome:
    """Calibrate int8 on the job's images, check it on others, and decide (module docstring).

    Args:
        segmenter: The job's segmenter, its engine built (on ``first_frame``).
        images: The job's still images, in job order.
        first_frame: The BGR frame the engine was built on (its size is the int8 model's).
        settings: The ``input_int8.*`` values.

    Never raises for a failed calibration or check: the outcome's message says why and the
    job keeps its start-up segmenter.
    """
    reason, say = why_not(segmenter, settings, len(images))
    if reason:
        return InputInt8Outcome(message=reason if say else '')
    from lw_refinenet_ros.engine.cache import files_sha256
    from lw_refinenet_ros.engine.preprocess import network_size
    from lw_refinenet_ros.engine.quantize import Int8Calibration

    config = segmenter.engine_config
    current = _current(segmenter)
    runtime = str(int8_runtime(config.backend))
    size = network_size(first_frame.shape[0], first_frame.shape[1], config.max_side)
    calibration_paths, check_paths = split_sample(images, settings)
    cache_root = config.resolved_cache_dir()
    before = _cache_entries(cache_root)
    built: Path | None = None
    started = time.perf_counter()
    try:
        frames = [np.ascontiguousarray(frame[:, :, ::-1]) for frame in _read_bgr(
            calibration_paths)]
        checks = [frame for frame in _read_bgr(check_paths)
                  if network_size(frame.shape[0], frame.shape[1], config.max_side) == size]
        if not checks:
            raise ValueError(f'none of the {len(check_paths)} check images could be read at '
                             f"the first image's size")
        calibration = Int8Calibration(frames, f"{len(frames)} of the job's images",
                                      identity=files_sha256(calibration_paths))
        location = _build(segmenter, runtime, size, calibration)
        entry = location if location.is_dir() else location.parent
        built = entry if entry not in before else None
        candidate = _candidate(segmenter, runtime, first_frame,
                               f"calibrated on {len(frames)} of the job's images")
        agreement, current_ms, int8_ms = _compare(segmenter, candidate, checks)
    except Exception as error:  # noqa: BLE001 - NNCF, a runtime, a full disk: the job goes on
        _remove(built)
        return InputInt8Outcome(message=(
            f"int8 not used: calibrating on {len(calibration_paths)} of the job's images "
            f'failed ({" ".join(str(error).split())}); running on {current}'))
    seconds = time.perf_counter() - started
    figure = (f'{100 * agreement:.2f} % of labels equal to {current} on {len(checks)} other '
              f'images of the job')
    speed = f'{int8_ms:.1f} ms/frame against {current_ms:.1f} ms for {current}'
    if agreement < config.agreement_min:
        _remove(built)
        return InputInt8Outcome(agreement=agreement, message=(
            f'int8 not used: {figure}, below agreement_min {100 * config.agreement_min:g} %; '
            f'running on {current} (calibration and check took {seconds:.1f} s)'))
    if int8_ms * settings.min_speedup > current_ms:
        return InputInt8Outcome(agreement=agreement, message=(
            f'int8 not used: {speed}, not {settings.min_speedup:g}x faster on this CPU '
            f'({figure}); running on {current}; the int8 model stays cached, so the next job '
            f'times it at start-up instead of calibrating (took {seconds:.1f} s)'))
    return InputInt8Outcome(segmenter=candidate, size=size, agreement=agreement, message=(
        f"int8 calibrated on {len(calibration_paths)} of the job's images: {figure} "
        f'(agreement_min {100 * config.agreement_min:g} %), {speed}; running on '
        f'{runtime}/int8 (calibration and check took {seconds:.1f} s)'))


def _build(segmenter: Any, runtime: str, size: tuple[int, int], calibration: Any) -> Path:
    """The int8 model of ``runtime`` calibrated on ``calibration``, built into the cache."""
    from lw_refinenet_ros.engine.export import model_fingerprint
    from lw_refinenet_ros.engine.startup import backend_request, build_int8

    request = dataclasses.replace(backend_request(segmenter.engine_config, 'cpu', size),
                                  precision='int8',
                                  weights_id=model_fingerprint(segmenter.model))
    return build_int8(runtime, segmenter.model, request, calibration)


def _candidate(segmenter: Any, runtime: str, first_frame: np.ndarray, source: str) -> Any:
    """The int8 segmenter of the same model, classes and objects, on the model just cached.
    The check on the job's images is the judge, so the engine's own gate (one frame) is off."""
    from lw_refinenet_ros.segmenter import Segmenter

    config = dataclasses.replace(segmenter.engine_config, backend=runtime, precision='int8',
                                 agreement_min=0.0, backend_fallback=False,
                                 remember_selection=False)
    candidate = Segmenter(segmenter.model, segmenter.class_map, engine=config,
                          objects=segmenter.objects_config, info=segmenter.info,
                          warmup_image=np.ascontiguousarray(first_frame[:, :, ::-1]))
    candidate.engine.int8_model = f'{runtime}: {source}'
    return candidate


def _compare(current: Any, candidate: Any, images: Sequence[np.ndarray]
             ) -> tuple[float, float, float]:
    """(share of equal labels, current ms/frame, candidate ms/frame) on ``images`` (BGR),
    the two engines interleaved so that other load slows both alike."""
    equal = total = 0
    times: dict[int, list[float]] = {0: [], 1: []}
    for index, image in enumerate(images):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        labels = {}
        for which in order:
            segmenter = current if which == 0 else candidate
            start = time.perf_counter()
            result = segmenter.segment(image, 'bgr', want_confidence=False, want_stats=False,
                                       want_objects=False)
            times[which].append((time.perf_counter() - start) * 1e3)
            labels[which] = result.labels
        equal += int(np.count_nonzero(labels[0] == labels[1]))
        total += labels[0].size
    return equal / total, statistics.median(times[0]), statistics.median(times[1])


def _remove(entry: Path | None) -> None:
    """Remove a cache entry this job built whose model was not accepted."""
    if entry is not None:
        shutil.rmtree(entry, ignore_errors=True)
