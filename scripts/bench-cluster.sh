#!/usr/bin/env bash
# The emulated-cluster benchmark of docs/cluster.md: for each host count and link rate, calibrate
# the network (powersgd cluster ... -- bench network), then train each reducer for a few steps on
# that cluster with the calibrated network as projection, and print one JSON object per run:
# measured against projected mean step time, communication share, skew, kernel against ledger bytes.
# Needs root (powersgd cluster does), a release build, python3 (to summarise the logs).
#   scripts/bench-cluster.sh [OUTDIR]     environment: HOSTS="2 4" RATES="20mbit 100mbit 1gbit"
#     REDUCERS="sgd powersgd:rank=2 qsgd topk signum" MODEL=resnet8 STEPS=12 POWERSGD=.build/release/powersgd
set -euo pipefail
out=${1:-cluster-bench}
mkdir -p "$out"
powersgd=${POWERSGD:-.build/release/powersgd}
hosts_list=${HOSTS:-2 4}
rates=${RATES:-20mbit 100mbit 1gbit}
reducers=${REDUCERS:-sgd powersgd:rank=2 qsgd topk signum}
model=${MODEL:-resnet8}
steps=${STEPS:-12}
for hosts in $hosts_list; do
  for rate in $rates; do
    tag="h${hosts}-${rate}"
    net="$out/network-$tag.json"
    "$powersgd" cluster --hosts "$hosts" --link "$rate" --time-limit 600 -- bench network --output "$net" \
        --max-seconds 1 > "$out/bench-network-$tag.json.txt" 2> "$out/bench-network-$tag.err" \
      || { echo "bench network failed for $tag: see $out/bench-network-$tag.err" >&2; exit 1; }
    for reducer in $reducers; do
      name="$tag-${reducer//[:=,]/_}"
      load=$(cut -d' ' -f1 /proc/loadavg)
      "$powersgd" cluster --hosts "$hosts" --link "$rate" --network "$net" --json "$out/$name.cluster.json" --time-limit 600 \
          -- train --model "$model" --steps "$steps" --reducer "$reducer" --log-file "$out/$name.jsonl" \
          > "$out/$name.out" 2> "$out/$name.err" || { echo "run $name failed: see $out/$name.err" >&2; exit 1; }
      python3 - "$out/$name.jsonl" "$out/$name.cluster.json" "$net" "$hosts" "$rate" "$reducer" "$load" <<'PY'
import json, sys
log, cluster, net, hosts, rate, reducer, load = sys.argv[1:]
steps = [r for r in map(json.loads, open(log)) if r.get("record") == "step"][1:]  # step 0 warms up connections
c = json.load(open(cluster)); n = json.load(open(net))
mean = lambda xs: sum(xs) / len(xs)
measured = mean([s["computeSeconds"] + s["compressionSeconds"] + s["optimizerSeconds"] + s["communicationSeconds"] for s in steps])
projected = mean([s["projectedSeconds"] for s in steps])
comm = mean([s["communicationSeconds"] for s in steps])
skew = mean([s.get("skewSeconds") or 0 for s in steps])
ratios = [h["sentRatio"] for h in c["perHost"] if h.get("sentRatio")] + [h["receivedRatio"] for h in c["perHost"] if h.get("receivedRatio")]
print(json.dumps({"hosts": int(hosts), "link": rate, "reducer": reducer, "steps_averaged": len(steps),
    "measured_ms": round(1e3 * measured, 1), "projected_ms": round(1e3 * projected, 1),
    "measured_over_projected": round(measured / projected, 3), "communication_share": round(comm / measured, 3),
    "skew_ms": round(1e3 * skew, 1), "measured_minus_skew_ms": round(1e3 * (measured - skew), 1),
    "measured_minus_skew_over_projected": round((measured - skew) / projected, 3),
    "payload_bytes_per_step": steps[0]["payloadBytes"], "kernel_over_ledger_max": round(max(ratios), 4) if ratios else None,
    "kernel_minus_ledger_max_bytes": max([h["kernelBytesSent"] - h["ledgerBytesSent"] for h in c["perHost"] if h.get("ledgerBytesSent")] or [0]),
    "calibrated_latency_us": round(1e6 * n["latency"], 1), "calibrated_bandwidth_mbit": round(8 * n["bandwidth"] / 1e6, 3),
    "load_average_1m_before": float(load)}))
PY
    done
  done
done
