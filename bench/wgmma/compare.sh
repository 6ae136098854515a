#!/usr/bin/env bash
# One device call, most wanted first (a call ends at 600 s; each part is written as it finishes):
# the checks of the build under test, its GEMMs (4096^3/8192^3, autotuned) beside cuBLAS, its fp8
# split-K (M = 64/256) beside cuBLAS and Triton, Llama 8B fp8 prefill/decode, then the old build's GEMM
# and split-K on the same machine.
#   .gpu/gpu-check.xz      the build under test (bench/gpu/build.sh), .gpu/llama.xz its llama
#   .gpu/old/gpu-check.xz  the build to compare against
set -uo pipefail
OUT=${OUT:-bench/wgmma/results/latest}
mkdir -p "$OUT"
. bench/gpu/unpack.sh
[ -x /tmp/g/old ] || { xz -dc .gpu/old/gpu-check.xz > /tmp/g/old && chmod +x /tmp/g/old; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader > "$OUT/gpu.txt"
start=$SECONDS
stamp() { echo "[$((SECONDS - start)) s] $*"; }
splitk() {  # $1 binary, $2 name
    for s in 8B.o 70B.o; do FP8_BENCH_MS=${MS:-64,256} timeout 100 $1 fp8 --write /tmp/t-$2.tsv --only $s; done > "$OUT/splitk-$2.txt" 2>&1
    stamp "splitk $2"; grep -h "^FP8" "$OUT/splitk-$2.txt" | cut -d'|' -f2-8
}
for t in matmul attention fp8; do
    timeout 150 /tmp/g/gpu-check test $t > "$OUT/check-$t.txt" 2>&1; stamp "check $t rc=$?: $(grep passed "$OUT/check-$t.txt" | tail -2 | tr '\n' ' ')"
    grep -E "FAIL" "$OUT/check-$t.txt" | head -5
done
timeout 200 /tmp/g/gpu-check gemm > "$OUT/gemm-new.txt" 2>&1; stamp "gemm new rc=$?"
timeout 120 python3 bench/gemm/torch_gemm.py > "$OUT/torch.txt" 2>&1; stamp "torch rc=$?"
grep -h "^GEMM\|^TORCH" "$OUT"/gemm-new.txt "$OUT/torch.txt" | cut -d'|' -f1-5
export COPY_TBPS=$(python3 bench/fp8_gemm/copy_bw.py)
splitk /tmp/g/gpu-check new
for s in 8B.o 70B.o; do FP8_BENCH_MS=${MS:-64,256} timeout 100 python3 bench/fp8_gemm/baselines.py $s; done > "$OUT/baselines.txt" 2>&1
stamp baselines; grep "^BASE" "$OUT/baselines.txt" | cut -d"|" -f2-7
timeout 100 /tmp/g/llama bench --arch llama-3-8b --device cuda --weights fp8 -p 512 -n 4 -r 2 > "$OUT/llama.txt" 2>&1
stamp "llama rc=$?"; grep "pp512\|tg" "$OUT/llama.txt" | head -4
timeout 200 /tmp/g/old gemm > "$OUT/gemm-old.txt" 2>&1; stamp "gemm old rc=$?"
grep -h "^GEMM" "$OUT"/gemm-old.txt | cut -d'|' -f1-5
splitk /tmp/g/old old
