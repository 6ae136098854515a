//! The PTX backend: IR → LLVM (inkwell, NVPTX) → PTX, and the cudarc runtime.
//!
//! Not built yet (issue 3). This crate exists so the workspace has its final shape; it exposes nothing,
//! so no caller can mistake it for a working backend. Kernels run today through
//! `dsl_core::interp::Interpreter`.
