//! Kernels written in the kernel language (only through `#[kernel]` / `#[kernel_fn]`), one module per
//! family. Each kernel's rustdoc says what it computes, its launch grid and its layout assumptions.


pub mod attention;
pub mod kv_attention;
pub mod elementwise;
pub mod fp8_gemm;
pub mod greedy;
pub mod llama_ops;
pub mod matmul;
pub mod random;
pub mod rmsnorm;
pub mod rope;
pub mod softmax;
