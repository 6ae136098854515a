//! Llama model weights, independent of the backend that runs them.
//!
//! The same [`LlamaWeights`] is built from a GGUF file or a Hugging Face
//! directory; a backend ([`crate::backend::Backend`]) then turns it into a
//! runnable model. Shapes are checked here, once, so the backends can trust
//! them.

use crate::config::LlamaConfig;
use crate::error::{LlamaError, Result};
use crate::gguf::GgufFile;
use crate::tensor::Tensor;

/// The weights of one transformer block. Matrices are `[out, in]` row-major
/// (PyTorch `nn.Linear` layout), in whatever dtype the file stores.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub attn_norm: Tensor,
    pub wq: Tensor,
    pub wk: Tensor,
    pub wv: Tensor,
    pub wo: Tensor,
    pub ffn_norm: Tensor,
    pub w_gate: Tensor,
    pub w_up: Tensor,
    pub w_down: Tensor,
}

/// All weights of a Llama model.
#[derive(Debug, Clone)]
pub struct LlamaWeights {
    pub config: LlamaConfig,
    pub tok_embd: Tensor,
    pub layers: Vec<LayerWeights>,
    pub norm: Tensor,
    /// The LM head; a clone of `tok_embd` when embeddings are tied.
    pub output: Tensor,
    /// True when the file has no separate output matrix (e.g. SmolLM2).
    pub tied_embeddings: bool,
}

impl LlamaWeights {
    /// Collects the weights of a GGUF file (llama.cpp tensor names). Data is
    /// not copied: tensors borrow the file's memory map.
    pub fn from_gguf(g: &GgufFile) -> Result<LlamaWeights> {
        let config = LlamaConfig::from_gguf(g)?;
        let tok_embd = g.tensor("token_embd.weight")?;
        let (output, tied) = match g.tensor("output.weight") {
            Ok(t) => (t, false),
            Err(_) => (tok_embd.clone(), true),
        };
        // No `with_capacity(n_layers)`: the count comes from the file, and a
        // corrupt one must give the missing-tensor error, not an abort.
        let mut layers = Vec::new();
        for i in 0..config.n_layers {
            let t = |n: &str| g.tensor(&format!("blk.{i}.{n}.weight"));
            layers.push(LayerWeights {
                attn_norm: t("attn_norm")?,
                wq: t("attn_q")?,
                wk: t("attn_k")?,
                wv: t("attn_v")?,
                wo: t("attn_output")?,
                ffn_norm: t("ffn_norm")?,
                w_gate: t("ffn_gate")?,
                w_up: t("ffn_up")?,
                w_down: t("ffn_down")?,
            });
        }
        let w = LlamaWeights {
            config,
            tok_embd,
            layers,
            norm: g.tensor("output_norm.weight")?,
            output,
            tied_embeddings: tied,
        };
        w.validate()?;
        Ok(w)
    }

    /// Checks every tensor's shape against the configuration.
    pub fn validate(&self) -> Result<()> {
        let c = &self.config;
        let (d, q, kv, f) = (c.d_model, c.q_dim(), c.kv_dim(), c.ffn_dim);
        self.tok_embd.expect_shape(&[c.vocab_size, d])?;
        self.output.expect_shape(&[c.vocab_size, d])?;
        self.norm.expect_shape(&[d])?;
        if self.layers.len() != c.n_layers {
            return Err(LlamaError::Invalid(format!(
                "{} layers found, {} expected",
                self.layers.len(),
                c.n_layers
            )));
        }
        for l in &self.layers {
            l.attn_norm.expect_shape(&[d])?;
            l.ffn_norm.expect_shape(&[d])?;
            l.wq.expect_shape(&[q, d])?;
            l.wk.expect_shape(&[kv, d])?;
            l.wv.expect_shape(&[kv, d])?;
            l.wo.expect_shape(&[d, q])?;
            l.w_gate.expect_shape(&[f, d])?;
            l.w_up.expect_shape(&[f, d])?;
            l.w_down.expect_shape(&[d, f])?;
        }
        Ok(())
    }
}
