#!/usr/bin/env bash
# Study 5 (docs/studies.md): W workers at a fixed global batch against a fixed local batch.
# Measures each reducer's compute and compression time per step at the local batch this W gives
# (256/W; 32 for the fixed local batch) with `powersgd simulate`, and projects the collectives of
# W ranks on 1 and 10 Gbit/s; writes one CSV per regime into OUT (default study-fixed-global-batch).
# Full mode: about 2 minutes on 2 shared cores. Short mode (SHORT=1): W = 1, 4, 16 and 1 timed step.
set -euo pipefail
out=${1:-study-fixed-global-batch}
bin=${POWERSGD:-.build/release/powersgd}
reducers=${REDUCERS:-sgd,powersgd:rank=2,qsgd,signum}
global=${GLOBAL_BATCH:-256}
local_batch=${LOCAL_BATCH:-32}
workers=${WORKERS:-"1 2 4 8 16 32 64"}
steps=3
if [ "${SHORT:-0}" = 1 ]; then workers="1 4 16"; steps=1; fi
export OPENBLAS_NUM_THREADS=1
mkdir -p "$out"
common=(--model resnet8 --dataset fashion-mnist --reducers "$reducers" --profile-steps "$steps" --networks "1gbit;10gbit")
header=reducer,network,workers,local_seconds,communication_seconds,step_seconds,speedup,versus_baseline
echo "local_batch,$header" > "$out/fixed-global-batch.csv"
for w in $workers; do
    b=$((global / w))
    "$bin" simulate "${common[@]}" --batch-size "$b" --worker-counts "$w" --csv "$out/w$w.csv" > "$out/w$w.txt"
    tail -n +2 "$out/w$w.csv" | sed "s/^/$b,/" >> "$out/fixed-global-batch.csv"
    rm "$out/w$w.csv"
done
"$bin" simulate "${common[@]}" --batch-size "$local_batch" --worker-counts "$(echo $workers | tr ' ' ',')" \
    --csv "$out/fixed-local.csv" > "$out/fixed-local-batch.txt"
{ echo "local_batch,$header"; tail -n +2 "$out/fixed-local.csv" | sed "s/^/$local_batch,/"; } > "$out/fixed-local-batch.csv"
rm "$out/fixed-local.csv"
echo "wrote $out/fixed-global-batch.csv and $out/fixed-local-batch.csv"
