//! Kernels written in the kernel language (only through `#[kernel]`).

pub mod elementwise;
