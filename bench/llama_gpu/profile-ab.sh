#!/usr/bin/env bash
# ncu per-kernel times of one 8B fp8 decode step for the build before (.gpu/old/llama.xz) and this one
# (.gpu/llama.xz), on the device machine: OUT=... bash bench/llama_gpu/profile-ab.sh. (No nsys there, so
# no in-graph timeline: ncu times each kernel alone, caches flushed.)
set -uo pipefail
OUT=${OUT:-bench/llama_gpu/results/latest}
mkdir -p "$OUT"
. bench/gpu/unpack.sh
[ -x /tmp/g/llama-old ] || { xz -dc .gpu/old/llama.xz > /tmp/g/llama-old && chmod +x /tmp/g/llama-old; }
for b in old new; do
  L=/tmp/g/llama; [ $b = old ] && L=/tmp/g/llama-old
  timeout 200 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
      $L bench --arch llama-3-8b --device cuda --weights fp8 -p 1 -n 1 -r 1 --no-cuda-graph \
      > "$OUT/ncu-8b-fp8-$b.csv" 2> "$OUT/ncu-8b-fp8-$b.err"; echo "ncu $b rc=$?"
  python3 bench/llama_gpu/breakdown.py "$OUT/ncu-8b-fp8-$b.csv" > "$OUT/breakdown-8b-fp8-$b.md"; head -24 "$OUT/breakdown-8b-fp8-$b.md"
  xz -f "$OUT/ncu-8b-fp8-$b.csv"
done
