#!/usr/bin/env bash
# Issue 15, wgmma on sm_90a: one device call each, outputs under $OUT.
#   bash bench/wgmma/run.sh check   # the GPU checks whose tiles lower to wgmma (matmul incl. linear_wgmma_tiles,
#                                   # fp8 GEMM, attention, prefill, decode, fused layer chain)
#   bash bench/wgmma/run.sh gemm    # GEMM 4096^3/8192^3 autotuned with wgmma off (DSL_WGMMA=0) and on, and
#                                   # cuBLAS (torch_gemm.py) in the same run
#   bash bench/wgmma/run.sh splitk  # the fp8 split-K GEMM at M = 32..256 on 8B/70B o (wgmma off and on) + cuBLAS
#   bash bench/wgmma/run.sh llama   # llama bench 8B fp8 pp512 / tg @ ctx 128, wgmma off and on
#   bash bench/wgmma/run.sh tables  # issue 15's tables in one call (wgmma on): the matmul and attention checks,
#                                   # GEMM 4096^3/8192^3 beside cuBLAS, fp8 split-K (8B/70B o, M = 1..256)
#                                   # beside cuBLAS FP8 and Triton, the copy bandwidth
#   bash bench/wgmma/run.sh pv      # register-A / n-major B: the matmul and attention checks, the prefill sweep
#                                   # of this build and of .gpu/old/gpu-check.xz (the build before), SDPA, then
#                                   # GEMM 4096^3/8192^3 of this build beside cuBLAS
#   bash bench/wgmma/run.sh prefill # the prefill checks, the sweep (warpgroup heuristic), SDPA, then llama bench
#                                   # 8B fp8 pp512/pp4096 and SmolLM2 with .gpu/old/llama.xz and .gpu/llama.xz
#   WGMMA="1" bash bench/wgmma/run.sh gemm   # only the given DSL_WGMMA settings (default "0 1")
# Needs .gpu/gpu-check.xz (and .gpu/llama.xz for llama), built by bench/gpu/build.sh.
set -uo pipefail
OUT=${OUT:-bench/wgmma/results/latest}
mkdir -p "$OUT"
. bench/gpu/unpack.sh
G=/tmp/g/gpu-check
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader > "$OUT/gpu.txt"
# The named gpu-check tests, each into $OUT/check-NAME.txt, with its summary and first failures printed.
checks() {
    for t in "$@"; do
        timeout 120 $G test $t > "$OUT/check-$t.txt" 2>&1
        echo "[$((SECONDS - start)) s] check $t rc=$?: $(grep -h passed "$OUT/check-$t.txt" | tail -1)"; grep FAIL "$OUT/check-$t.txt" | head -5
    done
}
case "${1:-}" in
check)
    for t in matmul fp8 attention llama_ops; do
        echo "## gpu-check test $t" >> "$OUT/check.txt"
        timeout 200 $G test $t >> "$OUT/check.txt" 2>&1; echo "rc=$?" >> "$OUT/check.txt"
    done
    grep -E "^## |passed|FAIL|rc=" "$OUT/check.txt"
    ;;
gemm)
    for w in ${WGMMA:-0 1}; do DSL_WGMMA=$w timeout 250 $G gemm > "$OUT/gemm-wgmma$w.txt" 2>&1; echo "wgmma=$w rc=$?"; done
    python3 bench/gemm/torch_gemm.py > "$OUT/torch.txt" 2>&1
    grep -h "^GEMM\|^TORCH" "$OUT"/gemm-wgmma*.txt "$OUT/torch.txt"
    ;;
splitk)
    export COPY_TBPS=${COPY_TBPS:-$(python3 bench/fp8_gemm/copy_bw.py)}
    for w in ${WGMMA:-0 1}; do
        for s in 8B.o 70B.o; do FP8_BENCH_MS=${MS:-32,64,128,256} DSL_WGMMA=$w timeout 200 $G fp8 --write /tmp/t$w.tsv --only $s; done > "$OUT/splitk-wgmma$w.txt" 2>&1
        echo "wgmma=$w rc=$?"
    done
    for s in 8B.o 70B.o; do FP8_BENCH_MS=${MS:-32,64,128,256} timeout 200 python3 bench/fp8_gemm/baselines.py $s; done > "$OUT/baselines.txt" 2>&1
    grep -h "^FP8" "$OUT"/splitk-wgmma*.txt; grep "cuBLAS FP8\|scaled_mm" "$OUT/baselines.txt" | head -20
    ;;
llama)
    # The fp8 GEMM's heuristic tiles checked first, then 8B fp8 prefill: the committed winners (tuned
    # under mma.sync) and the heuristic (wgmma tiles beyond M = 256), each with wgmma off and on.
    timeout 100 $G test fp8_gemm_tiles > "$OUT/check-heuristic.txt" 2>&1; tail -1 "$OUT/check-heuristic.txt"
    for t in "" "--no-tuned-configs"; do
        for w in ${WGMMA:-0 1}; do
            echo "## wgmma=$w llama bench $t" >> "$OUT/llama.txt"
            DSL_WGMMA=$w timeout 100 /tmp/g/llama bench --arch llama-3-8b --device cuda --weights fp8 -p 512 -n 4 -r 2 $t 2>&1 | grep pp512 >> "$OUT/llama.txt"
        done
    done
    cat "$OUT/llama.txt"
    ;;
tables)
    start=$SECONDS
    checks matmul attention
    timeout 200 $G gemm > "$OUT/gemm.txt" 2>&1; echo "[$((SECONDS - start)) s] gemm rc=$?"
    timeout 60 python3 bench/gemm/torch_gemm.py > "$OUT/torch.txt" 2>&1
    grep -h "^GEMM\|^TORCH" "$OUT/gemm.txt" "$OUT/torch.txt" | cut -d'|' -f1-6
    export COPY_TBPS=$(python3 bench/fp8_gemm/copy_bw.py); echo "copy bandwidth $COPY_TBPS TB/s" | tee "$OUT/copy_bw.txt"
    for s in 8B.o 70B.o; do FP8_BENCH_MS=${MS:-1,16,32,64,128,256} timeout 80 $G fp8 --write /tmp/t.tsv --only $s; done > "$OUT/splitk.txt" 2>&1
    echo "[$((SECONDS - start)) s] splitk"; grep -h "^FP8" "$OUT/splitk.txt" | cut -d'|' -f2-9
    for s in 8B.o 70B.o; do FP8_BENCH_MS=${MS:-1,16,32,64,128,256} timeout 60 python3 bench/fp8_gemm/baselines.py $s; done > "$OUT/baselines.txt" 2>&1
    echo "[$((SECONDS - start)) s] baselines"; grep "^BASE" "$OUT/baselines.txt" | cut -d'|' -f2-8
    ;;
pv)
    start=$SECONDS
    checks matmul attention
    [ -x /tmp/g/old ] || { xz -dc .gpu/old/gpu-check.xz > /tmp/g/old && chmod +x /tmp/g/old; }
    timeout 120 $G prefill > "$OUT/prefill-new.txt" 2>&1; echo "[$((SECONDS - start)) s] prefill new rc=$?"
    timeout 120 /tmp/g/old prefill > "$OUT/prefill-old.txt" 2>&1; echo "[$((SECONDS - start)) s] prefill old rc=$?"
    PYTHONUNBUFFERED=1 timeout 120 python3 bench/attention/prefill_baselines.py > "$OUT/prefill-sdpa.txt" 2>&1; echo "[$((SECONDS - start)) s] sdpa rc=$?"
    paste -d'\n' <(grep "^PREFILL" "$OUT/prefill-new.txt" | sed 's/^/new /') <(grep "^PREFILL" "$OUT/prefill-old.txt" | sed 's/^/old /') | cut -c1-160
    grep -v "^#" "$OUT/prefill-sdpa.txt" | tail -20
    timeout 150 $G gemm > "$OUT/gemm.txt" 2>&1; echo "[$((SECONDS - start)) s] gemm rc=$?"
    timeout 60 python3 bench/gemm/torch_gemm.py > "$OUT/torch.txt" 2>&1
    grep -h "^GEMM\|^TORCH" "$OUT/gemm.txt" "$OUT/torch.txt" | cut -d'|' -f1-6
    ;;
prefill)
    start=$SECONDS
    checks prefill_attention
    timeout 120 $G prefill > "$OUT/prefill.txt" 2>&1; echo "[$((SECONDS - start)) s] prefill rc=$?"
    grep "^PREFILL" "$OUT/prefill.txt" | cut -d'|' -f2-
    PYTHONUNBUFFERED=1 timeout 120 python3 bench/attention/prefill_baselines.py 2>/dev/null | grep -v "efficient" > "$OUT/prefill-sdpa.txt"
    echo "[$((SECONDS - start)) s] sdpa"; grep -v "^#\|smollm2" "$OUT/prefill-sdpa.txt" | cut -d'|' -f2-
    [ -x /tmp/g/oldllama ] || { xz -dc .gpu/old/llama.xz > /tmp/g/oldllama && chmod +x /tmp/g/oldllama; }
    for args in "--arch llama-3-8b --weights fp8 -p 512 -n 4" "--arch llama-3-8b --weights fp8 -p 4096 -n 4" "--arch smollm2-135m -p 4096 -n 4"; do
        for l in oldllama llama; do
            echo "## $l bench $args: $(timeout 100 /tmp/g/$l bench $args --device cuda -r 2 2>/dev/null | grep -E '^\|.*pp' | tr -s ' ')"
        done
    done
    ;;
*) echo "usage: run.sh check|gemm|splitk|llama|tables|pv|prefill"; exit 2 ;;
esac
