#!/usr/bin/env bash
# Run every end-to-end benchmark and write results to docs/bench/ and plots to docs/img/;
# `benchmarks/report.py docs/bench` prints their tables.
# Usage: benchmarks/run_all.sh [--quick] [--device cuda]   (from the repository root)
# Takes roughly 18 minutes on a 2-core CPU (4 with --quick). The machine's load average is
# recorded in every JSON file: compare numbers only at similar load.
# The runtime comparison (backends.py: every CPU runtime and precision against the bare
# OpenVINO script) runs on the CPU whatever --device says; benchmarks/device_check.sh is the
# GPU counterpart.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-docs/bench}
IMG=${IMG:-docs/img}
mkdir -p "$OUT" "$IMG"
QUICK=()
for arg in "$@"; do
  if [[ $arg == --quick ]]; then QUICK=(--quick); fi
done
uptime
"$PY" benchmarks/transport_floor.py --json "$OUT/transport_floor.json" --plot "$IMG/transport_floor.png" "$@"
"$PY" benchmarks/node_latency.py --json "$OUT/node_latency.json" --plot "$IMG/node_latency.png" "$@"
"$PY" benchmarks/overload.py --json "$OUT/overload.json" --plot "$IMG/overload.png" "$@"
"$PY" benchmarks/soak.py --json "$OUT/soak.json" --plot "$IMG/soak.png" "$@"
"$PY" benchmarks/fuzz_node.py --json "$OUT/fuzz_node.json" "$@"
"$PY" benchmarks/view_overhead.py --json "$OUT/view_overhead.json" "$@"
"$PY" benchmarks/backends.py --threads 1 --iters 15 --json "$OUT/backends_cpu.json" ${QUICK[@]+"${QUICK[@]}"}
uptime
