#!/usr/bin/env python3
# Accuracy against ε from the output of scripts/privacy-study.sh: a Markdown table (mean and
# standard deviation over the seeds, and the gap to SGD at the same budget) and an SVG chart
# (mean per reducer, bars from the lowest to the highest seed). Standard library only.
# Usage: scripts/privacy-chart.py STUDY-DIR OUT.svg > table.md
import csv, glob, math, os, re, statistics, sys

study, svg_path = sys.argv[1], sys.argv[2]
budgets = {}  # budget label -> reducer -> [accuracy per seed]
order = []
for path in sorted(glob.glob(os.path.join(study, "*-seed*", "comparison.csv"))):
    label = re.sub(r"-seed\d+$", "", os.path.basename(os.path.dirname(path)))
    with open(path) as f:
        for row in csv.DictReader(f):
            budgets.setdefault(label, {}).setdefault(row["reducer"], []).append(float(row["final_value"]))
            if row["reducer"] not in order: order.append(row["reducer"])
columns = sorted((b for b in budgets if b.startswith("eps")), key=lambda b: float(b[3:])) + (["none"] if "none" in budgets else [])
if not columns: sys.exit(f"no */comparison.csv under {study}")
def title(b): return "no DP" if b == "none" else f"ε = {b[3:]}"
seeds = max(len(v) for b in budgets.values() for v in b.values())
print(f"| reducer | " + " | ".join(title(b) for b in columns) + " |")
print("| --- |" + " --- |" * len(columns))
for r in order:
    cells = []
    for b in columns:
        values = budgets[b].get(r, [])
        if not values: cells.append("–"); continue
        mean = statistics.mean(values)
        spread = f" ± {statistics.stdev(values) * 100:.2f}" if len(values) > 1 else ""
        gap = ""
        if r != "sgd" and budgets[b].get("sgd"):
            gap = f" ({(mean - statistics.mean(budgets[b]['sgd'])) * 100:+.2f})"
        cells.append(f"{mean * 100:.2f}{spread}{gap}")
    print(f"| {r} | " + " | ".join(cells) + " |")
print(f"\n(test accuracy in %, mean ± standard deviation over {seeds} seeds; in brackets: minus SGD's mean at the same budget)")

# The chart: x = budget (ε = 1, 3, 8 on a log scale, "no DP" one step right), y = accuracy.
W, H, L, R, T, B = 900, 420, 60, 370, 20, 50
xs = {b: (math.log(float(b[3:])) if b != "none" else None) for b in columns}
finite = [v for v in xs.values() if v is not None]
lo, hi = min(finite), max(finite)
step = (hi - lo) / max(1, len(finite) - 1) if hi > lo else 1
if "none" in xs: xs["none"] = hi + step
hi = max(v for v in xs.values())
values = [v for b in budgets.values() for vs in b.values() for v in vs]
ylo, yhi = math.floor(min(values) * 50) / 50, math.ceil(max(values) * 50) / 50
def px(v): return L + (v - lo) / (hi - lo or 1) * (W - L - R)
def py(v): return T + (yhi - v) / (yhi - ylo or 1) * (H - T - B)
palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/><line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>']
for b in columns:
    out.append(f'<text x="{px(xs[b]):.1f}" y="{H-B+18}" text-anchor="middle">{title(b)}</text>')
y = ylo
while y <= yhi + 1e-9:
    out.append(f'<line x1="{L-4}" y1="{py(y):.1f}" x2="{W-R}" y2="{py(y):.1f}" stroke="#ddd"/>'
               f'<text x="{L-8}" y="{py(y)+4:.1f}" text-anchor="end">{y*100:.0f}%</text>')
    y += 0.02
out.append(f'<text x="{(L+W-R)/2:.0f}" y="{H-10}" text-anchor="middle">privacy budget (δ = 1e-5)</text>')
out.append(f'<text x="15" y="{(T+H-B)/2:.0f}" transform="rotate(-90 15 {(T+H-B)/2:.0f})" text-anchor="middle">test accuracy</text>')
for i, r in enumerate(order):
    color = palette[i % len(palette)]
    points = []
    for b in columns:
        vs = budgets[b].get(r)
        if not vs: continue
        x = px(xs[b]) + (i - len(order) / 2) * 3  # a small offset so the bars do not overlap
        points.append((x, py(statistics.mean(vs))))
        out.append(f'<line x1="{x:.1f}" y1="{py(min(vs)):.1f}" x2="{x:.1f}" y2="{py(max(vs)):.1f}" stroke="{color}"/>')
        out.append(f'<circle cx="{x:.1f}" cy="{py(statistics.mean(vs)):.1f}" r="3" fill="{color}"/>')
    out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
    out.append(f'<line x1="{W-R+15}" y1="{T+10+i*18}" x2="{W-R+35}" y2="{T+10+i*18}" stroke="{color}" stroke-width="2"/>'
               f'<text x="{W-R+40}" y="{T+14+i*18}">{r}</text>')
out.append("</svg>")
with open(svg_path, "w") as f: f.write("\n".join(out) + "\n")
