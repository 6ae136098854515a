#!/usr/bin/env bash
# Same-run A/B of two gpu-check builds on the device machine: .gpu/gpu-check-a.xz (before) and
# .gpu/gpu-check.xz (after), both carried. The prefill and decode sweeps of each, alternated, then the
# attention checks of the new build. Outputs under $OUT: {a,b}-prefill.txt, {a,b}-decode.txt, test.txt.
set -uo pipefail
OUT=${OUT:-bench/attention/results/latest}
mkdir -p "$OUT" /tmp/g/a
[ -x /tmp/g/a/gpu-check ] || { xz -dc .gpu/gpu-check-a.xz > /tmp/g/a/gpu-check && chmod +x /tmp/g/a/gpu-check; }
[ -x /tmp/g/gpu-check ] || { xz -dc .gpu/gpu-check.xz > /tmp/g/gpu-check && chmod +x /tmp/g/gpu-check; }
export COPY_TBPS=${COPY_TBPS:-$(python3 bench/fp8_gemm/copy_bw.py)}
echo "copy bandwidth: $COPY_TBPS TB/s" | tee "$OUT/copy_bw.txt"
timeout 150 /tmp/g/gpu-check test _attention 2>&1 | grep -v "^ok " | tail -6 | tee "$OUT/test.txt"
for what in prefill decode; do
    for v in a b; do
        bin=/tmp/g/gpu-check; [ $v = a ] && bin=/tmp/g/a/gpu-check
        timeout 200 $bin $what > "$OUT/$v-$what.txt" 2>&1
        echo "== $v $what"; grep -E "^(PREFILL|DECODE)" "$OUT/$v-$what.txt" | cut -d'|' -f2-9
    done
done
