//! Kernels written in the kernel language (only through `#[kernel]` / `#[kernel_fn]`), one module per
//! family. Each kernel's rustdoc says what it computes, its launch grid and its layout assumptions.

// The launchers `#[kernel]` generates take one argument per kernel parameter (dsl-macros does not
// silence clippy's lint on them), and kernels naturally take many strides.
#![allow(clippy::too_many_arguments)]

pub mod attention;
pub mod elementwise;
pub mod matmul;
pub mod rmsnorm;
pub mod rope;
pub mod softmax;
