#!/usr/bin/env bash
# Issue 15, TMA block-pointer loads (codegen-ptx lower/tma.rs): one device call, outputs under $OUT.
#   bash bench/wgmma/tma.sh   # the block-pointer wgmma checks with TMA on (launches synchronized),
#                             # `gpu-check tma-gemm` (TMA / per-thread / cp.async) and cuBLAS (torch_gemm.py),
#                             # then compute-sanitizer memcheck/racecheck/synccheck of the TMA check
#   FULL=1 bash bench/wgmma/tma.sh   # also the checks with TMA off and every matmul check with TMA on
# Needs .gpu/gpu-check.xz, built by bench/gpu/build.sh.
set -uo pipefail
OUT=${OUT:-bench/wgmma/results/latest-tma}
mkdir -p "$OUT"
. bench/gpu/unpack.sh
G=/tmp/g/gpu-check
start=$SECONDS
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/gpu.txt"
# A phase bug hangs rather than fails: every run under a timeout, launches synchronized.
for tma in 1 ${FULL:+0}; do
    DSL_TMA=$tma DSL_SYNC_LAUNCH=1 DSL_CACHE_DIR=off timeout 120 $G test matmul_block_ptr_wgmma > "$OUT/check-tma$tma.txt" 2>&1
    echo "[$((SECONDS - start)) s] check tma=$tma rc=$?: $(grep -h passed "$OUT/check-tma$tma.txt" | tail -1)"; grep -h FAIL "$OUT/check-tma$tma.txt" | head -5
done
if [ -n "${FULL:-}" ]; then
    DSL_TMA=1 timeout 200 $G test matmul > "$OUT/check-matmul.txt" 2>&1
    echo "[$((SECONDS - start)) s] matmul rc=$?: $(grep -h passed "$OUT/check-matmul.txt" | tail -1)"; grep -h FAIL "$OUT/check-matmul.txt" | head -5
fi
timeout 200 $G tma-gemm > "$OUT/tma-gemm.txt" 2>&1; echo "[$((SECONDS - start)) s] tma-gemm rc=$?"
python3 bench/gemm/torch_gemm.py > "$OUT/torch.txt" 2>&1
grep -h "^TMA-GEMM\|^TORCH" "$OUT/tma-gemm.txt" "$OUT/torch.txt"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$CS" ]; then
    for tool in memcheck racecheck synccheck; do
        DSL_TMA=1 DSL_CACHE_DIR=off timeout 90 $CS --tool $tool $G test matmul_block_ptr_wgmma > "$OUT/sanitizer-$tool.txt" 2>&1
        echo "[$((SECONDS - start)) s] $tool rc=$?: $(grep -h "ERROR SUMMARY\|RACECHECK SUMMARY" "$OUT/sanitizer-$tool.txt" | tail -1)"
    done
fi
