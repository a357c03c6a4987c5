#!/usr/bin/env bash
# The model zoo's speed table (docs/models.md): every frame-level head at full size, training
# (batch 64) and inference (batch 1 and 64), fp32 and bf16 on the same weights and batches,
# one head after the other in one run. Usage: [CONFIGS="a b"] scripts/bench_models.sh [path/to/yt8m]
set -euo pipefail
B="${1:-$HOME/.cache/yt8m/target/release/yt8m}"
cd "$(dirname "$0")/.."
for c in ${CONFIGS:-attention_lstm_youtube8m frame_logistic_youtube8m lstm_youtube8m dbof_youtube8m nextvlad_youtube8m attention_cluster_youtube8m}; do
  echo "## $c"
  "$B" bench train -c "configs/$c.yaml" --batch-size 64 --steps 3 --warmup 1 \
    --precision fp32,bf16 --log warn 2>&1 | grep -E "^training throughput|^\| 64 \| (fp32|bf16)"
  "$B" bench predict -c "configs/$c.yaml" --batch-size 1,64 --steps 3 \
    --precision fp32,bf16 --log warn 2>&1 | grep -E "^inference throughput|^\| (1|64) \| (fp32|bf16)"
done
