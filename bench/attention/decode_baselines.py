"""torch SDPA (enable_gqa=True) on the decode shapes of `gpu-check decode`: one query token per sequence
against a bf16 KV cache [batch, kv_heads, ctx, head_dim], timed as CUDA-graph replays cycling over
cache copies larger than L2 (as ours). Prints `SDPA | model | batch | ctx | backend | us`."""
import contextlib

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [("llama3", 8, 4, 128), ("smollm2", 3, 3, 64)]
POINTS = [(1, 512), (1, 4096), (1, 32768), (1, 131072), (16, 512), (16, 4096), (16, 32768), (16, 131072)]
BACKENDS = [("default", None), ("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]

for model, kvh, group, d in SHAPES:
    for batch, ctx in POINTS:
        if batch * kvh * ctx * d > 2**31 - 1:
            continue
        nbytes = 2 * batch * kvh * ctx * d * 2
        copies = max(1, min(10, -(-(768 << 20) // nbytes)))
        q = torch.randn(batch, kvh * group, 1, d, device="cuda", dtype=torch.bfloat16)
        kv = [(torch.randn(batch, kvh, ctx, d, device="cuda", dtype=torch.bfloat16),
               torch.randn(batch, kvh, ctx, d, device="cuda", dtype=torch.bfloat16)) for _ in range(copies)]
        for name, backend in BACKENDS:
            def step(i):
                k, v = kv[i % copies]
                return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
            try:
                ctxm = sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext()
                with ctxm:
                    step(0)
                    torch.cuda.synchronize()
                    reps = 10 * copies
                    g = torch.cuda.CUDAGraph()
                    s = torch.cuda.Stream()
                    s.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(s):
                        for i in range(3):
                            step(i)
                    torch.cuda.current_stream().wait_stream(s)
                    with torch.cuda.graph(g):
                        for i in range(reps):
                            step(i)
                    g.replay()
                    torch.cuda.synchronize()
                    ts = []
                    for _ in range(5):
                        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        a.record(); g.replay(); b.record(); b.synchronize()
                        ts.append(a.elapsed_time(b) * 1e3 / reps)
                    ts.sort()
                    print(f"SDPA | {model} | {batch} | {ctx} | {name} | {ts[2]:.2f}", flush=True)
            except Exception as e:
                print(f"SDPA | {model} | {batch} | {ctx} | {name} | failed: {type(e).__name__}: {str(e)[:80]}", flush=True)
        del kv
        torch.cuda.empty_cache()
