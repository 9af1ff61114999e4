#!/usr/bin/env bash
# One device call: every family at its target budget, each against plain bf16 in the same run.
# Usage (on a CUDA machine, from the repository root): bash bench/train_gpu.sh [OUT_DIR]
# Each family gets at most 110 s so that the five fit one 10-minute call; a family cut off is
# reported as such, the others still run. Results: one JSON object per family in OUT_DIR.
set -u
out=${1:-${OUT:-bench/results}}
mkdir -p "$out"
run() {  # family size vram
  timeout 110 python -m bench.train --family "$1" --size "$2" --vram "$3" --steps 20 \
    > "$out/train-$1$2-$3.json" 2> "$out/train-$1$2-$3.log" \
    || echo "{\"family\": \"$1$2\", \"vram\": \"$3\", \"error\": \"exit $?\"}" > "$out/train-$1$2-$3.json"
  cat "$out/train-$1$2-$3.json"
}
run flux2-klein 4b 8
run flux2-klein 9b 12
run zimage "" 12
run flux1 "" 12
run qwen-image "" 24
