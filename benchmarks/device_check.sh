#!/usr/bin/env bash
# The whole GPU check in one call, written for a GPU machine lent for a few minutes, once:
#
#   bash benchmarks/device_check.sh            (from the repository root; about 7 min at most)
#
# It runs the machine as it is: the repository's .venv/bin/python if there is one, otherwise the
# image's python3, with the repository on PYTHONPATH. It installs nothing and uses no network.
#   1. probe (benchmarks/gpu_probe.py, seconds): required packages, CUDA, and every optional part
#      (OpenVINO, ROS, ONNX Runtime CUDA/TensorRT providers, torch.compile's toolchain). A
#      broken environment stops here with exit status 3, a machine without CUDA with 2; each says
#      which and why, in probe.json and device_check.md.
#   2. the GPU matrix (benchmarks/gpu_matrix.py, at most 330 s): torch fp32 (the reference,
#      eager, TF32 off), fp16, bf16, fp16 + CUDA graphs, the node's engine pipeline (default
#      options, labels + confidence + stats), ONNX Runtime CUDA/TensorRT where present, fp16 +
#      torch.compile last; 200 timed calls per row after warm-up; each row with the engine's
#      describe() of what ran; gpu_matrix.json/.md rewritten after every row.
#   2b. CUDA training steps (benchmarks/gpu_train.py, at most TRAIN_S=90 s): fp32, AMP (bf16
#      where the GPU has it, else fp16 + loss scaling) and AMP + torch.compile, in gpu_train.json;
#      without CUDA every row is not run, with the reason.
#   3. the ROS node end to end at 640x480 against the transport floor, only if the probe found
#      rclpy and this package's built messages; otherwise recorded as not run with the reason.
#   4. device_check.md and device_check.json: everything above in one report.
#
# Environment: OUT=dir (default docs/bench/device_check), DEVICE=cuda|cuda:N|cpu (cpu: the
# rehearsal, no GPU numbers), PYTHON=interpreter (overrides the choice above), SIZE=HxW
# (default 640x480), ITERS (200), WARMUP (20), MATRIX_S (the matrix's time limit, 330).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=$(command -v python3 || true)
fi
if [ -z "$PY" ]; then
  echo "device_check: no python3 on PATH and no .venv: nothing to run the check with" >&2
  exit 3
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
OUT=${OUT:-docs/bench/device_check}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-640x480}
ITERS=${ITERS:-200}
WARMUP=${WARMUP:-20}
MATRIX_S=${MATRIX_S:-330}
mkdir -p "$OUT"
start=$(date +%s)
echo "device_check: python $("$PY" -c 'import sys; print(sys.version.split()[0])' 2>&1) ($PY)," \
  "device $DEVICE, output $OUT"
uptime 2>/dev/null || true

report() {
  "$PY" benchmarks/gpu_report.py "$OUT" > "$OUT/report.log" 2>&1 \
    || { echo "device_check: the report failed (see $OUT/report.log)"; tail -5 "$OUT/report.log"; }
}

"$PY" benchmarks/gpu_probe.py --device "$DEVICE" --json "$OUT/probe.json"
probe_status=$?
if [ "$probe_status" != 0 ]; then
  report
  case $probe_status in
    2) echo "device_check: no CUDA here (see above); nothing was timed. DEVICE=cpu runs the" \
         "CPU rehearsal of this script." ;;
    *) echo "device_check: the environment is broken (see above), not a missing GPU;" \
         "nothing was timed." ;;
  esac
  exit "$probe_status"
fi

status=0
run_step() {  # run_step NAME SECONDS COMMAND...: a step that fails or overruns is reported
  local name=$1 seconds=$2
  shift 2
  echo "== $name (at most ${seconds}s)"
  timeout --kill-after=10 "$seconds" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" != 0 ]; then
    echo "$name: exit status $rc (124: cut off at ${seconds}s; the rows written so far are kept)"
    status=1
  fi
}

run_step gpu_matrix "$MATRIX_S" "$PY" benchmarks/gpu_matrix.py --device "$DEVICE" \
  --size "$SIZE" --iters "$ITERS" --warmup "$WARMUP" --deadline-s $((MATRIX_S - 20)) \
  --out "$OUT"

run_step gpu_train "${TRAIN_S:-90}" "$PY" benchmarks/gpu_train.py --device "$DEVICE" \
  --deadline-s $((${TRAIN_S:-90} - 30)) --out "$OUT"

if "$PY" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["optional"]["ros_node"]["available"] else 1)' \
    "$OUT/probe.json"; then
  run_step transport_floor 45 "$PY" benchmarks/transport_floor.py --sizes 640x480 \
    --qos best_effort --quick --json "$OUT/transport_floor.json"
  run_step node_latency 120 "$PY" benchmarks/node_latency.py --device "$DEVICE" --width 640 \
    --height 480 --rates 30 --engines floor real --no-peak --quick --num-threads 0 \
    --json "$OUT/node_latency.json"
else
  echo "== node end to end: not run (no ROS runtime for this Python; see device_check.md)"
fi

report
cat "$OUT/device_check.md"
echo "device_check: done in $(( $(date +%s) - start )) s; results in $OUT (status $status)"
exit $status
