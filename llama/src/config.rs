//! Model hyper-parameters, read from GGUF metadata or an HF `config.json`.

use crate::error::{LlamaError, Result};
use crate::gguf::GgufFile;

/// How RoPE pairs up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs `(x[2i], x[2i+1])`: llama.cpp's "normal" rope for arch
    /// `llama`. The GGUF converter permutes the rows of Q/K so that this
    /// matches the HF model.
    Interleaved,
    /// Pairs `(x[i], x[i + d/2])`: HF `rotate_half` (the NeoX layout), used for
    /// weights loaded straight from a Hugging Face checkpoint.
    Half,
}

/// The largest attention head size accepted from a model file.
pub const MAX_HEAD_DIM: usize = 1 << 12;

/// Everything the forward pass needs to know about the model's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// Number of rotated dimensions per head (usually `head_dim`).
    pub rope_dim: usize,
    pub rope_layout: RopeLayout,
    /// Per-frequency divisors (Llama 3.1 `rope_freqs`), `rope_dim / 2` values.
    pub rope_freq_factors: Option<Vec<f32>>,
    /// Linear position scaling factor (positions are divided by it).
    pub rope_linear_scale: f32,
}

/// Llama 3.1 style rope scaling parameters (HF `rope_scaling` with
/// `rope_type = "llama3"`).
#[derive(Debug, Clone, Copy)]
pub struct Llama3RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: f32,
}

impl Llama3RopeScaling {
    /// The per-frequency divisors, computed exactly as llama.cpp's converter
    /// does when it writes `rope_freqs.weight`.
    pub fn freq_factors(&self, base: f32, rope_dim: usize) -> Vec<f32> {
        let low_wavelen = self.original_max_position_embeddings / self.low_freq_factor;
        let high_wavelen = self.original_max_position_embeddings / self.high_freq_factor;
        (0..rope_dim / 2)
            .map(|i| {
                let freq = 1.0 / (base as f64).powf(2.0 * i as f64 / rope_dim as f64);
                let wavelen = (2.0 * std::f64::consts::PI / freq) as f32;
                if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    self.factor
                } else {
                    let smooth = (self.original_max_position_embeddings / wavelen
                        - self.low_freq_factor)
                        / (self.high_freq_factor - self.low_freq_factor);
                    1.0 / ((1.0 - smooth) / self.factor + smooth)
                }
            })
            .collect()
    }
}

impl LlamaConfig {
    /// Reads the `llama.*` keys of a GGUF file. `rope_freqs.weight`, if
    /// present, supplies Llama 3.1 frequency factors.
    pub fn from_gguf(g: &GgufFile) -> Result<LlamaConfig> {
        let arch = g.architecture()?;
        if arch != "llama" {
            return Err(LlamaError::Invalid(format!(
                "unsupported architecture `{arch}` (this runtime supports `llama`: Llama 2, Llama 3, Llama 3.1, SmolLM2)"
            )));
        }
        let u = |k: &str| g.get_u64(&format!("{arch}.{k}")).map(|v| v as usize);
        let n_heads = u("attention.head_count")?;
        let d_model = u("embedding_length")?;
        let n_kv_heads = u("attention.head_count_kv").unwrap_or(n_heads);
        if n_heads == 0 || d_model % n_heads != 0 {
            return Err(LlamaError::Invalid(format!(
                "embedding_length {d_model} is not divisible by head_count {n_heads}"
            )));
        }
        let head_dim = u("attention.key_length").unwrap_or(d_model / n_heads);
        let vocab_size = match u("vocab_size") {
            Ok(v) => v,
            Err(_) => g
                .tensor_info("token_embd.weight")
                .map(|t| t.dims.get(1).copied().unwrap_or(0) as usize)
                .ok_or_else(|| LlamaError::MissingKey(format!("{arch}.vocab_size")))?,
        };
        let rope_dim = u("rope.dimension_count").unwrap_or(head_dim);
        let rope_freq_factors = match g.tensor("rope_freqs.weight") {
            Ok(t) => Some(t.to_f32()?),
            Err(_) => None,
        };
        let rope_linear_scale = match g
            .get(&format!("{arch}.rope.scaling.type"))
            .and_then(|v| v.as_str())
        {
            Some("linear") => g
                .get_f64(&format!("{arch}.rope.scaling.factor"))
                .unwrap_or(1.0) as f32,
            _ => 1.0,
        };
        let cfg = LlamaConfig {
            n_layers: u("block_count")?,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: u("feed_forward_length")?,
            vocab_size,
            context_length: u("context_length")?,
            rms_eps: g.get_f64(&format!("{arch}.attention.layer_norm_rms_epsilon"))? as f32,
            rope_base: g
                .get_f64(&format!("{arch}.rope.freq_base"))
                .unwrap_or(10000.0) as f32,
            rope_dim,
            rope_layout: RopeLayout::Interleaved,
            rope_freq_factors,
            rope_linear_scale,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Sanity checks shared by all loaders.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(LlamaError::Invalid(m));
        // Sizes come from the file: keep every product the runtime forms far from overflow.
        if self.head_dim == 0 || self.head_dim > MAX_HEAD_DIM {
            return err(format!("head_dim {} is out of range (1..={MAX_HEAD_DIM})", self.head_dim));
        }
        let dims = [self.n_heads, self.n_kv_heads, self.d_model, self.ffn_dim, self.vocab_size, self.n_layers];
        if dims.iter().any(|&d| d > 1 << 24) {
            return err(format!("implausible model dimensions: {self:?}"));
        }
        if self.n_layers == 0 || self.d_model == 0 || self.ffn_dim == 0 || self.vocab_size == 0 {
            return err(format!("degenerate model dimensions: {self:?}"));
        }
        if self.n_kv_heads == 0 || self.n_heads % self.n_kv_heads != 0 {
            return err(format!(
                "head_count {} is not a multiple of head_count_kv {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.rope_dim > self.head_dim || self.rope_dim % 2 != 0 {
            return err(format!(
                "rope dimension {} invalid for head size {}",
                self.rope_dim, self.head_dim
            ));
        }
        if let Some(f) = &self.rope_freq_factors {
            if f.len() != self.rope_dim / 2 {
                return err(format!(
                    "rope_freqs has {} values, expected {}",
                    f.len(),
                    self.rope_dim / 2
                ));
            }
        }
        if self.context_length == 0 {
            return err("context_length is 0".into());
        }
        Ok(())
    }

    /// Inverse frequencies `theta_i = base^(-2i/d) / factor_i` for each rotated pair.
    pub fn rope_inv_freqs(&self) -> Vec<f32> {
        (0..self.rope_dim / 2)
            .map(|i| {
                let f = (self.rope_base as f64).powf(-2.0 * i as f64 / self.rope_dim as f64);
                let ff = self
                    .rope_freq_factors
                    .as_ref()
                    .map(|v| v[i] as f64)
                    .unwrap_or(1.0);
                (f / ff) as f32
            })
            .collect()
    }

    /// `n_heads * head_dim` (bounded by `validate`).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
    /// Rough parameter count (for `llama info`).
    pub fn n_params(&self) -> usize {
        let attn = self.d_model * (self.q_dim() + 2 * self.kv_dim()) + self.q_dim() * self.d_model;
        let mlp = 3 * self.d_model * self.ffn_dim;
        self.n_layers * (attn + mlp + 2 * self.d_model)
            + self.vocab_size * self.d_model
            + self.d_model
    }
}
