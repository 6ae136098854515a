"""torch SDPA on the prefill shapes of `gpu-check prefill`: bf16, one sequence, queries [1, heads, seq, d]
against keys/values [1, kv_heads, seq, d] (enable_gqa where kv_heads < heads), causal and not, per
backend. Median of CUDA-event times. Prints `SDPA-PREFILL | model | seq | causal | backend | TFLOP/s`."""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [("llama3-mha", 32, 1, 128), ("llama3", 8, 4, 128), ("smollm2", 3, 3, 64)]
BACKENDS = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION)]

for model, kvh, group, d in SHAPES:
    heads = kvh * group
    for seq in [1024, 4096, 16384]:
        q = torch.randn(1, heads, seq, d, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, kvh, seq, d, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(1, kvh, seq, d, device="cuda", dtype=torch.bfloat16)
        for causal in [True, False]:
            flops = 4.0 * seq * seq * d * heads / (2.0 if causal else 1.0)
            for name, backend in BACKENDS:
                try:
                    with sdpa_kernel([backend]):
                        f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=group > 1)
                        for _ in range(3):
                            f()
                        torch.cuda.synchronize()
                        ts = []
                        for _ in range(7):
                            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                            a.record(); f(); b.record(); b.synchronize()
                            ts.append(a.elapsed_time(b))
                        ts.sort()
                        print(f"SDPA-PREFILL | {model} | {seq} | {causal} | {name} | {flops / (ts[3] * 1e-3) / 1e12:.1f}", flush=True)
                except Exception as e:
                    print(f"SDPA-PREFILL | {model} | {seq} | {causal} | {name} | failed: {type(e).__name__}: {str(e)[:80]}", flush=True)
