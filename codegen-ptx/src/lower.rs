//! IR → LLVM IR text (being written).
use crate::compile::CodegenError;
use crate::target::{CompileOptions, Specialization};
use dsl_core::ir::Kernel;

/// A kernel lowered to LLVM IR text.
pub struct Lowered {
    pub ir: String,
    pub entry: String,
    pub shared_bytes: u32,
}

/// Lowers a verified kernel to one LLVM module with one `ptx_kernel` function.
pub fn lower_kernel(_k: &Kernel, _spec: &Specialization, _opts: &CompileOptions) -> Result<Lowered, CodegenError> {
    todo!()
}
