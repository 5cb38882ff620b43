#!/usr/bin/env bash
# Time to accuracy of per-step PowerSGD against DiLoCo (--sync-every 4 and 16, plain and
# PowerSGD-compressed pseudo-gradients, each with DiLoCo's Nesterov outer step and with plain
# averaging) on 2 emulated hosts, evaluated 4 times an epoch: ResNet-8 on the CIFAR-10 subset at
# 20 Mbit/s, 6 epochs (MODEL resnet8, the default), or the 2×200 LSTM on WikiText-2 (valid split,
# perplexity on test) at 220 Mbit/s, 3 epochs, with the LSTM flags of docs/cluster.md (MODEL lstm).
# Needs root (network namespaces). One log, output and cluster JSON per run in OUT; then prints
# the table of scripts/time-to-accuracy.py.
# Usage: scripts/diloco-study.sh [OUT] [TARGET] [MODEL]
set -euo pipefail
B=${POWERSGD:-.build/release/powersgd}; out=${1:-diloco-study}; target=${2:-0.45}; model=${3:-resnet8}; mkdir -p "$out"
case "$model" in
  resnet8) link=20mbit; limit=900; job=(--model resnet8 --dataset cifar10 --epochs 6 --evaluate-every 39) ;;
  lstm) link=220mbit; limit=1800; job=(--model lstm --dataset wikitext2 --batch-size 20 --bptt 35 --epochs 3 \
          --evaluate-every 39 --learning-rate 5 --momentum 0 --clip-norm 0.25) ;;
  *) echo "diloco-study: MODEL must be resnet8 or lstm, got '$model'" >&2; exit 2 ;;
esac
export OPENBLAS_NUM_THREADS=1
run() {
  local name=$1; shift
  "$B" cluster --hosts 2 --link "$link" --json "$out/$name.cluster.json" --time-limit "$limit" -- train "${job[@]}" \
    --log-file "$out/$name.jsonl" "$@" > "$out/$name.out" 2>&1
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
