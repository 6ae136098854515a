"""Sets our benchmark lines beside torch's: for each (op, shape, dtype), our best config vs torch's
fastest, as a speedup and as a fraction of the measured copy bandwidth (3.02 TB/s on the H100)."""
import sys

COPY_BW = 3020.0  # GB/s, read + write, measured on the H100 (DEVELOPERS.md)

def rows(path, tag):
    """{(op, shape, dtype): (ms, GB/s, config)} keeping the fastest config of each."""
    out = {}
    for line in open(path):
        if not line.startswith(tag):
            continue
        op, shape, dtype, config, ms, gbs = [p.strip() for p in line[len(tag):].split("|")]
        key = (op, shape, dtype)
        if key not in out or float(ms) < out[key][0]:
            out[key] = (float(ms), float(gbs), config)
    return out

ours, torch = rows(sys.argv[1], "BENCH "), rows(sys.argv[2], "TORCH ")
print("| op | shape | dtype | ours ms (config) | torch ms (which) | speedup | ours % of copy BW |")
print("|---|---|---|---|---|---|---|")
for key, (ms, gbs, cfg) in ours.items():
    candidates = [v for k, v in torch.items() if k[1:] == key[1:] and k[0].startswith(key[0])]
    if not candidates:
        continue
    tms, _, tcfg = min(candidates)
    print(f"| {key[0]} | {key[1]} | {key[2]} | {ms:.4f} ({cfg}) | {tms:.4f} ({tcfg}) | {tms / ms:.2f}x | {100 * gbs / COPY_BW:.0f}% |")
