#!/usr/bin/env bash
# Old (.gpu/old/llama.xz) and new (.gpu/llama.xz) llama bench, alternated ROUNDS times, for each
# configuration in CONFIGS (';'-separated `llama bench` arguments); prints the decode rows.
set -uo pipefail
. bench/gpu/unpack.sh
[ -x /tmp/g/llama-old ] || { xz -dc .gpu/old/llama.xz > /tmp/g/llama-old && chmod +x /tmp/g/llama-old; }
CONFIGS=${CONFIGS:-"--arch smollm2-135m -p 128 -n 128;--arch llama-3-8b --weights fp8 -p 4096 -n 128"}
IFS=';' read -ra CS <<< "$CONFIGS"
for c in "${CS[@]}"; do
    for r in $(seq 1 "${ROUNDS:-2}"); do
        for b in llama-old llama; do
            echo "$b round $r: $(timeout 120 /tmp/g/$b bench $c --device cuda -r 3 2>/dev/null | grep -E 'tg[0-9]+ @ ctx [0-9]+ \|')"
        done
    done
done
