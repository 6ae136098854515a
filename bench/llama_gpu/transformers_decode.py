"""Hugging Face transformers decode on the Llama-3-8B architecture (random bf16 weights, batch 1 or
--batch sequences side by side, each with its own prompt: the rate counts every sequence's tokens), timed
the way gpt-fast runs it: a static KV cache, a prompt of --ctx tokens, then a greedy loop of --gen steps
whose one-token step (forward + argmax, the token fed back on the device) is

- `eager`: the step called eagerly;
- `compiled`: the step through torch.compile (inductor, no CUDA graphs of its own: with the static
  cache's in-place updates inductor skipped them on 2026-12-03);
- `graph`: the compiled step captured once in a CUDA graph and replayed (what `reduce-overhead` would do).

Each mode that fails prints why and the next one runs. One `TRANSFORMERS | mode | tg N @ ctx C | tokens/s`
line per figure. transformers_baseline.py (generate()) failed twice on the H200; this replaces it.
"""
import argparse, time, traceback, torch
from transformers import StaticCache
from llama3_random import llama3_8b

p = argparse.ArgumentParser()
p.add_argument("--gen", type=int, default=64)
p.add_argument("--ctx", default="128,4096")
p.add_argument("--modes", default="eager,compiled,graph")
p.add_argument("--batch", type=int, default=1)
a = p.parse_args()

cfg, model = llama3_8b()
g = torch.Generator(device="cuda").manual_seed(1)


def make_cache(n):
    for kw in (dict(config=cfg, max_cache_len=n), dict(config=cfg, max_batch_size=a.batch, max_cache_len=n, device="cuda", dtype=torch.bfloat16)):
        try:
            return StaticCache(**kw)
        except TypeError:
            continue
    raise RuntimeError("no StaticCache constructor fits")


def run(mode, ctx):
    cache = make_cache(ctx + a.gen + 8)
    x = torch.randint(0, cfg.vocab_size, (a.batch, ctx), device="cuda", generator=g)
    tok = torch.zeros((a.batch, 1), dtype=torch.long, device="cuda")
    pos = torch.zeros((1,), dtype=torch.long, device="cuda")

    def step():
        logits = model(input_ids=tok, cache_position=pos, past_key_values=cache, use_cache=True).logits
        tok.copy_(logits[:, -1].argmax(-1, keepdim=True))
        pos.add_(1)

    with torch.no_grad():
        out = model(input_ids=x, cache_position=torch.arange(ctx, device="cuda"), past_key_values=cache, use_cache=True)
        tok.copy_(out.logits[:, -1].argmax(-1, keepdim=True))
        pos.fill_(ctx)
        f = step
        if mode in ("compiled", "graph"):
            f = torch.compile(step, mode="max-autotune-no-cudagraphs" if mode == "graph" else "default")
        for _ in range(3):  # warm-up (compiles); these steps stay in the cache like any other
            f()
        torch.cuda.synchronize()
        if mode == "graph":
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                f()
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                f()
            f = graph.replay
        n = a.gen - 5
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        torch.cuda.synchronize()
        return n * a.batch / (time.perf_counter() - t0)


batch = f", batch {a.batch}" if a.batch > 1 else ""
for mode in a.modes.split(","):
    for ctx in (int(c) for c in a.ctx.split(",")):
        try:
            t0 = time.perf_counter()
            r = run(mode, ctx)
            print(f"TRANSFORMERS | {mode} | tg{a.gen} @ ctx {ctx}{batch} | {r:.1f} | {time.perf_counter() - t0:.0f} s with warm-up", flush=True)
        except Exception as e:
            print(f"TRANSFORMERS | {mode} | tg{a.gen} @ ctx {ctx}{batch} | failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
            traceback.print_exc()
            torch.cuda.synchronize()
