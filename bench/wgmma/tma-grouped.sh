#!/usr/bin/env bash
# One device call (issues 15 and 13): the TMA block-pointer loads checked on the GPU; the grouped tile
# order of the block-pointer kernels (kernels/src/matmul.rs `grouped_tile`) timed against the launch
# order; the fp8 KV cache's checks. Outputs under $OUT.
#   bash bench/wgmma/tma-grouped.sh   # carry .gpu/gpu-check.xz (bench/gpu/build.sh)
# `gpu-check tma-gemm` times `matmul_block_ptr` and `linear_block_ptr` (TMA) with `group_m` = 8 (`TMA`)
# and with one group as tall as the grid (`TMA launch-order`): the same compiled kernel, so the rows
# differ by the order alone. `matmul` and `linear` (cp.async, launch order) are the control. It runs
# twice, for the run-to-run noise. Order by importance, so that a cut-off run still says the most:
#   1. `gpu-check test matmul_block_ptr_wgmma` with TMA on, launches synchronized (a phase bug hangs);
#      `gpu-check test fp8_cache` (attention over an e4m3 KV cache);
#   2. `gpu-check tma-gemm` twice (bf16 matmul TMA / cp.async, bf16 and e4m3 `linear_block_ptr` (TMA)
#      and `linear` (cp.async) at 4096³ and 8192³), and cuBLAS (torch_gemm.py);
#   3. compute-sanitizer memcheck, synccheck and racecheck of the TMA check, while time is left.
set -uo pipefail
start=$SECONDS
OUT=${OUT:-bench/wgmma/results/latest-tma-grouped}
BUDGET=${BUDGET:-570}
mkdir -p "$OUT"
. bench/gpu/unpack.sh
G=/tmp/g/gpu-check
left() { echo $((BUDGET - (SECONDS - start))); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/gpu.txt"
DSL_TMA=1 DSL_SYNC_LAUNCH=1 DSL_CACHE_DIR=off timeout -k 10 120 $G test matmul_block_ptr_wgmma > "$OUT/check-tma.txt" 2>&1
echo "[$((SECONDS - start)) s] TMA check rc=$?: $(grep -h passed "$OUT/check-tma.txt" | tail -1)"; grep -h FAIL "$OUT/check-tma.txt" | head -5
# The fp8 KV cache (issue 13): decode and prefill over an e4m3 cache, against the interpreter's float64.
timeout -k 10 60 $G test fp8_cache > "$OUT/check-fp8-cache.txt" 2>&1
echo "[$((SECONDS - start)) s] fp8 cache check rc=$?: $(grep -h passed "$OUT/check-fp8-cache.txt" | tail -1)"; grep -h FAIL "$OUT/check-fp8-cache.txt" | head -5
for run in 1 2; do
    # torch's 60 s kept back; a run cut short says little.
    t=$(( $(left) - 70 )); [ $t -gt 180 ] && t=180
    [ $t -ge 90 ] || { echo "tma-gemm $run: no time left"; break; }
    timeout -k 10 $t $G tma-gemm > "$OUT/tma-gemm-$run.txt" 2>&1; echo "[$((SECONDS - start)) s] tma-gemm $run rc=$?"
done
timeout -k 5 60 python3 bench/gemm/torch_gemm.py > "$OUT/torch.txt" 2>&1
for run in 1 2; do sed "s/^TMA-GEMM /run$run /" "$OUT/tma-gemm-$run.txt" 2>/dev/null | grep "^run$run "; done
grep -h "^TORCH" "$OUT/torch.txt"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$CS" ]; then
    for tool in memcheck synccheck racecheck; do
        t=$(( $(left) - 15 )); [ $t -gt 120 ] && t=120
        [ $t -ge 20 ] || { echo "$tool: no time left"; continue; }
        DSL_TMA=1 DSL_CACHE_DIR=off timeout -k 5 $t $CS --tool $tool $G test matmul_block_ptr_wgmma > "$OUT/sanitizer-$tool.txt" 2>&1
        echo "[$((SECONDS - start)) s] $tool rc=$?: $(grep -h "ERROR SUMMARY\|RACECHECK SUMMARY" "$OUT/sanitizer-$tool.txt" | tail -1)"
    done
fi
