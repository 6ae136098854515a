#!/usr/bin/env bash
# Issue 12's GPU run (on the device machine, from the repository root, with .gpu carried):
# 1. `gpu-check test` on this tree's binary: every check, including graph::mixed_launch_options (one
#    graph of launches with different warps/stages against the same launches made eagerly);
# 2. the fp8 GEMM at M = 1 and 16 on 70B.o and 8B.o, searched afresh, with the binary built from the
#    commit before this work (.gpu/gpu-check-before.xz) and this one, interleaved in the same run.
# Outputs: $OUT/test.txt, $OUT/probe-before.txt, $OUT/probe-after.txt, $OUT/copy_bw.txt.
set -uo pipefail
OUT=${OUT:-bench/launch_options/results/latest}
mkdir -p "$OUT" /tmp/g
xz -dc .gpu/gpu-check.xz > /tmp/g/after && xz -dc .gpu/gpu-check-before.xz > /tmp/g/before && chmod +x /tmp/g/after /tmp/g/before || exit 1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
export DSL_CACHE_DIR=/tmp/g/cache
/tmp/g/after test > "$OUT/test.txt" 2>&1; echo "test rc=$?" | tee -a "$OUT/test.txt"
grep -E "passed|FAIL|mixed" "$OUT/test.txt"
export COPY_TBPS=$(python3 bench/fp8_gemm/copy_bw.py)
echo "copy bandwidth: $COPY_TBPS TB/s" | tee "$OUT/copy_bw.txt"
for s in 70B.o 8B.o; do
    for b in before after; do
        DSL_CACHE_DIR=/tmp/g/cache-$b FP8_BENCH_MS=1,16 /tmp/g/$b fp8 --write /tmp/g/$b.tsv --only $s >> "$OUT/probe-$b.txt" 2>&1
        echo "$b $s rc=$?" | tee -a "$OUT/probe-$b.txt"
    done
done
grep -h "^FP8" "$OUT"/probe-*.txt
