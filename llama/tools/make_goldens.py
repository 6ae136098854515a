#!/usr/bin/env python3
"""Golden outputs from Hugging Face transformers (an independent implementation) for the llama crate's tests.

Run on a machine with torch + transformers (+ the `gguf` package to read GGUF):
    python3 llama/tools/make_goldens.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf --out OUTDIR

Writes OUTDIR/goldens.tar.gz holding:
  smollm2/goldens.json      prompts, transformers' token ids, 32-token greedy continuations (fed transformers'
                            ids), the chat-template ids, and logits of the first step (last prompt position)
  tiny-<name>/config.json, model.safetensors, goldens.json
                            tiny random Llama-2 / Llama-3 / Llama-3.1 models and their logits at every position
"""
import argparse, json, os, tarfile, tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little robot who",
    "def fibonacci(n):\n    ",
]
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


def greedy(model, ids, steps):
    out = []
    x = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(steps):
            logits = model(x).logits[0, -1]
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            x = torch.cat([x, torch.tensor([[nxt]])], dim=1)
    return out


def smollm(gguf_path, root):
    d, f = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    cases = []
    for p in PROMPTS:
        ids = tok(p, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1].tolist()
        cases.append({"prompt": p, "ids": ids, "first_logits": logits, "greedy32": greedy(model, ids, 32)})
    chat_ids = tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True)
    if not isinstance(chat_ids, list):  # transformers 5 returns a BatchEncoding
        chat_ids = chat_ids["input_ids"]
    chat_text = tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    os.makedirs(os.path.join(root, "smollm2"), exist_ok=True)
    with open(os.path.join(root, "smollm2", "goldens.json"), "w") as fh:
        json.dump({"source": "transformers from the same GGUF", "cases": cases,
                   "chat": {"messages": CHAT, "text": chat_text, "ids": list(chat_ids)}}, fh)


TINY = {
    # Llama 2 style: rope base 1e4, untied, multi-head attention.
    "llama2": dict(num_key_value_heads=4, rope_theta=10000.0, tie_word_embeddings=False),
    # Llama 3 style: rope base 5e5, GQA 4:1, untied.
    "llama3": dict(num_key_value_heads=1, rope_theta=500000.0, tie_word_embeddings=False),
    # Llama 3.1 style: llama3 rope scaling, GQA 2:1, tied embeddings.
    "llama31": dict(num_key_value_heads=2, rope_theta=500000.0, tie_word_embeddings=True,
                    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
}


def tiny(root):
    for i, (name, extra) in enumerate(TINY.items()):
        torch.manual_seed(1234 + i)
        cfg = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=256, rms_norm_eps=1e-5,
                          initializer_range=0.2, bos_token_id=1, eos_token_id=2, **extra)
        model = LlamaForCausalLM(cfg).eval()
        d = os.path.join(root, "tiny-" + name)
        model.save_pretrained(d, safe_serialization=True)
        g = torch.Generator().manual_seed(99 + i)
        ids = torch.randint(0, 128, (12,), generator=g).tolist()
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].tolist()
        with open(os.path.join(d, "goldens.json"), "w") as fh:
            json.dump({"ids": ids, "logits": logits}, fh)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(8)
    with tempfile.TemporaryDirectory() as root:
        tiny(root)
        smollm(a.gguf, root)
        os.makedirs(a.out, exist_ok=True)
        with tarfile.open(os.path.join(a.out, "goldens.tar.gz"), "w:gz") as t:
            for n in sorted(os.listdir(root)):
                t.add(os.path.join(root, n), arcname=n)
    print("wrote", os.path.join(a.out, "goldens.tar.gz"))


if __name__ == "__main__":
    main()
