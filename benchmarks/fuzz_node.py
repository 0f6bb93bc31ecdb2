#!/usr/bin/env python3
"""Long fuzzing run: thousands of malformed Image/CompressedImage messages into a live node.

The same test as ``test/reliability/test_fuzz.py`` (one implementation, no drift), run with
many more hypothesis examples and a fresh random seed unless ``--seed`` is given. The test
writes a summary (examples sent, failed counter, good frames processed afterwards) that this
script adds to its JSON.

    .venv/bin/python benchmarks/fuzz_node.py --json out.json [--examples 3000]
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

import _common


def main(argv: list[str] | None = None) -> int:
    parser = _common.base_parser(__doc__.splitlines()[1])
    parser.add_argument('--examples', type=int, default=3000,
                        help='hypothesis examples per message type')
    parser.add_argument('--seed', type=int, default=None,
                        help='hypothesis seed (default: random, printed in the JSON)')
    args = parser.parse_args(argv)
    examples = 300 if args.quick else args.examples
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), 'little')
    with tempfile.TemporaryDirectory() as tmp:
        report = pathlib.Path(tmp, 'report.json')
        env = dict(os.environ, LWRF_FUZZ_EXAMPLES=str(examples), LWRF_FUZZ_SEED=str(seed),
                   LWRF_FUZZ_REPORT=str(report))
        before = _common.machine_state()
        start = time.monotonic()
        completed = subprocess.run(
            [sys.executable, '-m', 'pytest', 'test/reliability/test_fuzz.py', '-q',
             '-p', 'no:cacheprovider', '--timeout', str(max(600, examples))],
            cwd=_common.ROOT, env=env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - start
        reports = json.loads(report.read_text()) if report.is_file() else {}
    tail = completed.stdout.strip().splitlines()[-15:]
    result: dict[str, Any] = {
        'benchmark': 'fuzz_node', 'command': ' '.join([sys.executable, *sys.argv]),
        'machine_before': before, 'examples_per_type': examples, 'seed': seed,
        'pytest_exit_code': completed.returncode, 'elapsed_s': round(elapsed, 1),
        'pytest_tail': tail, 'reports': reports,
        'machine_after': _common.machine_state(),
    }
    _common.write_json(args.json, result)
    return completed.returncode


if __name__ == '__main__':
    sys.exit(main())
