#!/usr/bin/env bash
# The whole GPU check in one script, at most 8 minutes (steps of at most 300 + 45 + 120 s,
# each cut off at its limit and reported): run it once on any machine with an NVIDIA GPU and
# record the table in docs/benchmarks.md.
#
#   1. the GPU matrix (benchmarks/gpu_matrix.py): torch fp32/fp16/bf16, fp16 + CUDA graphs,
#      fp16 + torch.compile, ONNX Runtime CUDA and TensorRT providers where installed, at
#      640x480, interleaved, label agreement against torch fp32 on the CPU;
#   2. the ROS transport floor at 640x480 (benchmarks/transport_floor.py);
#   3. the node end to end at 640x480 on the GPU against that floor (benchmarks/node_latency.py);
#   4. a markdown table of all three (device_check.md) next to the JSON files.
#
# Usage (from anywhere):  benchmarks/device_check.sh
#   OUT=dir         where JSON + markdown go (default docs/bench/device_check)
#   DEVICE=cuda:N   which GPU (default cuda); DEVICE=cpu runs a CPU smoke test of the script
#   INSTALL_ORT_GPU=1  replace onnxruntime by onnxruntime-gpu (+ tensorrt) first (needs PyPI)
# Without CUDA it stops at once with exit status 2 and says why.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-docs/bench/device_check}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
start=$(date +%s)
uptime

if [ "$DEVICE" != cpu ]; then
  if ! "$PY" - "$DEVICE" <<'EOF'
import sys

import torch

device = sys.argv[1]
if not torch.cuda.is_available():
    sys.exit(f'device_check: no CUDA device: torch {torch.__version__} (CUDA build: '
             f'{torch.version.cuda or "none, a CPU-only wheel"}) sees no GPU. Run this on a '
             f'machine with an NVIDIA GPU and a CUDA build of torch; DEVICE=cpu runs a CPU '
             f'smoke test of this script instead (no GPU numbers).')
index = int(device.split(':')[1]) if ':' in device else 0
print(f'GPU: {torch.cuda.get_device_name(index)}, torch {torch.__version__}, '
      f'CUDA {torch.version.cuda}')
EOF
  then
    exit 2
  fi
  if [ "${INSTALL_ORT_GPU:-0}" = 1 ]; then
    echo "installing onnxruntime-gpu and tensorrt (INSTALL_ORT_GPU=1) ..."
    timeout 180 "$PY" -m pip uninstall --yes --quiet onnxruntime || true
    timeout 180 "$PY" -m pip install --quiet onnxruntime-gpu tensorrt \
      || echo "onnxruntime-gpu/tensorrt could not be installed: their rows are skipped"
  fi
fi

status=0
run_step() {  # run_step NAME SECONDS COMMAND...: a step that fails or overruns is reported
  local name=$1 seconds=$2
  shift 2
  echo "== $name (at most ${seconds}s)"
  if ! timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1; then
    echo "$name: FAILED or timed out (see $OUT/$name.log)"
    tail -5 "$OUT/$name.log"
    status=1
  fi
}

run_step gpu_matrix 300 "$PY" benchmarks/gpu_matrix.py --device "$DEVICE" --size 480x640 \
  --build-budget-s 220 --json "$OUT/gpu_matrix.json"
run_step transport_floor 45 "$PY" benchmarks/transport_floor.py --sizes 640x480 \
  --qos best_effort --quick --json "$OUT/transport_floor.json"
run_step node_latency 120 "$PY" benchmarks/node_latency.py --device "$DEVICE" --width 640 \
  --height 480 --rates 30 --engines floor real --no-peak --quick --num-threads 0 \
  --json "$OUT/node_latency.json"

"$PY" - "$OUT" <<'EOF'
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])


def load(name):
    path = out / f'{name}.json'
    return json.loads(path.read_text()) if path.is_file() else None


lines = ['# Device check', '']
matrix = load('gpu_matrix')
if matrix:
    lines += [f'Device: {matrix["device"]}; torch {matrix["torch"]}, CUDA {matrix["cuda"]}; '
              f'{matrix["size"][0]}x{matrix["size"][1]}, {matrix["iters"]} interleaved '
              f'frames per mode; CPU {matrix["cpu"]}.', '',
              '| mode | p50 ms | p95 ms | FPS | labels = CPU torch fp32 |',
              '|---|---:|---:|---:|---:|']
    for row in matrix['results']:
        lines.append(f'| {row["mode"]} | {row["p50_ms"]:.2f} | {row["p95_ms"]:.2f} | '
                     f'{row["fps"]:.1f} | {row["labels_equal_to_cpu_fp32_pct"]:.2f} % |')
    for mode, reason in matrix['not_run'].items():
        lines.append(f'| {mode} | not run: {reason[:100]} | | | |')
    lines.append('')
node = load('node_latency')
if node:
    lines += ['Node end to end, 640x480 rgb8 at 30 Hz (camera stamp -> labels received):', '',
              '| graph | p50 ms | p95 ms | delivered |', '|---|---:|---:|---:|']
    for engine, data in node['results'].items():
        for rate in data.get('rates', []):
            labels = rate.get('labels', {})
            latency = labels.get('latency_ms', {})
            lines.append(f'| {engine} @ {rate.get("rate_hz")} Hz | {latency.get("p50")} | '
                         f'{latency.get("p95")} | {labels.get("delivered_pct", "")} |')
    lines.append('')
floor = load('transport_floor')
if floor:
    lines += ['Transport floor runs: see transport_floor.json '
              f'({len(floor.get("runs", []))} configurations).', '']
(out / 'device_check.md').write_text('\n'.join(lines) + '\n')
print('\n'.join(lines))
EOF
echo "device_check: done in $(( $(date +%s) - start )) s; results in $OUT (status $status)"
exit $status
