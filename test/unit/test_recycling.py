"""The second synthetic domain and its COCO export (CVAT layout) read back exactly."""

from __future__ import annotations

import json

import numpy as np

from lw_refinenet_ros.data import conveyor
from lw_refinenet_ros.data.datasets import open_dataset
from lw_refinenet_ros.data.recycling import (
    CLASS_NAMES,
    clip_polygon,
    frame_rng,
    render_recycling_frame,
    write_recycling_coco,
)


def test_the_domain_shares_no_class_with_the_conveyor() -> None:
    assert set(CLASS_NAMES) & set(conveyor.CLASS_NAMES) == {'background'}


def test_frames_are_deterministic_and_labelled_where_objects_lie() -> None:
    image, labels, objects, instances = render_recycling_frame(frame_rng(5, 3))
    again = render_recycling_frame(frame_rng(5, 3))
    assert np.array_equal(image, again[0]) and np.array_equal(labels, again[1])
    assert objects and set(np.unique(labels)) <= set(range(len(CLASS_NAMES)))
    # The last drawn object is on top: its whole footprint carries its class.
    top = objects[-1]
    assert np.all(labels[top.footprint((320, 240))] == top.class_id)
    assert np.array_equal(instances > 0, labels > 0)


def test_polygons_are_clipped_to_the_image_as_annotation_tools_do() -> None:
    square = np.array([[-10, -10], [10, -10], [10, 10], [-10, 10]], float)
    clipped = clip_polygon(square, 320, 240)
    assert clipped[:, 0].min() == 0 and clipped[:, 1].min() == 0
    assert clipped[:, 0].max() == 10 and clipped[:, 1].max() == 10


def test_the_coco_export_reads_back_as_the_generator_drew_it(tmp_path) -> None:
    path = write_recycling_coco(tmp_path, 6, seed=11)
    assert path == tmp_path / 'annotations' / 'instances_default.json'
    data = json.loads(path.read_text())
    kinds = {type(a['segmentation']).__name__ for a in data['annotations']}
    assert kinds == {'list', 'dict'}  # polygons for whole objects, RLE for hidden ones
    ds = open_dataset(tmp_path)
    assert ds.class_names == CLASS_NAMES
    for index in range(6):
        image, labels, _, instances = render_recycling_frame(frame_rng(11, index))
        read_image, read_labels = ds[index]
        assert np.array_equal(read_image, image) and np.array_equal(read_labels, labels)
        # The same partition into objects (ids may be numbered differently).
        read_instances = ds.instances(index)
        pairs = set(zip(instances.ravel().tolist(), read_instances.ravel().tolist()))
        assert len(pairs) == len(np.unique(instances)) == len(np.unique(read_instances))
