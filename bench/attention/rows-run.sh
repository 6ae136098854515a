#!/usr/bin/env bash
# Issue 13's code generation (the online softmax in the tensor-core registers), on the device machine in
# two calls (each under 10 minutes; .gpu/gpu-check.xz and .gpu/llama.xz carried):
#   bash bench/attention/rows-run.sh check   # every GPU check, then run.sh all (decode and prefill
#                                            # sweeps, torch SDPA side by side, copy bandwidth)
#   bash bench/attention/rows-run.sh llama   # llama bench: pp512 and decode at ctx 128 / 4096 (8B fp8),
#                                            # 8B bf16 and SmolLM2 at ctx 128
#   bash bench/attention/rows-run.sh ours    # our decode and prefill sweeps only (no SDPA)
set -uo pipefail
OUT=${OUT:-bench/attention/results/latest}
mkdir -p "$OUT" /tmp/g
for b in gpu-check llama; do
    [ -x /tmp/g/$b ] || { [ -f .gpu/$b.xz ] && xz -dc .gpu/$b.xz > /tmp/g/$b && chmod +x /tmp/g/$b; }
done
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
*) echo "usage: rows-run.sh check|llama|ours"; exit 2 ;;
esac
