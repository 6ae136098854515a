//! Named architectures: the shapes of known models without their weights, for `llama bench --arch`
//! (the GPU backend makes random weights of that shape on the device).

use crate::config::{LlamaConfig, RopeLayout};
use crate::error::{LlamaError, Result};

/// The names [`by_name`] knows.
pub const NAMES: [&str; 4] = ["llama-3-8b", "llama-3-70b", "llama-2-7b", "smollm2-135m"];

/// The configuration of a named architecture (Hugging Face's `config.json` of the model), or an error
/// that lists the known names.
pub fn by_name(name: &str) -> Result<LlamaConfig> {
    let llama3 = |n_layers, d_model, n_heads, ffn_dim| {
        LlamaConfig {
            n_layers,
            d_model,
            n_heads,
            n_kv_heads: 8,
            head_dim: 128,
            ffn_dim,
            vocab_size: 128256,
            context_length: 8192,
            rms_eps: 1e-5,
            rope_base: 500000.0,
            rope_dim: 128,
            rope_layout: RopeLayout::Half,
            rope_freq_factors: None,
            rope_linear_scale: 1.0,
        }
    };
    let c = match name.to_ascii_lowercase().as_str() {
        "llama-3-8b" => llama3(32, 4096, 32, 14336),
        "llama-3-70b" => llama3(80, 8192, 64, 28672),
        "llama-2-7b" => LlamaConfig { n_kv_heads: 32, vocab_size: 32000, context_length: 4096, rope_base: 10000.0, ffn_dim: 11008, ..llama3(32, 4096, 32, 11008) },
        "smollm2-135m" => LlamaConfig {
            n_layers: 30,
            d_model: 576,
            n_heads: 9,
            n_kv_heads: 3,
            head_dim: 64,
            ffn_dim: 1536,
            vocab_size: 49152,
            context_length: 8192,
            rms_eps: 1e-5,
            rope_base: 100000.0,
            rope_dim: 64,
            rope_layout: RopeLayout::Half,
            rope_freq_factors: None,
            rope_linear_scale: 1.0,
        },
        other => return Err(LlamaError::Invalid(format!("unknown architecture `{other}` (known: {})", NAMES.join(", ")))),
    };
    c.validate()?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn named_architectures_have_their_published_sizes() {
        let params = |n: &str| super::by_name(n).unwrap().n_params() as f64 / 1e9;
        // Llama 3 8B: 8.03 B with its untied LM head, of which `n_params` counts the embedding once.
        assert!((params("llama-3-8b") - 7.50).abs() < 0.02, "{}", params("llama-3-8b"));
        assert!((params("llama-3-70b") - 69.5).abs() < 0.2, "{}", params("llama-3-70b"));
        assert!((params("smollm2-135m") - 0.1346).abs() < 0.001, "{}", params("smollm2-135m"));
        assert!(super::by_name("llama-4").unwrap_err().to_string().contains("llama-3-8b"));
    }
}
