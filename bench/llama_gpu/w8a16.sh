#!/usr/bin/env bash
# FP8 weights at decode reading bf16 activations (W8A16, the default) against e4m3 ones
# (--matvec-fp8-activations, the quantization kernels before each GEMM), in one device call: the checks,
# then `llama bench` alternated, then the issue's tables with the default build. Results to stdout and $OUT.
#   MODE: some of "checks ab tables" (default: all three)
#   ROUNDS (2), AB (';'-separated `llama bench` arguments), WITH_70B (tables: 70B fp8 too)
set -uo pipefail
. bench/gpu/unpack.sh
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
MODE=${MODE:-checks ab tables}
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
B() { timeout 200 /tmp/g/llama bench "$@" -r 3 2>&1 | grep -E '(tg|pp)[0-9]+( @ ctx [0-9]+)? \||rror'; }

if [[ " $MODE " == *" checks "* ]]; then
    echo "== checks"
    for f in fp8_gemm_matvec llama_ops layer_chain; do
        echo "$f: $(timeout 150 /tmp/g/gpu-check test "$f" 2>&1 | grep -E 'passed|FAIL|panicked' | tail -3 | tr '\n' ' ')" | tee -a "$OUT/checks.txt"
    done
    echo "graph-eager fp8: $(timeout 200 /tmp/g/gpu-check graph-eager llama-3-8b fp8 300 2>&1 | tail -1)" | tee -a "$OUT/checks.txt"
    timeout 100 compute-sanitizer --tool memcheck /tmp/g/llama bench --arch smollm2-135m --device cuda --weights fp8 \
        -p 8 -n 4 -r 1 > "$OUT/memcheck-fp8.txt" 2>&1
    echo "memcheck fp8 rc=$?: $(grep -E 'ERROR SUMMARY' "$OUT/memcheck-fp8.txt")" | tee -a "$OUT/checks.txt"
fi

if [[ " $MODE " == *" ab "* ]]; then
    echo "== llama bench (tokens/s): e4m3 activations (--matvec-fp8-activations) against bf16 (default)"
    AB=${AB:-"--arch llama-3-8b --weights fp8 -p 128 -n 128;--arch llama-3-8b --weights fp8 -p 4096 -n 128;--arch smollm2-135m --weights fp8 -p 128 -n 128"}
    IFS=';' read -ra CS <<< "$AB"
    for c in "${CS[@]}"; do
        for r in $(seq 1 "${ROUNDS:-2}"); do
            echo "$c | e4m3 | round $r | $(B $c --device cuda --matvec-fp8-activations)" | tee -a "$OUT/ab.txt"
            echo "$c | bf16 | round $r | $(B $c --device cuda)" | tee -a "$OUT/ab.txt"
        done
    done
fi

if [[ " $MODE " == *" tables "* ]]; then
    echo "== the issue's decode and prefill figures, default build"
    for w in fp8 bf16; do
        for p in 128 4096; do echo "8B $w ctx $p | $(B --arch llama-3-8b --weights $w -p $p -n 128 --device cuda)" | tee -a "$OUT/tables.txt"; done
        echo "8B $w pp512 | $(B --arch llama-3-8b --weights $w -p 512 -n 1 --device cuda)" | tee -a "$OUT/tables.txt"
    done
    for w in bf16 fp8; do echo "SmolLM2 $w | $(B --arch smollm2-135m --weights $w -p 128 -n 128 --device cuda)" | tee -a "$OUT/tables.txt"; done
    [ -n "${WITH_70B:-}" ] && echo "70B fp8 | $(B --arch llama-3-70b --weights fp8 -p 128 -n 64 --device cuda)" | tee -a "$OUT/tables.txt"
fi
