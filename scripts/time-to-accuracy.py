#!/usr/bin/env python3
# Time and bytes to a target from `train --log-file` logs: one Markdown row per log, read from its
# evaluation records (elapsedSeconds is the sum of the measured step times before it, evaluation excluded;
# cumulativeBytesSent one worker's bytes on the wire). A run that never reaches the target says so,
# with its best value. Standard library only.
# Usage: scripts/time-to-accuracy.py TARGET LOG.jsonl... (TARGET an accuracy; for perplexity, lower is better)
import json, os, sys

if len(sys.argv) < 3: sys.exit("usage: time-to-accuracy.py TARGET LOG.jsonl...")
try: target = float(sys.argv[1])
except ValueError: sys.exit(f"TARGET must be a number, got {sys.argv[1]!r}")
print(f"| run | last step | final | best | time to {target:g} | bytes / worker to {target:g} |")
print("| --- | --- | --- | --- | --- | --- |")
for path in sys.argv[2:]:
    try: records = [json.loads(line) for line in open(path) if line.strip()]
    except (OSError, json.JSONDecodeError) as error: sys.exit(f"{path}: not a readable train --log-file log ({error})")
    evaluations = [r for r in records if r.get("record") == "evaluation"]
    if not evaluations: sys.exit(f"{path}: no evaluation records (train with --evaluate-every)")
    lower_is_better = evaluations[0]["metric"] == "perplexity"
    reached = lambda v: v <= target if lower_is_better else v >= target
    best = (min if lower_is_better else max)(e["value"] for e in evaluations)
    hit = next((e for e in evaluations if reached(e["value"])), None)
    name = os.path.basename(path).removesuffix(".jsonl")
    when = f"{hit['elapsedSeconds']:.1f} s (step {hit['step']})" if hit else "not reached"
    sent = f"{hit['cumulativeBytesSent'] / 1e6:.2f} MB" if hit else "–"
    print(f"| {name} | {evaluations[-1]['step']} | {evaluations[-1]['value']:.4f} | {best:.4f} | {when} | {sent} |")
