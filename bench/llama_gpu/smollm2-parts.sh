#!/usr/bin/env bash
# SmolLM2 (the default model) on the device, which the 98 MB GGUF reaches only in two halves (the
# working tree that travels is capped at 64 MiB a call): `split -n 2 -d MODEL.gguf part` here, then
# three calls on one warm machine, each with only what it needs untracked in the tree:
#   STEP=put with .gguf/part00, then STEP=put with .gguf/part01 (each copied to /tmp/m),
#   STEP=run with the binaries in .gpu/: gpu-check smollm2 (against the CPU backend and the
#   transformers goldens, FP8 against bf16, graph against eager) and a generation on each device.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/m
case "${STEP:-run}" in
put) cp .gguf/part* /tmp/m/ && ls -la /tmp/m ;;
run)
    . bench/gpu/unpack.sh
    M=/tmp/m/smollm2.gguf
    [ -f $M ] || cat /tmp/m/part00 /tmp/m/part01 > $M
    sha256sum $M | tee "$OUT/model.txt"
    timeout 420 /tmp/g/gpu-check smollm2 $M llama/tests/fixtures/goldens 2>&1 | tee "$OUT/smollm2.txt" | grep -v "^#"
    for dev in auto cpu; do
        timeout 60 /tmp/g/llama generate --model $M --device $dev --greedy -n 48 "The capital of France is" > "$OUT/generate-$dev.txt" 2>&1
        echo "rc=$?" >> "$OUT/generate-$dev.txt"; cat "$OUT/generate-$dev.txt"
    done
    ;;
esac
