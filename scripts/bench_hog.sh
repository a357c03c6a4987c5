#!/usr/bin/env bash
# Throughput beside CPU hogs (issue #27): `yt8m bench predict` on the demo model at batch 64
# (and onnxruntime on the same exported graph and batches, in the same runs), alone, with one
# busy-looping process, and with one per core — for the default thread count (the cores that
# other processes leave free, re-measured every second), YT8M_THREADS=1, and YT8M_THREADS=<all
# cores> (the old default). Side by side in one run, so ratios compare on a noisy machine.
#   scripts/bench_hog.sh [path/to/yt8m] [python with onnxruntime]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-$(./dev build)}"
PY="${2:-${YT8M_VENV:-$HOME/.cache/yt8m/venv}/bin/python}"
cores=$(nproc)
HOGS=()
hogs() { for _ in $(seq "$1"); do (while :; do :; done) & HOGS+=($!); done; }
stop() { [ ${#HOGS[@]} -eq 0 ] || { kill "${HOGS[@]}" 2>/dev/null; wait "${HOGS[@]}" 2>/dev/null || true; }; HOGS=(); }
trap stop EXIT
# "yt8m videos/s onnxruntime videos/s" of the batch-64 row
rate() {
  "$@" "$BIN" bench predict -c configs/demo_small.yaml --batch-size 64 --steps 15 --python "$PY" 2>/dev/null \
    | awk -F'|' '/^\| 64 \|/ {gsub(/ /, "", $4); gsub(/ /, "", $7); print $4, $7; exit}'
}
echo "| threads | hogs | yt8m videos/s | onnxruntime videos/s |"
echo "|---|---|---|---|"
for setting in "default" "YT8M_THREADS=1" "YT8M_THREADS=$cores"; do
  for n in 0 1 "$cores"; do
    envs=(env); [ "$setting" != default ] && envs+=("$setting")
    hogs "$n"
    read -r y o < <(rate "${envs[@]}")
    stop
    echo "| $setting | $n | $y | $o |"
  done
done
