//! `llama`: a Llama 2 / Llama 3 / Llama 3.1 inference runtime.
//!
//! Loading ([`gguf`], [`hf`]) produces backend-independent [`model::LlamaWeights`];
//! a [`backend::Backend`] (today the CPU one) runs them; [`tokenizer`],
//! [`chat`] and [`sampler`] turn text into tokens and back; [`generate`] ties
//! it together for the CLI.

pub mod backend;
pub mod config;
pub mod error;
pub mod gguf;
pub mod gguf_writer;
pub mod model;
pub mod quant;
pub mod tensor;

pub use error::{LlamaError, Result};
