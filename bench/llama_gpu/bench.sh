#!/usr/bin/env bash
# Issue 14's benchmark on the device machine, in phases (one device call each, under 10 minutes):
#   bash bench/llama_gpu/bench.sh speed      # llama bench: Llama-3-8B bf16/fp8 at ctx 128 and 4096, pp512,
#                                            # eager vs graph, PDL or not, Llama-3-70B fp8 (bf16 with WITH_70B_BF16)
#   bash bench/llama_gpu/bench.sh smollm2    # gpu-check smollm2 (needs /tmp/m/smollm2.gguf) + generate
#   bash bench/llama_gpu/bench.sh profile    # ncu per-kernel times of 1-token steps, sanitizers
#   bash bench/llama_gpu/bench.sh hf         # transformers side by side (transformers_decode.py: a static-cache
#                                            # decode loop eager, compiled and in a CUDA graph; prefill from
#                                            # transformers_baseline.py)
#   bash bench/llama_gpu/bench.sh rows       # the issue's rows: 8B fp8/bf16 at ctx 128 and 4096, pp512, 70B fp8
#   bash bench/llama_gpu/bench.sh combine    # the fp8 GEMM and RoPE checks on the GPU; 8B at ctx 128 with and
#                                            # without the fused combine and the tuned winners, same run; graph = eager
#   bash bench/llama_gpu/bench.sh tune       # H200 winners of the fp8 GEMM at M = 1 (gpu-check fp8 --write),
#                                            # merged into a copy of bench/fp8_gemm/tuned.tsv in $OUT
#   bash bench/llama_gpu/bench.sh tuned      # 8B and 70B fp8 with and without the winners, 8B bf16, ctx 4096, pp512,
#                                            # the fused GEMM checks, an ncu breakdown of an 8B fp8 step
#   bash bench/llama_gpu/bench.sh fuse       # this build against another (.gpu/old/llama.xz): the
#                                            # checks, graph = eager, 8B fp8/bf16, 70B fp8, pp512, SmolLM2
#   bash bench/llama_gpu/bench.sh decode     # this build against .gpu/old/llama.xz at ctx 128 and 4096
# Needs /tmp/g/llama and /tmp/g/gpu-check (carried as .gpu/*.xz, see NOTES.md). Outputs under $OUT.
set -uo pipefail
OUT=${OUT:-bench/llama_gpu/results/latest}
mkdir -p "$OUT"
L=/tmp/g/llama
. bench/gpu/unpack.sh
B() { # one llama bench run, its table rows appended to speed.md, stderr kept
    echo "## llama bench $*" >> "$OUT/speed-log.txt"
    timeout 300 $L bench "$@" > "$OUT/tmp.md" 2>> "$OUT/speed-log.txt"; echo "rc=$?" >> "$OUT/speed-log.txt"
    if [ ! -s "$OUT/speed.md" ]; then head -2 "$OUT/tmp.md" > "$OUT/speed.md"; fi
    tail -n +3 "$OUT/tmp.md" >> "$OUT/speed.md"; rm -f "$OUT/tmp.md"
}
case "${1:-}" in
speed)
    nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt"
    B --arch smollm2-135m --device cuda -p 128 -n 128 -r 3
    for w in fp8 bf16; do
        B --arch llama-3-8b --device cuda --weights $w -p 128 -n 128 -r 3
        B --arch llama-3-8b --device cuda --weights $w -p 4096 -n 128 -r 3
        B --arch llama-3-8b --device cuda --weights $w -p 512 -n 32 -r 3
    done
    B --arch llama-3-8b --device cuda --weights fp8 -p 128 -n 64 -r 3 --no-cuda-graph
    for w in fp8 bf16; do # what programmatic dependent launch is worth, same run
        B --arch llama-3-8b --device cuda --weights $w -p 128 -n 128 -r 3 --no-programmatic-launch
    done
    B --arch llama-3-70b --device cuda --weights fp8 -p 128 -n 64 -r 3
    [ -n "${WITH_70B_BF16:-}" ] && B --arch llama-3-70b --device cuda --weights bf16 -p 128 -n 64 -r 1
    cat "$OUT/speed.md"; grep -v "^\s*$" "$OUT/speed-log.txt" | grep -iv "making random\|measuring" | tail -40
    ;;
smollm2)
    M=/tmp/m/smollm2.gguf
    /tmp/g/gpu-check test llama_ops 2>&1 | tail -3 | tee "$OUT/test-llama-ops.txt"
    timeout 400 /tmp/g/gpu-check smollm2 "$M" llama/tests/fixtures/goldens 2>&1 | tee "$OUT/smollm2.txt"
    for dev in auto cpu; do
        $L generate --model "$M" --device $dev --greedy -n 64 "The capital of France is" > "$OUT/generate-$dev.txt" 2>&1
        echo "rc=$?" >> "$OUT/generate-$dev.txt"
    done
    cat "$OUT"/generate-*.txt
    ;;
profile)
    # Every kernel of a run of 1-token forwards (-p 1): a decode step's kernels, timed one by one by ncu
    # (eager launches: ncu serializes them anyway). bench_breakdown.py groups them by step.
    for w in fp8 bf16; do
        timeout 280 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
            $L bench --arch llama-3-8b --device cuda --weights $w -p 1 -n 1 -r 1 --no-cuda-graph \
            > "$OUT/ncu-8b-$w.csv" 2> "$OUT/ncu-8b-$w.err"; echo "ncu $w rc=$?"
        python3 bench/llama_gpu/breakdown.py "$OUT/ncu-8b-$w.csv" | tee "$OUT/breakdown-8b-$w.md"
    done
    # The sanitizers on the same kernels with no model file: SmolLM2's shapes, random weights, both
    # weight formats; memcheck through the recorded graph, racecheck on eager launches (it is slow).
    for w in bf16 fp8; do
        timeout 100 compute-sanitizer --tool memcheck $L bench --arch smollm2-135m --device cuda --weights $w \
            -p 8 -n 4 -r 1 > "$OUT/memcheck-$w.txt" 2>&1; echo "memcheck $w rc=$?"; tail -1 "$OUT/memcheck-$w.txt"
        [ -z "${RACECHECK:-}" ] && continue # racecheck did not finish in 100 s on 12-03: opt in
        timeout 100 compute-sanitizer --tool racecheck $L bench --arch smollm2-135m --device cuda --weights $w \
            -p 4 -n 1 -r 1 --no-cuda-graph > "$OUT/racecheck-$w.txt" 2>&1; echo "racecheck $w rc=$?"; tail -1 "$OUT/racecheck-$w.txt"
    done
    ;;
hf)
    timeout 500 python3 bench/llama_gpu/transformers_decode.py --gen 64 2>&1 \
        | grep -v Warning | tee "$OUT/transformers.txt" | grep -E "^TRANSFORMERS|Error" | head -20
    ;;
rows)
    nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt"
    for w in fp8 bf16; do
        B --arch llama-3-8b --device cuda --weights $w -p 128 -n 128 -r 3
        B --arch llama-3-8b --device cuda --weights $w -p 4096 -n 128 -r 3
    done
    B --arch llama-3-8b --device cuda --weights fp8 -p 512 -n 32 -r 3
    B --arch smollm2-135m --device cuda -p 128 -n 128 -r 3
    B --arch llama-3-70b --device cuda --weights fp8 -p 128 -n 64 -r 3
    cat "$OUT/speed.md"; grep -v "^\s*$" "$OUT/speed-log.txt" | grep -iv "making random\|measuring" | grep -v "^    BLOCK" | tail -12
    ;;
combine)
    nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt"
    for f in fp8_gemm rope; do
        timeout 150 /tmp/g/gpu-check test $f 2>&1 | grep -v "^ok " | tail -5 | tee "$OUT/test-$f.txt"
    done
    # What the fused combine and the tuned winners are each worth, same run (8B at ctx 128).
    B --arch llama-3-8b --device cuda --weights fp8 -p 128 -n 128 -r 3
    B --arch llama-3-8b --device cuda --weights fp8 -p 128 -n 128 -r 3 --fused-combine
    B --arch llama-3-8b --device cuda --weights fp8 -p 128 -n 128 -r 3 --no-tuned-configs
    B --arch llama-3-8b --device cuda --weights fp8 -p 128 -n 128 -r 3 --no-tuned-configs --fused-combine
    B --arch llama-3-8b --device cuda --weights bf16 -p 128 -n 128 -r 3
    B --arch llama-3-8b --device cuda --weights bf16 -p 128 -n 128 -r 3 --fused-combine
    timeout 120 /tmp/g/gpu-check graph-eager llama-3-8b fp8 1000 2>&1 | tail -2 | tee "$OUT/graph-eager.txt"
    cat "$OUT/speed.md"; grep -v "^\s*$" "$OUT/speed-log.txt" | grep -iv "making random\|measuring" | tail -20
    ;;
tune)
    cp bench/fp8_gemm/tuned.tsv "$OUT/tuned.tsv"
    FP8_BENCH_MS=${FP8_BENCH_MS:-1} COPY_TBPS=4.27 timeout 540 /tmp/g/gpu-check fp8 --write "$OUT/tuned.tsv" 2>&1 | tee "$OUT/fp8-tune.txt" | grep -v "^#"
    ;;
tuned)
    # This session's defaults (tuned winners, fused combines) against the heuristic, 8B and 70B; 8B at
    # ctx 4096 and pp512; the fused GEMM checks on the GPU; an ncu breakdown of an 8B fp8 step.
    nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt"
    timeout 100 /tmp/g/gpu-check test fused 2>&1 | tail -3 | tee "$OUT/test-fused.txt"
    timeout 100 /tmp/g/gpu-check test layer_chain 2>&1 | tail -3 | tee "$OUT/test-layer-chain.txt"
    B --arch llama-3-8b --device cuda --weights fp8 -p 128 -n 128 -r 3
    B --arch llama-3-8b --device cuda --weights fp8 -p 128 -n 128 -r 3 --no-tuned-configs
    B --arch llama-3-8b --device cuda --weights bf16 -p 128 -n 128 -r 3
    B --arch llama-3-70b --device cuda --weights fp8 -p 128 -n 64 -r 3
    B --arch llama-3-70b --device cuda --weights fp8 -p 128 -n 64 -r 3 --no-tuned-configs
    B --arch llama-3-8b --device cuda --weights fp8 -p 4096 -n 128 -r 3
    B --arch llama-3-8b --device cuda --weights fp8 -p 512 -n 32 -r 3
    cat "$OUT/speed.md"; grep -v "^\s*$" "$OUT/speed-log.txt" | grep -iv "making random\|measuring" | grep -v "^    BLOCK" | tail -20
    timeout 150 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
        $L bench --arch llama-3-8b --device cuda --weights fp8 -p 1 -n 1 -r 1 --no-cuda-graph \
        > "$OUT/ncu-8b-fp8.csv" 2> "$OUT/ncu-8b-fp8.err"; echo "ncu rc=$?"
    python3 bench/llama_gpu/breakdown.py "$OUT/ncu-8b-fp8.csv" | tee "$OUT/breakdown-8b-fp8.md" | head -30
    ;;
fuse)
    # Shorter and fewer small kernels (norms and quantization read a row once, the QKV combine inside
    # RoPE) against the build before (.gpu/old/llama.xz): the checks of the changed kernels, graph =
    # eager, then old and new alternated in one call.
    nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt"
    [ -x /tmp/g/llama-old ] || { xz -dc .gpu/old/llama.xz > /tmp/g/llama-old && chmod +x /tmp/g/llama-old; }
    for t in llama_ops rope quantize_rows layer_chain decode fused; do
        timeout 100 /tmp/g/gpu-check test $t > "$OUT/test-$t.txt" 2>&1; echo "test $t rc=$?: $(grep -h passed "$OUT/test-$t.txt" | tail -1)"
        grep FAIL "$OUT/test-$t.txt" | head -3
    done
    for w in fp8 bf16; do
        timeout 120 /tmp/g/gpu-check graph-eager llama-3-8b $w 300 2>&1 | tail -1 | tee "$OUT/graph-eager-$w.txt"
    done
    O() { local keep=$L; L=/tmp/g/llama-old; B "$@"; L=$keep; }
    for r in 1 2; do
        O --arch llama-3-8b --device cuda --weights fp8 -p 128 -n 128 -r 3
        B --arch llama-3-8b --device cuda --weights fp8 -p 128 -n 128 -r 3
    done
    for C in "--weights bf16 -p 128 -n 128" "--weights fp8 -p 512 -n 32"; do
        O --arch llama-3-8b --device cuda $C -r 3
        B --arch llama-3-8b --device cuda $C -r 3
    done
    O --arch smollm2-135m --device cuda -p 128 -n 128 -r 3
    B --arch smollm2-135m --device cuda -p 128 -n 128 -r 3
    [ -n "${WITH_70B:-}" ] && for b in O B; do $b --arch llama-3-70b --device cuda --weights fp8 -p 128 -n 64 -r 3; done
    grep -E "tg|pp" "$OUT/speed.md"
    ;;
decode)
    # The decode attention's changes (one-warp combine, FULL_D) against the build before
    # (.gpu/old/llama.xz), alternated in one call: 8B fp8 at contexts 4096 and 128 (DECODE_MORE=1: fp8 4096
    # again, bf16 4096), SmolLM2.
    nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt"
    [ -x /tmp/g/llama-old ] || { xz -dc .gpu/old/llama.xz > /tmp/g/llama-old && chmod +x /tmp/g/llama-old; }
    timeout 120 /tmp/g/gpu-check graph-eager llama-3-8b fp8 300 2>&1 | tail -1 | tee "$OUT/graph-eager-fp8.txt"
    O() { local keep=$L; L=/tmp/g/llama-old; B "$@"; L=$keep; }
    for C in "--weights fp8 -p 4096 -n 128" "--weights fp8 -p 128 -n 128" ${DECODE_MORE:+"--weights fp8 -p 4096 -n 128" "--weights bf16 -p 4096 -n 128"}; do
        O --arch llama-3-8b --device cuda $C -r 3
        B --arch llama-3-8b --device cuda $C -r 3
    done
    O --arch smollm2-135m --device cuda -p 128 -n 128 -r 3
    B --arch smollm2-135m --device cuda -p 128 -n 128 -r 3
    grep -E "tg|pp" "$OUT/speed.md"
    ;;
*) echo "usage: bench.sh speed|smollm2|profile|hf|rows|combine|tune|tuned|fuse|decode"; exit 2 ;;
esac
