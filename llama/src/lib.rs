//! `llama`: a Llama 2 / Llama 3 / Llama 3.1 inference runtime.
//!
//! Loading ([`gguf`], [`hf`], [`loader`]) produces backend-independent
//! [`model::LlamaWeights`]; a [`backend::Backend`] (the CPU one, or the GPU one built from the `kernels` crate) runs
//! them; [`tokenizer`], [`chat`] and [`sampler`] turn text into tokens and
//! back; [`generate`] ties them together for the CLI.

// `%` instead of `is_multiple_of`: the workspace's MSRV (1.85) predates it.
#![allow(clippy::manual_is_multiple_of)]

pub mod arch;
pub mod backend;
pub mod bench;
pub mod chat;
pub mod config;
pub mod discover;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod gguf_writer;
pub mod hf;
pub mod loader;
pub mod model;
pub mod quant;
pub mod sampler;
pub mod tensor;
pub mod tokenizer;

pub use error::{LlamaError, Result};
