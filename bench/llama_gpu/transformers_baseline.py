"""Hugging Face transformers on the Llama-3-8B architecture with random bf16 weights, batch 1, on the
device machine: the side-by-side baseline of `llama bench --arch llama-3-8b`.

Prefill: tokens/s of a `--prompt`-token forward. Decode: tokens/s of greedy generation after prompts of
128 and 4096 tokens, as (time of generate(N + 1 tokens) - time of generate(1 token)) / N, so the prefill
is not counted. Modes: eager (dynamic cache) and static cache + torch.compile ("reduce-overhead"), the
fastest one measured here. Prints one `TRANSFORMERS | mode | test | tokens/s` line per figure.
"""
import argparse, time, torch
from llama3_random import llama3_8b

p = argparse.ArgumentParser()
p.add_argument("--gen", type=int, default=64)
p.add_argument("--prompt", type=int, default=512)
p.add_argument("--modes", default="eager,compiled")
a = p.parse_args()

cfg, model = llama3_8b()
g = torch.Generator(device="cuda").manual_seed(1)

def ids(n):
    return torch.randint(0, cfg.vocab_size, (1, n), device="cuda", generator=g)

def timed(f, reps=3):
    best = []
    for _ in range(reps):
        torch.cuda.synchronize(); t0 = time.perf_counter(); f(); torch.cuda.synchronize()
        best.append(time.perf_counter() - t0)
    best.sort()
    return best[len(best) // 2]

with torch.no_grad():
    x = ids(a.prompt)
    model(x)
    t = timed(lambda: model(x))
    print(f"TRANSFORMERS | eager | pp{a.prompt} | {a.prompt / t:.1f}", flush=True)
    for mode in a.modes.split(","):
        kw = dict(do_sample=False, pad_token_id=0)
        if mode == "compiled":
            model.generation_config.cache_implementation = "static"
            compiled = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)

            def forward(*args, **kwargs):
                # Each call is a new CUDA-graph step: without this, the static cache's index_copy_
                # read an output of the previous replay ("overwritten", 2026-12-03).
                torch.compiler.cudagraph_mark_step_begin()
                return compiled(*args, **kwargs)

            model.forward = forward
        for ctx in (128, 4096):
            x = ids(ctx)
            gen = lambda n: model.generate(x, max_new_tokens=n, min_new_tokens=n, **kw)
            t0 = time.perf_counter(); gen(a.gen + 1); gen(1); warm = time.perf_counter() - t0
            t1, tn = timed(lambda: gen(1)), timed(lambda: gen(a.gen + 1))
            print(f"TRANSFORMERS | {mode} | tg{a.gen} @ ctx {ctx} | {a.gen / (tn - t1):.1f} | warm-up {warm:.0f} s", flush=True)
