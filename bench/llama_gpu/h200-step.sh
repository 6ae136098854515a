#!/usr/bin/env bash
# Where an 8B fp8 decode step's time goes on the H200 (2026-12-07), in one device call:
#   MODE=profile (default): the step (llama bench), the read and copy bandwidth (torch), each GEMM
#     alone at M = 1 (gpu-check fp8: the matvec tiles beside the split-K winner, H200 copy roofline),
#     and an ncu per-kernel breakdown of one 8B fp8 decode step.
#   MODE=checks: the GPU checks of the matrix-vector products and the layer chain (or CHECKS), graph
#     replay against eager launches (8B fp8, 300 steps, GRAPH_OPTS), compute-sanitizer memcheck
#     (SmolLM2, MEMCHECK_WEIGHTS or fp8, with MEMCHECK_OPTS).
#   MODE=ab: this build against .gpu/old/llama.xz (given OLD_OPTS too), alternated, ROUNDS rounds of AB
#     (';'-separated `llama bench` arguments); with FLAG set, this build without and with FLAG instead; with VARIANTS
#     set ('|'-separated flag sets, an empty one the defaults), this build with each in turn.
#   MODE=rows: the issue's rows with this build: 8B fp8 and bf16 at ctx 128 and 4096, pp512, SmolLM2,
#     70B fp8 (each with ROWS_OPTS, if set; ROWS=decode: the 8B and 70B decode rows only).
#   MODE=hf: Hugging Face transformers on the 8B architecture (bf16, static cache, torch.compile, the
#     step replayed as a CUDA graph: its fastest mode), ctx 128 and 4096 (or HF_CTX), for the same-run comparison.
#   MODE=batch-checks: sequences side by side (llama bench --batch) against each alone (gpu-check batch:
#     8B fp8 and SmolLM2 bf16), and compute-sanitizer memcheck of a batched SmolLM2 fp8 bench.
#   MODE=batch-rows: decode tokens/s at batch BATCHES (default 1 4 16), 8B fp8 and bf16 at ctx 128, 8B
#     fp8 at ctx 4096 and SmolLM2 fp8 at ctx 128. (MODE=hf with HF_BATCH=16: transformers at batch 16.)
#   MODE="checks ab" runs both. GEMMS_ALONE=0 skips profile's GEMMs alone.
# Results go to stdout and $OUT.
set -uo pipefail
. bench/gpu/unpack.sh
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
L=/tmp/g/llama
tg() { timeout 200 "$1" bench "${@:2}" --device cuda -r 3 2>&1 | grep -E 'tg[0-9]+ @ ctx [0-9]+ \||pp[0-9]+ \||rror' | tr '\n' ' '; }

for mode in ${MODE:-profile}; do
case "$mode" in
checks)
    for f in ${CHECKS:-fp8_gemm_matvec swiglu_matvec rope_kv_append_from_matvec layer_chain grid_dep llama_ops}; do
        echo "$f: $(timeout 150 /tmp/g/gpu-check test "$f" 2>&1 | grep -E 'passed|FAIL|panicked' | tail -3 | tr '\n' ' ')" | tee -a "$OUT/checks.txt"
    done
    echo "graph-eager fp8: $(timeout 200 /tmp/g/gpu-check graph-eager llama-3-8b fp8 300 ${GRAPH_OPTS:-} 2>&1 | tail -1)" | tee -a "$OUT/checks.txt"
    timeout 100 compute-sanitizer --tool memcheck $L bench --arch smollm2-135m --device cuda --weights ${MEMCHECK_WEIGHTS:-fp8} -p 8 -n 4 -r 1 ${MEMCHECK_OPTS:-} > "$OUT/memcheck.txt" 2>&1
    echo "memcheck ${MEMCHECK_WEIGHTS:-fp8} ${MEMCHECK_OPTS:-} rc=$?: $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.txt")" | tee -a "$OUT/checks.txt"
    ;;
profile)
    echo "8B fp8 default: $(tg $L --arch llama-3-8b --weights fp8 -p 128 -n 128)" | tee -a "$OUT/step.txt"
    python3 - <<'EOF' 2>&1 | tee "$OUT/bandwidth.txt"
import torch
x = torch.empty(4 << 30, dtype=torch.uint8, device="cuda").view(torch.float32).uniform_()
y = torch.empty_like(x)
def t(f, n=10):
    f(); torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(n): f()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / n / 1e3
print(f"read (sum of 4 GiB f32): {x.numel() * 4 / t(lambda: x.sum()) / 1e12:.2f} TB/s")
print(f"copy (4 GiB, read + write): {2 * x.numel() * 4 / t(lambda: y.copy_(x)) / 1e12:.2f} TB/s")
EOF
    if [ "${GEMMS_ALONE:-1}" = 1 ]; then
        echo "== each GEMM alone at M = 1 (µs)"
        FP8_BENCH_MS=1 COPY_TBPS=4.27 timeout 200 /tmp/g/gpu-check fp8 2>&1 | grep -v '^#   ' | tee "$OUT/gemm-m1.txt"
    fi
    echo "== ncu breakdown, 8B fp8"
    timeout 240 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
        $L bench --arch llama-3-8b --device cuda --weights fp8 -p 1 -n 1 -r 1 --no-cuda-graph \
        > "$OUT/ncu-8b-fp8.csv" 2> "$OUT/ncu-8b-fp8.err"; echo "ncu rc=$?"
    python3 bench/llama_gpu/breakdown.py "$OUT/ncu-8b-fp8.csv" | tee "$OUT/breakdown-8b-fp8.md"
    xz -f "$OUT/ncu-8b-fp8.csv"
    ;;
batch-checks)
    echo "batch 8B fp8: $(timeout 240 /tmp/g/gpu-check batch llama-3-8b fp8 4 32 2>&1 | tail -1)" | tee -a "$OUT/checks.txt"
    echo "batch SmolLM2 bf16: $(timeout 120 /tmp/g/gpu-check batch smollm2-135m bf16 8 64 2>&1 | tail -1)" | tee -a "$OUT/checks.txt"
    timeout 120 compute-sanitizer --tool memcheck $L bench --arch smollm2-135m --device cuda --weights fp8 -p 8 -n 4 -r 1 -b 4 > "$OUT/memcheck-batch.txt" 2>&1
    echo "memcheck fp8 batch 4 rc=$?: $(grep -E 'ERROR SUMMARY' "$OUT/memcheck-batch.txt")" | tee -a "$OUT/checks.txt"
    ;;
batch-rows)
    for b in ${BATCHES:-1 4 16}; do
        for w in fp8 bf16; do
            echo "8B $w ctx 128 batch $b: $(tg $L --arch llama-3-8b --weights $w -p 128 -n 128 -b $b)" | tee -a "$OUT/batch.txt"
        done
        echo "8B fp8 ctx 4096 batch $b: $(tg $L --arch llama-3-8b --weights fp8 -p 4096 -n 64 -b $b)" | tee -a "$OUT/batch.txt"
        echo "SmolLM2 fp8 ctx 128 batch $b: $(tg $L --arch smollm2-135m --weights fp8 -p 128 -n 128 -b $b)" | tee -a "$OUT/batch.txt"
    done
    ;;
hf)
    timeout ${HF_TIMEOUT:-300} python3 bench/llama_gpu/transformers_decode.py --gen 64 --modes graph --ctx ${HF_CTX:-128,4096} --batch ${HF_BATCH:-1} 2>&1 \
        | grep -v Warning | tee "$OUT/transformers.txt" | grep -E "^TRANSFORMERS|Error" | head -20
    ;;
rows)
    for w in fp8 bf16; do
        echo "8B $w ctx 128: $(tg $L --arch llama-3-8b --weights $w -p 128 -n 128 ${ROWS_OPTS:-})" | tee -a "$OUT/rows.txt"
        echo "8B $w ctx 4096: $(tg $L --arch llama-3-8b --weights $w -p 4096 -n 128 ${ROWS_OPTS:-})" | tee -a "$OUT/rows.txt"
        [ "${ROWS:-all}" = decode ] && continue
        echo "8B $w pp512: $(tg $L --arch llama-3-8b --weights $w -p 512 -n 32 ${ROWS_OPTS:-})" | tee -a "$OUT/rows.txt"
        echo "SmolLM2 $w: $(tg $L --arch smollm2-135m --weights $w -p 128 -n 128 ${ROWS_OPTS:-})" | tee -a "$OUT/rows.txt"
    done
    echo "70B fp8: $(timeout 300 $L bench --arch llama-3-70b --weights fp8 -p 128 -n 64 --device cuda -r 2 ${ROWS_OPTS:-} 2>&1 | grep -E 'tg[0-9]+ @ ctx [0-9]+ \||rror' | tr '\n' ' ')" | tee -a "$OUT/rows.txt"
    ;;
ab)
    [ -n "${FLAG:-}${VARIANTS:-}" ] || [ -x /tmp/g/llama-old ] || { xz -dc .gpu/old/llama.xz > /tmp/g/llama-old && chmod +x /tmp/g/llama-old; }
    IFS=';' read -ra CS <<< "${AB:---arch llama-3-8b --weights fp8 -p 128 -n 128}"
    for r in $(seq 1 "${ROUNDS:-2}"); do
        for args in "${CS[@]}"; do
            if [ -n "${VARIANTS:-}" ]; then
                IFS='|' read -ra VS <<< "$VARIANTS"
                for v in "${VS[@]}"; do
                    echo "$args | ${v:-default} | round $r | $(tg $L $args $v)" | tee -a "$OUT/ab.txt"
                done
                continue
            fi
            if [ -n "${FLAG:-}" ]; then
                echo "$args | default | round $r | $(tg $L $args)" | tee -a "$OUT/ab.txt"
                echo "$args | $FLAG | round $r | $(tg $L $args $FLAG)" | tee -a "$OUT/ab.txt"
                continue
            fi
            echo "$args | llama-old ${OLD_OPTS:-} | round $r | $(tg /tmp/g/llama-old $args ${OLD_OPTS:-})" | tee -a "$OUT/ab.txt"
            echo "$args | llama | round $r | $(tg /tmp/g/llama $args)" | tee -a "$OUT/ab.txt"
        done
    done
    ;;
esac
done
