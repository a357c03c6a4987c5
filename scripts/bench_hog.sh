#!/usr/bin/env bash
# Throughput beside a CPU hog (issue #27): `yt8m bench predict` on the demo model at batch 64,
# alone and with one busy-looping process per core beside it, under libtorch's default thread
# count and OpenMP wait policy, with YT8M_THREADS=1, and with OMP_WAIT_POLICY=passive — side by
# side in one run, so the ratios are comparable on a noisy machine.
#   scripts/bench_hog.sh [path/to/yt8m]
set -euo pipefail
BIN="${1:-$(./dev build)}"
cores=$(nproc)
rate() { # prints videos/s of the first table row
  "$@" "$BIN" bench predict -c configs/demo_small.yaml --batch-size 64 --steps 15 2>/dev/null \
    | awk -F'|' '/^\| 64 \|/ {gsub(/ /, "", $4); print $4; exit}'
}
hog_start() { HOGS=(); for _ in $(seq "$cores"); do (while :; do :; done) & HOGS+=($!); done; }
hog_stop() { kill "${HOGS[@]}" 2>/dev/null; wait "${HOGS[@]}" 2>/dev/null || true; }
trap 'hog_stop 2>/dev/null || true' EXIT
echo "| setting | alone videos/s | with $cores hog(s) videos/s | kept |"
echo "|---|---|---|---|"
for setting in "default" "YT8M_THREADS=1" "OMP_WAIT_POLICY=passive"; do
  envs=(env); [ "$setting" != default ] && envs+=("$setting")
  a=$(rate "${envs[@]}")
  hog_start; h=$(rate "${envs[@]}"); hog_stop
  echo "| $setting | $a | $h | $(awk -v a="$a" -v h="$h" 'BEGIN{printf "%.2f", h/a}') |"
done
