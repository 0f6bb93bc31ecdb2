"""Fuzzing: malformed Image and CompressedImage messages into a running node.

Every example is invalid by construction (see ``malformed.py``); the node must survive each
one, count it as failed (and nothing else), keep its counters consistent, and then process a
good frame. Bounded and derandomised in the test suite; ``benchmarks/fuzz_node.py`` runs the
same test with thousands of examples and a random seed (LWRF_FUZZ_EXAMPLES, LWRF_FUZZ_SEED,
LWRF_FUZZ_REPORT).
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import time
from typing import Any, Iterator

import cv2
import hypothesis
from hypothesis import HealthCheck, given, settings
import numpy as np
import pytest
import rclpy
from sensor_msgs.msg import CompressedImage, Image

from . import harness, malformed

EXAMPLES = int(os.environ.get('LWRF_FUZZ_EXAMPLES', '200'))
SEED = os.environ.get('LWRF_FUZZ_SEED')
REPORT = os.environ.get('LWRF_FUZZ_REPORT')

pytestmark = pytest.mark.timeout(max(300, EXAMPLES))

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=SEED is None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def _seeded(test: Any) -> Any:
    return hypothesis.seed(int(SEED))(test) if SEED is not None else test


def _tiny_encoded() -> tuple[bytes, bytes]:
    image = np.full((8, 8, 3), 120, np.uint8)
    return (cv2.imencode('.jpg', image)[1].tobytes(), cv2.imencode('.png', image)[1].tobytes())


VALID_JPEG, VALID_PNG = _tiny_encoded()


@pytest.fixture(scope='module', params=['raw', 'compressed'])
def live(request: pytest.FixtureRequest) -> Iterator[tuple[harness.LiveNode, dict]]:
    context = rclpy.Context()
    rclpy.init(context=context)
    node = harness.LiveNode(context, harness.FakeEngine(),
                            params={'input_type': request.param})
    try:
        assert node.spin_until(
            lambda: (node.compressed_pub if request.param == 'compressed'
                     else node.image_pub).get_subscription_count() > 0, 10)
        # Control: a good frame of this kind goes through before any fuzzing.
        node.send_good(compressed=VALID_PNG if request.param == 'compressed' else None)
        yield node, {'input_type': request.param, 'faults': collections.Counter(), 'sent': 0}
    finally:
        node.close()
        context.try_shutdown()


def _send_malformed(node: harness.LiveNode, message: Any, why: str, log: dict) -> None:
    before = node.counters()
    assert node.send_and_wait(message, 'failed', timeout=5.0), (
        f'malformed message ({why}) was not counted as failed: {before} -> {node.counters()}')
    after = node.counters()
    assert after['failed'] == before['failed'] + 1, (why, before, after)
    assert after['processed'] == before['processed'], (why, before, after)
    assert after['received'] == before['received'] + 1, (why, before, after)
    log['faults'][why] += 1
    log['sent'] += 1


def _stamp(message: Any) -> Any:
    # A fresh stamp, so the node's age gate (max_frame_age_ms) cannot be why it is dropped.
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
    message.header.frame_id = 'fuzz'
    return message


def _image(fields: dict) -> Image:
    message = Image(height=fields['height'], width=fields['width'],
                    encoding=fields['encoding'], step=fields['step'],
                    is_bigendian=fields['is_bigendian'])
    message.data = fields['data']
    return _stamp(message)


def _compressed(fields: dict) -> CompressedImage:
    message = CompressedImage(format=fields['format'])
    message.data = fields['data']
    return _stamp(message)


def test_malformed_messages_are_counted_as_failed_and_the_node_recovers(
        live: tuple[harness.LiveNode, dict]) -> None:
    node, log = live
    input_type = log['input_type']

    if input_type == 'raw':
        @FUZZ_SETTINGS
        @given(example=malformed.malformed_images())
        def run(example: tuple[dict, str]) -> None:
            fields, why = example
            _send_malformed(node, _image(fields), why, log)
    else:
        @FUZZ_SETTINGS
        @given(example=malformed.malformed_compressed(VALID_JPEG, VALID_PNG))
        def run(example: tuple[dict, str]) -> None:
            fields, why = example
            _send_malformed(node, _compressed(fields), why, log)

    _seeded(run)()
    # Still alive, still consistent, still working.
    assert node.settled(), node.counters()
    node.send_good(compressed=VALID_PNG if input_type == 'compressed' else None)
    counters = node.counters()
    assert counters['failed'] >= log['sent']
    if REPORT:
        path = pathlib.Path(REPORT)
        reports = json.loads(path.read_text()) if path.is_file() else {}
        reports[input_type] = {'malformed_sent': log['sent'], 'by_fault': dict(log['faults']),
                               'counters_after': counters, 'good_frame_after': True}
        path.write_text(json.dumps(reports, indent=2))
