//! Errors found while specializing a kernel (tracing it into IR), reported at the user's source line.

use crate::ir::Loc;
use std::fmt;

/// An error in the user's kernel found at specialization: a shape mismatch, a non-power-of-two `arange`,
/// a `dot` of wrong shapes, a dtype an op does not take...
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct CompileError {
    /// The kernel being specialized, with its constexprs, e.g. `add<BLOCK=64>`.
    pub kernel: String,
    pub loc: Loc,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}\n  --> {}\n  in kernel `{}`", self.message, self.loc, self.kernel)
    }
}
