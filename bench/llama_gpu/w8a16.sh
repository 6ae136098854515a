#!/usr/bin/env bash
# Decode at batch 1 with fewer kernels: FP8 weights' matrix-vector products reading bf16 activations
# (W8A16, the default) against e4m3 ones (--matvec-fp8-activations: the quantization kernels before
# each GEMM), and the SwiGLU in the gate-and-up product's epilogue (default) against its own kernel
# (--no-fused-swiglu), the RMSNorms inside the products after them (default) against their own
# kernels (--no-fused-norm), and RoPE with the cache append in the QKV product (default) against their
# kernel (--no-fused-rope); each variant adds its kernel back to the one before it. In one device call: the checks, `llama bench` alternated, then the issue's tables
# with the default build. Results to stdout and $OUT.
#   MODE: some of "checks ab tables" (default: all three)
#   ROUNDS (2), AB (';'-separated `llama bench` arguments), VARIANTS (some of "e4m3 swiglu norm rope
#   default", alternated in that order), WITH_70B (tables: 70B fp8 too)
set -uo pipefail
. bench/gpu/unpack.sh
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
MODE=${MODE:-checks ab tables}
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
B() { timeout 200 /tmp/g/llama bench "$@" -r 3 2>&1 | grep -E '(tg|pp)[0-9]+( @ ctx [0-9]+)? \||rror'; }

if [[ " $MODE " == *" checks "* ]]; then
    echo "== checks"
    for f in fp8_gemm_matvec swiglu_matvec rope_kv_append_from_matvec llama_ops layer_chain; do
        echo "$f: $(timeout 150 /tmp/g/gpu-check test "$f" 2>&1 | grep -E 'passed|FAIL|panicked' | tail -3 | tr '\n' ' ')" | tee -a "$OUT/checks.txt"
    done
    for w in fp8 bf16; do
        echo "graph-eager $w: $(timeout 200 /tmp/g/gpu-check graph-eager llama-3-8b $w 300 2>&1 | tail -1)" | tee -a "$OUT/checks.txt"
        timeout 100 compute-sanitizer --tool memcheck /tmp/g/llama bench --arch smollm2-135m --device cuda --weights $w \
            -p 8 -n 4 -r 1 > "$OUT/memcheck-$w.txt" 2>&1
        echo "memcheck $w rc=$?: $(grep -E 'ERROR SUMMARY' "$OUT/memcheck-$w.txt")" | tee -a "$OUT/checks.txt"
    done
fi

if [[ " $MODE " == *" ab "* ]]; then
    V=${VARIANTS:-e4m3 swiglu norm rope default}
    echo "== llama bench (tokens/s), variants: $V"
    AB=${AB:-"--arch llama-3-8b --weights fp8 -p 128 -n 128;--arch llama-3-8b --weights fp8 -p 4096 -n 128;--arch smollm2-135m --weights fp8 -p 128 -n 128;--arch llama-3-8b --weights bf16 -p 128 -n 128;--arch smollm2-135m --weights bf16 -p 128 -n 128"}
    IFS=';' read -ra CS <<< "$AB"
    for c in "${CS[@]}"; do
        for r in $(seq 1 "${ROUNDS:-2}"); do
            for v in $V; do
                case "$v" in
                    e4m3) case "$c" in *fp8*) echo "$c | e4m3 act | round $r | $(B $c --device cuda --matvec-fp8-activations)" | tee -a "$OUT/ab.txt" ;; esac ;;
                    swiglu) echo "$c | SwiGLU, norm, RoPE kernels | round $r | $(B $c --device cuda --no-fused-swiglu --no-fused-norm --no-fused-rope)" | tee -a "$OUT/ab.txt" ;;
                    norm) echo "$c | norm, RoPE kernels | round $r | $(B $c --device cuda --no-fused-norm --no-fused-rope)" | tee -a "$OUT/ab.txt" ;;
                    rope) echo "$c | RoPE kernel | round $r | $(B $c --device cuda --no-fused-rope)" | tee -a "$OUT/ab.txt" ;;
                    default) echo "$c | default | round $r | $(B $c --device cuda)" | tee -a "$OUT/ab.txt" ;;
                esac
            done
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
