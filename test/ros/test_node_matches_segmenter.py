"""The node and the Python API are one path: on the packaged default model, what the running
node publishes for a frame (labels, statistics, objects) is what ``Segmenter.segment`` returns
for the same image and stamp, whether the outputs are published on the second thread while the
next forward pass runs (``overlap_outputs``, the default) or on the worker itself."""

from __future__ import annotations

import threading
from typing import Any

from lw_refinenet_ros.msg import SegmentationStats, SegmentedObjects
import numpy as np
import pytest
from std_msgs.msg import Header

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.data.conveyor import render_conveyor_frame
from lw_refinenet_ros.ros.conversions import array_to_image, image_to_array, stamp_seconds
from lw_refinenet_ros.ros.inference import LoadedModel, load_engine
from lw_refinenet_ros.segmenter import Segmenter
from lw_refinenet_ros.testing.fake_node import NodeHarness

WIDTH, HEIGHT = 128, 96
OPTIONS = {'device': 'cpu', 'backend': 'torch', 'precision': 'fp32',
           'warmup_size': f'{WIDTH}x{HEIGHT}'}


def post_processing_threads(threads: list[str]):
    """The production factory, its segmenter noting the thread of every post-processing."""
    def factory(config: NodeConfig) -> LoadedModel:
        loaded = load_engine(config)
        begin = loaded.segmenter.begin_batch

        def begin_batch(*args: Any, **kwargs: Any) -> Any:
            finish = begin(*args, **kwargs)

            def noted() -> Any:
                threads.append(threading.current_thread().name)
                return finish()
            return noted
        loaded.segmenter.begin_batch = begin_batch
        return loaded
    return factory


@pytest.mark.parametrize('overlap, thread', [(True, 'lw_refinenet_outputs'),
                                             (False, 'lw_refinenet_worker')])
def test_node_publishes_what_the_segmenter_returns(ros_context: Any, overlap: bool,
                                                   thread: str) -> None:
    image = render_conveyor_frame(3, (WIDTH, HEIGHT), augment=False)[0]
    threads: list[str] = []
    harness = NodeHarness(ros_context, None, parameters={**OPTIONS, 'overlap_outputs': overlap},
                          factory=post_processing_threads(threads))
    try:
        labels = harness.listen('segmentation/labels')
        stats = harness.listen('segmentation/stats', SegmentationStats)
        objects = harness.listen('segmentation/objects', SegmentedObjects)
        camera = harness.publisher('image')
        header = Header(frame_id='camera')

        def publish_until_all_arrived() -> bool:
            header.stamp = harness.probe.get_clock().now().to_msg()
            camera.publish(array_to_image(image, header, 'rgb8'))
            return bool(labels and stats and objects)

        assert harness.spin_until(publish_until_all_arrived, timeout=120)
    finally:
        harness.close()

    assert threads and set(threads) == {thread}
    # The first frame the node processed, through the API with the same options and stamp.
    first = labels[0].header.stamp
    stamp = stamp_seconds(first)
    result = Segmenter.from_options(OPTIONS).segment(image, stamp=stamp)

    assert np.array_equal(image_to_array(labels[0]), result.labels)
    (node_stats,) = [m for m in stats if m.header.stamp == first]
    assert [(c.class_id, c.class_name, c.pixel_count) for c in node_stats.classes] == \
        [(s.class_id, result.class_names[s.class_id], s.pixel_count) for s in result.stats]
    for published, returned in zip(node_stats.classes, result.stats):
        assert published.mean_confidence == np.float32(returned.mean_confidence)
        assert (published.bbox.x_offset, published.bbox.y_offset) == returned.bbox[:2]
    (node_objects,) = [m for m in objects if m.header.stamp == first]
    assert len(node_objects.objects) == len(result.objects.objects) > 0
    for published, report in zip(node_objects.objects, result.objects.objects):
        found = report.object
        assert (published.id, published.class_name, published.pixel_count) == \
            (report.track_id, report.class_name, found.pixel_count)
        assert (published.pick_x, published.pick_y) == (float(found.pick[0]),
                                                        float(found.pick[1]))
        assert published.score == np.float32(found.score)
