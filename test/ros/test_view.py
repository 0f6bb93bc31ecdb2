"""``lw-refinenet view``: the Foxglove bridge against real ROS publishers and a real client.

A publisher node in the test plays the segmentation node (overlay, colour, labels, stats,
latched class map, diagnostics at 30 Hz); the bridge serves them; ``foxglove_client`` speaks
the WebSocket protocol to it like the Foxglove app and decodes every payload with the schema
the server advertised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from lw_refinenet_ros.msg import (
    ClassMap,
    ClassStatistics,
    SegmentationStats,
    SegmentedObject,
    SegmentedObjects,
)
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA, Header

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.ros.conversions import array_to_image
from lw_refinenet_ros.ros.qos import LATCHED_QOS, OUTPUT_QOS
from lw_refinenet_ros.testing.foxglove_client import SUBPROTOCOL, FoxgloveClient
from lw_refinenet_ros.view.bridge import VIEW_QOS, ViewBridge
from lw_refinenet_ros.view.encode import FLAT, IDS, PHOTO, encode_pixels
from lw_refinenet_ros.view.layout import DEMO_NAMESPACE, layout_json
from lw_refinenet_ros.view.payloads import diagnostics_to_dict, stats_to_dict
from lw_refinenet_ros.view.server import SUBPROTOCOLS, ViewConfig, ViewServer

REPO = Path(__file__).resolve().parents[2]
NS = '/view_test'
WIDTH, HEIGHT = 320, 240
CLASS_NAMES = ['background', 'belt', 'bolt']
CLASS_COLORS = [(0, 0, 0), (128, 128, 128), (255, 0, 0)]


def _overlay() -> np.ndarray:
    """A smooth RGB gradient: survives JPEG within a few levels, so colours can be checked."""
    x = np.linspace(0, 255, WIDTH, dtype=np.float32)
    y = np.linspace(0, 255, HEIGHT, dtype=np.float32)
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:, :, 0] = x[None, :]
    image[:, :, 1] = y[:, None]
    image[:, :, 2] = 60
    return image


def _labels() -> np.ndarray:
    labels = np.ones((HEIGHT, WIDTH), np.uint8)
    labels[:20] = 0
    labels[100:120, 40:70] = 2
    return labels


class ScriptedOutputs(Node):
    """Publishes what the segmentation node publishes, with its QoS, at 30 Hz: fixed images,
    statistics and objects the view's output is checked against (and, on cue, a malformed
    overlay). Not a segmentation node: the tests' one fake node is
    ``lw_refinenet_ros.testing.fake_node``; the view needs exact, scripted messages."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('scripted_outputs', namespace=NS, **kwargs)
        self.images = {name: self.create_publisher(Image, f'segmentation/{name}', OUTPUT_QOS)
                       for name in ('overlay', 'color', 'labels')}
        self.camera = self.create_publisher(Image, 'image', OUTPUT_QOS)
        self.stats = self.create_publisher(SegmentationStats, 'segmentation/stats', OUTPUT_QOS)
        self.class_map = self.create_publisher(ClassMap, 'segmentation/class_map',
                                               LATCHED_QOS)
        self.diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.objects = self.create_publisher(SegmentedObjects, 'segmentation/objects',
                                             OUTPUT_QOS)
        self.with_objects = False
        self.class_map.publish(ClassMap(
            ids=[0, 1, 2], names=CLASS_NAMES, model='mbv2:test.pt',
            colors=[ColorRGBA(r=r / 255, g=g / 255, b=b / 255, a=1.0)
                    for r, g, b in CLASS_COLORS]))
        self.bad_overlay = False
        self.frames = 0
        self._overlay, self._labels = _overlay(), _labels()
        self.create_timer(1 / 30, self._tick)

    def _tick(self) -> None:
        header = Header(frame_id='camera')
        header.stamp = self.get_clock().now().to_msg()
        overlay = array_to_image(self._overlay, header, 'rgb8')
        if self.bad_overlay:
            overlay.step = 5  # shorter than a row: the view must count it and go on
        self.images['overlay'].publish(overlay)
        self.images['labels'].publish(array_to_image(self._labels, header))
        self.images['color'].publish(array_to_image(
            np.asarray(CLASS_COLORS, np.uint8)[self._labels], header, 'rgb8'))
        self.camera.publish(array_to_image(self._overlay, header, 'rgb8'))
        stats = SegmentationStats(header=header, width=WIDTH, height=HEIGHT, num_classes=3,
                                  processing_latency_ms=12.5, frame_age_ms=20.0)
        bolt = ClassStatistics(class_id=2, class_name='bolt', pixel_count=600,
                               area_fraction=600 / (WIDTH * HEIGHT), mean_confidence=0.9,
                               centroid_x=54.5, centroid_y=109.5)
        bolt.bbox.x_offset, bolt.bbox.y_offset, bolt.bbox.width, bolt.bbox.height = 40, 100, 30, 20
        belt = ClassStatistics(class_id=1, class_name='belt', pixel_count=70000,
                               area_fraction=0.91, mean_confidence=float('nan'))
        stats.classes = [belt, bolt]
        self.stats.publish(stats)
        if self.with_objects:
            bolt_object = SegmentedObject(id=5, class_id=2, class_name='bolt', score=0.9,
                                          pick_x=55.0, pick_y=110.0, tracked=True,
                                          confirmed=True)
            bolt_object.bbox.x_offset, bolt_object.bbox.y_offset = 40, 100
            bolt_object.bbox.width, bolt_object.bbox.height = 30, 20
            self.objects.publish(SegmentedObjects(header=header, width=WIDTH, height=HEIGHT,
                                                  objects=[bolt_object]))
        if self.frames % 30 == 0:
            self.diagnostics.publish(DiagnosticArray(header=header, status=[DiagnosticStatus(
                name='lw_refinenet: segmentation', hardware_id=f'{NS}/lw_refinenet',
                message='ok', values=[KeyValue(key='processed', value=str(self.frames)),
                                      KeyValue(key='model', value='mbv2')])]))
        self.frames += 1


@pytest.fixture
def view(ros_context: Any) -> Iterator[tuple[ViewServer, ViewBridge, ScriptedOutputs]]:
    """Bridge + fake node spinning in a background thread; the server on a free port."""
    server = ViewServer(ViewConfig(cameras=(NS,), port=0))
    bridge = ViewBridge(server, context=ros_context)
    fake = ScriptedOutputs(context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(bridge)
    executor.add_node(fake)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield server, bridge, fake
    finally:
        executor.shutdown()
        thread.join(timeout=5)
        bridge.destroy_node()
        fake.destroy_node()
        server.stop()


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def _count(topic: str, n: int) -> Any:
    return lambda frames: sum(f.topic == topic for f in frames) >= n


def test_channels_advertised_and_payloads_decodable(view: Any) -> None:
    server, bridge, _ = view
    seg = f'{NS}/segmentation'

    async def scenario() -> tuple[FoxgloveClient, list[Any]]:
        async with FoxgloveClient(server.url) as client:
            await client.subscribe(f'{seg}/overlay', f'{seg}/labels', f'{seg}/color',
                                   f'{seg}/stats', f'{seg}/annotations', f'{seg}/class_map',
                                   f'{NS}/image', '/diagnostics')
            wanted = (f'{seg}/overlay', f'{seg}/labels', f'{seg}/color', f'{seg}/stats',
                      f'{seg}/annotations', f'{seg}/class_map', f'{NS}/image', '/diagnostics')
            frames = await client.receive(
                lambda fs: all(any(f.topic == t for f in fs) for t in wanted), timeout=20)
            return client, frames

    client, frames = _run(scenario())
    assert client.subprotocol == SUBPROTOCOL
    schemas = {topic: c['schemaName'] for topic, c in client.channels.items()}
    assert schemas[f'{seg}/overlay'] == 'foxglove.CompressedImage'
    assert schemas[f'{seg}/annotations'] == 'foxglove.ImageAnnotations'
    assert client.channels[f'{seg}/stats']['encoding'] == 'json'
    by_topic = {f.topic: client.decode(f) for f in reversed(frames)}
    assert set(by_topic) >= {f'{seg}/overlay', f'{seg}/labels', f'{seg}/color', f'{seg}/stats',
                             f'{seg}/annotations', f'{seg}/class_map', f'{NS}/image',
                             '/diagnostics'}, sorted(by_topic)

    overlay = by_topic[f'{seg}/overlay']
    assert overlay.format == 'jpeg' and overlay.frame_id == 'camera'
    assert overlay.timestamp.seconds > 0
    decoded = cv2.imdecode(np.frombuffer(overlay.data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (HEIGHT, WIDTH, 3)
    # JPEG is lossy, but the colours (and the channel order) must survive.
    assert np.abs(decoded[:, :, ::-1].astype(int) - _overlay()).mean() < 4

    labels = by_topic[f'{seg}/labels']
    assert labels.format == 'png'
    ids = cv2.imdecode(np.frombuffer(labels.data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(ids, _labels())  # class ids exact
    assert by_topic[f'{seg}/color'].format == 'jpeg'  # quality 90: fast, colours kept
    color = cv2.imdecode(np.frombuffer(by_topic[f'{seg}/color'].data, np.uint8),
                         cv2.IMREAD_COLOR)
    assert np.abs(color[110, 55, ::-1].astype(int) - CLASS_COLORS[2]).max() <= 12
    assert np.abs(color[60, 200, ::-1].astype(int) - CLASS_COLORS[1]).max() <= 12

    stats = by_topic[f'{seg}/stats']
    assert stats['processing_latency_ms'] == 12.5 and stats['width'] == WIDTH
    assert [c['class_name'] for c in stats['classes']] == ['belt', 'bolt']
    assert stats['classes'][0]['mean_confidence'] is None  # NaN is not JSON
    class_map = by_topic[f'{seg}/class_map']
    assert [c['name'] for c in class_map['classes']] == CLASS_NAMES
    assert class_map['classes'][2]['color'] == '#ff0000'
    diagnostics = by_topic['/diagnostics']
    assert diagnostics['status'][0]['values'] == {'processed': pytest.approx(
        diagnostics['status'][0]['values']['processed']), 'model': 'mbv2'}
    assert isinstance(diagnostics['status'][0]['values']['processed'], float)

    annotations = by_topic[f'{seg}/annotations']
    # The belt covers 91 % of the frame: scenery, not boxed; the bolt is.
    assert [t.text for t in annotations.texts] == ['bolt 0.90']
    corners = [(p.x, p.y) for p in annotations.points[0].points]
    assert corners == [(40, 100), (70, 100), (70, 120), (40, 120)]
    assert (annotations.circles[0].position.x, annotations.circles[0].position.y) == (
        54.5, 109.5)
    assert bridge.failed == 0


@pytest.mark.parametrize('name', SUBPROTOCOLS)
def test_clients_speaking_either_protocol_name_receive_images(view: Any, name: str) -> None:
    """foxglove.sdk.v1 (the app today) and foxglove.websocket.v1 (ws-protocol clients, older
    Lichtblick, PlotJuggler) are the same protocol: both connect and get the overlay."""
    server, _, _ = view
    topic = f'{NS}/segmentation/overlay'

    async def scenario() -> tuple[str | None, list[Any], FoxgloveClient]:
        async with FoxgloveClient(server.url, subprotocol=name) as client:
            await client.subscribe(topic)
            return client.subprotocol, await client.receive(_count(topic, 3), timeout=15), \
                client

    negotiated, frames, client = _run(scenario())
    assert negotiated == name
    assert sum(f.topic == topic for f in frames) >= 3
    image = client.decode(frames[-1])
    decoded = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (HEIGHT, WIDTH, 3)
    assert f'ds.url=ws%3A%2F%2F127.0.0.1%3A{server.port}' in server.app_url()


def test_subscribes_to_ros_only_while_a_client_watches(view: Any) -> None:
    server, bridge, fake = view
    overlay_topic = f'{NS}/segmentation/overlay'
    # Only the latched class map is subscribed while nobody watches: the node computes no
    # overlay/colour/stats for an idle view.
    assert bridge.subscribed_topics() == [f'{NS}/segmentation/class_map']

    async def watch() -> int:
        async with FoxgloveClient(server.url) as client:
            await client.subscribe(overlay_topic, f'{NS}/segmentation/color')
            frames = await client.receive(
                lambda fs: _count(overlay_topic, 5)(fs)
                and _count(f'{NS}/segmentation/color', 1)(fs), timeout=20)
            assert overlay_topic in bridge.subscribed_topics()
            assert fake.images['overlay'].get_subscription_count() == 1
            # Best effort: the view can never hold back the node's reliable writer. (Depth is
            # not part of discovery; VIEW_QOS has 1.)
            info, = [i for i in fake.get_subscriptions_info_by_topic(overlay_topic)
                     if i.node_name == 'lw_refinenet_view']
            assert info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
            assert VIEW_QOS.depth == 1
            # The colour mask is drawn by the view from the labels the node always publishes:
            # the node's own colour output stays unsubscribed (not computed).
            assert f'{NS}/segmentation/labels' in bridge.subscribed_topics()
            assert fake.images['color'].get_subscription_count() == 0
            return sum(f.topic == overlay_topic for f in frames)

    assert _run(watch()) >= 5
    # The client left: the view unsubscribes, and the node stops drawing the overlay for it.
    assert _wait(lambda: overlay_topic not in bridge.subscribed_topics(), 10)
    assert _wait(lambda: fake.images['overlay'].get_subscription_count() == 0, 10)


def _wait(predicate: Any, timeout: float) -> bool:
    """Poll ``predicate`` (the executor spins in the fixture's thread) until a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(0.05)
    return True


def test_annotations_show_object_ids_and_pick_points_once_the_node_sends_objects(
        view: Any) -> None:
    server, bridge, fake = view
    topic = f'{NS}/segmentation/annotations'

    async def scenario() -> tuple[FoxgloveClient, list[Any]]:
        async with FoxgloveClient(server.url) as client:
            await client.subscribe(topic)
            before = await client.receive(_count(topic, 2), timeout=20)
            assert f'{NS}/segmentation/objects' in bridge.subscribed_topics()
            fake.with_objects = True

            def has_ids(frames: list[Any]) -> bool:
                return any(t.text.startswith('#') for f in frames[-1:]
                           for t in client.decode(f).texts)

            await client.receive(has_ids, timeout=20)
            after = await client.receive(_count(topic, 10), timeout=20)
            return client, [client.decode(f) for f in before + after]

    client, annotations = _run(scenario())
    assert [t.text for t in annotations[0].texts] == ['bolt 0.90']  # stats: class-level
    # Once objects arrive, every annotation is the instance (no class-level duplicates), and
    # the view no longer asks the node for stats just for the annotations.
    assert _wait(lambda: f'{NS}/segmentation/stats' not in bridge.subscribed_topics(), 10)
    for later in annotations[-10:]:
        assert [t.text for t in later.texts] == ['#5 bolt']
        assert (later.circles[0].position.x, later.circles[0].position.y) == (55.0, 110.0)


def test_slow_crashed_and_second_clients_do_not_stop_the_others(view: Any) -> None:
    server, bridge, _ = view
    topic = f'{NS}/segmentation/overlay'

    async def scenario() -> tuple[int, int, int]:
        async with FoxgloveClient(server.url, receive_buffer=4096) as slow, \
                FoxgloveClient(server.url) as healthy, FoxgloveClient(server.url) as crashing:
            # The slow client subscribes and does not read (tiny socket buffer): the server
            # queues at most `backlog` messages for it once its socket is full, dropping the
            # oldest, and must go on serving the others meanwhile.
            await slow.subscribe(topic, f'{NS}/segmentation/color', f'{NS}/image')
            await healthy.subscribe(topic)
            await crashing.subscribe(topic)
            first = await crashing.receive(_count(topic, 3), timeout=20)
            crashing.abort()  # mid-stream, no closing handshake
            frames = await healthy.receive(_count(topic, 60), timeout=30)
            backlog = await slow.receive(lambda _: False, timeout=0.3)
            return len(first), len(frames), sum(f.topic == topic for f in backlog)

    first, healthy, slow_backlog = _run(scenario())
    assert first >= 3
    assert healthy >= 60  # the healthy client kept receiving through all of it
    assert slow_backlog >= 1  # and the slow one is still served once it reads again
    assert bridge.failed == 0


def test_a_malformed_image_is_counted_and_the_stream_goes_on(view: Any) -> None:
    server, bridge, fake = view
    seg = f'{NS}/segmentation'

    async def scenario() -> list[Any]:
        async with FoxgloveClient(server.url) as client:
            await client.subscribe(f'{seg}/overlay', f'{seg}/labels')
            await client.receive(_count(f'{seg}/overlay', 2), timeout=20)
            fake.bad_overlay = True
            await client.receive(lambda _: bridge.failed >= 3, timeout=20)
            return await client.receive(_count(f'{seg}/labels', 10), timeout=20)

    frames = _run(scenario())
    assert bridge.failed >= 3
    assert sum(f.topic == f'{seg}/labels' for f in frames) >= 10


def _busy_port() -> contextlib.closing[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    sock.listen(1)
    return contextlib.closing(sock)


def test_port_in_use_is_a_clear_error() -> None:
    with _busy_port() as sock:
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError, match=f'port {port} is in use.*pass --port'):
            ViewServer(ViewConfig(cameras=(NS,), port=port))
        result = subprocess.run(
            [sys.executable, '-m', 'lw_refinenet_ros', 'view', '--port', str(port)],
            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f'port {port} is in use' in result.stderr and '--port' in result.stderr


@pytest.mark.parametrize('kwargs, message', [
    ({'cameras': ()}, 'at least one camera'),
    ({'cameras': ('/a', 'a/')}, 'twice'),
    ({'cameras': ('/a', '/b'), 'image_topic': '/cam'}, 'one camera'),
    ({'jpeg_quality': 0}, 'jpeg-quality'),
    ({'address': 'my laptop'}, 'IP address'),
    ({'port': 70000}, '0-65535'),
])
def test_bad_options_say_what_to_change(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ViewConfig(**kwargs)


def test_encoding_downscales_and_keeps_ids_exact() -> None:
    labels = np.zeros((480, 1280), np.uint8)
    labels[:, 640:] = 7
    encoded = encode_pixels(labels, IDS, max_width=640)
    assert (encoded.width, encoded.height, encoded.scale, encoded.format) == (640, 240, 0.5,
                                                                             'png')
    small = cv2.imdecode(np.frombuffer(encoded.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(small)) == {0, 7}  # nearest neighbour: no blended ids
    photo = encode_pixels(np.full((100, 200, 3), (255, 0, 0), np.uint8), PHOTO, order='rgb')
    back = cv2.imdecode(np.frombuffer(photo.data, np.uint8), cv2.IMREAD_COLOR)
    assert photo.format == 'jpeg' and back[50, 100, 2] > 240 and back[50, 100, 0] < 15
    flat = encode_pixels(np.full((16, 16, 3), (200, 10, 10), np.uint8), FLAT, jpeg_quality=20)
    back = cv2.imdecode(np.frombuffer(flat.data, np.uint8), cv2.IMREAD_COLOR)
    # Flat colours use at least quality 90 whatever --jpeg-quality says.
    assert flat.format == 'jpeg'
    assert np.abs(back[8, 8, ::-1].astype(int) - (200, 10, 10)).max() <= 6


def test_payload_conversions() -> None:
    status = DiagnosticStatus(name='n', hardware_id='h', level=DiagnosticStatus.WARN,
                              values=[KeyValue(key='rate', value='9.50'),
                                      KeyValue(key='p50', value='nan'),
                                      KeyValue(key='model', value='mbv2:x.pt')])
    document = diagnostics_to_dict(DiagnosticArray(status=[status]))
    assert document['status'][0]['level'] == 1
    assert document['status'][0]['values'] == {'rate': 9.5, 'p50': 'nan', 'model': 'mbv2:x.pt'}
    json.dumps(document, allow_nan=False)
    stats = stats_to_dict(SegmentationStats(processing_latency_ms=float('nan')))
    assert stats['processing_latency_ms'] is None
    json.dumps(stats, allow_nan=False)


def test_shipped_layout_is_the_generated_one() -> None:
    shipped = (REPO / 'config' / 'foxglove_layout.json').read_text()
    assert shipped == layout_json([DEMO_NAMESPACE]), (
        'config/foxglove_layout.json is stale: regenerate it with `lw-refinenet view '
        '--cameras /conveyor_demo --write-layout config/foxglove_layout.json`')
    layout = json.loads(shipped)
    topics = json.dumps(layout)
    for topic in ('/conveyor_demo/segmentation/overlay', '/conveyor_demo/segmentation/annotations',
                  '/conveyor_demo/segmentation/stats.processing_latency_ms', '/diagnostics'):
        assert topic in topics
    # The app's import form: every panel in the tree has settings, and no settings are orphans.
    assert _tree_ids(layout['layout'], layout['configById']) == set(layout['configById'])
    camera_panels = [c['imageMode'] for c in layout['configById'].values()
                     if c.get('imageMode', {}).get('imageTopic') == '/conveyor_demo/image']
    assert '/conveyor_demo/segmentation/annotations' in camera_panels[0]['annotations']
    several = json.loads(layout_json(['/left', '/right']))
    tabs = several['configById'][several['layout']]['tabs']
    assert [tab['title'] for tab in tabs] == ['left', 'right']
    assert _tree_ids(several['layout'], several['configById']) == set(several['configById'])


def _tree_ids(tree: Any, config_by_id: dict[str, Any]) -> set[str]:
    """Panel ids a mosaic tree refers to, through tab panels too."""
    if isinstance(tree, str):
        ids = {tree}
        for tab in config_by_id[tree].get('tabs', []) if tree.startswith('Tab!') else []:
            ids |= _tree_ids(tab['layout'], config_by_id)
        return ids
    assert 0 < tree['splitPercentage'] < 100 and tree['direction'] in ('row', 'column')
    return _tree_ids(tree['first'], config_by_id) | _tree_ids(tree['second'], config_by_id)


def test_rviz_layout_shows_the_object_markers() -> None:
    import yaml

    rviz = yaml.safe_load((REPO / 'config' / 'segmentation.rviz').read_text())
    displays = rviz['Visualization Manager']['Displays']
    markers = [d for d in displays if d['Class'] == 'rviz_default_plugins/MarkerArray']
    assert len(markers) == 1 and markers[0]['Enabled']
    assert markers[0]['Topic']['Value'] == '/segmentation/markers'
    # Best effort: never a reliable reader that could hold back the node's writer.
    assert markers[0]['Topic']['Reliability Policy'] == 'Best Effort'
    assert set(markers[0]['Namespaces']) == {'boxes', 'picks', 'ids'}


def test_cli_writes_a_layout_for_the_given_cameras(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    from lw_refinenet_ros.cli import main

    target = tmp_path / 'layout.json'
    assert main(['view', '--cameras', '/left', '/right', '--write-layout', str(target)]) == 0
    assert target.read_text() == layout_json(['/left', '/right'])
    assert str(target) in capsys.readouterr().out
    # A bad option ends with the fix, exit code 2, before anything is served.
    assert main(['view', '--jpeg-quality', '0']) == 2
    assert '--jpeg-quality must be 1-100' in capsys.readouterr().err
