"""The benchmark library: what ``lw-refinenet bench`` and ``benchmarks/`` time and how.

* :mod:`.timing` -- :func:`~.timing.latency_summary`, :func:`~.timing.time_interleaved`,
  :func:`~.timing.bench_metadata` (no torch at import).
* :mod:`.compare` -- :func:`~.compare.bench_one` (engine vs the reference pipeline),
  :func:`~.compare.backend_candidates`, :func:`~.compare.compare_backends` and
  :func:`~.compare.format_backend_table` (runtimes against each other).

The command itself (flags, sweeps, printing) is ``lw_refinenet_ros/cli/bench.py``.
"""
