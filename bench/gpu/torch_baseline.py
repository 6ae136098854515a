"""Torch side of bench/gpu: the same operations and shapes as `gpu-check bench`, timed the same way
(CUDA events around each run after warm-up, median of 30, random data)."""
import torch

def median_ms(f, warm=5, reps=30):
    for _ in range(warm):
        f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); f(); e.record(); e.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[reps // 2]

def gb(nbytes, ms):
    return nbytes / (ms * 1e-3) / 1e9

torch.manual_seed(0)
dev = "cuda"
print(f"device: {torch.cuda.get_device_name()} torch {torch.__version__}")
n = 64 << 20
x = torch.randn(n, device=dev)
y = torch.randn(n, device=dev)
out = torch.empty_like(x)
ms = median_ms(lambda: out.copy_(x)); print(f"TORCH copy | {n} | f32 | copy_ | {ms:.4f} | {gb(8 * n, ms):.1f}")
ms = median_ms(lambda: torch.add(x, y, out=out)); print(f"TORCH add | {n} | f32 | add(out=) | {ms:.4f} | {gb(12 * n, ms):.1f}")
del x, y, out

DT = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
for name, rows, cols in [("f32", 4096, 4096), ("f16", 4096, 4096), ("bf16", 16384, 4096), ("f32", 32768, 1024), ("f16", 32768, 1024)]:
    dt = DT[name]
    x = (torch.randn(rows, cols, device=dev) * 2).to(dt)
    w = x[0].clone()
    nbytes = 2 * rows * cols * x.element_size()
    ms = median_ms(lambda: torch.softmax(x, dim=-1))
    print(f"TORCH softmax | {rows}x{cols} | {name} | torch.softmax | {ms:.4f} | {gb(nbytes, ms):.1f}")
    ms = median_ms(lambda: torch.nn.functional.rms_norm(x, (cols,), w, 1e-6))
    print(f"TORCH rmsnorm | {rows}x{cols} | {name} | F.rms_norm | {ms:.4f} | {gb(nbytes, ms):.1f}")
    def eager():
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * w.float()).to(dt)
    ms = median_ms(eager)
    print(f"TORCH rmsnorm_eager | {rows}x{cols} | {name} | llama-style eager | {ms:.4f} | {gb(nbytes, ms):.1f}")
    del x, w
