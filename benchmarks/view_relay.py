"""What the view's protocol-name relay costs: the same messages received directly from the
foxglove-sdk server and through the relay (lw_refinenet_ros/view/subprotocol.py).

One SDK server with one channel; per round, ``--messages`` payloads of ``--bytes`` each
(about a compressed 640x480 camera image) are logged as fast as the SDK takes them and
received by a Foxglove client connected directly, then by one connected through the relay,
interleaved round by round. Reported: wall time until the client has them all, and the CPU
time of this process in that window (SDK server, relay and client all live here, so the
difference between the two is the relay's cost). No ROS.

    .venv/bin/python benchmarks/view_relay.py --json /tmp/view_relay.json
"""

from __future__ import annotations

import asyncio
import pathlib
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402
import foxglove  # noqa: E402

from lw_refinenet_ros.testing.foxglove_client import FoxgloveClient  # noqa: E402
from lw_refinenet_ros.view.subprotocol import SubprotocolRelay, bind_listener  # noqa: E402


async def _round(port: int, channel: Any, payload: dict[str, str],
                 count: int) -> tuple[int, float, float]:
    async with FoxgloveClient(f'ws://127.0.0.1:{port}') as client:
        await client.subscribe('/blob')
        await asyncio.sleep(0.3)  # the subscription reaches the server
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            channel.log(payload)
        frames = await client.receive(lambda fs: len(fs) >= count, timeout=120)
        return len(frames), time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument('--messages', type=int, default=400, help='messages per round')
    parser.add_argument('--bytes', type=int, default=60_000, help='payload size (default 60 kB)')
    parser.add_argument('--rounds', type=int, default=5, help='interleaved rounds')
    args = parser.parse_args()
    if args.quick:
        args.messages, args.rounds = 50, 2
    context = foxglove.Context()
    channel = foxglove.Channel('/blob', schema={'type': 'object'}, message_encoding='json',
                               context=context)
    server = foxglove.start_server(host='127.0.0.1', port=0, context=context,
                                   message_backlog_size=args.messages * 2)
    relay = SubprotocolRelay(bind_listener('127.0.0.1', 0), int(server.port))
    payload = {'x': 'a' * args.bytes}
    rounds: dict[str, list[tuple[int, float, float]]] = {'direct': [], 'relay': []}
    try:
        for _ in range(args.rounds):
            for name, port in (('direct', int(server.port)), ('relay', relay.port)):
                rounds[name].append(asyncio.run(_round(port, channel, payload,
                                                       args.messages)))
    finally:
        relay.stop()
        server.stop()
        channel.close()
    megabytes = args.messages * args.bytes / 1e6
    result: dict[str, Any] = {'machine': _common.machine_state(), 'messages': args.messages,
                              'bytes': args.bytes, 'rounds': args.rounds}
    for name, rows in rounds.items():
        wall = statistics.median(r[1] for r in rows)
        cpu = statistics.median(r[2] for r in rows)
        result[name] = {'received': [r[0] for r in rows], 'wall_ms_median': wall * 1e3,
                        'cpu_ms_median': cpu * 1e3, 'cpu_ms_per_mb': cpu * 1e3 / megabytes}
        print(f'{name:6s} received {min(r[0] for r in rows)}/{args.messages} per round; '
              f'median wall {wall * 1e3:.0f} ms, CPU {cpu * 1e3:.0f} ms '
              f'({cpu * 1e3 / megabytes:.1f} ms per MB)')
    extra = result['relay']['cpu_ms_per_mb'] - result['direct']['cpu_ms_per_mb']
    result['relay_extra_cpu_ms_per_mb'] = extra
    print(f'relay: {extra:+.1f} ms CPU per MB relayed; load {result["machine"]["loadavg_1_5_15"]}')
    _common.write_json(args.json, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
