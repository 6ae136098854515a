#!/usr/bin/env bash
# Runs on the GPU machine from the repository root with .gpu/gpu-check.xz carried (bash bench/gpu/build.sh
# here first). `run.sh check`: the fp8 GEMM checks (plain, bounds-checked, sm_80 code, compute-sanitizer);
# `run.sh bench`: the autotuned sweep (winners written to $OUT/tuned.tsv), the cuBLAS/Triton baselines
# and the joined table. Outputs go to $OUT (or bench/fp8_gemm/results/latest).
set -uo pipefail
OUT=${OUT:-bench/fp8_gemm/results/latest}
mkdir -p "$OUT" /tmp/g
[ -x /tmp/g/gpu-check ] || { xz -dc .gpu/gpu-check.xz > /tmp/g/gpu-check && chmod +x /tmp/g/gpu-check; }
G=/tmp/g/gpu-check
case "${1:-}" in
check)
    { $G test fp8; echo "rc=$?"; DSL_TARGET=sm_80 $G test fp8; echo "sm_80 code rc=$?"; } > "$OUT/test.txt" 2>&1
    compute-sanitizer --tool memcheck $G test fp8 2>&1 | grep -v '^ok' > "$OUT/sanitizer.txt"
    compute-sanitizer --tool racecheck $G test fp8 2>&1 | grep -v '^ok' >> "$OUT/sanitizer.txt"
    grep -E "passed|rc=" "$OUT/test.txt"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer.txt"
    ;;
bench)
    $G fp8 --write "$OUT/tuned.tsv" > "$OUT/ours.txt" 2>&1; echo "fp8 rc=$?"
    python3 bench/fp8_gemm/baselines.py > "$OUT/baselines.txt" 2>&1; echo "baselines rc=$?"
    python3 bench/fp8_gemm/compare.py "$OUT/ours.txt" "$OUT/baselines.txt" > "$OUT/summary.md" 2>&1
    cat "$OUT/summary.md"
    ;;
*) echo "usage: run.sh check|bench"; exit 2 ;;
esac
