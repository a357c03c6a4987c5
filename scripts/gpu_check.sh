#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU (one short call: GPU time is scarce).
#   1. finds libtorch: this machine's own torch 2.11 install (LD_LIBRARY_PATH wins over the
#      binary's embedded rpath), else builds with ./dev;
#   2. runs the Paddle parity tests on the GPU (YT8M_TEST_DEVICE=cuda, f64 and f32);
#   3. runs `yt8m bench train` at batch 128 (full model) and `bench predict`, on cuda;
#   4. prints a short table (also written to $OUT/gpu_check.txt when OUT is set).
# Binaries built elsewhere can be carried in: BIN=path/to/yt8m PARITY=path/to/parity-test-binary.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}/gpu_check.txt"
log() { echo "$@" | tee -a "$out"; }
: > "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$out"
TORCH_LIB=$(python3 -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))" 2>/dev/null || true)
if [ -n "$TORCH_LIB" ]; then
  export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  log "libtorch: $TORCH_LIB ($(python3 -c 'import torch; print(torch.__version__)'))"
fi
BIN="${BIN:-}"
PARITY="${PARITY:-}"
if [ -z "$BIN" ]; then
  BIN=$(./dev build) || { log "build failed"; exit 1; }
fi
if [ -z "$PARITY" ]; then
  PARITY=$(./dev cargo test --release --no-run --test parity 2>&1 | grep -o '/[^ ]*/deps/parity-[0-9a-f]*' | tail -1)
fi
"$BIN" --version | tee -a "$out"
if [ -n "$PARITY" ]; then
  log "## parity on cuda"
  YT8M_TEST_DEVICE=cuda "$PARITY" --test-threads 1 --nocapture 2>&1 | grep -E "^test |out/logits|out/loss|final loss|test result" | tee -a "$out"
fi
log "## bench train (full model, batch 128, cuda)"
"$BIN" bench train --device cuda --batch-size 128 --steps 4 --warmup 1 2>&1 | tee -a "$out"
log "## bench predict (full model, cuda)"
"$BIN" bench predict --device cuda --batch-size 1,64 --steps 5 2>&1 | tee -a "$out"
