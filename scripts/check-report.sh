#!/usr/bin/env bash
# Renders an HTML report in headless Chromium and checks the picture is not blank.
# Usage: scripts/check-report.sh REPORT.html OUT.png
# Installs the Debian package `chromium` with apt-get when it is missing (needs root).
set -euo pipefail
if [ $# -ne 2 ]; then echo "usage: $0 REPORT.html OUT.png" >&2; exit 2; fi
report=$1 out=$2
[ -r "$report" ] || { echo "check-report: cannot read $report" >&2; exit 2; }

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "check-report: installing chromium (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  browser=$(command -v chromium)
fi

absolute=$(cd "$(dirname "$report")" && pwd)/$(basename "$report")
rm -f "$out"
# Tall window: the report's charts stack vertically. No network is needed (the report is self-contained).
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --disable-dev-shm-usage --window-size=1200,3200 --screenshot="$out" "file://$absolute" >/dev/null 2>&1 || true
[ -s "$out" ] || { echo "check-report: chromium wrote no screenshot to $out" >&2; exit 1; }

# Non-trivial: a blank page of this size compresses to a few kB; charts, text and lines do not.
bytes=$(stat -c %s "$out")
if [ "$bytes" -lt 30000 ]; then
  echo "check-report: $out is only $bytes bytes: the page looks blank" >&2; exit 1
fi
# When ImageMagick is present, also require many distinct colours (lines of several series, anti-aliased text).
if command -v identify >/dev/null; then
  colours=$(identify -format %k "$out")
  if [ "$colours" -lt 16 ]; then
    echo "check-report: $out has only $colours colours: the page looks blank" >&2; exit 1
  fi
  echo "check-report: $out ok ($bytes bytes, $colours colours)"
else
  echo "check-report: $out ok ($bytes bytes)"
fi
