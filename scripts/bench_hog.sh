#!/usr/bin/env bash
# Throughput beside CPU hogs (issue #27), alone, with one busy-looping process, and with one
# per core — for the default thread count (the cores that other processes leave free,
# re-measured every second), YT8M_THREADS=1, and YT8M_THREADS=<all cores> (the old default).
# Side by side in one run, so ratios compare on a noisy machine.
#   scripts/bench_hog.sh [predict] [path/to/yt8m] [python with onnxruntime]
#     `yt8m bench predict` on the demo model at batch 64, and onnxruntime on the same exported
#     graph and batches in the same runs.
#   scripts/bench_hog.sh serve [path/to/yt8m] [bundle]
#     `yt8m bench serve` on a frame-level bundle (default demo/bundle: run `yt8m demo` first)
#     at 1 and 8 clients, 4 s per level: videos/s and p99 ms.
#   scripts/bench_hog.sh train [path/to/yt8m]
#     `yt8m bench train` on the demo model at batch 16: samples/s.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=predict
case "${1:-}" in predict|serve|train) MODE=$1; shift ;; esac
BIN="${1:-$(./dev build)}"
cores=$(nproc)
HOGS=()
hogs() { for _ in $(seq "$1"); do (while :; do :; done) & HOGS+=($!); done; }
stop() { [ ${#HOGS[@]} -eq 0 ] || { kill "${HOGS[@]}" 2>/dev/null; wait "${HOGS[@]}" 2>/dev/null || true; }; HOGS=(); }
trap stop EXIT
case "$MODE" in
  predict)
    PY="${2:-${YT8M_VENV:-$HOME/.cache/yt8m/venv}/bin/python}"
    echo "| threads | hogs | yt8m videos/s | onnxruntime videos/s |"
    echo "|---|---|---|---|"
    # "yt8m videos/s onnxruntime videos/s" of the batch-64 row
    rate() {
      "$@" "$BIN" bench predict -c configs/demo_small.yaml --batch-size 64 --steps 15 --python "$PY" 2>/dev/null \
        | awk -F'|' '/^\| 64 \|/ {gsub(/ /, "", $4); gsub(/ /, "", $7); print $4, $7; exit}'
    } ;;
  serve)
    BUNDLE="${2:-demo/bundle}"
    echo "| threads | hogs | 1 client videos/s | p99 ms | 8 clients videos/s | p99 ms |"
    echo "|---|---|---|---|---|---|"
    # "videos/s p99 videos/s p99" of the 1- and 8-client rows
    rate() {
      "$@" "$BIN" bench serve --model "$BUNDLE" --concurrency 1,8 --seconds 4 2>/dev/null \
        | awk -F'|' '/^\| yt8m serve \| (1|8) \|/ {gsub(/ /, "", $8); gsub(/ /, "", $12); printf "%s %s ", $8, $12} END {print ""}'
    } ;;
  train)
    echo "| threads | hogs | yt8m samples/s |"
    echo "|---|---|---|"
    # samples/s of the batch-16 row
    rate() {
      "$@" "$BIN" bench train -c configs/demo_small.yaml --batch-size 16 --steps 20 --warmup 2 2>/dev/null \
        | awk -F'|' '/^\| 16 \| fp32/ {gsub(/ /, "", $5); print $5; exit}'
    } ;;
esac
for setting in "default" "YT8M_THREADS=1" "YT8M_THREADS=$cores"; do
  for n in 0 1 "$cores"; do
    envs=(env); [ "$setting" != default ] && envs+=("$setting")
    hogs "$n"
    cols=$(rate "${envs[@]}"); cols=$(echo $cols)
    stop
    echo "| $setting | $n | ${cols// / | } |"
  done
done
