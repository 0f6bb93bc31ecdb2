#!/usr/bin/env bash
# What `lw-refinenet segment --outputs` saves: the same 64 images segmented with labels only,
# the default set (labels,color,overlay) and every output, interleaved round by round, after
# one untimed run that fills the runtime cache. Prints each run's wall time and its CPU time
# (user + system, all threads): on a machine other jobs share, the CPU seconds a job spends
# are steadier than its wall time.
#
# Usage: benchmarks/segment_outputs.sh [WIDTHxHEIGHT] [ROUNDS]   (defaults: 640x480, 3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${1:-640x480}
ROUNDS=${2:-3}
PY=$ROOT/.venv/bin/python
LWRF="env PYTHONPATH=$ROOT $PY -m lw_refinenet_ros"   # the source tree, not an older install
WORK=$(mktemp -d /tmp/lwrf-segout.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export XDG_CACHE_HOME=$WORK/cache

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores;" \
  "commit $(git -C "$ROOT" rev-parse --short HEAD)"
$LWRF make-dataset conveyor --out "$WORK/data" --count 64 --seed 7000 --size "$SIZE" >/dev/null 2>&1
$LWRF segment "$WORK/data/images" --out "$WORK/fill" --no-progress >/dev/null 2>&1

for round in $(seq "$ROUNDS"); do
  echo "== round $round, $(uptime | sed 's/.*load/load/')"
  for outputs in labels labels,color,overlay labels,color,overlay,confidence,objects; do
    rm -rf "$WORK/out"
    /usr/bin/time -f "--outputs $outputs: %e s wall, %U s user + %S s system" $LWRF segment \
      "$WORK/data/images" --outputs "$outputs" --out "$WORK/out" --no-progress 2>&1 \
      | grep -E '^segmented|wall'
  done
done
