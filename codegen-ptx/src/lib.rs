//! The PTX backend and the CUDA runtime.
//!
//! - [`compile`]: a specialized [`dsl_core::ir::Kernel`] → LLVM IR (text, built by [`lower`]) → LLVM's
//!   NVPTX backend (inkwell) → PTX. How tile elements map to threads is in [`layout`]; what the vectorizer
//!   may assume about pointers and offsets is in [`axis`].
//! - [`runtime`]: [`runtime::CudaRuntime`], a [`dsl_core::runtime::Runtime`] on cudarc (dynamic loading:
//!   one binary runs with or without a GPU), with a JIT cache in memory and on disk, and CUDA graphs.
//! - [`abi`]: the launch ABI the two share (hidden parameters, the bounds-check error record).

// `is_multiple_of` is newer than our minimum Rust (1.85).
#![allow(clippy::manual_is_multiple_of)]

pub mod abi;
pub mod axis;
pub mod check;
pub mod compile;
pub mod error;
pub mod layout;
#[cfg(test)]
mod layers;
pub mod lower;
pub mod ptxas;
pub mod runtime;
pub mod target;

pub use compile::{compile, Compiled, CodegenError};

/// The README's examples as doctests (here, where both the interpreter and the GPU runtime are available;
/// the GPU example is compiled but not run: CI has no GPU, `bench/gpu` runs the GPU checks).
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
pub use target::{ArgFact, CompileOptions, Specialization, Target};
