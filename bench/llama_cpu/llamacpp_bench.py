#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) prefill/decode throughput for one prompt.

Mirrors `llama generate PROMPT --max-tokens N --greedy --threads T` of the Rust
runtime: the prompt is evaluated in one batch (prefill), then N-1 single-token
evals follow (decode), each fed the greedy argmax of the previous logits.  As in
llama/src/generate.rs, the first generated token comes from the prefill logits,
so "decode" counts N-1 forwards.  Unlike the Rust CLI, EOS is ignored here so
that every run decodes exactly N-1 tokens.

Prints one JSON line per measured run and a final JSON summary (medians).
"""
import argparse, json, statistics, sys, time

import numpy as np
import llama_cpp
from llama_cpp import Llama


def argmax_last(llm):
    # Llama.eval no longer copies logits into llm.scores (0.3.x); read them
    # from the context.  llama_get_logits_ith also synchronizes the context.
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))))


def one_run(llm, tokens, max_tokens):
    llm.reset()
    llama_cpp.llama_perf_context_reset(llm.ctx)
    t0 = time.perf_counter()
    llm.eval(tokens)
    llama_cpp.llama_synchronize(llm.ctx)
    t1 = time.perf_counter()
    nxt = argmax_last(llm)
    out = [nxt]
    for _ in range(max_tokens - 1):
        llm.eval([nxt])
        nxt = argmax_last(llm)
        out.append(nxt)
    t2 = time.perf_counter()
    perf = llama_cpp.llama_perf_context(llm.ctx)
    n_dec = max_tokens - 1
    return {
        "prefill_tok": len(tokens),
        "prefill_tok_s": len(tokens) / (t1 - t0),
        "decode_tok": n_dec,
        "decode_tok_s": n_dec / (t2 - t1),
        # llama.cpp's own timers (llama_perf_context), for cross-checking
        "perf_prefill_tok_s": perf.n_p_eval / (perf.t_p_eval_ms / 1e3) if perf.t_p_eval_ms > 0 else None,
        "perf_decode_tok_s": perf.n_eval / (perf.t_eval_ms / 1e3) if perf.t_eval_ms > 0 else None,
        "perf_n_p_eval": perf.n_p_eval,
        "perf_n_eval": perf.n_eval,
    }, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    llm = Llama(model_path=a.model, n_ctx=a.ctx, n_threads=a.threads,
                n_threads_batch=a.threads, n_batch=512, no_perf=False, verbose=False)
    # add_bos follows the GGUF's tokenizer.ggml.add_bos_token (as the Rust CLI does)
    tokens = llm.tokenize(a.prompt.encode("utf-8"), add_bos=True, special=False)
    for _ in range(a.warmup):
        one_run(llm, tokens, a.max_tokens)
    runs = []
    for i in range(a.runs):
        r, out = one_run(llm, tokens, a.max_tokens)
        runs.append(r)
        print(json.dumps({"run": i, **r}), flush=True)
    text = llm.detokenize(out).decode("utf-8", "replace")
    def med(k):
        v = [r[k] for r in runs if r[k] is not None]
        return statistics.median(v) if v else None
    print(json.dumps({
        "summary": True, "engine": "llama.cpp", "label": a.label, "threads": a.threads,
        "prefill_tok": len(tokens), "decode_tok": a.max_tokens - 1,
        "prefill_tok_s": med("prefill_tok_s"), "decode_tok_s": med("decode_tok_s"),
        "perf_prefill_tok_s": med("perf_prefill_tok_s"), "perf_decode_tok_s": med("perf_decode_tok_s"),
        "system_info": llama_cpp.llama_print_system_info().decode(),
        "llama_cpp_python": llama_cpp.__version__,
        "first_tokens_text": text[:80],
    }), flush=True)


if __name__ == "__main__":
    sys.exit(main())
