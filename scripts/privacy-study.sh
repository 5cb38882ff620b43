#!/usr/bin/env bash
# Test accuracy against ε for several reducers: the MLP on Fashion-MNIST, 2 workers × 128 examples
# (q = 256/60000), distributed noise placement, σ found for each target ε over the run's steps
# (so a reducer that is charged σ/√W — any but sgd and powersgd — gets the larger σ it needs).
# One `powersgd compare --dp-budgets --seeds` per sweep: every reducer at ε = 1, 3, 8 and without
# DP, for every seed (its accuracy-vs-epsilon.{md,csv,svg} and report.html hold the table and chart).
# The same without error feedback (PowerSGD and Top-K, with SGD for reference) in $out/no-feedback;
# clipping without noise for the first seed in $out/clip-only; then the per-step split of the error
# into noise and compression (`powersgd dp-error`) at ε = 1 and 8 for the first seed (ε = 1 only
# without error feedback).
# Usage: scripts/privacy-study.sh [output-dir] [epochs] [seeds...]
set -euo pipefail
# One BLAS thread per worker: OpenBLAS's multi-threaded sgemm rounds differently, so the numbers
# would depend on the core count (docs/performance.md, determinism).
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
out=${1:-privacy-study}
epochs=${2:-1}
shift $(( $# > 2 ? 2 : $# )) || true
seeds=${*:-1}
bin=${POWERSGD:-.build/release/powersgd}
reducers="sgd,powersgd:rank=1,powersgd:rank=2,powersgd:rank=4,topk:ratio=0.1,topk:ratio=0.01,qsgd:levels=16"
no_feedback="sgd,powersgd:rank=1,error-feedback=off,powersgd:rank=4,error-feedback=off,topk:ratio=0.1,feedback=none,topk:ratio=0.01,feedback=none"
common=(--model mlp --dataset fashion-mnist --workers 2 --batch-size 128 --epochs "$epochs" --learning-rate 0.1 --momentum 0.9
        --weight-decay 0 --schedule constant)
dp="clip=1.0,delta=1e-5,placement=distributed"
first=${seeds%% *}
mkdir -p "$out/no-feedback" "$out/clip-only"
"$bin" compare "${common[@]}" --seeds "${seeds// /,}" --reducers "$reducers" --dp "epsilon=1,$dp" --dp-budgets 1,3,8,none \
  --output-dir "$out" > "$out/compare.txt"
"$bin" compare "${common[@]}" --seeds "${seeds// /,}" --reducers "$no_feedback" --dp "epsilon=1,$dp" --dp-budgets 1,8,none \
  --output-dir "$out/no-feedback" > "$out/no-feedback/compare.txt"
"$bin" compare "${common[@]}" --seed "$first" --reducers sgd,powersgd:rank=1,powersgd:rank=2 \
  --dp "noise=0,$dp" --output-dir "$out/clip-only" > "$out/clip-only.txt"
for eps in 1 8; do
  "$bin" dp-error "${common[@]}" --seed "$first" --reducers "$reducers" \
    --dp "epsilon=$eps,$dp" --json "$out/split-eps$eps.json" > "$out/split-eps$eps.md"
done
"$bin" dp-error "${common[@]}" --seed "$first" --reducers "$no_feedback" \
  --dp "epsilon=1,$dp" --json "$out/no-feedback/split-eps1.json" > "$out/no-feedback/split-eps1.md"
