"""The Segmenter facade: the one path from a checkpoint to labels, statistics and parts.

The reference here is the path the node, ``segment`` and the benchmarks each wrote out by
hand before the facade (load_model -> class map -> InferenceEngine -> ObjectProcessor): on
the packaged default model the facade must give exactly its labels, statistics and objects.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from lw_refinenet_ros.classes import write_class_file
from lw_refinenet_ros.data.conveyor import render_conveyor_frame
from lw_refinenet_ros.engine import EngineConfig, InferenceEngine
from lw_refinenet_ros.errors import CheckpointError, ConfigError
from lw_refinenet_ros.model import build_model, load_model
from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.objects.processor import ObjectFrame, ObjectProcessor, object_record
from lw_refinenet_ros.palette import ClassMap
from lw_refinenet_ros.segmenter import SEGMENTER_OPTIONS, Segmenter

SIZE = (96, 128)  # (height, width): small, so the test costs well under a second per frame
ENGINE = EngineConfig(device='cpu', backend='torch', precision='fp32', warmup_size=SIZE)


def _frames(count: int) -> list[np.ndarray]:
    return [render_conveyor_frame(seed, (SIZE[1], SIZE[0]), augment=False)[0]
            for seed in range(count)]


def _objects_json(frame: ObjectFrame) -> str:
    return json.dumps([object_record(r) for r in frame.objects], sort_keys=True)


def test_facade_equals_the_hand_written_path_on_the_default_model() -> None:
    """Labels, statistics and objects (stills and a tracked stream) are those of the path
    every caller used to assemble itself."""
    model, info = load_model(None)
    class_map = ClassMap.from_checkpoint(info.class_names, info.colors, info.num_classes)
    engine = InferenceEngine(model, ENGINE, num_classes=info.num_classes)
    objects = ObjectsConfig.defaults()
    still = ObjectProcessor(dataclasses.replace(objects, tracking_enabled=False),
                            class_map.names)
    stream = ObjectProcessor(objects, class_map.names)

    segmenter = Segmenter.load(engine=ENGINE, objects=objects)

    assert segmenter.class_map == class_map
    found = 0
    for index, image in enumerate(_frames(3)):
        old = engine(image, 'rgb')
        new = segmenter.segment(image)
        assert np.array_equal(new.labels, old.labels)
        assert new.stats == old.stats
        assert new.class_names == class_map.names
        old_objects = still.process(old.labels, 0.0, old.confidence, image=image)
        assert _objects_json(new.objects) == _objects_json(old_objects)
        stamp = index / 15.0
        tracked = segmenter.segment(image, stamp=stamp)
        assert _objects_json(tracked.objects) == _objects_json(
            stream.process(old.labels, stamp, old.confidence, image=image))
        found += len(new.objects.objects)
    assert found > 0  # the comparison covered real parts, not only empty lists


def test_bgr_input_and_bare_requests() -> None:
    segmenter = Segmenter.load(engine=ENGINE)
    image = _frames(1)[0]
    rgb = segmenter.segment(image)
    bgr = segmenter.segment(np.ascontiguousarray(image[:, :, ::-1]), 'bgr',
                            want_confidence=False, want_stats=False)
    assert np.array_equal(rgb.labels, bgr.labels)
    assert bgr.confidence is None and bgr.stats is None
    assert rgb.objects is None  # no objects config: no parts looked for


def test_from_options_takes_the_node_parameter_names(tmp_path: Path) -> None:
    names = tuple(f'part_{i}' for i in range(8))  # the default model has 8 classes
    classes = write_class_file(tmp_path / 'classes.yaml', names)
    segmenter = Segmenter.from_options(
        {'model.classes_file': str(classes), 'backend': 'torch', 'precision': 'fp32',
         'device': 'cpu', 'objects.min_score': 0.5}, lazy=True)
    assert segmenter.engine is None  # lazy: nothing built before the first frame
    assert segmenter.class_names == names
    assert segmenter.objects_config.min_score == 0.5
    image = _frames(1)[0]
    result = segmenter.segment(image)
    assert segmenter.engine.config.warmup_size == SIZE  # warmed up at the frame's size
    assert result.class_names == names
    assert result.objects is not None
    assert 'mbv2' in segmenter.name and 'via torch/fp32' in segmenter.name
    assert set(SEGMENTER_OPTIONS) >= {'model.weights', 'max_side', 'objects.enabled'}


def test_from_options_refuses_unknown_names_and_bad_values() -> None:
    with pytest.raises(ConfigError, match=r'model\.weigths \(did you mean model\.weights\?\)'):
        Segmenter.from_options({'model.weigths': 'x.pt'})
    with pytest.raises(ConfigError, match='max_side'):
        Segmenter.from_options({'max_side': -3})
    with pytest.raises(ConfigError, match='overlay_alpha'):  # a node option, not a segmenter's
        Segmenter.from_options({'overlay_alpha': 0.3})
    with pytest.raises(CheckpointError):
        Segmenter.from_options({'model.weights': '/nonexistent/model.pt'})


def test_objects_off_when_disabled_and_class_map_must_fit() -> None:
    model = build_model('mbv2', 3).eval()
    segmenter = Segmenter.from_model(
        model, objects=ObjectsConfig.from_mapping({'objects.enabled': False}),
        engine=dataclasses.replace(ENGINE, warmup_iters=0))
    assert segmenter.objects_config is None
    assert segmenter.class_names == ('class_0', 'class_1', 'class_2')
    assert segmenter.name == 'mbv2:in-memory via torch/fp32'
    with pytest.raises(ConfigError, match='3'):
        Segmenter.from_model(model, ClassMap.default(4), lazy=True)
