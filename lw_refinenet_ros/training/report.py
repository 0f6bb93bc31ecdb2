"""The report written next to a finished training run: how good ``best.pt`` is, and its int8.

After ``lw-refinenet train`` a user wants to know, without another command, what the model
they just made does on the images it did not train on, and whether the fast int8 model is as
good. This module writes, in the run folder:

- ``report.json`` / ``report.md``: mIoU, pixel accuracy and per-class IoU of ``best.pt`` on
  the validation images through the engine the node runs (torch fp32 at the checkpoint's
  trained scale, :func:`~lw_refinenet_ros.model.checkpoint.default_max_side`), and the
  one-to-one object precision/recall when the data has instance ids (COCO/LabelMe
  annotations, the generator, instance PNGs; connected regions are only an approximation,
  so they are not scored here);
- ``confusion.png``: the row-normalised confusion matrix;
- ``int8/``: the int8 model calibrated on (at most :data:`CALIBRATION_FRAMES`) training
  images at the trained input size (OpenVINO/NNCF, else ONNX Runtime QDQ), built through the
  engine's cache so a node with ``precision: auto`` finds it, and its mIoU on the validation
  images beside fp32's at the same input size.

Nothing here can fail a training run: a step that fails is recorded with its reason.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
import shutil
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from lw_refinenet_ros.evaluation.metrics import ConfusionMeter, save_confusion_png

_LOG = logging.getLogger(__name__)

#: Training images the int8 model is calibrated on (evenly spread over the set).
CALIBRATION_FRAMES = 64

REPORT_JSON = 'report.json'
REPORT_MD = 'report.md'
CONFUSION_PNG = 'confusion.png'
INT8_DIR = 'int8'


def _spread(count: int, wanted: int) -> list[int]:
    """``wanted`` indices evenly spread over ``range(count)`` (all of them when fewer)."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(i * count / wanted) for i in range(wanted)})


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 5)


def _objects(engine: Any, dataset: Any, names: Sequence[str],
             limit: int | None) -> dict[str, Any]:
    """Object P/R with the one-to-one scorer, or why it was not computed."""
    from lw_refinenet_ros.data.instances import instance_source
    from lw_refinenet_ros.evaluation.object_metrics import evaluate_objects
    from lw_refinenet_ros.objects.detect import part_class_lut
    from lw_refinenet_ros.objects.options import ObjectsConfig

    parts = part_class_lut(names, ObjectsConfig.defaults().ignore_classes)
    _, kind = instance_source(dataset, parts)
    if kind == 'connected regions':
        return {'skipped': 'the validation data has no instance ids (touching parts would '
                           'count as one), so object scores are not reported'}
    scorer, kind = evaluate_objects(engine, dataset, names, limit=limit)
    return {**scorer.summary(names), 'ground_truth': kind}


def calibration_frames(dataset: Any, count: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """At most ``count`` training images (RGB uint8), evenly spread over ``dataset``."""
    return [np.ascontiguousarray(dataset[i][0]) for i in _spread(len(dataset), count)]


def _build_int8(model: Any, frames: list[np.ndarray], size: tuple[int, int],
                cache_dir: Path) -> tuple[str, Path]:
    """(runtime, int8 model file) from OpenVINO/NNCF, else ONNX Runtime QDQ."""
    from lw_refinenet_ros.engine.quantize import Int8Calibration, prepare_int8

    calibration = Int8Calibration(frames, f'{len(frames)} training images')
    try:
        folder = prepare_int8(model, calibration, size, cache_dir)
        return 'openvino', folder / 'model.xml'
    except Exception as error:  # noqa: BLE001 - any failure: try the other runtime
        _LOG.info('OpenVINO int8 failed (%s); trying ONNX Runtime', error)
        openvino_error = error
    try:
        from lw_refinenet_ros.engine.backends.base import BackendRequest
        from lw_refinenet_ros.engine.cache import ArtifactCache
        from lw_refinenet_ros.engine.export import model_fingerprint
        from lw_refinenet_ros.engine.ort_quantize import cached_qdq_model

        request = BackendRequest(precision='int8', input_size=size, cache_dir=cache_dir,
                                 extra={'calibration': calibration})
        path = cached_qdq_model(model, request, ArtifactCache(cache_dir),
                                model_fingerprint(model), size)
        return 'onnxruntime', path
    except Exception as error:  # noqa: BLE001
        raise RuntimeError(f'OpenVINO: {openvino_error}; ONNX Runtime: {error}') from error


def _int8_runner(runtime: str, path: Path) -> Any:
    """A function (1, 3, h, w) float32 -> logits array of the int8 model."""
    if runtime == 'openvino':
        import openvino

        compiled = openvino.Core().compile_model(str(path), 'CPU')
        return lambda batch: compiled(batch)[0]
    import onnxruntime

    from lw_refinenet_ros.engine.export import INPUT_NAME

    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return lambda batch: session.run(None, {INPUT_NAME: batch})[0]


def _labels(logits: Any, shape: tuple[int, int]) -> np.ndarray:
    """Class ids at ``shape`` from logits at the network's output size (bilinear)."""
    tensor = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    up = F.interpolate(tensor, size=shape, mode='bilinear', align_corners=False)
    return up.argmax(1)[0].numpy().astype(np.uint8)


def int8_change(model: Any, train_set: Any, val_set: Any, num_classes: int,
                size: tuple[int, int], cache_dir: Path, out: Path, *,
                frames: int = CALIBRATION_FRAMES, limit: int | None = None) -> dict[str, Any]:
    """Build the int8 model of ``model`` at ``size`` (height, width) from training images,
    copy it to ``out`` and score it against fp32 at the same input size on ``val_set``.

    Both run on the same preprocessed input (the engine's resize and normalisation), so the
    difference is the quantization's alone.
    """
    from lw_refinenet_ros.engine.quantize import preprocess_for_network

    runtime, path = _build_int8(model, calibration_frames(train_set, frames), size, cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    for source in path.parent.iterdir():
        if source.suffix in ('.xml', '.bin', '.onnx') and source.stem == path.stem:
            shutil.copy2(source, out / source.name)
    run_int8 = _int8_runner(runtime, path)
    fp32_meter, int8_meter = ConfusionMeter(num_classes), ConfusionMeter(num_classes)
    equal = total = 0
    model = model.float().eval()
    count = min(len(val_set), limit or len(val_set))
    for index in range(count):
        image, labels = val_set[index][:2]
        labels = np.asarray(labels)
        batch = preprocess_for_network(np.ascontiguousarray(image[:, :, ::-1]), size)
        with torch.inference_mode():
            fp32 = _labels(model(torch.from_numpy(batch)), labels.shape)
        int8 = _labels(run_int8(batch), labels.shape)
        fp32_meter.update(labels, fp32)
        int8_meter.update(labels, int8)
        equal += int((fp32 == int8).sum())
        total += fp32.size
    fp32_miou, int8_miou = fp32_meter.scores().miou, int8_meter.scores().miou
    return {'runtime': runtime, 'files': sorted(p.name for p in out.iterdir()),
            'input_size': [size[1], size[0]], 'calibration_frames': min(frames, len(train_set)),
            'images': count, 'fp32_miou': _number(fp32_miou), 'int8_miou': _number(int8_miou),
            'miou_change': _number(int8_miou - fp32_miou),
            'labels_equal': _number(equal / total if total else float('nan'))}


def write_report(out: Path, train_set: Any, val_set: Any | None, *, device: str = 'cpu',
                 int8: bool = True, limit: int | None = None,
                 cache_dir: Path | None = None) -> dict[str, Any]:
    """Score ``out/best.pt`` on ``val_set`` and write the report files; returns the report.

    Args:
        out: The run folder holding ``best.pt``.
        train_set: The training images (int8 calibration).
        val_set: The validation images; None: only the reason is written.
        device: Where the fp32 evaluation runs.
        int8: Also build and score the int8 model.
        limit: Only the first ``limit`` validation images.
        cache_dir: The engine's runtime cache (default: the engine's default folder).
    """
    from lw_refinenet_ros.engine import EngineConfig, InferenceEngine
    from lw_refinenet_ros.engine.config import default_cache_dir
    from lw_refinenet_ros.evaluation.segmentation import evaluate_model
    from lw_refinenet_ros.model import load_model
    from lw_refinenet_ros.model.checkpoint import default_max_side, trained_input_size

    report: dict[str, Any] = {'weights': str(out / 'best.pt')}
    if val_set is None or len(val_set) == 0:
        report['skipped'] = 'no validation images (give --val-data or --holdout)'
        _write(out, report)
        return report
    model, info = load_model(out / 'best.pt')
    names = list(info.class_names or val_set.class_names)
    max_side = default_max_side(info.metadata)
    engine = InferenceEngine(model, EngineConfig(device=device, backend='torch',
                                                 precision='fp32', warmup_iters=0,
                                                 max_side=max_side, remember_selection=False),
                             num_classes=info.num_classes)
    scores = evaluate_model(engine, val_set, info.num_classes, limit=limit)
    report.update({'images': min(len(val_set), limit or len(val_set)), 'max_side': max_side,
                   **scores.to_dict(names)})
    save_confusion_png(out / CONFUSION_PNG, scores.confusion, names)
    try:
        report['objects'] = _objects(engine, val_set, names, limit)
    except Exception as error:  # noqa: BLE001 - the report never fails a run
        report['objects'] = {'error': f'{type(error).__name__}: {error}'}
    if not int8:
        report['int8'] = {'skipped': 'turned off (--report-int8 false)'}
    else:
        trained = trained_input_size(info.metadata)
        size = (trained[1], trained[0]) if trained else tuple(val_set[0][0].shape[:2])
        model, _ = load_model(out / 'best.pt')
        try:
            report['int8'] = int8_change(model, train_set, val_set, info.num_classes, size,
                                         cache_dir or default_cache_dir(), out / INT8_DIR,
                                         limit=limit)
        except Exception as error:  # noqa: BLE001 - the report says why; training succeeded
            _LOG.warning('int8 model not built: %s', error)
            report['int8'] = {'error': f'{type(error).__name__}: {error}'}
    _write(out, report)
    return report


def _write(out: Path, report: dict[str, Any]) -> None:
    (out / REPORT_JSON).write_text(json.dumps(report, indent=1) + '\n')
    (out / REPORT_MD).write_text(format_report(report) + '\n')


def _cell(value: Any) -> str:
    return 'n/a' if value is None else f'{value:.4f}' if isinstance(value, float) else str(value)


def format_report(report: dict[str, Any]) -> str:
    """The report as Markdown (``report.md``)."""
    lines = [f'# Evaluation of {report["weights"]}', '']
    if 'skipped' in report:
        return '\n'.join(lines + [f'Not evaluated: {report["skipped"]}.'])
    lines += [f'{report["images"]} validation images, run as the node runs the checkpoint '
              f'(torch fp32, max_side {report["max_side"]}).', '',
              f'- mIoU: {_cell(report.get("miou"))}',
              f'- pixel accuracy: {_cell(report.get("pixel_accuracy"))}', '',
              '| class | IoU |', '|---|---|']
    lines += [f'| {name} | {_cell(row["iou"])} |'
              for name, row in report.get('per_class', {}).items()]
    lines += ['', f'Confusion matrix (rows: truth, normalised): {CONFUSION_PNG}', '',
              '## Objects', '']
    objects = report.get('objects') or {}
    if 'skipped' in objects or 'error' in objects:
        lines.append(f'Not scored: {objects.get("skipped") or objects.get("error")}.')
    else:
        lines.append(f'One-to-one matches at mask IoU >= 0.5 (ground truth: '
                     f'{objects.get("ground_truth")}): precision '
                     f'{_cell(objects.get("precision"))}, recall '
                     f'{_cell(objects.get("recall"))}, F1 {_cell(objects.get("f1"))}.')
    lines += ['', '## int8', '']
    int8 = report.get('int8') or {}
    if 'skipped' in int8 or 'error' in int8:
        lines.append(f'No int8 model: {int8.get("skipped") or int8.get("error")}.')
    else:
        lines.append(f'{int8["runtime"]} int8 in {INT8_DIR}/ ({", ".join(int8["files"])}), '
                     f'calibrated on {int8["calibration_frames"]} training images at '
                     f'{int8["input_size"][0]}x{int8["input_size"][1]}: mIoU '
                     f'{_cell(int8["int8_miou"])} vs fp32 {_cell(int8["fp32_miou"])} at the same '
                     f'input (change {_cell(int8["miou_change"])}; '
                     f'{_cell(int8["labels_equal"])} of the labels equal).')
    return '\n'.join(lines)
