#!/usr/bin/env bash
# Runs on the GPU machine from the repository root with .gpu/gpu-check.xz carried (bash bench/gpu/build.sh
# here first). `run.sh check`: the fp8 GEMM checks (plain, bounds-checked, sm_80 code, compute-sanitizer);
# `run.sh bench [SHAPE]`: the autotuned sweep (winners written to $OUT/tuned.tsv), the cuBLAS/Triton
# baselines and the joined table, for every shape or those whose name contains SHAPE (`70B`, `8B`);
# `run.sh probe`: M = 1 and 16 on two shapes, with and without programmatic dependent
# launch. Outputs go to $OUT (or bench/fp8_gemm/results/latest).
set -uo pipefail
OUT=${OUT:-bench/fp8_gemm/results/latest}
mkdir -p "$OUT" /tmp/g
[ -x /tmp/g/gpu-check ] || { xz -dc .gpu/gpu-check.xz > /tmp/g/gpu-check && chmod +x /tmp/g/gpu-check; }
G=/tmp/g/gpu-check
# The roofline's denominator, measured on this GPU (3.02 TB/s on the H100 of the first runs): COPY_TBPS.
copy_bandwidth() {
    export COPY_TBPS=${COPY_TBPS:-$(python3 bench/fp8_gemm/copy_bw.py)}
    [ -n "$COPY_TBPS" ] || { echo "error: could not measure the copy bandwidth (torch?)"; exit 1; }
    echo "copy bandwidth: $COPY_TBPS TB/s" | tee "$OUT/copy_bw.txt"
}
case "${1:-}" in
check)
    { $G test fp8; echo "rc=$?"; DSL_TARGET=sm_80 $G test fp8; echo "sm_80 code rc=$?"; } > "$OUT/test.txt" 2>&1
    compute-sanitizer --tool memcheck $G test fp8 2>&1 | grep -v '^ok' > "$OUT/sanitizer.txt"
    compute-sanitizer --tool racecheck $G test fp8 2>&1 | grep -v '^ok' >> "$OUT/sanitizer.txt"
    grep -E "passed|rc=" "$OUT/test.txt"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer.txt"
    ;;
bench)
    copy_bandwidth
    ONLY=${2:-}
    $G fp8 --write "$OUT/tuned.tsv" ${ONLY:+--only "$ONLY"} > "$OUT/ours.txt" 2>&1; echo "fp8 rc=$?"
    python3 bench/fp8_gemm/baselines.py $ONLY > "$OUT/baselines.txt" 2>&1; echo "baselines rc=$?"
    python3 bench/fp8_gemm/compare.py "$OUT/ours.txt" "$OUT/baselines.txt" > "$OUT/summary.md" 2>&1
    cat "$OUT/summary.md"
    ;;
probe)
    # A quick look: copy bandwidth, then M = 1 and 16 on two shapes (tuned afresh; programmatic launch
    # on and off in the `serial` column).
    copy_bandwidth
    for s in 70B.o 8B.o; do FP8_BENCH_MS=1,16 $G fp8 --write /tmp/probe.tsv --only $s; done 2>&1 | tee "$OUT/probe.txt"
    ;;
*) echo "usage: run.sh check|bench|probe"; exit 2 ;;
esac
