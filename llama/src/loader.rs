//! Opens a model from a path: a GGUF file or a Hugging Face directory.

use crate::error::{LlamaError, Result};
use crate::gguf::GgufFile;
use crate::model::LlamaWeights;
use crate::tokenizer::Tokenizer;
use std::path::Path;

/// Weights and tokenizer of a model, ready to hand to a backend.
pub struct LoadedModel {
    pub weights: LlamaWeights,
    pub tokenizer: Tokenizer,
    /// "gguf" or "hf".
    pub format: &'static str,
}

/// Loads a GGUF file or an HF directory (`config.json` + safetensors).
pub fn load(path: &Path) -> Result<LoadedModel> {
    if path.is_dir() {
        let weights = crate::hf::load_weights(path)?;
        let tokenizer = Tokenizer::from_hf_dir(path)?;
        return Ok(LoadedModel {
            weights,
            tokenizer,
            format: "hf",
        });
    }
    if !path.exists() {
        return Err(LlamaError::Invalid(format!(
            "model path {} does not exist",
            path.display()
        )));
    }
    let g = GgufFile::open(path)?;
    let weights = LlamaWeights::from_gguf(&g)?;
    let tokenizer = Tokenizer::from_gguf(&g)?;
    Ok(LoadedModel {
        weights,
        tokenizer,
        format: "gguf",
    })
}
