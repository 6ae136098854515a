"""Per-kernel time breakdown of one decode step from `ncu --csv --metrics gpu__time_duration.sum` over
`llama bench -p 1 -n 1 -r 1 --no-cuda-graph` (every forward is one token).

A step starts at its embedding kernel. That run makes six forwards (a warm-up prefill and two decode
steps, the timed prefill, a decode step choosing on the device, one with logits to the host); the
step reported is the fifth: a decode step ending in the argmax kernels, as the graph replays it.
Prints a markdown table: kernel, launches in the step, total µs, share.
"""
import csv, sys, collections

rows = []
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    v = float(r["Metric Value"].replace(",", ""))
    unit = r["Metric Unit"]
    us = v / 1000 if unit == "nsecond" else v * 1000 if unit == "msecond" else v if unit == "usecond" else v / 1e3
    rows.append((r["Kernel Name"], us))

starts = [i for i, (k, _) in enumerate(rows) if "embed" in k]
if len(starts) < 6:
    sys.exit(f"expected 6 forwards (embedding launches), found {len(starts)} in {len(rows)} kernels")
step = rows[starts[4]:starts[5]]


def family(k):
    for key, name in [("rope_kv_append", "RoPE + KV append (fused)"), ("rmsnorm_quant", "RMSNorm + quantization (fused)"), ("silu_mul_quant", "SiLU*mul + quantization (fused)"),
                      ("silu_mul_block_max", "SiLU*mul (+ block maxima)"), ("quantize_blocks", "activation quantization"),
                      ("scaled_mm", "GEMM"), ("gemm", "GEMM"), ("splitk", "GEMM"), ("reduce", "GEMM"), ("quant", "activation quantization"),
                      ("decode", "attention"), ("append", "KV append"), ("rope", "RoPE"), ("rmsnorm", "RMSNorm"),
                      ("argmax", "argmax"), ("silu", "SiLU*mul"), ("add", "residual add"), ("embed", "embedding")]:
        if key in k.lower():
            return name
    return "other"


by_kernel = collections.OrderedDict()
for k, us in step:
    n, t = by_kernel.get(k, (0, 0.0))
    by_kernel[k] = (n + 1, t + us)
total = sum(us for _, us in step)
print(f"One decode step: {len(step)} kernels, {total:.1f} µs of kernel time (sum of ncu durations)\n")
print("| kernel | family | launches | µs | share |")
print("| --- | --- | ---: | ---: | ---: |")
for k, (n, t) in sorted(by_kernel.items(), key=lambda x: -x[1][1]):
    print(f"| `{k[:70]}` | {family(k)} | {n} | {t:.1f} | {100 * t / total:.1f}% |")
fam = collections.Counter()
for k, us in step:
    fam[family(k)] += us
print("\n| family | µs | share |")
print("| --- | ---: | ---: |")
for k, t in fam.most_common():
    print(f"| {k} | {t:.1f} | {100 * t / total:.1f}% |")
