//! Test-suite of the `llama` crate (one binary, to keep linking cheap).

mod common;
mod gguf_tests;
mod hf_tests;
mod model_tests;
mod quant_tests;
mod sampler_tests;
mod smollm;
mod tokenizer_tests;
