#!/usr/bin/env bash
# Measured scaling on the emulated cluster: W = 1..4 hosts at 60 Mbit/s, ResNet-8 on the CIFAR-10
# subset, 20 steps, SGD and PowerSGD rank 2; one JSON line per run (mean step of steps 1..19).
set -euo pipefail
B=${POWERSGD:-.build/release/powersgd}; out=${1:-cluster-scaling}; mkdir -p "$out"
for hosts in 1 2 3 4; do
  for reducer in sgd powersgd:rank=2; do
    name="h$hosts-${reducer//[:=,]/_}"; load=$(cut -d' ' -f1 /proc/loadavg)
    "$B" cluster --hosts "$hosts" --link 60mbit --json "$out/$name.cluster.json" --time-limit 600 -- train --model resnet8 \
      --dataset cifar10 --steps 20 --evaluate-every 1000 --reducer "$reducer" --log-file "$out/$name.jsonl" > "$out/$name.out" 2> "$out/$name.err"
    python3 - "$out/$name.jsonl" "$hosts" "$reducer" "$load" <<'PY'
import json, sys
log, hosts, reducer, load = sys.argv[1:]
steps = [r for r in map(json.loads, open(log)) if r.get("record") == "step"][1:]
mean = lambda xs: sum(xs) / len(xs)
wall = mean([s["computeSeconds"] + s["compressionSeconds"] + s["optimizerSeconds"] + s["communicationSeconds"] for s in steps])
print(json.dumps({"hosts": int(hosts), "reducer": reducer, "measured_ms": round(1e3 * wall, 1),
  "compute_ms": round(1e3 * mean([s["computeSeconds"] for s in steps]), 1),
  "communication_ms": round(1e3 * mean([s["communicationSeconds"] for s in steps]), 1),
  "projected_ms": round(1e3 * mean([s["projectedSeconds"] for s in steps]), 1),
  "examples_per_s": round(32 * int(hosts) / wall, 1), "load_before": float(load)}))
PY
  done
done
