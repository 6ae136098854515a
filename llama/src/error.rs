//! Library error type.
//!
//! Every failure caused by user input (a bad file, a missing key, an
//! unsupported tensor type...) is reported through [`LlamaError`] rather than a
//! panic, so that the CLI can print a clear message and exit non-zero.

use std::path::PathBuf;

/// Errors returned by the `llama` library.
#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    /// An I/O error while reading `path`.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid GGUF file (or is damaged).
    #[error("invalid GGUF file: {0}")]
    Gguf(String),
    /// A tensor type id that ggml does not define, or that we cannot decode.
    #[error("unsupported tensor type {0}")]
    UnsupportedType(String),
    /// A required metadata key is absent or of the wrong type.
    #[error("missing or invalid metadata key `{0}`")]
    MissingKey(String),
    /// A required tensor is absent or has an unexpected shape.
    #[error("tensor `{name}`: {msg}")]
    Tensor { name: String, msg: String },
    /// A Hugging Face directory problem (config.json, safetensors...).
    #[error("invalid Hugging Face model: {0}")]
    Hf(String),
    /// Tokenizer construction or encoding failure.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Chat template failure.
    #[error("chat template: {0}")]
    Template(String),
    /// Invalid request (empty prompt, prompt longer than the context...).
    #[error("{0}")]
    Invalid(String),
    /// The requested backend is not available in this build.
    #[error("{0}")]
    Backend(String),
}

/// Convenience alias.
pub type Result<T, E = LlamaError> = std::result::Result<T, E>;

impl LlamaError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LlamaError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn tensor(name: impl Into<String>, msg: impl Into<String>) -> Self {
        LlamaError::Tensor {
            name: name.into(),
            msg: msg.into(),
        }
    }
}
