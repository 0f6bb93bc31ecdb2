"""MCAP recording: raw CDR in, a file mcap_ros2 reads back with nested custom schemas."""

from __future__ import annotations

import uuid

from conftest import spin_until
from lw_refinenet_ros.msg import ClassMap, ClassStatistics, SegmentationStats
from mcap.reader import make_reader
import mcap_ros2.reader as mcap_reader
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, RegionOfInterest

from lw_refinenet_ros.demo.recorder import McapWriter, TopicRecorder, message_definition
from lw_refinenet_ros.errors import LWRefineNetError


def test_schema_text_carries_every_nested_definition():
    text = message_definition('lw_refinenet_ros/msg/SegmentationStats')
    assert text.startswith('std_msgs/Header header\n')
    for nested in ('MSG: std_msgs/Header', 'MSG: builtin_interfaces/Time',
                   'MSG: lw_refinenet_ros/ClassStatistics', 'MSG: sensor_msgs/RegionOfInterest'):
        assert nested in text
    assert 'uint8[] data' in message_definition('sensor_msgs/msg/Image')
    with pytest.raises(LWRefineNetError, match='No message definition'):
        message_definition('no_such_pkg/msg/Nothing')


@pytest.mark.parametrize('type_name', [
    'sensor_msgs/msg/CameraInfo', 'diagnostic_msgs/msg/DiagnosticArray',
    'lw_refinenet_ros/msg/ClassMap'])
def test_every_demo_type_has_a_schema(type_name):
    text = message_definition(type_name)
    assert 'MSG: std_msgs/Header' in text and 'MSG: builtin_interfaces/Time' in text


def test_records_topics_with_matching_qos_and_reads_back(ros_context, tmp_path):
    namespace = f'/rec_{uuid.uuid4().hex[:8]}'
    source = Node('source', context=ros_context, namespace=namespace)
    image_pub = source.create_publisher(Image, 'image', qos_profile_sensor_data)  # best effort
    stats_pub = source.create_publisher(SegmentationStats, 'segmentation/stats', 10)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    map_pub = source.create_publisher(ClassMap, 'segmentation/class_map', latched)
    map_pub.publish(ClassMap(ids=[0, 1], names=['background', 'belt'], model='m'))

    recorder_node = Node('recorder', context=ros_context, namespace=namespace)
    writer = McapWriter(tmp_path / 'out.mcap')
    seen: list[str] = []
    recorder = TopicRecorder(recorder_node, writer,
                             ['image', 'segmentation/stats', 'segmentation/class_map', 'absent'],
                             on_message=lambda topic, data, now: seen.append(topic))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(source)
    executor.add_node(recorder_node)

    def discovered() -> bool:
        recorder.poll()
        return len(recorder.subscribed) == 3

    assert spin_until(executor, discovered, timeout=5.0)
    assert recorder.pending == (f'{namespace}/absent',)

    stats = SegmentationStats(height=4, width=6, num_classes=2, classes=[ClassStatistics(
        class_id=1, class_name='belt', pixel_count=7, area_fraction=7 / 24,
        mean_confidence=0.5, bbox=RegionOfInterest(x_offset=1, y_offset=2, width=3, height=2),
        centroid_x=2.5, centroid_y=3.0)])
    stats.header.frame_id = 'cam'
    image = Image(height=4, width=6, encoding='mono8', step=6, data=bytes(range(24)))
    sent = {'image': 0, 'stats': 0}

    def publish_until_recorded() -> bool:
        if sent['image'] < 200:
            image_pub.publish(image)
            stats_pub.publish(stats)
            sent['image'] += 1
            sent['stats'] += 1
        return (seen.count(f'{namespace}/image') >= 5
                and seen.count(f'{namespace}/segmentation/stats') >= 5
                and f'{namespace}/segmentation/class_map' in seen)  # latched: sent before
    assert spin_until(executor, publish_until_recorded, timeout=5.0)
    writer.close()
    writer.close()  # idempotent

    path = tmp_path / 'out.mcap'
    with open(path, 'rb') as stream:
        summary = make_reader(stream).get_summary()
    assert summary is not None
    schemas = {s.name: s for s in summary.schemas.values()}
    assert set(schemas) == {'sensor_msgs/msg/Image', 'lw_refinenet_ros/msg/SegmentationStats',
                            'lw_refinenet_ros/msg/ClassMap'}
    assert all(s.encoding == 'ros2msg' for s in schemas.values())
    assert {c.message_encoding for c in summary.channels.values()} == {'cdr'}

    counts: dict[str, int] = {}
    decoded = {}
    for message in mcap_reader.read_ros2_messages(str(path)):
        counts[message.channel.topic] = counts.get(message.channel.topic, 0) + 1
        decoded[message.channel.topic] = message.ros_msg
    assert counts == {topic: writer.counts[topic] for topic in counts}
    assert counts[f'{namespace}/segmentation/class_map'] == 1
    assert counts[f'{namespace}/image'] >= 5 and counts[f'{namespace}/segmentation/stats'] >= 5
    back = decoded[f'{namespace}/segmentation/stats']
    assert back.header.frame_id == 'cam' and back.classes[0].class_name == 'belt'
    assert back.classes[0].bbox.width == 3 and back.classes[0].centroid_x == 2.5
    assert bytes(decoded[f'{namespace}/image'].data) == bytes(range(24))
    assert list(decoded[f'{namespace}/segmentation/class_map'].names) == ['background', 'belt']


def test_unknown_compression_is_rejected(tmp_path):
    with pytest.raises(LWRefineNetError, match='compression'):
        McapWriter(tmp_path / 'x.mcap', compression='gzip')


@pytest.mark.parametrize('compression', ['lz4', 'zstd'])
def test_compressed_recording_reads_back_and_reports_its_cost(tmp_path, compression):
    from rclpy.serialization import serialize_message

    path = tmp_path / f'{compression}.mcap'
    writer = McapWriter(path, compression=compression)
    writer.add_channel('/cam/image', 'sensor_msgs/msg/Image')
    flat = bytes(64 * 48 * 3)                # a flat frame: compresses well
    for index in range(40):
        msg = Image(height=48, width=64, encoding='rgb8', step=64 * 3, data=flat)
        msg.header.frame_id = f'f{index}'
        writer.write('/cam/image', serialize_message(msg))
    writer.close()
    with open(path, 'rb') as stream:
        chunks = [c.compression for c in make_reader(stream).get_summary().chunk_indexes]
    assert chunks and set(chunks) == {compression}
    frames = [m.ros_msg.header.frame_id for m in mcap_reader.read_ros2_messages(str(path))]
    assert frames == [f'f{index}' for index in range(40)]
    cost = writer.cost()
    assert cost['compression'] == compression and cost['message_count'] == 40
    assert cost['bytes'] == path.stat().st_size < cost['payload_bytes'] / 5
    assert cost['write_s'] > 0 and cost['write_ms_per_message'] > 0
