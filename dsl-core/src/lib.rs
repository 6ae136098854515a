//! `dsl-core`: the kernel language's IR, types, shape rules, verifier and reference interpreter.
//!
//! - [`lang`]: what kernels are written with (tiles, pointers, builtins), re-exported by [`prelude`].
//! - [`ir`]: the typed tile IR every backend consumes, its typing rules, verifier and text form.
//! - [`interp`]: the reference interpreter, which defines the language's semantics.
//! - [`scalar`]: exact scalar semantics (rounding, casts, memory encoding).

extern crate self as dsl_core;

pub mod builder;
pub mod error;
pub mod interp;
pub mod ir;
pub mod lang;
pub mod runtime;
pub mod scalar;
pub mod tune;
pub mod types;

pub use dsl_macros::{kernel, kernel_fn};
pub use error::CompileError;

/// Everything a kernel file needs: `use dsl_core::prelude::*;`.
pub mod prelude {
    pub use crate::interp::{HostBuffer, Interpreter};
    pub use crate::ir::{CacheHint, Eviction, MemHints, Padding, ReduceOp};
    pub use crate::lang::{
        abs, arange, argmax, argmin, atomic_add, atomic_cas, atomic_max, atomic_min, atomic_xchg, cdiv, ceil, cos,
        device_assert, device_print, dot, exp, exp2, floor, fma, full, fence, gdc_launch_dependents, gdc_wait, load,
        load_block, load_block_padded, load_masked, load_with, log, log2, make_block_ptr, max, maximum, min, minimum,
        num_programs, prefetch_l2, program_id, reduce, rsqrt, sigmoid, sin, sqrt, static_range, store, store_block,
        store_masked, store_with, sum, tanh, where_, zeros, BlockPtr, DotOperands, MutBlockPtr, MutPtr, Numeric, Ptr, Tile,
    };
    pub use crate::runtime::{Grid, Launch, LaunchOptions, Runtime};
    pub use crate::types::{bf16, e4m3, e5m2, f16, Elem, Float, Int};
    pub use crate::{kernel, kernel_fn};
}
