#!/usr/bin/env bash
# Attention on the device machine (repository root, .gpu/gpu-check.xz carried; build it here with
# bash bench/gpu/build.sh): ours (gpu-check decode / prefill) and torch SDPA side by side, with the copy
# bandwidth measured first. `run.sh [decode|prefill|all]` (default all). Outputs under $OUT.
set -uo pipefail
OUT=${OUT:-bench/attention/results/latest}
WHAT=${1:-all}
mkdir -p "$OUT" /tmp/g
[ -x /tmp/g/gpu-check ] || { xz -dc .gpu/gpu-check.xz > /tmp/g/gpu-check && chmod +x /tmp/g/gpu-check; }
if [ "$WHAT" = decode ] || [ "$WHAT" = all ]; then
    export COPY_TBPS=${COPY_TBPS:-$(python3 bench/fp8_gemm/copy_bw.py)}
    echo "copy bandwidth: $COPY_TBPS TB/s" | tee "$OUT/copy_bw.txt"
    /tmp/g/gpu-check decode 2>&1 | tee "$OUT/decode-ours.txt"
    PYTHONUNBUFFERED=1 python3 bench/attention/decode_baselines.py 2>&1 | tee "$OUT/decode-sdpa.txt"
fi
if [ "$WHAT" = prefill ] || [ "$WHAT" = all ]; then
    /tmp/g/gpu-check prefill 2>&1 | tee "$OUT/prefill-ours.txt"
    PYTHONUNBUFFERED=1 python3 bench/attention/prefill_baselines.py 2>&1 | tee "$OUT/prefill-sdpa.txt"
fi
