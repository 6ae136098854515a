"""cuBLAS side of `gpu-check gemm`: torch.matmul f16 at 4096^3 and 8192^3, timed like ours
(CUDA events, 2 warm-ups, median of 5, random data)."""
import torch

def median_ms(f, warm=2, reps=5):
    for _ in range(warm):
        f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); f(); e.record(); e.synchronize()
        ts.append(s.elapsed_time(e))
    return sorted(ts)[reps // 2]

for n in (4096, 8192):
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    ms = median_ms(lambda: torch.matmul(a, b))
    print(f"TORCH matmul | {n} | f16 | cuBLAS | {ms:.3f} | {2 * n**3 / (ms * 1e-3) / 1e12:.1f}")
