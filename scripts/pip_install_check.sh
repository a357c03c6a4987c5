#!/usr/bin/env bash
# Issue #29's goal, timed as a user meets it: a fresh venv, `pip install` of the wheel with
# torch fetched from the package index (no pip cache), then `yt8m demo` from an empty
# directory outside the repository. Needs the network; writes only under DIR (default a new
# temporary directory), which it leaves for inspection.
#   scripts/pip_install_check.sh [DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
whl="$("$root/dev" wheel | tail -1)"
dir="${1:-$(mktemp -d /tmp/yt8m-pip-XXXXXX)}"
mkdir -p "$dir"
cd "$dir"
rm -rf venv demo-dir
now() { date +%s.%N; }
t0=$(now)
python3 -m venv venv
venv/bin/pip install --no-cache-dir -q "$whl" > pip.log 2>&1 || { tail -20 pip.log; exit 1; }
t1=$(now)
mkdir demo-dir && cd demo-dir
v0=$(now); ../venv/bin/yt8m --version; v1=$(now)
../venv/bin/yt8m demo > ../demo.log 2>&1 || { tail -20 ../demo.log; exit 1; }
t2=$(now)
../venv/bin/yt8m info | head -2
python3 - "$t0" "$t1" "$t2" "$v0" "$v1" <<'PY'
import sys
t0, t1, t2, v0, v1 = map(float, sys.argv[1:])
print(f"pip install (venv + wheel + torch from the index): {t1 - t0:.0f} s")
print(f"yt8m --version: {(v1 - v0) * 1000:.0f} ms (a shell's fork + exec included)")
print(f"yt8m demo: {t2 - t1:.0f} s")
print(f"install + demo: {t2 - t0:.0f} s (issue #29's goal: under 180 s)")
PY
du -sh "$dir/venv" | sed 's/^/venv size: /'
