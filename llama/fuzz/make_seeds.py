#!/usr/bin/env python3
"""Writes the seed corpora (small valid GGUF and safetensors files) by hand,
following the GGUF v3 and safetensors specs. Deterministic; run from anywhere:

    python3 llama/fuzz/make_seeds.py

Output: llama/fuzz/seeds/{gguf,safetensors,hf_config}/ (gguf_tokenizer uses the
gguf seeds).
"""
import json
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(7)

# ---------------------------------------------------------------- GGUF
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
GGML = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
        "Q8_0": (8, 32, 34), "Q4_K": (12, 256, 144), "Q6_K": (14, 256, 210), "BF16": (30, 1, 2)}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gval(ty, v):
    if ty == T_STR:
        return gstr(v)
    if ty == T_ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gval(et, x) for x in items)
    fmt = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
           T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}[ty]
    return struct.pack(fmt, v)


def f16(x):
    return struct.pack("<e", x)


def tensor_bytes(dtype, n):
    _, bs, ts = GGML[dtype]
    if dtype == "F32":
        return b"".join(struct.pack("<f", rng.uniform(-1, 1)) for _ in range(n))
    if dtype == "F16":
        return b"".join(f16(rng.uniform(-1, 1)) for _ in range(n))
    if dtype == "BF16":
        return b"".join(struct.pack("<f", rng.uniform(-1, 1))[2:] for _ in range(n))
    out = b""
    for _ in range(n // bs):
        if dtype == "Q6_K":
            out += bytes(rng.randrange(256) for _ in range(208)) + f16(0.01)
        else:
            nscale = {"Q4_0": 1, "Q4_1": 2, "Q8_0": 1, "Q4_K": 2}[dtype]
            out += b"".join(f16(0.01) for _ in range(nscale))
            out += bytes(rng.randrange(256) for _ in range(ts - 2 * nscale))
    return out


def gguf(kvs, tensors, alignment=32, version=3):
    """kvs: [(key, type, value)], tensors: [(name, shape row-major, dtype)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, ty, v in kvs:
        out += gstr(k) + struct.pack("<I", ty) + gval(ty, v)
    datas, off = [], 0
    for name, shape, dtype in tensors:
        dims = list(reversed(shape))
        n = 1
        for d in dims:
            n *= d
        data = tensor_bytes(dtype, n)
        out += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", GGML[dtype][0], off)
        datas.append((off, data))
        off += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    base = len(out)
    for o, data in datas:
        out += b"\0" * (base + o - len(out)) + data
    return out


def llama_kvs(d=32, heads=4, kv=2, ffn=64, vocab=16, layers=1):
    return [
        ("general.architecture", T_STR, "llama"),
        ("general.name", T_STR, "fuzz-seed"),
        ("llama.context_length", T_U32, 64),
        ("llama.embedding_length", T_U32, d),
        ("llama.block_count", T_U32, layers),
        ("llama.feed_forward_length", T_U32, ffn),
        ("llama.attention.head_count", T_U32, heads),
        ("llama.attention.head_count_kv", T_U32, kv),
        ("llama.attention.layer_norm_rms_epsilon", T_F32, 1e-5),
        ("llama.rope.freq_base", T_F32, 10000.0),
        ("llama.rope.dimension_count", T_U32, d // heads),
        ("llama.vocab_size", T_U32, vocab),
    ]


GPT2_TOKENS = ["H", "e", "l", "o", "Ġ", "w", "r", "d", "He", "ll", "llo", "Hello",
               "<|begin_of_text|>", "<|eot_id|>", "!", "1"]
GPT2_MERGES = ["H e", "l l", "ll o", "He llo"]
SPM_TOKENS = ["<unk>", "<s>", "</s>", "<0x0A>", "▁", "H", "e", "l", "o", "▁H", "ll", "llo",
              "▁Hello", "w", "r", "d"]


def gpt2_tok_kvs(pre="llama-bpe"):
    types = [1] * len(GPT2_TOKENS)
    types[12] = types[13] = 3
    return [
        ("tokenizer.ggml.model", T_STR, "gpt2"),
        ("tokenizer.ggml.pre", T_STR, pre),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, GPT2_TOKENS)),
        ("tokenizer.ggml.token_type", T_ARR, (T_I32, types)),
        ("tokenizer.ggml.merges", T_ARR, (T_STR, GPT2_MERGES)),
        ("tokenizer.ggml.bos_token_id", T_U32, 12),
        ("tokenizer.ggml.eos_token_id", T_U32, 13),
        ("tokenizer.ggml.add_bos_token", T_BOOL, True),
        ("tokenizer.chat_template", T_STR, "{% for m in messages %}{{ m.content }}{% endfor %}"),
    ]


def spm_tok_kvs():
    types = [2, 3, 3, 6] + [1] * (len(SPM_TOKENS) - 4)
    return [
        ("tokenizer.ggml.model", T_STR, "llama"),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, SPM_TOKENS)),
        ("tokenizer.ggml.scores", T_ARR, (T_F32, [-float(i) for i in range(len(SPM_TOKENS))])),
        ("tokenizer.ggml.token_type", T_ARR, (T_I32, types)),
        ("tokenizer.ggml.unknown_token_id", T_U32, 0),
        ("tokenizer.ggml.bos_token_id", T_U32, 1),
        ("tokenizer.ggml.eos_token_id", T_U32, 2),
        ("tokenizer.ggml.add_space_prefix", T_BOOL, True),
    ]


def llama_tensors(d=32, kv_dim=16, ffn=64, vocab=16, layers=1, head_dim=8):
    t = [("token_embd.weight", [vocab, d], "Q8_0"),
         ("output_norm.weight", [d], "F32"),
         ("output.weight", [vocab, d], "Q4_0"),
         ("rope_freqs.weight", [head_dim // 2], "F32")]
    for i in range(layers):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", [d], "F32"),
              (p + "attn_q.weight", [d, d], "F16"),
              (p + "attn_k.weight", [kv_dim, d], "BF16"),
              (p + "attn_v.weight", [kv_dim, d], "Q4_1"),
              (p + "attn_output.weight", [d, d], "Q8_0"),
              (p + "ffn_norm.weight", [d], "F32"),
              (p + "ffn_gate.weight", [ffn, d], "Q4_0"),
              (p + "ffn_up.weight", [ffn, d], "Q4_0"),
              (p + "ffn_down.weight", [d, ffn], "Q8_0")]
    return t


def write(sub, name, data):
    d = os.path.join(HERE, "seeds", sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


write("gguf", "tiny_llama_gpt2.gguf", gguf(llama_kvs() + gpt2_tok_kvs(), llama_tensors()))
write("gguf", "tiny_llama_spm.gguf", gguf(llama_kvs() + spm_tok_kvs(), llama_tensors()))
write("gguf", "kquants.gguf", gguf([("general.alignment", T_U32, 64)],
                                   [("a.q4_k", [2, 256], "Q4_K"), ("b.q6_k", [1, 256], "Q6_K")],
                                   alignment=64))
write("gguf", "v2_arrays.gguf", gguf([("general.architecture", T_STR, "llama"),
                                      ("x.nested", T_ARR, (T_ARR, [(T_U8, [1, 2]), (T_I64, [-1])])),
                                      ("x.f64", T_F64, 1.5), ("x.i16", T_I16, -3),
                                      ("tokenizer.ggml.model", T_STR, "gpt2"),
                                      ("tokenizer.ggml.pre", T_STR, "smollm")] + gpt2_tok_kvs("smollm")[2:5],
                                     [("t", [4], "F16")], version=2))
write("gguf", "empty.gguf", gguf([], []))

# ---------------------------------------------------------- safetensors
ST = {"F32": ("<f", 4), "F16": ("<e", 2), "BF16": (None, 2), "F8_E4M3": (None, 1)}


def st_bytes(dtype, n):
    if dtype == "F32":
        return b"".join(struct.pack("<f", rng.uniform(-1, 1)) for _ in range(n))
    if dtype == "F16":
        return b"".join(f16(rng.uniform(-1, 1)) for _ in range(n))
    if dtype == "BF16":
        return b"".join(struct.pack("<f", rng.uniform(-1, 1))[2:] for _ in range(n))
    return bytes(rng.randrange(0x20, 0x50) for _ in range(n))  # small E4M3 values


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        b = st_bytes(dtype, n)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def hf_tensors(dt="BF16", mat_dt=None, d=8, kv=4, ffn=16, vocab=16, lm_head=False):
    mat_dt = mat_dt or dt
    t = [("model.embed_tokens.weight", mat_dt, [vocab, d]), ("model.norm.weight", dt, [d])]
    if lm_head:
        t.append(("lm_head.weight", dt, [vocab, d]))
    p = "model.layers.0."
    t += [(p + "input_layernorm.weight", dt, [d]),
          (p + "post_attention_layernorm.weight", dt, [d]),
          (p + "self_attn.q_proj.weight", mat_dt, [d, d]),
          (p + "self_attn.k_proj.weight", mat_dt, [kv, d]),
          (p + "self_attn.v_proj.weight", mat_dt, [kv, d]),
          (p + "self_attn.o_proj.weight", mat_dt, [d, d]),
          (p + "mlp.gate_proj.weight", mat_dt, [ffn, d]),
          (p + "mlp.up_proj.weight", mat_dt, [ffn, d]),
          (p + "mlp.down_proj.weight", mat_dt, [d, ffn])]
    return t


write("safetensors", "tiny_bf16.safetensors", safetensors(hf_tensors(), {"format": "pt"}))
write("safetensors", "tiny_f32_lm_head.safetensors", safetensors(hf_tensors("F32", "F16", lm_head=True)))
fp8 = hf_tensors("BF16", "F8_E4M3")
fp8 += [("model.embed_tokens.weight_scale", "F32", []),
        ("model.layers.0.self_attn.q_proj.weight_scale", "BF16", [8]),
        ("model.layers.0.mlp.down_proj.weight_scale", "F32", [8, 1])]
write("safetensors", "tiny_fp8.safetensors", safetensors(fp8))

# ------------------------------------------------------------ hf_config
CFG = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
       "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 96,
       "vocab_size": 40, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
       "rope_theta": 500000.0}
write("hf_config", "plain.json", json.dumps(CFG).encode())
write("hf_config", "llama3_scaling.json", json.dumps(dict(CFG, head_dim=16, rope_scaling={
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192})).encode())
write("hf_config", "linear_params.json", json.dumps(dict(CFG, rope_parameters={
    "rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})).encode())
