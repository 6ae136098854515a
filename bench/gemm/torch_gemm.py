"""cuBLAS side of `gpu-check gemm`: torch.matmul f16/bf16 and torch._scaled_mm e4m3 (B stored [N, K],
bf16 out, per-tensor scales) at 4096^3 and 8192^3, timed like ours (CUDA events, 1 warm-up + the
first call, median of 5, random data)."""
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
    tf = lambda ms: 2 * n**3 / (ms * 1e-3) / 1e12
    for dt, name in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        a = torch.randn(n, n, device="cuda", dtype=dt)
        b = torch.randn(n, n, device="cuda", dtype=dt)
        ms = median_ms(lambda: torch.matmul(a, b))
        print(f"TORCH matmul<{name}> | {n} | cuBLAS | {ms:.3f} | {tf(ms):.1f}")
        if dt == torch.bfloat16:  # b as a [N, K] weight: x @ w.t(), our `linear<bf16>`
            ms = median_ms(lambda: torch.nn.functional.linear(a, b))
            print(f"TORCH linear<bf16> | {n} | cuBLAS | {ms:.3f} | {tf(ms):.1f}")
    a = (4 * torch.randn(n, n, device="cuda")).to(torch.float8_e4m3fn)
    w = (4 * torch.randn(n, n, device="cuda")).to(torch.float8_e4m3fn)  # [N, K]
    one = torch.tensor(1 / 8, device="cuda")
    ms = median_ms(lambda: torch._scaled_mm(a, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
    print(f"TORCH linear<e4m3,bf16> | {n} | cuBLAS _scaled_mm | {ms:.3f} | {tf(ms):.1f}")
