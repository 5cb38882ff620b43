#!/usr/bin/env bash
# Test accuracy against ε for several reducers: the MLP on Fashion-MNIST, 2 workers × 128 examples
# (q = 256/60000), distributed noise placement, σ found for each target ε over the run's steps
# (so a reducer that is charged σ/√W — any but sgd and powersgd — gets the larger σ it needs).
# Then the table and chart over the seeds (scripts/privacy-chart.py), and the per-step split of
# the error into noise and compression (`powersgd dp-error`) at ε = 1 and 8 for the first seed.
# Usage: scripts/privacy-study.sh [output-dir] [epochs] [seeds...]
set -euo pipefail
out=${1:-privacy-study}
epochs=${2:-1}
shift $(( $# > 2 ? 2 : $# )) || true
seeds=${*:-1}
bin=${POWERSGD:-.build/release/powersgd}
reducers="sgd,powersgd:rank=1,powersgd:rank=2,powersgd:rank=4,topk:ratio=0.1,topk:ratio=0.01,qsgd:levels=16"
common=(--model mlp --dataset fashion-mnist --workers 2 --batch-size 128 --epochs "$epochs" --learning-rate 0.1 --momentum 0.9
        --weight-decay 0 --schedule constant)
mkdir -p "$out"
for seed in $seeds; do
  "$bin" compare "${common[@]}" --seed "$seed" --reducers "$reducers" --output-dir "$out/none-seed$seed" > "$out/none-seed$seed.txt"
  for eps in 1 3 8; do
    "$bin" compare "${common[@]}" --seed "$seed" --reducers "$reducers" \
      --dp "epsilon=$eps,clip=1.0,delta=1e-5,placement=distributed" --output-dir "$out/eps$eps-seed$seed" > "$out/eps$eps-seed$seed.txt"
  done
done
python3 "$(dirname "$0")/privacy-chart.py" "$out" "$out/accuracy-vs-epsilon.svg" > "$out/accuracy-vs-epsilon.md"
first=${seeds%% *}
for eps in 1 8; do
  "$bin" dp-error "${common[@]}" --seed "$first" --reducers "$reducers" \
    --dp "epsilon=$eps,clip=1.0,delta=1e-5,placement=distributed" --json "$out/split-eps$eps.json" > "$out/split-eps$eps.md"
done
