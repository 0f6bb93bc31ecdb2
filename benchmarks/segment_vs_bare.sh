#!/usr/bin/env bash
# `lw-refinenet segment` (default settings, this source tree) against the hand-written OpenVINO
# script (benchmarks/bare_openvino.py with OpenVINO's own default precision, and f32) and
# against `segment` of an earlier commit
# (the original pipeline), interleaved round by round on the same model and images, then the
# share of labels equal to the earlier commit's fp32 labels. Prints everything it measures.
# Also what a job pays for: `segment --outputs labels` (no colour, overlay or PNGs of them),
# and int8 calibrated on the job's own images: the same weights passed as a user's model
# (--weights, so no conveyor calibration), with and without --no-input-int8, each in a cache
# of its own (round 1 is a first job: runtimes built, int8 calibrated; later rounds find them).
#
# Usage: benchmarks/segment_vs_bare.sh [WIDTHxHEIGHT] [OLD_COMMIT] [ROUNDS]
#        (defaults: 640x480, a2c5517 = the last commit before the engine package, 3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${1:-640x480}
OLD=${2:-a2c5517}
ROUNDS=${3:-3}
PY=$ROOT/.venv/bin/python
LWRF="env PYTHONPATH=$ROOT $PY -m lw_refinenet_ros"   # the source tree, not an older install
WEIGHTS=$ROOT/lw_refinenet_ros/model/default/conveyor_mbv2.pt
WORK=$(mktemp -d /tmp/lwrf-segbench.XXXXXX)
trap 'git -C "$ROOT" worktree remove --force "$WORK/old" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
W=${SIZE%x*}; H=${SIZE#*x}

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores;" \
  "commit $(git -C "$ROOT" rev-parse --short HEAD)"
$LWRF make-dataset conveyor --out "$WORK/data" --count 64 --seed 7000 --size "$SIZE" >/dev/null 2>&1
$LWRF export --onnx "$WORK/model.onnx" --weights "$WEIGHTS" --height "$H" --width "$W" \
  >/dev/null
git -C "$ROOT" worktree add --detach "$WORK/old" "$OLD" >/dev/null 2>&1
export XDG_CACHE_HOME=$WORK/cache   # the first round builds the runtimes; later ones hit

for round in $(seq "$ROUNDS"); do
  echo "== round $round, $(uptime | sed 's/.*load/load/')"
  for precision in default f32; do
    /usr/bin/time -f "bare $precision whole process: %e s" "$PY" \
      "$ROOT/benchmarks/bare_openvino.py" "$WORK/model.onnx" --images "$WORK/data/images" \
      --precision $precision 2>&1
  done
  /usr/bin/time -f 'segment whole process: %e s' $LWRF segment "$WORK/data/images" \
    --out "$WORK/new" --no-progress 2>&1 | grep -E '^segmented|whole process|backend: '
  # The same at the camera's own resolution: the packaged model's card would otherwise run
  # the network at its trained 320x240, less work than the bare script does.
  /usr/bin/time -f 'segment --max-side 0 whole process: %e s' $LWRF segment \
    "$WORK/data/images" --max-side 0 --out "$WORK/native" --no-progress 2>&1 \
    | grep -E '^segmented|whole process|backend: '
  /usr/bin/time -f 'segment --outputs labels whole process: %e s' $LWRF segment \
    "$WORK/data/images" --outputs labels --out "$WORK/labels_only" --no-progress 2>&1 \
    | grep -E '^segmented|whole process'
  /usr/bin/time -f 'segment --weights (int8 from the inputs) whole process: %e s' $LWRF \
    segment "$WORK/data/images" --weights "$WEIGHTS" --cache-dir "$WORK/cache_self" \
    --out "$WORK/self" --no-progress 2>&1 \
    | grep -E '^segmented|whole process|^lw-refinenet segment:'
  /usr/bin/time -f 'segment --weights --no-input-int8 whole process: %e s' $LWRF \
    segment "$WORK/data/images" --weights "$WEIGHTS" --cache-dir "$WORK/cache_noself" \
    --no-input-int8 --out "$WORK/noself" --no-progress 2>&1 \
    | grep -E '^segmented|whole process'
  # The same weights as today's default model (the earlier commit packaged an older one).
  (cd "$WORK/old" && PYTHONPATH="$WORK/old" "$PY" -m lw_refinenet_ros segment \
    "$WORK/data/images" --weights "$WEIGHTS" --out "$WORK/old_out" --no-progress 2>&1 \
    | grep '^segmented')
done

"$PY" - "$WORK/old_out" "$WORK/new" "$WORK/native" "$WORK/self" <<'PYEOF'
import pathlib, sys
import cv2
old, *runs = map(pathlib.Path, sys.argv[1:])
for run in runs:
    equal = total = 0
    for path in sorted(run.glob('*_labels.png')):
        a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(old / path.name), cv2.IMREAD_UNCHANGED)
        equal += int((a == b).sum())
        total += a.size
    print(f'{run.name}: labels equal to the earlier commit (fp32): '
          f'{100 * equal / total:.3f} % of {total} px')
PYEOF
