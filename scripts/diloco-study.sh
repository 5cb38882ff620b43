#!/usr/bin/env bash
# Time to accuracy of per-step PowerSGD against DiLoCo (--sync-every 4 and 16, plain and
# PowerSGD-compressed pseudo-gradients, each with DiLoCo's Nesterov outer step and with plain
# averaging) on 2 emulated hosts at 20 Mbit/s: ResNet-8 on the CIFAR-10
# subset, 6 epochs, evaluated 4 times an epoch. Needs root (network namespaces). One log, output
# and cluster JSON per run in OUT; then prints the table of scripts/time-to-accuracy.py.
# Usage: scripts/diloco-study.sh [OUT] [TARGET]
set -euo pipefail
B=${POWERSGD:-.build/release/powersgd}; out=${1:-diloco-study}; target=${2:-0.45}; mkdir -p "$out"
export OPENBLAS_NUM_THREADS=1
run() {
  local name=$1; shift
  "$B" cluster --hosts 2 --link 20mbit --json "$out/$name.cluster.json" --time-limit 900 -- train --model resnet8 \
    --dataset cifar10 --epochs 6 --evaluate-every 39 --log-file "$out/$name.jsonl" "$@" > "$out/$name.out" 2>&1
}
run sgd-h1 --reducer sgd
run psgd-h1 --reducer powersgd:rank=2
for h in 4 16; do
  run "sgd-h$h" --reducer sgd --sync-every "$h"
  run "psgd-h$h" --reducer powersgd:rank=2 --sync-every "$h"
done
for h in 4 16; do
  run "sgd-h$h-outer-sgd" --reducer sgd --sync-every "$h" --outer-optimizer sgd:lr=1
  run "psgd-h$h-outer-sgd" --reducer powersgd:rank=2 --sync-every "$h" --outer-optimizer sgd:lr=1
done
run psgd-h4-momentum-0.5 --reducer powersgd:rank=2 --sync-every 4 --outer-optimizer nesterov:lr=0.7,momentum=0.5
python3 "$(dirname "$0")/time-to-accuracy.py" "$target" "$out"/*.jsonl
