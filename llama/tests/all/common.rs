//! Helpers: tiny random Llama models written as GGUF / HF directories, and a
//! naive f64 reference forward pass (HF semantics: rotate_half RoPE on
//! un-permuted Q/K weights).

use llama::gguf::Value;
use llama::gguf_writer::GgufWriter;
use llama::quant::DType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug)]
pub struct Spec {
    pub n_layers: usize,
    pub d: usize,
    pub n_heads: usize,
    pub n_kv: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub ctx: usize,
    pub rope_base: f64,
    pub eps: f64,
    pub tied: bool,
    /// (factor, low_freq_factor, high_freq_factor, original_max_position_embeddings)
    pub llama3_scaling: Option<(f64, f64, f64, f64)>,
    /// Storage type of the matrices.
    pub dtype: DType,
    pub seed: u64,
}

impl Spec {
    pub fn new(n_heads: usize, n_kv: usize) -> Spec {
        Spec {
            n_layers: 2,
            d: 64,
            n_heads,
            n_kv,
            ffn: 96,
            vocab: 40,
            ctx: 64,
            rope_base: 10000.0,
            eps: 1e-5,
            tied: false,
            llama3_scaling: None,
            dtype: DType::F32,
            seed: 7,
        }
    }
    pub fn hd(&self) -> usize {
        self.d / self.n_heads
    }
}

/// HF-named weights: name -> (shape, values already rounded to `dtype`).
pub type Weights = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn round_to(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::F16 => half::f16::from_f32(v).to_f32(),
        DType::BF16 => half::bf16::from_f32(v).to_f32(),
        _ => v,
    }
}

pub fn random_weights(s: &Spec) -> Weights {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut w = Weights::new();
    let hd = s.hd();
    let mut mat =
        |w: &mut Weights, name: String, rows: usize, cols: usize, scale: f32, norm: bool| {
            let v: Vec<f32> = (0..rows * cols)
                .map(|_| {
                    let x: f32 = rng.gen_range(-1.0..1.0);
                    round_to(s.dtype, if norm { 1.0 + 0.2 * x } else { x * scale })
                })
                .collect();
            let shape = if norm { vec![cols] } else { vec![rows, cols] };
            w.insert(name, (shape, v));
        };
    let sc = 1.0 / (s.d as f32).sqrt();
    mat(
        &mut w,
        "model.embed_tokens.weight".into(),
        s.vocab,
        s.d,
        1.0,
        false,
    );
    mat(&mut w, "model.norm.weight".into(), 1, s.d, 0.0, true);
    if !s.tied {
        mat(&mut w, "lm_head.weight".into(), s.vocab, s.d, sc, false);
    }
    for i in 0..s.n_layers {
        let p = format!("model.layers.{i}.");
        mat(
            &mut w,
            format!("{p}input_layernorm.weight"),
            1,
            s.d,
            0.0,
            true,
        );
        mat(
            &mut w,
            format!("{p}post_attention_layernorm.weight"),
            1,
            s.d,
            0.0,
            true,
        );
        mat(
            &mut w,
            format!("{p}self_attn.q_proj.weight"),
            s.n_heads * hd,
            s.d,
            sc * 2.0,
            false,
        );
        mat(
            &mut w,
            format!("{p}self_attn.k_proj.weight"),
            s.n_kv * hd,
            s.d,
            sc * 2.0,
            false,
        );
        mat(
            &mut w,
            format!("{p}self_attn.v_proj.weight"),
            s.n_kv * hd,
            s.d,
            sc,
            false,
        );
        mat(
            &mut w,
            format!("{p}self_attn.o_proj.weight"),
            s.d,
            s.n_heads * hd,
            sc,
            false,
        );
        mat(
            &mut w,
            format!("{p}mlp.gate_proj.weight"),
            s.ffn,
            s.d,
            sc,
            false,
        );
        mat(
            &mut w,
            format!("{p}mlp.up_proj.weight"),
            s.ffn,
            s.d,
            sc,
            false,
        );
        mat(
            &mut w,
            format!("{p}mlp.down_proj.weight"),
            s.d,
            s.ffn,
            1.0 / (s.ffn as f32).sqrt(),
            false,
        );
    }
    w
}

/// llama.cpp's `permute` (convert_hf_to_gguf.py): HF row `s*hd/2 + j` of each
/// head becomes GGUF row `2j + s`.
pub fn permute_qk(v: &[f32], n_heads: usize, cols: usize) -> Vec<f32> {
    permute_rows(v, n_heads, cols)
}

/// [`permute_qk`] for rows of any element type (e.g. quantized row bytes).
pub fn permute_rows<T: Copy + Default>(v: &[T], n_heads: usize, row_len: usize) -> Vec<T> {
    let hd = v.len() / row_len / n_heads;
    let mut out = vec![T::default(); v.len()];
    for h in 0..n_heads {
        for s in 0..2 {
            for j in 0..hd / 2 {
                let src = h * hd + s * hd / 2 + j;
                let dst = h * hd + 2 * j + s;
                out[dst * row_len..(dst + 1) * row_len]
                    .copy_from_slice(&v[src * row_len..(src + 1) * row_len]);
            }
        }
    }
    out
}

/// Raw quantized bytes of some matrices, by HF name.
pub type RawWeights = BTreeMap<String, Vec<u8>>;

/// Random blocks of a quantized type, with scales chosen so that weights are
/// of order 0.1. Returns the bytes and their dequantized values.
pub fn random_blocks(rng: &mut StdRng, dt: DType, n: usize) -> (Vec<u8>, Vec<f32>) {
    let h = |v: f32| half::f16::from_f32(v).to_le_bytes();
    let mut bytes = Vec::new();
    for _ in 0..n / dt.block_size() {
        let mut b: Vec<u8> = (0..dt.type_size()).map(|_| rng.gen::<u8>()).collect();
        match dt {
            DType::Q4_0 => b[0..2].copy_from_slice(&h(rng.gen_range(0.01..0.04))),
            DType::Q4_1 => {
                b[0..2].copy_from_slice(&h(rng.gen_range(0.01..0.03)));
                b[2..4].copy_from_slice(&h(rng.gen_range(-0.2..-0.1)));
            }
            DType::Q8_0 => b[0..2].copy_from_slice(&h(rng.gen_range(0.001..0.003))),
            DType::Q4_K => {
                b[0..2].copy_from_slice(&h(rng.gen_range(0.0001..0.0004)));
                b[2..4].copy_from_slice(&h(rng.gen_range(0.001..0.003)));
            }
            DType::Q6_K => b[208..210].copy_from_slice(&h(rng.gen_range(0.00003..0.0001))),
            other => panic!("not a quantized type: {other}"),
        }
        bytes.extend(b);
    }
    let mut vals = vec![0f32; n];
    llama::quant::dequantize(dt, &bytes, &mut vals).expect("dequantize random blocks");
    (bytes, vals)
}

/// Like [`random_weights`], but every matrix is made of random `dt` blocks.
pub fn random_quant_weights(s: &Spec, dt: DType) -> (Weights, RawWeights) {
    let mut w = random_weights(&Spec {
        dtype: DType::F32,
        ..s.clone()
    });
    let mut rng = StdRng::seed_from_u64(s.seed + 1);
    let mut raw = RawWeights::new();
    for (name, (shape, vals)) in w.iter_mut() {
        if shape.len() == 2 {
            let (b, v) = random_blocks(&mut rng, dt, vals.len());
            *vals = v;
            raw.insert(name.clone(), b);
        }
    }
    (w, raw)
}

fn enc(dtype: DType, v: &[f32]) -> Vec<u8> {
    llama::quant::encode_float(dtype, v).expect("float dtype")
}

/// Adds a tiny gpt2-style tokenizer whose vocabulary is `t0`, `t1`, ...
pub fn add_tiny_tokenizer(g: &mut GgufWriter, vocab: usize) {
    let toks: Vec<Value> = (0..vocab).map(|i| Value::String(format!("t{i}"))).collect();
    let types: Vec<Value> = (0..vocab)
        .map(|i| Value::I32(if i < 2 { 3 } else { 1 }))
        .collect();
    g.kv("tokenizer.ggml.model", Value::String("gpt2".into()))
        .kv("tokenizer.ggml.tokens", Value::Array(toks))
        .kv("tokenizer.ggml.token_type", Value::Array(types))
        .kv("tokenizer.ggml.merges", Value::Array(vec![]))
        .kv("tokenizer.ggml.bos_token_id", Value::U32(0))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(1));
}

/// The GGUF bytes of the model (llama.cpp names, Q/K permuted).
pub fn gguf_bytes(s: &Spec, w: &Weights) -> Vec<u8> {
    gguf_bytes_raw(s, w, &RawWeights::new())
}

/// [`gguf_bytes`] where the matrices in `raw` are stored as `s.dtype` bytes.
pub fn gguf_bytes_raw(s: &Spec, w: &Weights, raw: &RawWeights) -> Vec<u8> {
    let mut g = GgufWriter::new();
    g.kv("general.architecture", Value::String("llama".into()))
        .kv("llama.block_count", Value::U32(s.n_layers as u32))
        .kv("llama.context_length", Value::U32(s.ctx as u32))
        .kv("llama.embedding_length", Value::U32(s.d as u32))
        .kv("llama.feed_forward_length", Value::U32(s.ffn as u32))
        .kv("llama.attention.head_count", Value::U32(s.n_heads as u32))
        .kv("llama.attention.head_count_kv", Value::U32(s.n_kv as u32))
        .kv("llama.rope.freq_base", Value::F32(s.rope_base as f32))
        .kv(
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(s.eps as f32),
        )
        .kv("llama.vocab_size", Value::U32(s.vocab as u32));
    add_tiny_tokenizer(&mut g, s.vocab);
    let put = |g: &mut GgufWriter, name: &str, hf: &str, perm: Option<usize>| {
        let (shape, v) = &w[hf];
        if let Some(bytes) = raw.get(hf) {
            let rb = bytes.len() / shape[0];
            let data = match perm {
                Some(h) => permute_rows(bytes, h, rb),
                None => bytes.clone(),
            };
            g.tensor(name, shape, s.dtype, data);
            return;
        }
        let is_norm = shape.len() == 1;
        let dt = if is_norm { DType::F32 } else { s.dtype };
        let data = match perm {
            Some(h) => permute_qk(v, h, shape[1]),
            None => v.clone(),
        };
        g.tensor(name, shape, dt, enc(dt, &data));
    };
    put(
        &mut g,
        "token_embd.weight",
        "model.embed_tokens.weight",
        None,
    );
    put(&mut g, "output_norm.weight", "model.norm.weight", None);
    if !s.tied {
        put(&mut g, "output.weight", "lm_head.weight", None);
    }
    if let Some((factor, lo, hi, orig)) = s.llama3_scaling {
        let sc = llama::config::Llama3RopeScaling {
            factor: factor as f32,
            low_freq_factor: lo as f32,
            high_freq_factor: hi as f32,
            original_max_position_embeddings: orig as f32,
        };
        let f = sc.freq_factors(s.rope_base as f32, s.hd());
        g.tensor(
            "rope_freqs.weight",
            &[f.len()],
            DType::F32,
            enc(DType::F32, &f),
        );
    }
    for i in 0..s.n_layers {
        let p = format!("model.layers.{i}.");
        let b = format!("blk.{i}.");
        put(
            &mut g,
            &format!("{b}attn_norm.weight"),
            &format!("{p}input_layernorm.weight"),
            None,
        );
        put(
            &mut g,
            &format!("{b}ffn_norm.weight"),
            &format!("{p}post_attention_layernorm.weight"),
            None,
        );
        put(
            &mut g,
            &format!("{b}attn_q.weight"),
            &format!("{p}self_attn.q_proj.weight"),
            Some(s.n_heads),
        );
        put(
            &mut g,
            &format!("{b}attn_k.weight"),
            &format!("{p}self_attn.k_proj.weight"),
            Some(s.n_kv),
        );
        put(
            &mut g,
            &format!("{b}attn_v.weight"),
            &format!("{p}self_attn.v_proj.weight"),
            None,
        );
        put(
            &mut g,
            &format!("{b}attn_output.weight"),
            &format!("{p}self_attn.o_proj.weight"),
            None,
        );
        put(
            &mut g,
            &format!("{b}ffn_gate.weight"),
            &format!("{p}mlp.gate_proj.weight"),
            None,
        );
        put(
            &mut g,
            &format!("{b}ffn_up.weight"),
            &format!("{p}mlp.up_proj.weight"),
            None,
        );
        put(
            &mut g,
            &format!("{b}ffn_down.weight"),
            &format!("{p}mlp.down_proj.weight"),
            None,
        );
    }
    g.to_bytes()
}

/// Writes an HF directory (config.json + model.safetensors) for the model.
pub fn write_hf(s: &Spec, w: &Weights, dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let st = match s.dtype {
        DType::F16 => safetensors::Dtype::F16,
        DType::BF16 => safetensors::Dtype::BF16,
        _ => safetensors::Dtype::F32,
    };
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = w
        .iter()
        .map(|(n, (shape, v))| {
            let dt = if s.dtype == DType::F16 || s.dtype == DType::BF16 {
                s.dtype
            } else {
                DType::F32
            };
            (n.clone(), shape.clone(), enc(dt, v))
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, shape, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(st, shape.clone(), b).expect("view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, &dir.join("model.safetensors"))
        .expect("write safetensors");
    let mut cfg = serde_json::json!({
        "model_type": "llama",
        "hidden_size": s.d, "intermediate_size": s.ffn,
        "num_attention_heads": s.n_heads, "num_key_value_heads": s.n_kv,
        "num_hidden_layers": s.n_layers, "vocab_size": s.vocab,
        "max_position_embeddings": s.ctx, "rms_norm_eps": s.eps,
        "rope_theta": s.rope_base, "tie_word_embeddings": s.tied,
    });
    if let Some((factor, lo, hi, orig)) = s.llama3_scaling {
        cfg["rope_scaling"] = serde_json::json!({
            "rope_type": "llama3", "factor": factor, "low_freq_factor": lo,
            "high_freq_factor": hi, "original_max_position_embeddings": orig,
        });
    }
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("write config");
}

fn matvec(w: &[f32], rows: usize, cols: usize, x: &[f64]) -> Vec<f64> {
    (0..rows)
        .map(|r| (0..cols).map(|c| w[r * cols + c] as f64 * x[c]).sum())
        .collect()
}

fn rmsnorm(x: &[f64], g: &[f32], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ms + eps).sqrt();
    x.iter().zip(g).map(|(v, g)| v * s * *g as f64).collect()
}

/// HF's inverse frequencies, including `_compute_llama3_parameters`.
pub fn reference_inv_freq(s: &Spec) -> Vec<f64> {
    let hd = s.hd();
    (0..hd / 2)
        .map(|i| {
            let f = 1.0 / s.rope_base.powf((2 * i) as f64 / hd as f64);
            match s.llama3_scaling {
                None => f,
                Some((factor, lo, hi, orig)) => {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let (low_wl, high_wl) = (orig / lo, orig / hi);
                    if wavelen > low_wl {
                        f / factor
                    } else if wavelen < high_wl {
                        f
                    } else {
                        let smooth = (orig / wavelen - lo) / (hi - lo);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                }
            }
        })
        .collect()
}

/// Straightforward f64 forward pass; returns the logits of every position.
pub fn reference_forward(s: &Spec, w: &Weights, tokens: &[u32]) -> Vec<Vec<f64>> {
    let (d, hd, nh, nkv) = (s.d, s.hd(), s.n_heads, s.n_kv);
    let inv = reference_inv_freq(s);
    let get = |n: &str| &w[n].1;
    let emb = get("model.embed_tokens.weight");
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| (0..d).map(|c| emb[t as usize * d + c] as f64).collect())
        .collect();
    let rope = |v: &mut [f64], pos: usize| {
        for i in 0..hd / 2 {
            let a = pos as f64 * inv[i];
            let (sn, cs) = a.sin_cos();
            let (x1, x2) = (v[i], v[i + hd / 2]);
            v[i] = x1 * cs - x2 * sn;
            v[i + hd / 2] = x2 * cs + x1 * sn;
        }
    };
    for l in 0..s.n_layers {
        let p = format!("model.layers.{l}.");
        let g = |n: &str| get(&format!("{p}{n}.weight"));
        let mut qs = Vec::new();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for (pos, x) in xs.iter().enumerate() {
            let h = rmsnorm(x, g("input_layernorm"), s.eps);
            let mut q = matvec(g("self_attn.q_proj"), nh * hd, d, &h);
            let mut k = matvec(g("self_attn.k_proj"), nkv * hd, d, &h);
            for hh in 0..nh {
                rope(&mut q[hh * hd..(hh + 1) * hd], pos);
            }
            for hh in 0..nkv {
                rope(&mut k[hh * hd..(hh + 1) * hd], pos);
            }
            qs.push(q);
            ks.push(k);
            vs.push(matvec(g("self_attn.v_proj"), nkv * hd, d, &h));
        }
        for t in 0..xs.len() {
            let mut att = vec![0f64; nh * hd];
            for hh in 0..nh {
                let kv = hh / (nh / nkv);
                let q = &qs[t][hh * hd..(hh + 1) * hd];
                let sc: Vec<f64> = (0..=t)
                    .map(|j| {
                        q.iter()
                            .zip(&ks[j][kv * hd..(kv + 1) * hd])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|v| (v - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for j in 0..=t {
                    for c in 0..hd {
                        att[hh * hd + c] += e[j] / z * vs[j][kv * hd + c];
                    }
                }
            }
            let o = matvec(g("self_attn.o_proj"), d, nh * hd, &att);
            xs[t].iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let h = rmsnorm(&xs[t], g("post_attention_layernorm"), s.eps);
            let gate = matvec(g("mlp.gate_proj"), s.ffn, d, &h);
            let up = matvec(g("mlp.up_proj"), s.ffn, d, &h);
            let a: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = matvec(g("mlp.down_proj"), d, s.ffn, &a);
            xs[t].iter_mut().zip(&down).for_each(|(a, b)| *a += b);
        }
    }
    let head = if s.tied {
        get("model.embed_tokens.weight")
    } else {
        get("lm_head.weight")
    };
    xs.iter()
        .map(|x| {
            matvec(
                head,
                s.vocab,
                d,
                &rmsnorm(x, get("model.norm.weight"), s.eps),
            )
        })
        .collect()
}

/// Largest |a - b| relative to the largest |b|.
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
        / scale
}

pub fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).expect("write temp file");
    p
}
