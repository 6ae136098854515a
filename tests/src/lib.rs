//! Workspace-level tests of the kernel language that do not belong to one crate.
//!
//! - [`checks`]: the kernels' correctness checks, generic over the backend ([`dsl_core::runtime::Runtime`]):
//!   the same seeded random ragged shapes, float64 references and poisoned outputs run on the interpreter
//!   (`tests/kernels_interp.rs`, one `#[test]` per case) and on any other backend through
//!   [`checks::all_cases`].
//! - `tests/compile_fail.rs`: a [trybuild] run over `ui/*.rs`. Each case is a tiny complete program with
//!   one `#[kernel]` (or `#[kernel_fn]`, or a launch in `main`) that the language must reject at compile
//!   time, and its `.stderr` is the exact diagnostic users see. The cases pin down that:
//!   - Rust syntax the language cannot express (`while`, closures, `match`, `as`, indexing, macros...) is
//!     rejected by `#[kernel]` with the caret on the offending token and a message saying what to write
//!     instead;
//!   - type errors inside a kernel (a runtime value where a constexpr is needed, storing through a
//!     `Ptr<T>`, a dtype mismatch, fp8 arithmetic, a non-tile value carried by a runtime loop) surface
//!     through the `#[diagnostic::on_unimplemented]` messages of `dsl-core`'s traits;
//!   - the typed launcher makes wrong launch arguments rustc errors at the call site.
//!
//!   Regenerate the expected output after an intended change with
//!   `TRYBUILD=overwrite cargo test -p tests --test compile_fail`, then read every changed `.stderr`.
//!
//! [trybuild]: https://docs.rs/trybuild

pub mod checks;
pub mod gemm;
pub mod fp8_bench;
pub mod fp8_study;
pub mod graph_timing;
pub mod llama_gpu;
pub mod tma_bench;
