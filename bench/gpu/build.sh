#!/usr/bin/env bash
# Builds the GPU check/benchmark binary here (no GPU needed) and packs it for the device machine:
# .gpu/gpu-check.xz (carry it; see run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p tests --bin gpu-check
mkdir -p .gpu
strip -o .gpu/gpu-check target/release/gpu-check
rm -f .gpu/gpu-check.xz
xz -T2 -6 -k .gpu/gpu-check
ls -la .gpu/gpu-check.xz
