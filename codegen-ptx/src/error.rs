//! The code generator's error: why a kernel did not compile. It sits below both the lowering and the
//! compile driver, so each imports it from here and neither imports the other for it.

use dsl_core::ir::Loc;

/// Why a kernel did not compile.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The kernel uses something this backend cannot lower (yet).
    #[error("error: {what}\n  --> {loc}\n  in kernel `{kernel}` (PTX backend)")]
    Unsupported { kernel: String, loc: Loc, what: String },
    /// Bad compile options (for example `num_warps` not a power of two).
    #[error("bad compile options for kernel `{kernel}`: {message}")]
    Options { kernel: String, message: String },
    /// LLVM rejected our IR or failed to emit PTX: a bug in this backend.
    #[error("internal error: LLVM failed on kernel `{kernel}`: {message}")]
    Llvm { kernel: String, message: String },
}
