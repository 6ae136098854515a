#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, with .gpu/gpu-check.xz carried (bench/gpu/build.sh):
# the kernel checks (plain, under compute-sanitizer memcheck and racecheck), compile times, and the
# benchmarks side by side with torch. Results go to $OUT (or bench/gpu/results/latest).
set -uo pipefail
OUT=${OUT:-bench/gpu/results/latest}
mkdir -p "$OUT" /tmp/g
xz -dc .gpu/gpu-check.xz > /tmp/g/gpu-check && chmod +x /tmp/g/gpu-check
G=/tmp/g/gpu-check
# One file for the plain checks: the GPU, then the native-target run, then the sm_80 code on this GPU.
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv > "$OUT/test.txt" 2>&1
$G test >> "$OUT/test.txt" 2>&1; echo "test rc=$?" >> "$OUT/test.txt"
DSL_TARGET=sm_80 $G test >> "$OUT/test.txt" 2>&1; echo "test (sm_80 code) rc=$?" >> "$OUT/test.txt"
compute-sanitizer --tool memcheck $G test 2>&1 | grep -v '^ok' > "$OUT/memcheck.txt"
compute-sanitizer --tool racecheck $G test 2>&1 | grep -v '^ok' > "$OUT/racecheck.txt"
$G compile > "$OUT/compile.txt" 2>&1
$G bench > "$OUT/bench-ours.txt" 2>&1
python3 bench/gpu/torch_baseline.py > "$OUT/bench-torch.txt" 2>&1
python3 bench/gpu/compare.py "$OUT/bench-ours.txt" "$OUT/bench-torch.txt" > "$OUT/summary.txt" 2>&1
tail -2 "$OUT/test.txt"; tail -1 "$OUT/memcheck.txt"; tail -1 "$OUT/racecheck.txt"; cat "$OUT/summary.txt"
