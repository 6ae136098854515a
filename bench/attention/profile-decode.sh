#!/usr/bin/env bash
# Decode attention under ncu at chosen points (heuristic config alone), then the sweep at those points.
# Repository root on the device machine, .gpu/gpu-check.xz carried. POINTS=model/batch/ctx[,...].
set -uo pipefail
OUT=${OUT:-bench/attention/results/latest-profile}
POINTS=${POINTS:-llama3/16/512,llama3/1/4096,llama3/16/4096}
mkdir -p "$OUT" /tmp/g
[ -x /tmp/g/gpu-check ] || { xz -dc .gpu/gpu-check.xz > /tmp/g/gpu-check && chmod +x /tmp/g/gpu-check; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/gpu.txt"
export COPY_TBPS=${COPY_TBPS:-$(python3 bench/fp8_gemm/copy_bw.py)}
echo "copy bandwidth: $COPY_TBPS TB/s" | tee "$OUT/copy_bw.txt"
NCU=${NCU:-/usr/local/cuda/bin/ncu}
IFS=, read -ra PTS <<< "$POINTS"
for p in "${PTS[@]}"; do
    tag=${p//\//-}
    DECODE_ONLY=$p DECODE_SWEEP=0 timeout 200 "$NCU" --kernel-name regex:decode --launch-count 4 \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
        --section MemoryWorkloadAnalysis --section SchedulerStats \
        /tmp/g/gpu-check decode > "$OUT/ncu-$tag.txt" 2>&1
    grep -E 'decode_|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Shared Memory Config|Block Limit|Stall|Eligible|Issued Warp' "$OUT/ncu-$tag.txt" | head -80
done
DECODE_ONLY=$POINTS /tmp/g/gpu-check decode 2>&1 | tee "$OUT/decode-sweep.txt"
