#!/bin/sh
# The gradient-inversion measurements of docs/privacy.md: every attack on every reducer at batch
# sizes 1, 4 and 16, Gaussian noise at two levels, and the attack's cost against the MLP's width.
# Usage: scripts/gradient-inversion.sh [POWERSGD] [OUTPUT_DIR]
set -eu
POWERSGD=${1:-.build/release/powersgd}
OUT=${2:-docs/results/inversion}
mkdir -p "$OUT"
REDUCERS="sgd,fp16,powersgd:rank=1,powersgd:rank=2,powersgd:rank=4,lqsgd,topk:ratio=0.1,topk:ratio=0.01,qsgd,signsgd,signum"
for attack in analytic inverting; do
  for b in 1 4 16; do
    images=8; [ "$b" = 16 ] && images=16
    "$POWERSGD" attack --attack $attack --batch-size $b --images $images --reducers "$REDUCERS" \
      --json "$OUT/$attack-b$b.json" --report "$OUT/$attack-b$b" > "$OUT/$attack-b$b.txt"
    for sigma in 0.0001 0.001; do
      "$POWERSGD" attack --attack $attack --batch-size $b --images $images --reducer sgd --noise-multiplier $sigma --clip-norm 1 \
        --json "$OUT/$attack-b$b-noise$sigma.json" > "$OUT/$attack-b$b-noise$sigma.txt"
    done
  done
done
"$POWERSGD" attack --attack dlg --batch-size 1 --images 8 --reducers "$REDUCERS" --json "$OUT/dlg-b1.json" --report "$OUT/dlg-b1" > "$OUT/dlg-b1.txt"
for width in 64 256 1024; do
  "$POWERSGD" attack --attack inverting --batch-size 1 --images 4 --width $width --json "$OUT/cost-width$width.json" > "$OUT/cost-width$width.txt"
done
# ReLU LeNet: Inverting Gradients does not converge within the budget, on SGD either (docs/privacy.md).
"$POWERSGD" attack --model lenet --attack inverting --batch-size 1 --images 4 --iterations 2000 \
  --reducers sgd,fp16,powersgd:rank=1,powersgd:rank=2,topk:ratio=0.1,topk:ratio=0.01,qsgd,signsgd \
  --json "$OUT/lenet-inverting-b1.json" --report "$OUT/lenet-inverting-b1" > "$OUT/lenet-inverting-b1.txt"
# The DLG paper's sigmoid LeNet with DLG and L-BFGS (budget in objective evaluations).
for b in 1 4; do
  if [ "$b" = 1 ]; then budget="--iterations 1000 --restarts 2"; else budget="--iterations 2000"; fi
  "$POWERSGD" attack --model lenet-sigmoid --attack dlg --optimizer lbfgs $budget --batch-size $b --images 8 --reducers "$REDUCERS" \
    --json "$OUT/lenet-sigmoid-dlg-b$b.json" --report "$OUT/lenet-sigmoid-dlg-b$b" > "$OUT/lenet-sigmoid-dlg-b$b.txt"
  for sigma in 0.0001 0.001; do
    "$POWERSGD" attack --model lenet-sigmoid --attack dlg --optimizer lbfgs $budget --batch-size $b --images 8 --reducer sgd \
      --noise-multiplier $sigma --clip-norm 1 --json "$OUT/lenet-sigmoid-dlg-b$b-noise$sigma.json" > "$OUT/lenet-sigmoid-dlg-b$b-noise$sigma.txt"
  done
done
# PowerSGD matched inside the subspace its message determines (the worker view; one worker).
P124=powersgd:rank=1,powersgd:rank=2,powersgd:rank=4
"$POWERSGD" attack --model lenet-sigmoid --attack dlg --optimizer lbfgs --iterations 1000 --restarts 2 --images 8 --observe worker \
  --reducers $P124 > "$OUT/lenet-sigmoid-dlg-b1-powersgd-projected.txt"
"$POWERSGD" attack --model lenet-sigmoid --attack dlg --optimizer lbfgs --iterations 2000 --batch-size 4 --images 8 --observe worker \
  --reducers $P124 > "$OUT/lenet-sigmoid-dlg-b4-powersgd-projected.txt"
"$POWERSGD" attack --attack inverting --batch-size 4 --images 8 --observe worker --reducers $P124 > "$OUT/inverting-b4-powersgd-projected.txt"
# Four workers of one image each: the decoded aggregate against worker 0's raw factors.
for observe in aggregate worker; do
  for attack in analytic inverting; do
    "$POWERSGD" attack --workers 4 --observe $observe --attack $attack --images 8 --reducers $P124 > "$OUT/workers4-$observe-$attack.txt"
  done
done
# A batch-16 attack started from the analytic candidates.
"$POWERSGD" attack --attack inverting --batch-size 16 --images 16 --start analytic --reducers sgd,powersgd:rank=4,topk:ratio=0.1,qsgd \
  --report "$OUT/inverting-b16-from-analytic" > "$OUT/inverting-b16-from-analytic.txt"
for observe in aggregate worker; do
  "$POWERSGD" attack --model lenet-sigmoid --attack dlg --optimizer lbfgs --iterations 1000 --restarts 2 --workers 4 --observe $observe \
    --images 8 --reducers $P124 > "$OUT/lenet-sigmoid-workers4-$observe-dlg.txt"
done
