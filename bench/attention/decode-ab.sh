#!/usr/bin/env bash
# Decode attention on the device machine (.gpu/gpu-check.xz carried): the GPU checks, ours at every
# point (heuristic alone; the sweep at SWEEP_POINTS), torch SDPA in the same run, and ncu of the
# heuristic's two kernels at NCU_POINTS. Outputs under $OUT.
set -uo pipefail
OUT=${OUT:-bench/attention/results/latest}
SWEEP_POINTS=${SWEEP_POINTS:-llama3/16/512,llama3/1/4096}
NCU_POINTS=${NCU_POINTS:-llama3/16/512,llama3/1/4096}
mkdir -p "$OUT"
. bench/gpu/unpack.sh
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 150 /tmp/g/gpu-check test decode > "$OUT/test-decode.txt" 2>&1; echo "test decode rc=$?: $(grep -h passed "$OUT/test-decode.txt" | tail -1)"
grep FAIL "$OUT/test-decode.txt" | head -5
export COPY_TBPS=${COPY_TBPS:-$(python3 bench/fp8_gemm/copy_bw.py)}
echo "copy bandwidth: $COPY_TBPS TB/s" | tee "$OUT/copy_bw.txt"
DECODE_SWEEP=0 timeout 200 /tmp/g/gpu-check decode 2>&1 | tee "$OUT/decode-ours.txt" | grep -v '^#'
[ -n "$SWEEP_POINTS" ] && DECODE_ONLY=$SWEEP_POINTS timeout 200 /tmp/g/gpu-check decode > "$OUT/decode-sweep.txt" 2>&1
grep -v '^#' "$OUT/decode-sweep.txt"
PYTHONUNBUFFERED=1 timeout 200 python3 bench/attention/decode_baselines.py > "$OUT/decode-sdpa.txt" 2>&1
grep -E 'default' "$OUT/decode-sdpa.txt"
IFS=, read -ra PTS <<< "$NCU_POINTS"
for p in "${PTS[@]}"; do
    DECODE_ONLY=$p DECODE_SWEEP=0 timeout 100 /usr/local/cuda/bin/ncu --kernel-name regex:decode --launch-count 2 \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
        /tmp/g/gpu-check decode > "$OUT/ncu-${p//\//-}.txt" 2>&1
    grep -E '^  decode_|Duration|Registers Per|Dynamic Shared|Achieved Occupancy' "$OUT/ncu-${p//\//-}.txt"
done
