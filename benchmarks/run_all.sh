#!/usr/bin/env bash
# Run every end-to-end benchmark and write results to docs/bench/ and plots to docs/img/.
# Usage: benchmarks/run_all.sh [--quick] [--device cuda]   (from the repository root)
# Takes about 12 minutes on a 2-core CPU (3 with --quick). The machine's load average is
# recorded in every JSON file: compare numbers only at similar load.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-docs/bench}
IMG=${IMG:-docs/img}
mkdir -p "$OUT" "$IMG"
uptime
"$PY" benchmarks/transport_floor.py --json "$OUT/transport_floor.json" --plot "$IMG/transport_floor.png" "$@"
"$PY" benchmarks/node_latency.py --json "$OUT/node_latency.json" --plot "$IMG/node_latency.png" "$@"
"$PY" benchmarks/overload.py --json "$OUT/overload.json" --plot "$IMG/overload.png" "$@"
"$PY" benchmarks/soak.py --json "$OUT/soak.json" --plot "$IMG/soak.png" "$@"
"$PY" benchmarks/fuzz_node.py --json "$OUT/fuzz_node.json" "$@"
uptime
