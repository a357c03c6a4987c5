#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU (one short call: GPU time is scarce).
#   1. libtorch: this machine's own torch 2.11 install (LD_LIBRARY_PATH wins over the
#      binary's embedded rpath: tests/runtime.rs checks that), NCCL from the same install;
#   2. binaries: .gpu/ from scripts/gpu_pack.sh when carried (no Rust or MPI needed here),
#      else packed here with the same script;
#   3. `yt8m info` (is the CUDA backend loaded, GPUs, cuDNN, NCCL version);
#   4. the Paddle parity tests on the GPU (YT8M_TEST_DEVICE=cuda, f64 and f32), and the legacy
#      Paddle zoo's (NeXtVLAD, AttentionCluster, f32);
#   5. the NCCL path on one GPU: --distributed nccl must train as plain training (tests/nccl.rs);
#   6. `yt8m bench train` at batch 128 (full model) and `bench predict`, on cuda, fp32 and bf16
#      side by side (bf16 is the expected fast path on GPUs: issue #15);
#   7. `yt8m bench serve` of the demo bundle on cuda (issue #14: served vs offline throughput,
#      with 16 cores for the load generator).
# Everything is appended to $OUT/gpu_check.txt (or /tmp/gpu_check.txt).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}/gpu_check.txt"
raw=/tmp/gpu_check.raw
: > "$out"; : > "$raw"
log() { echo "$@" | tee -a "$out"; }
# libtorch's per-call cuDNN warning about non-contiguous RNN weights would drown the report
# (17,037 lines in the first run): keep it in the raw log, count it at the end (expect 0).
step() { "$@" 2>&1 | tee -a "$raw" | grep -v "RNN module weights are not part" | tee -a "$out"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$out"
TORCH_LIB=$(python3 -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))" 2>/dev/null || true)
if [ -n "$TORCH_LIB" ]; then
  # cudarc opens NCCL as libnccl.so; wheels ship libnccl.so.2 only.
  NCCL_LIB=$(cd "$TORCH_LIB/../../nvidia/nccl/lib" 2>/dev/null && pwd || true)
  mkdir -p /tmp/yt8m-nccl
  [ -n "$NCCL_LIB" ] && ln -sf "$NCCL_LIB/libnccl.so.2" /tmp/yt8m-nccl/libnccl.so
  export LD_LIBRARY_PATH="$TORCH_LIB:/tmp/yt8m-nccl${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  log "libtorch: $TORCH_LIB ($(python3 -c 'import torch; print(torch.__version__)'))"
fi
# Not carried: build and pack here (needs cargo and ../shared on this machine).
[ -x .gpu/bin/yt8m ] || scripts/gpu_pack.sh || { log "no .gpu/ carried and packing here failed: run scripts/gpu_pack.sh where cargo is, carry .gpu"; exit 1; }
BIN=$PWD/.gpu/bin/yt8m; PARITY=$PWD/.gpu/bin/parity; NCCLT=$PWD/.gpu/bin/nccl
export YT8M_SHARED=$PWD/.gpu/shared
export YT8M_BIN="$BIN" YT8M_REPO="$PWD"
log "## yt8m info"
step "$BIN" info
log "## parity on cuda"
YT8M_TEST_DEVICE=cuda timeout 120 "$PARITY" --test-threads 1 --nocapture 2>&1 | tee -a "$raw" | grep -E "^test |max|diff|test result|panicked" | tee -a "$out"
log "## legacy Paddle zoo parity on cuda (NeXtVLAD, AttentionCluster)"
YT8M_TEST_DEVICE=cuda timeout 120 "$PWD/.gpu/bin/paddle_zoo" --test-threads 1 --nocapture equals 2>&1 | tee -a "$raw" | grep -E "^test |max|diff|moved|test result|panicked" | tee -a "$out"
log "## NCCL path, one GPU"
timeout 120 "$NCCLT" --test-threads 1 --nocapture 2>&1 | tee -a "$raw" | grep -E "^test |NCCL|max|skipped|test result|panicked|error" | tee -a "$out"
log "## bench train (full model, batch 128, cuda)"
step timeout 150 "$BIN" bench train --device cuda --batch-size 128 --steps 4 --warmup 1 --precision fp32,bf16
log "## bench predict (full model, cuda)"
step timeout 120 "$BIN" bench predict --device cuda --batch-size 1,64,256 --steps 7 --precision fp32,bf16
log "## bench serve (demo bundle, cuda)"
SECONDS=0; timeout 120 "$BIN" demo --dir /tmp/yt8m-gpu-demo >> "$raw" 2>&1; log "demo (synth, train, test, export, predict) on cuda: rc $?, $SECONDS s"
step timeout 150 "$BIN" bench serve --model /tmp/yt8m-gpu-demo/bundle --device cuda --seconds 5 --concurrency 1,8,64
log "## cuDNN weight-compaction warnings (RNN weights not one buffer): $(grep -c "RNN module weights are not part" "$raw") (expect 0)"
