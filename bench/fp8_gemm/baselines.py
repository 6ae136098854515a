"""Baselines for `gpu-check fp8` on the same shapes, timed the same way (CUDA-graph replays cycling
through enough weight copies that weights stream from HBM; median of 3 replays / launches per replay):

- cuBLAS FP8: torch._scaled_mm(a, w.t(), per-tensor scales, bf16 out);
- a Triton split-K FP8 kernel written for this benchmark following the TK-GEMM method (split K over a
  third grid axis, fp8 tl.dot with f32 accumulation, scales in the epilogue, atomic adds into the
  zeroed bf16 output when split_k > 1); best of a few TK-GEMM-style configs per problem;
- cuBLAS bf16: x @ w.t() in bf16.

Prints `BASE | shape | M | N | K | impl | us | config` lines."""
import os
import sys
import torch
import triton
import triton.language as tl

SHAPES = [("70B.qkv", 10240, 8192), ("70B.o", 8192, 8192), ("70B.gate_up", 28672, 8192), ("70B.down", 8192, 28672),
          ("8B.qkv", 6144, 4096), ("8B.o", 4096, 4096), ("8B.gate_up", 28672, 4096), ("8B.down", 4096, 14336)]
MS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096]
# `FP8_BENCH_MS=64,256`: only these M (as `gpu-check fp8`).
if os.environ.get("FP8_BENCH_MS"):
    MS = [int(x) for x in os.environ["FP8_BENCH_MS"].split(",")]


@triton.jit
def splitk_fp8(a_ptr, b_ptr, c_ptr, sa_ptr, sb_ptr, M, N, K, stride_am, stride_bn, stride_cm,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
               GROUP_M: tl.constexpr):
    pid = tl.program_id(0)
    pid_k = tl.program_id(1)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    # Grouped ordering for L2 reuse (TK-GEMM).
    width = GROUP_M * grid_n
    group_id = pid // width
    group_size = min(grid_m - group_id * GROUP_M, GROUP_M)
    pid_m = group_id * GROUP_M + (pid % group_size)
    pid_n = (pid % width) // group_size
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    a = a_ptr + rm[:, None] * stride_am + rk[None, :]
    b = b_ptr + rn[None, :] * stride_bn + rk[:, None]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K * SPLIT_K)):
        k_left = K - k * BLOCK_K * SPLIT_K  # rk already holds this split's offset
        av = tl.load(a, mask=(rm[:, None] < M) & (rk[None, :] < k_left), other=0.0)
        bv = tl.load(b, mask=(rn[None, :] < N) & (rk[:, None] < k_left), other=0.0)
        acc = tl.dot(av, bv, acc)
        a += BLOCK_K * SPLIT_K
        b += BLOCK_K * SPLIT_K
    acc = acc * (tl.load(sa_ptr) * tl.load(sb_ptr))
    c = c_ptr + rm[:, None] * stride_cm + rn[None, :]
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    if SPLIT_K == 1:
        tl.store(c, acc.to(tl.bfloat16), mask=mask)
    else:
        tl.atomic_add(c, acc.to(tl.bfloat16), mask=mask)


def triton_configs(m):
    # (BLOCK_M, BLOCK_N, BLOCK_K, SPLIT_K, num_stages, num_warps): TK-GEMM's small-M config first.
    if m <= 64:
        return [(64, 64, 512, 4, 3, 8), (16, 64, 256, 4, 4, 4), (32, 64, 256, 8, 4, 4), (64, 128, 256, 2, 3, 8), (16, 128, 256, 8, 3, 4)]
    if m <= 256:
        return [(64, 128, 256, 2, 3, 8), (128, 128, 128, 1, 3, 8), (64, 64, 512, 4, 3, 8)]
    return [(128, 128, 128, 1, 3, 8), (128, 256, 64, 1, 3, 8), (128, 128, 64, 1, 4, 4)]


def graph_us(fn, reps):
    """µs per call: `reps` calls captured in one CUDA graph; median of 3 timed replays."""
    fn(0)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn(0)
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        for i in range(reps):
            fn(i)
    g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(3):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); g.replay(); b.record(); b.synchronize()
        ts.append(a.elapsed_time(b) * 1e3 / reps)
    return sorted(ts)[1]


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else None
    dev = torch.cuda.get_device_name()
    print(f"device: {dev}, torch {torch.__version__}, triton {triton.__version__}")
    one = torch.tensor(1 / 8, device="cuda")
    for name, n, k in SHAPES:
        if only and only not in name:
            continue
        copies = max(2, min(32, -(-(512 << 20) // (n * k))))
        ws8 = [((torch.rand(n, k, device="cuda") - 0.5) * 8).to(torch.float8_e4m3fn) for _ in range(copies)]
        for m in MS:
            reps = max(20, 2 * copies)
            a8 = ((torch.rand(m, k, device="cuda") - 0.5) * 8).to(torch.float8_e4m3fn)
            out = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
            us = graph_us(lambda i: torch._scaled_mm(a8, ws8[i % copies].t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16), reps)
            print(f"BASE | {name} | {m} | {n} | {k} | cublas_fp8 | {us:.2f} | _scaled_mm", flush=True)
            best = None
            for (bm, bn, bk, sk, st, nw) in triton_configs(m):
                grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn), sk)
                def call(i, bm=bm, bn=bn, bk=bk, sk=sk, st=st, nw=nw, grid=grid):
                    if sk > 1:
                        out.zero_()
                    splitk_fp8[grid](a8, ws8[i % copies], out, one, one, m, n, k, k, k, n,
                                     BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=sk, GROUP_M=8, num_stages=st, num_warps=nw)
                try:
                    t = graph_us(call, reps)
                except Exception as e:  # a config that does not fit (shared memory...)
                    print(f"# triton {bm}x{bn}x{bk} split {sk}: {type(e).__name__}", flush=True)
                    continue
                if best is None or t < best[0]:
                    best = (t, f"{bm}x{bn}x{bk} split {sk} stages {st} warps {nw}")
            if best:
                print(f"BASE | {name} | {m} | {n} | {k} | triton_splitk_fp8 | {best[0]:.2f} | {best[1]}", flush=True)
            del a8
        del ws8
        wsb = [(torch.rand(n, k, device="cuda", dtype=torch.bfloat16) - 0.5) for _ in range(max(2, copies // 2))]
        for m in MS:
            x = torch.rand(m, k, device="cuda", dtype=torch.bfloat16)
            us = graph_us(lambda i: x @ wsb[i % len(wsb)].t(), max(20, 2 * len(wsb)))
            print(f"BASE | {name} | {m} | {n} | {k} | cublas_bf16 | {us:.2f} | matmul", flush=True)
        del wsb
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
