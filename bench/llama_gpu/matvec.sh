#!/usr/bin/env bash
# The M = 1 GEMM as a matrix-vector product (kernels::fp8_gemm::scaled_mv) against the split-K GEMM, in
# one device call: the checks, each GEMM alone (gpu-check fp8 at M = 1: the committed winner and the
# matvec tiles side by side), then `llama bench` with `--matvec-rows 0` (split-K) and N alternated.
# Results go to stdout and $OUT (the device tool returns only a few files).
#   MODE=all (default) | checks | gemm | llama
#   ROUNDS (2), LLAMA_CONFIGS (';'-separated `llama bench` arguments; each runs with every ROWS value)
set -uo pipefail
. bench/gpu/unpack.sh
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
MODE=${MODE:-all}
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

if [ "$MODE" = all ] || [ "$MODE" = checks ]; then
    echo "== checks (the matvec, and the kernels whose 1- and 2-byte loads changed)"
    for f in ${CHECKS:-fp8_gemm_matvec llama_ops rope rmsnorm elementwise softmax decode quantize fp8_gemm_formats layer_chain}; do
        echo "$f: $(timeout 150 /tmp/g/gpu-check test "$f" 2>&1 | grep -E 'passed|FAIL|panicked' | tail -3 | tr '\n' ' ')" | tee -a "$OUT/checks.txt"
    done
fi

if [ "$MODE" = all ] || [ "$MODE" = gemm ]; then
    echo "== each GEMM alone at M = 1 (µs)"
    FP8_BENCH_MS=1 timeout 240 /tmp/g/gpu-check fp8 2>&1 | grep -v '^#   ' | tee "$OUT/gemm-m1.txt"
fi

if [ "$MODE" = all ] || [ "$MODE" = llama ]; then
    echo "== llama bench (tokens/s), split-K (rows 0) against the matrix-vector product"
    CONFIGS=${LLAMA_CONFIGS:-"--arch llama-3-8b --weights fp8 -p 128 -n 128|0 2 4;--arch llama-3-8b --weights bf16 -p 128 -n 128|0 4 8;--arch smollm2-135m -p 128 -n 128|0 4 8"}
    IFS=';' read -ra CS <<< "$CONFIGS"
    for entry in "${CS[@]}"; do
        args=${entry%|*}
        for r in $(seq 1 "${ROUNDS:-2}"); do
            for rows in ${entry#*|}; do
                line=$(timeout 150 /tmp/g/llama bench $args --device cuda -r 3 --matvec-rows "$rows" 2>&1 | grep -E 'tg[0-9]+ @ ctx [0-9]+ \||rror')
                echo "$args | rows $rows | round $r | $line" | tee -a "$OUT/llama.txt"
            done
        done
    done
fi

if [ "$MODE" = final ]; then
    # The build with the matrix-vector product on by default: graph replay against eager launches, the
    # sanitizer, and the default against --matvec-rows 0 (split-K) once more.
    echo "graph-eager fp8: $(timeout 200 /tmp/g/gpu-check graph-eager llama-3-8b fp8 300 2>&1 | tail -1)" | tee -a "$OUT/final.txt"
    for w in bf16 fp8; do
        timeout 100 compute-sanitizer --tool memcheck /tmp/g/llama bench --arch smollm2-135m --device cuda --weights $w \
            -p 8 -n 4 -r 1 > "$OUT/memcheck-$w.txt" 2>&1
        echo "memcheck $w rc=$?: $(grep -E 'ERROR SUMMARY' "$OUT/memcheck-$w.txt")" | tee -a "$OUT/final.txt"
    done
    for r in 1 2; do
        for rows in 0 2; do
            line=$(timeout 150 /tmp/g/llama bench --arch llama-3-8b --weights fp8 -p 128 -n 128 --device cuda -r 3 --matvec-rows $rows 2>&1 | grep -E 'tg[0-9]+ @ ctx [0-9]+ \||rror')
            echo "8B fp8 | rows $rows | round $r | $line" | tee -a "$OUT/final.txt"
        done
    done
fi
