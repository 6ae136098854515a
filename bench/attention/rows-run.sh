#!/usr/bin/env bash
# Issue 13's code generation (the online softmax in the tensor-core registers), on the device machine in
# two calls (each under 10 minutes; .gpu/gpu-check.xz and .gpu/llama.xz carried):
#   bash bench/attention/rows-run.sh check   # every GPU check, then run.sh all (decode and prefill
#                                            # sweeps, torch SDPA side by side, copy bandwidth)
#   bash bench/attention/rows-run.sh llama   # llama bench: pp512 and decode at ctx 128 / 4096 (8B fp8),
#                                            # 8B bf16 and SmolLM2 at ctx 128
#   bash bench/attention/rows-run.sh ours    # our decode and prefill sweeps only (no SDPA)
#   bash bench/attention/rows-run.sh sanitize  # the attention checks and RoPE + append under compute-sanitizer
#                                              # memcheck, racecheck and synccheck
#   bash bench/attention/rows-run.sh prefill   # the prefill checks, then run.sh prefill (ours and SDPA)
#   bash bench/attention/rows-run.sh graph     # the Llama decode graph against eager launches (random weights)
#   bash bench/attention/rows-run.sh decode    # the decode checks, then run.sh decode (the sweep of splits,
#                                              # step sizes, warps and stages; SDPA; copy bandwidth)
set -uo pipefail
OUT=${OUT:-bench/attention/results/latest}
mkdir -p "$OUT"
. bench/gpu/unpack.sh
case "${1:-}" in
check)
    nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt"
    timeout 330 /tmp/g/gpu-check test 2>&1 | grep -v "^ok " | tail -25 | tee "$OUT/test.txt"
    OUT="$OUT" timeout 250 bash bench/attention/run.sh all > "$OUT/run-log.txt" 2>&1
    grep -E "^(DECODE|PREFILL)|copy" "$OUT"/decode-ours.txt "$OUT"/prefill-ours.txt "$OUT"/copy_bw.txt | cut -c1-220
    ;;
llama)
    L=/tmp/g/llama
    for args in "--arch llama-3-8b --weights fp8 -p 512 -n 32" "--arch llama-3-8b --weights fp8 -p 128 -n 128" \
        "--arch llama-3-8b --weights fp8 -p 4096 -n 128" "--arch llama-3-8b --weights bf16 -p 128 -n 128" \
        "--arch smollm2-135m -p 128 -n 128"; do
        echo "## llama bench $args" | tee -a "$OUT/llama.md"
        timeout 150 $L bench $args --device cuda -r 3 2>> "$OUT/llama-log.txt" | tail -n +3 | tee -a "$OUT/llama.md"
    done
    ;;
ours)
    timeout 200 /tmp/g/gpu-check decode 2>&1 | tee "$OUT/decode-ours.txt" | grep "^DECODE" | cut -c1-200
    timeout 200 /tmp/g/gpu-check prefill 2>&1 | tee "$OUT/prefill-ours.txt" | grep "^PREFILL"
    ;;
sanitize)
    for tool in memcheck racecheck synccheck; do
        for f in _attention rope_kv_append; do
            echo "## compute-sanitizer --tool $tool gpu-check test $f" | tee -a "$OUT/sanitize.txt"
            timeout 150 compute-sanitizer --tool $tool /tmp/g/gpu-check test $f 2>&1 | grep -v "^ok " | tail -6 | tee -a "$OUT/sanitize.txt"
        done
    done
    ;;
prefill)
    timeout 120 /tmp/g/gpu-check test prefill_attention 2>&1 | grep -v "^ok " | tail -6 | tee "$OUT/test-prefill.txt"
    OUT="$OUT" timeout 300 bash bench/attention/run.sh prefill > "$OUT/run-log.txt" 2>&1
    grep -E "^PREFILL" "$OUT"/prefill-ours.txt | cut -c1-200
    grep -vE "^#" "$OUT"/prefill-sdpa.txt | tail -20
    ;;
decode)
    timeout 120 /tmp/g/gpu-check test decode 2>&1 | grep -v "^ok " | tail -6 | tee "$OUT/test-decode.txt"
    OUT="$OUT" timeout 400 bash bench/attention/run.sh decode > "$OUT/run-log.txt" 2>&1
    grep -E "^DECODE" "$OUT"/decode-ours.txt | cut -c1-240
    grep -vE "^#" "$OUT"/decode-sdpa.txt | tail -20
    ;;
graph)
    for a in "smollm2-135m bf16 300" "llama-3-8b fp8 300" "llama-3-8b bf16 100"; do
        echo "## gpu-check graph-eager $a" | tee -a "$OUT/graph-eager.txt"
        timeout 150 /tmp/g/gpu-check graph-eager $a 2>&1 | tail -4 | tee -a "$OUT/graph-eager.txt"
    done
    ;;
*) echo "usage: rows-run.sh check|llama|ours|sanitize|prefill|graph|decode"; exit 2 ;;
esac
