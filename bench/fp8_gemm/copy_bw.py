"""Prints the device-to-device copy bandwidth in TB/s (bytes read + bytes written), the roofline's
denominator: a 2 GiB torch copy_, median of 20 timed copies after warm-up."""
import torch

n = 2 << 30
x = torch.empty(n, dtype=torch.uint8, device="cuda").random_()
y = torch.empty_like(x)
for _ in range(3):
    y.copy_(x)
ts = []
for _ in range(20):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record(); y.copy_(x); b.record(); b.synchronize()
    ts.append(a.elapsed_time(b) / 1e3)
ts.sort()
print(f"{2 * n / ts[len(ts) // 2] / 1e12:.3f}")
