//! Hugging Face model directories: `config.json`, `*.safetensors` (single or
//! sharded with `model.safetensors.index.json`), and the tokenizer files.
//!
//! Safetensors files are memory-mapped and BF16/F16/F32 weights are used in
//! place. FP8 (E4M3) weights are kept as stored too, with their `weight_scale`
//! companion (per tensor or per output row) as one scale per row: the CPU
//! backend dequantizes their rows as it does GGUF blocks, and the GPU backend
//! uploads the bytes and scales unchanged in `--weights fp8`.
//!
//! HF checkpoints keep Q/K rows in their original order and apply RoPE with
//! `rotate_half`, so loaded models use [`RopeLayout::Half`]. GGUF files have
//! those rows permuted for interleaved RoPE; [`write_hf_dir`] undoes that.

use crate::config::{Llama3RopeScaling, LlamaConfig, RopeLayout};
use crate::error::{LlamaError, Result};
use crate::model::{LayerWeights, LlamaWeights};
use crate::quant::{self, DType};
use crate::tensor::{Tensor, TensorData};
use crate::tokenizer::Tokenizer;
use memmap2::Mmap;
use safetensors::{Dtype as StDtype, SafeTensors};
use serde_json::{json, Value as Json};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn hf_err(m: impl Into<String>) -> LlamaError {
    LlamaError::Hf(m.into())
}

fn read_json(path: &Path) -> Result<Json> {
    let s = std::fs::read_to_string(path).map_err(|e| LlamaError::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| hf_err(format!("{}: {e}", path.display())))
}

/// Parses an HF `config.json` for a Llama model.
pub fn config_from_json(c: &Json) -> Result<LlamaConfig> {
    if let Some(mt) = c.get("model_type").and_then(|v| v.as_str()) {
        if mt != "llama" {
            return Err(hf_err(format!(
                "model_type `{mt}` is not supported (expected `llama`)"
            )));
        }
    }
    let u = |k: &str| -> Result<usize> {
        c.get(k)
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| LlamaError::MissingKey(format!("config.json: {k}")))
    };
    let f = |k: &str, d: f64| c.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
    let d_model = u("hidden_size")?;
    let n_heads = u("num_attention_heads")?;
    if n_heads == 0 || d_model % n_heads != 0 {
        return Err(hf_err(format!(
            "hidden_size {d_model} not divisible by num_attention_heads {n_heads}"
        )));
    }
    let head_dim = u("head_dim").unwrap_or(d_model / n_heads);
    if head_dim == 0 || head_dim > crate::config::MAX_HEAD_DIM {
        return Err(hf_err(format!("head_dim {head_dim} is out of range (1..={})", crate::config::MAX_HEAD_DIM)));
    }
    // transformers 5 writes `rope_parameters` (holding `rope_theta` and the scaling); older versions
    // write `rope_theta` and `rope_scaling` at the top level.
    let rope_params = c.get("rope_parameters").filter(|v| v.is_object());
    let rope_base = rope_params
        .and_then(|p| p.get("rope_theta"))
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| f("rope_theta", 10000.0)) as f32;
    let mut freq_factors = None;
    let mut linear = 1.0;
    if let Some(rs) = c.get("rope_scaling").filter(|v| !v.is_null()).or(rope_params) {
        let ty = rs
            .get("rope_type")
            .or_else(|| rs.get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let g = |k: &str, d: f64| rs.get(k).and_then(|v| v.as_f64()).unwrap_or(d) as f32;
        match ty {
            "llama3" => {
                let s = Llama3RopeScaling {
                    factor: g("factor", 8.0),
                    low_freq_factor: g("low_freq_factor", 1.0),
                    high_freq_factor: g("high_freq_factor", 4.0),
                    original_max_position_embeddings: g("original_max_position_embeddings", 8192.0),
                };
                freq_factors = Some(s.freq_factors(rope_base, head_dim));
            }
            "linear" => linear = g("factor", 1.0),
            "default" | "" => {}
            other => {
                return Err(hf_err(format!(
                    "rope_scaling type `{other}` is not supported"
                )))
            }
        }
    }
    let cfg = LlamaConfig {
        n_layers: u("num_hidden_layers")?,
        d_model,
        n_heads,
        n_kv_heads: u("num_key_value_heads").unwrap_or(n_heads),
        head_dim,
        ffn_dim: u("intermediate_size")?,
        vocab_size: u("vocab_size")?,
        context_length: u("max_position_embeddings").unwrap_or(2048),
        rms_eps: f("rms_norm_eps", 1e-6) as f32,
        rope_base,
        rope_dim: head_dim,
        rope_layout: RopeLayout::Half,
        rope_freq_factors: freq_factors,
        rope_linear_scale: linear,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// One safetensors entry located in a mapped file.
struct StEntry {
    map: Arc<Mmap>,
    dtype: StDtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// Checks every tensor's `data_offsets` against the file before the `safetensors` crate reads the
/// header: the crate adds offsets without overflow checks and panics on `u64::MAX` (a fuzz find).
fn check_header_offsets(file: &[u8]) -> std::result::Result<(), String> {
    let n = file.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).ok_or("file shorter than 8 bytes")?;
    let end = 8u64.checked_add(n).filter(|&e| e <= file.len() as u64).ok_or("header length past the end of the file")?;
    let header: Json = serde_json::from_slice(&file[8..end as usize]).map_err(|e| format!("header is not JSON: {e}"))?;
    let data_len = file.len() as u64 - end;
    for (name, info) in header.as_object().ok_or("header is not a JSON object")? {
        if name == "__metadata__" {
            continue;
        }
        let offs = info.get("data_offsets").and_then(|o| o.as_array()).ok_or_else(|| format!("`{name}` has no data_offsets"))?;
        let (a, b) = match offs.as_slice() {
            [a, b] => (a.as_u64(), b.as_u64()),
            _ => (None, None),
        };
        match (a, b) {
            (Some(a), Some(b)) if a <= b && b <= data_len => {}
            _ => return Err(format!("`{name}` has data_offsets {offs:?} outside the {data_len} data bytes")),
        }
    }
    Ok(())
}

fn open_safetensors(path: &Path, out: &mut HashMap<String, StEntry>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| LlamaError::io(path, e))?;
    // SAFETY: read-only map, see `GgufFile::open`.
    let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| LlamaError::io(path, e))?);
    check_header_offsets(&map).map_err(|m| hf_err(format!("{}: bad safetensors header: {m}", path.display())))?;
    let (n, meta) = SafeTensors::read_metadata(&map)
        .map_err(|e| hf_err(format!("{}: bad safetensors header: {e:?}", path.display())))?;
    let base = 8 + n;
    for (name, info) in meta.tensors() {
        let (s, e) = info.data_offsets;
        let elems: usize = info.shape.iter().product();
        if e < s || base + e > map.len() || elems.checked_mul(info.dtype.size()) != Some(e - s) {
            return Err(hf_err(format!(
                "{}: tensor `{name}` has inconsistent offsets/shape",
                path.display()
            )));
        }
        out.insert(
            name,
            StEntry {
                map: map.clone(),
                dtype: info.dtype,
                shape: info.shape.clone(),
                start: base + s,
                end: base + e,
            },
        );
    }
    Ok(())
}

/// The safetensors files of a directory (sharded index, single file, or all).
fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let j = read_json(&index)?;
        let files: BTreeSet<String> = j
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| hf_err("model.safetensors.index.json has no weight_map"))?
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| LlamaError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(hf_err(format!(
            "no .safetensors files in {}",
            dir.display()
        )));
    }
    Ok(v)
}

fn to_tensor(name: &str, all: &HashMap<String, StEntry>) -> Result<Tensor> {
    let e = all
        .get(name)
        .ok_or_else(|| LlamaError::tensor(name, "not found in the safetensors files"))?;
    let dtype = match e.dtype {
        StDtype::F32 => DType::F32,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::F8_E4M3 => return fp8_tensor(name, e, all),
        other => {
            return Err(LlamaError::tensor(
                name,
                format!("dtype {other:?} is not supported (BF16, F16, F32, F8_E4M3)"),
            ))
        }
    };
    Ok(Tensor {
        name: name.into(),
        dtype,
        shape: e.shape.clone(),
        data: TensorData::Mapped {
            map: e.map.clone(),
            offset: e.start,
            len: e.end - e.start,
        },
        row_scale: None,
    })
}

/// An FP8 E4M3 weight as stored, with its `weight_scale` (per tensor, or per
/// output row; 1 without one) as one scale per row.
fn fp8_tensor(name: &str, e: &StEntry, all: &HashMap<String, StEntry>) -> Result<Tensor> {
    // Only `*weight` tensors have a `*weight_scale`; the scale itself must not be fp8 (a tensor
    // named "" once made this recurse forever: a fuzz find).
    let scale_name = name.strip_suffix("weight").map(|p| format!("{p}weight_scale"));
    let scale = match scale_name.as_ref().and_then(|n| all.get(n).map(|e| (n, e))) {
        Some((_, se)) if se.dtype == StDtype::F8_E4M3 => {
            return Err(LlamaError::tensor(name, "its weight_scale is fp8; scales must be f32/bf16/f16"))
        }
        Some((sn, _)) => to_tensor(sn, all)?.to_f32()?,
        None => vec![1.0],
    };
    let cols = e.shape.last().copied().unwrap_or(1).max(1);
    let rows = (e.end - e.start) / cols;
    let row_scale = match scale.len() {
        1 => vec![scale[0]; rows],
        n if n == rows => scale,
        n => {
            return Err(LlamaError::tensor(
                name,
                format!("weight_scale has {n} values for {rows} rows"),
            ))
        }
    };
    if let Some(bad) = row_scale.iter().find(|s| !s.is_finite()) {
        return Err(LlamaError::tensor(name, format!("weight_scale holds {bad}")));
    }
    Ok(Tensor {
        name: name.into(),
        dtype: DType::F8E4M3,
        shape: e.shape.clone(),
        data: TensorData::Mapped {
            map: e.map.clone(),
            offset: e.start,
            len: e.end - e.start,
        },
        row_scale: Some(Arc::new(row_scale)),
    })
}

/// Loads the weights of an HF Llama directory.
pub fn load_weights(dir: &Path) -> Result<LlamaWeights> {
    let cfg_path = dir.join("config.json");
    if !cfg_path.exists() {
        return Err(hf_err(format!("{} has no config.json", dir.display())));
    }
    let cj = read_json(&cfg_path)?;
    let config = config_from_json(&cj)?;
    let mut all = HashMap::new();
    for f in safetensors_files(dir)? {
        open_safetensors(&f, &mut all)?;
    }
    let t = |n: &str| to_tensor(n, &all);
    let tok_embd = t("model.embed_tokens.weight")?;
    let tie = cj
        .get("tie_word_embeddings")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let (output, tied) = match t("lm_head.weight") {
        Ok(o) => (o, false),
        Err(e) if !tie && !all.is_empty() && all.contains_key("lm_head.weight") => return Err(e),
        Err(_) => (tok_embd.clone(), true),
    };
    // Not `with_capacity(n_layers)`: n_layers comes from the file (see model.rs).
    let mut layers = Vec::new();
    for i in 0..config.n_layers {
        let p = format!("model.layers.{i}.");
        let l = |n: &str| t(&format!("{p}{n}.weight"));
        layers.push(LayerWeights {
            attn_norm: l("input_layernorm")?,
            wq: l("self_attn.q_proj")?,
            wk: l("self_attn.k_proj")?,
            wv: l("self_attn.v_proj")?,
            wo: l("self_attn.o_proj")?,
            ffn_norm: l("post_attention_layernorm")?,
            w_gate: l("mlp.gate_proj")?,
            w_up: l("mlp.up_proj")?,
            w_down: l("mlp.down_proj")?,
        });
    }
    let w = LlamaWeights {
        config,
        tok_embd,
        layers,
        norm: t("model.norm.weight")?,
        output,
        tied_embeddings: tied,
    };
    w.validate()?;
    Ok(w)
}

/// Reorders Q/K rows from llama.cpp's interleaved-RoPE layout back to the HF
/// layout: within each head, GGUF row `2j + s` is HF row `s * hd/2 + j`.
pub fn unpermute_qk(values: &[f32], n_heads: usize, cols: usize) -> Vec<f32> {
    let rows = values.len() / cols;
    let hd = rows / n_heads;
    let mut out = vec![0f32; values.len()];
    for h in 0..n_heads {
        for j in 0..hd / 2 {
            for s in 0..2 {
                let src = h * hd + 2 * j + s;
                let dst = h * hd + s * (hd / 2) + j;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// Writes `w` as a Hugging Face directory (`config.json`, `model.safetensors`
/// in f32 or bf16, tokenizer files), undoing the GGUF Q/K permutation.
pub fn write_hf_dir(w: &LlamaWeights, tok: &Tokenizer, out: &Path, dtype: &str) -> Result<()> {
    let dt = match dtype.to_ascii_lowercase().as_str() {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        other => {
            return Err(LlamaError::Invalid(format!(
                "--dtype {other}: expected f32 or bf16"
            )))
        }
    };
    let c = &w.config;
    if c.rope_freq_factors.is_some() || c.rope_linear_scale != 1.0 {
        return Err(LlamaError::Invalid(
            "converting models with rope scaling is not supported".into(),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| LlamaError::io(out, e))?;
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add = |name: String, t: &Tensor, qk_heads: Option<usize>| -> Result<()> {
        let mut v = t.to_f32()?;
        if let (Some(h), RopeLayout::Interleaved) = (qk_heads, c.rope_layout) {
            v = unpermute_qk(&v, h, t.cols());
        }
        named.push((name, t.shape.clone(), quant::encode_float(dt, &v)?));
        Ok(())
    };
    add("model.embed_tokens.weight".into(), &w.tok_embd, None)?;
    add("model.norm.weight".into(), &w.norm, None)?;
    if !w.tied_embeddings {
        add("lm_head.weight".into(), &w.output, None)?;
    }
    for (i, l) in w.layers.iter().enumerate() {
        let p = format!("model.layers.{i}.");
        add(format!("{p}input_layernorm.weight"), &l.attn_norm, None)?;
        add(
            format!("{p}self_attn.q_proj.weight"),
            &l.wq,
            Some(c.n_heads),
        )?;
        add(
            format!("{p}self_attn.k_proj.weight"),
            &l.wk,
            Some(c.n_kv_heads),
        )?;
        add(format!("{p}self_attn.v_proj.weight"), &l.wv, None)?;
        add(format!("{p}self_attn.o_proj.weight"), &l.wo, None)?;
        add(
            format!("{p}post_attention_layernorm.weight"),
            &l.ffn_norm,
            None,
        )?;
        add(format!("{p}mlp.gate_proj.weight"), &l.w_gate, None)?;
        add(format!("{p}mlp.up_proj.weight"), &l.w_up, None)?;
        add(format!("{p}mlp.down_proj.weight"), &l.w_down, None)?;
    }
    let st_dtype = if dt == DType::F32 {
        StDtype::F32
    } else {
        StDtype::BF16
    };
    let views: Vec<(String, safetensors::tensor::TensorView)> = named
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(st_dtype, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| hf_err(format!("{n}: {e:?}")))
        })
        .collect::<Result<_>>()?;
    let st_path = out.join("model.safetensors");
    safetensors::serialize_to_file(views, &None, &st_path)
        .map_err(|e| hf_err(format!("{}: {e:?}", st_path.display())))?;

    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": c.d_model,
        "intermediate_size": c.ffn_dim,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "num_hidden_layers": c.n_layers,
        "head_dim": c.head_dim,
        "vocab_size": c.vocab_size,
        "max_position_embeddings": c.context_length,
        "rms_norm_eps": c.rms_eps,
        "rope_theta": c.rope_base,
        "tie_word_embeddings": w.tied_embeddings,
        "hidden_act": "silu",
        "torch_dtype": if dt == DType::F32 { "float32" } else { "bfloat16" },
        "bos_token_id": tok.bos_id,
        "eos_token_id": tok.eos_id,
    });
    let text = |id: Option<u32>| id.and_then(|i| tok.token_text(i));
    let tok_cfg = json!({
        "bos_token": text(tok.bos_id),
        "eos_token": text(tok.eos_id),
        "add_bos_token": tok.add_bos,
        "chat_template": tok.chat_template,
    });
    let gen_cfg = json!({ "bos_token_id": tok.bos_id, "eos_token_id": tok.stop_ids });
    for (name, v) in [
        ("config.json", config),
        ("tokenizer_config.json", tok_cfg),
        ("generation_config.json", gen_cfg),
    ] {
        let p = out.join(name);
        let s = serde_json::to_string_pretty(&v).map_err(|e| hf_err(e.to_string()))?;
        std::fs::write(&p, s).map_err(|e| LlamaError::io(&p, e))?;
    }
    let tp = out.join("tokenizer.json");
    tok.inner()
        .save(&tp, false)
        .map_err(|e| LlamaError::Tokenizer(format!("{}: {e}", tp.display())))?;
    Ok(())
}
