"""Joins `gpu-check fp8` (FP8 lines) and baselines.py (BASE lines) into one markdown table:
ours (tuned), % of the roofline, ours without programmatic dependent launch, cuBLAS FP8, Triton split-K FP8, cuBLAS bf16, and our speedups."""
import sys

ours, base = {}, {}
for line in open(sys.argv[1]):
    if line.startswith("FP8 |"):
        f = [x.strip() for x in line.split("|")]
        serial = next((float(x.split()[1]) for x in f[11:] if x.startswith("serial ")), float("nan"))
        ours[(f[1], int(f[2]))] = dict(n=int(f[3]), k=int(f[4]), cfg=f[5], us=float(f[6]), h_us=float(f[8]), roof=float(f[9]), serial=serial)
for line in open(sys.argv[2]):
    if line.startswith("BASE |"):
        f = [x.strip() for x in line.split("|")]
        base[(f[1], int(f[2]), f[5])] = float(f[6])

print("| shape (N x K) | M | ours us | % roofline | ours without PDL us | cuBLAS fp8 us | Triton split-K us | cuBLAS bf16 us | vs cuBLAS fp8 | vs Triton | config |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
met16, met64 = [], []
for (shape, m), o in ours.items():
    cb = base.get((shape, m, "cublas_fp8"), float("nan"))
    tr = base.get((shape, m, "triton_splitk_fp8"), float("nan"))
    bf = base.get((shape, m, "cublas_bf16"), float("nan"))
    pct = 100 * o["roof"] / o["us"]
    print(f"| {shape} ({o['n']}x{o['k']}) | {m} | {o['us']:.1f} | {pct:.0f}% | {o['serial']:.1f} | {cb:.1f} | {tr:.1f} | {bf:.1f} | {cb / o['us']:.2f}x | {tr / o['us']:.2f}x | {o['cfg']} |")
    if m <= 16:
        met16.append(pct >= 90)
    if m <= 64:
        met64.append(o["us"] < cb and o["us"] < tr)
print()
print(f"M <= 16 at >= 90% of the roofline: {sum(met16)}/{len(met16)}; faster than cuBLAS fp8 and Triton at M <= 64: {sum(met64)}/{len(met64)}")
