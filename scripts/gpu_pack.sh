#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on a GPU machine that has no Rust toolchain and no
# Open MPI (the project's H200 machines: torch 2.11.0+cu130 in python3, nothing else) into
# .gpu/ (git-ignored, ~60 MB): stripped `yt8m`, parity-test (AttentionLSTM, the legacy Paddle zoo) and
# NCCL-test binaries built with
# `--features nccl` only (no libmpi dependency), and the Paddle parity fixtures. Then one
# device call does the whole check:
#   run(command="scripts/gpu_check.sh", carry=[".gpu"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yt8m/target}"
rm -rf .gpu
mkdir -p .gpu/bin .gpu/shared/data
./dev cargo build --release --locked --features nccl >&2
strip --strip-debug -o .gpu/bin/yt8m "$CARGO_TARGET_DIR/release/yt8m"
log=$(./dev cargo test --release --locked --features nccl --no-run --test parity --test nccl --test paddle_zoo 2>&1)
for t in parity nccl paddle_zoo; do
  exe=$(echo "$log" | grep -o "/[^ ()]*/deps/$t-[0-9a-f]*" | tail -1)
  [ -x "$exe" ] || { echo "gpu_pack: test binary $t not found in:"; echo "$log"; exit 1; } >&2
  strip --strip-debug -o ".gpu/bin/$t" "$exe"
done
shared="${YT8M_SHARED:-../shared}"
cp -r "$shared/data/paddle_parity" .gpu/shared/data/
# Put the full-featured build back for ./dev test and ./dev demo.
./dev build >/dev/null
du -sh .gpu/bin/* .gpu/shared >&2
du -sh .gpu >&2
