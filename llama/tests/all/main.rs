//! Test-suite of the `llama` crate (one binary, to keep linking cheap).

// Expected values are computed element by element, on purpose.
#![allow(clippy::needless_range_loop)]

mod common;
mod goldens;
mod gguf_tests;
mod hf_tests;
mod model_tests;
mod quant_tests;
mod sampler_tests;
mod smollm;
mod tokenizer_tests;
