//! Hugging Face model directories (placeholder, filled in below).
use crate::error::{LlamaError, Result};
use crate::model::LlamaWeights;
use std::path::Path;

/// Loads weights from an HF directory.
pub fn load_weights(dir: &Path) -> Result<LlamaWeights> {
    Err(LlamaError::Hf(format!("{}: not supported yet", dir.display())))
}

/// Writes weights as an HF directory.
pub fn write_hf_dir(_w: &LlamaWeights, _t: &crate::tokenizer::Tokenizer, out: &Path, _dtype: &str) -> Result<()> {
    Err(LlamaError::Hf(format!("{}: not supported yet", out.display())))
}
