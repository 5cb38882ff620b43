#!/usr/bin/env bash
# Test accuracy against ε for several reducers: the MLP on Fashion-MNIST, 2 workers × 128 examples
# (q = 256/60000), distributed noise placement, σ found for each target ε over the run's steps
# (so a reducer that is charged σ/√W — any but sgd and powersgd — gets the larger σ it needs).
# The same without error feedback (PowerSGD and Top-K, with SGD for reference) in $out/no-feedback;
# clipping without noise for the first seed in $out/clip-only. Then the tables and charts over the
# seeds (scripts/privacy-chart.py), and the per-step split of the error into noise and compression
# (`powersgd dp-error`) at ε = 1 and 8 for the first seed (ε = 1 only without error feedback).
# Usage: scripts/privacy-study.sh [output-dir] [epochs] [seeds...]
set -euo pipefail
out=${1:-privacy-study}
epochs=${2:-1}
shift $(( $# > 2 ? 2 : $# )) || true
seeds=${*:-1}
bin=${POWERSGD:-.build/release/powersgd}
reducers="sgd,powersgd:rank=1,powersgd:rank=2,powersgd:rank=4,topk:ratio=0.1,topk:ratio=0.01,qsgd:levels=16"
no_feedback="sgd,powersgd:rank=1,error-feedback=off,powersgd:rank=4,error-feedback=off,topk:ratio=0.1,feedback=none,topk:ratio=0.01,feedback=none"
common=(--model mlp --dataset fashion-mnist --workers 2 --batch-size 128 --epochs "$epochs" --learning-rate 0.1 --momentum 0.9
        --weight-decay 0 --schedule constant)
mkdir -p "$out/no-feedback" "$out/clip-only"
# compare into $1 (a directory) for reducers $2, budgets $3..., every seed.
sweep() {
  local dir=$1 list=$2; shift 2
  for seed in $seeds; do
    for eps in "$@"; do
      if [ "$eps" = none ]; then dp=(); else dp=(--dp "epsilon=$eps,clip=1.0,delta=1e-5,placement=distributed"); fi
      "$bin" compare "${common[@]}" --seed "$seed" --reducers "$list" "${dp[@]}" --output-dir "$dir/${eps/#[0-9]/eps$eps}-seed$seed" \
        > "$dir/${eps/#[0-9]/eps$eps}-seed$seed.txt"
    done
  done
}
sweep "$out" "$reducers" none 1 3 8
sweep "$out/no-feedback" "$no_feedback" none 1 8
first=${seeds%% *}
"$bin" compare "${common[@]}" --seed "$first" --reducers sgd,powersgd:rank=1,powersgd:rank=2 \
  --dp "noise=0,clip=1.0,delta=1e-5,placement=distributed" --output-dir "$out/clip-only" > "$out/clip-only.txt"
chart="$(dirname "$0")/privacy-chart.py"
python3 "$chart" "$out" "$out/accuracy-vs-epsilon.svg" > "$out/accuracy-vs-epsilon.md"
python3 "$chart" "$out/no-feedback" "$out/no-feedback/accuracy-vs-epsilon.svg" > "$out/no-feedback/accuracy-vs-epsilon.md"
for eps in 1 8; do
  "$bin" dp-error "${common[@]}" --seed "$first" --reducers "$reducers" \
    --dp "epsilon=$eps,clip=1.0,delta=1e-5,placement=distributed" --json "$out/split-eps$eps.json" > "$out/split-eps$eps.md"
done
"$bin" dp-error "${common[@]}" --seed "$first" --reducers "$no_feedback" \
  --dp "epsilon=1,clip=1.0,delta=1e-5,placement=distributed" --json "$out/no-feedback/split-eps1.json" > "$out/no-feedback/split-eps1.md"
