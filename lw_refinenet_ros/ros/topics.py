"""Every topic of the segmentation node, defined once: names, message types and QoS.

The node builds its publishers from :data:`OUTPUT_TOPICS` and subscribes to the input names
here; the demo, the view and the benchmarks import the same names instead of spelling them
(the names are defined in :mod:`.topic_names`, which imports no ROS, and re-exported here).
Names are relative (``-r``/namespace remapping works); with ``cameras: [left, right]`` every
camera topic is prefixed with the camera's namespace (:func:`camera_topic`), except
``/diagnostics``, which is global. docs/node.md describes each topic.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from lw_refinenet_ros.msg import ClassMap, SegmentationStats, SegmentedObjects
from lw_refinenet_ros.ros.qos import LATCHED_QOS, OUTPUT_QOS
from lw_refinenet_ros.ros.topic_names import (  # noqa: F401 - the names, re-exported
    CAMERA_INFO,
    CLASS_MAP,
    COLOR,
    COMPRESSED_IMAGE,
    CONFIDENCE,
    DIAGNOSTICS,
    IMAGE,
    LABELS,
    MARKERS,
    OBJECTS,
    OVERLAY,
    STATS,
    camera_prefix,
    camera_topic,
)


@dataclasses.dataclass(frozen=True)
class OutputTopic:
    """One per-camera output of the node.

    Attributes:
        key: Short name: ``labels``, ``color``, ... (``publish.<key>`` switches the optional
            image outputs and ``stats``).
        name: Topic name relative to the camera's namespace.
        message_type: The ROS message class.
        qos: The publisher's QoS (reliable; the class map also transient local).
    """

    key: str
    name: str
    message_type: Any
    qos: Any


OUTPUT_TOPICS: tuple[OutputTopic, ...] = (
    OutputTopic('labels', LABELS, Image, OUTPUT_QOS),
    OutputTopic('color', COLOR, Image, OUTPUT_QOS),
    OutputTopic('overlay', OVERLAY, Image, OUTPUT_QOS),
    OutputTopic('confidence', CONFIDENCE, Image, OUTPUT_QOS),
    OutputTopic('stats', STATS, SegmentationStats, OUTPUT_QOS),
    OutputTopic('class_map', CLASS_MAP, ClassMap, LATCHED_QOS),
    OutputTopic('objects', OBJECTS, SegmentedObjects, OUTPUT_QOS),
    OutputTopic('markers', MARKERS, MarkerArray, OUTPUT_QOS),
)
OUTPUTS: dict[str, OutputTopic] = {topic.key: topic for topic in OUTPUT_TOPICS}
DIAGNOSTICS_TYPE = DiagnosticArray

