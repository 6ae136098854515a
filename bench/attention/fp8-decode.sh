#!/usr/bin/env bash
# One device call (issue 13): the fp8 (e4m3) KV cache on the GPU. Its checks first (decode and prefill
# over an e4m3 cache against the interpreter's float64; K and V pipelined by cp.async and read back
# into registers, never run before), compute-sanitizer on them, then decode timed over a bf16 and an
# e4m3 cache at the same points, side by side (`gpu-check decode`, each point with its sweep of splits,
# steps, warps and stages). Outputs under $OUT.
#   bash bench/attention/fp8-decode.sh   # carry .gpu/gpu-check.xz (bench/gpu/build.sh)
set -uo pipefail
start=$SECONDS
OUT=${OUT:-bench/attention/results/latest-fp8-decode}
BUDGET=${BUDGET:-570}
# Long contexts (where decode is bound by the bytes it reads), batch 1 and 16, and one short one.
POINTS=${POINTS:-llama3/1/32768,llama3/16/4096,llama3/1/4096,llama3/1/512}
mkdir -p "$OUT"
. bench/gpu/unpack.sh
G=/tmp/g/gpu-check
left() { echo $((BUDGET - (SECONDS - start))); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/gpu.txt"
DSL_SYNC_LAUNCH=1 timeout -k 10 120 $G test fp8_cache > "$OUT/check-fp8-cache.txt" 2>&1
echo "[$((SECONDS - start)) s] fp8 cache check rc=$?: $(grep -h passed "$OUT/check-fp8-cache.txt" | tail -1)"; grep -h FAIL "$OUT/check-fp8-cache.txt" | head -5
for cache in bf16 fp8; do
    t=$(( $(left) - 100 )); [ $t -gt 200 ] && t=200
    [ $t -ge 40 ] || { echo "decode $cache: no time left"; break; }
    DECODE_CACHE=$cache DECODE_ONLY=$POINTS timeout -k 10 $t $G decode > "$OUT/decode-$cache.txt" 2>&1
    echo "[$((SECONDS - start)) s] decode $cache rc=$?"
    sed "s/^DECODE /$cache /" "$OUT/decode-$cache.txt" | grep "^$cache "
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$CS" ]; then
    for tool in racecheck memcheck; do
        t=$(( $(left) - 10 )); [ $t -gt 120 ] && t=120
        [ $t -ge 20 ] || { echo "$tool: no time left"; continue; }
        timeout -k 5 $t $CS --tool $tool $G test decode_fp8_cache > "$OUT/sanitizer-$tool.txt" 2>&1
        echo "[$((SECONDS - start)) s] $tool rc=$?: $(grep -h "ERROR SUMMARY\|RACECHECK SUMMARY" "$OUT/sanitizer-$tool.txt" | tail -1)"
    done
fi
