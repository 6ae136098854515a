//! The kernels' correctness checks, written once for every backend.
//!
//! Each case is a function `fn(&R)` generic over [`Runtime`]: it builds seeded random inputs (ragged
//! shapes, padded strides), uploads them with [`Runtime::upload`], launches a kernel of the `kernels`
//! crate, downloads the result with [`Runtime::download`] and compares it with a float64 reference. Output
//! buffers start poisoned (NaN) and every case checks that nothing outside the written region changed.
//! A failing case panics (the assert style of ordinary tests); a failed launch, upload or download
//! panics with the backend error's `Display` text.
//!
//! - [`all_cases`] lists every generic case by name (`"softmax::softmax_f32"`...): a GPU binary runs
//!   each one under [`run_case`] (which catches the panic) and reports them all.
//! - [`interp_only_cases`] lists the cases that test the interpreter itself (its out-of-bounds fault
//!   messages, the IR printer): a GPU does not fault on every out-of-bounds access.
//! - `tests/kernels_interp.rs` runs every case on the interpreter as its own `#[test]`.
//!
//! Tolerances are bounds on the f32 arithmetic the kernels do (each case's comments derive its own), so
//! that a backend is free to sum in another order (a tree instead of a sequential loop, atomics in any
//! order) and to use the GPU's hardware approximations of `exp` (`ex2.approx`: 2 ulp) and friends.

/// Lists the given case functions of the calling module as [`Case`]s named `"module::case"`, and
/// defines `cases()` (that list) and `all(rt)` (runs them in order, stopping at the first failure).
macro_rules! cases {
    ($module:literal: $($name:ident),* $(,)?) => {
        /// Every generic case of this module, named `"module::case"`.
        pub fn cases<R: ::dsl_core::runtime::Runtime>() -> Vec<$crate::checks::Case<R>> {
            vec![$((concat!($module, "::", stringify!($name)), $name::<R> as fn(&R))),*]
        }

        /// Runs every case of [`cases`] on `rt`; panics at the first failure.
        pub fn all<R: ::dsl_core::runtime::Runtime>(rt: &R) {
            for (_, case) in cases::<R>() {
                case(rt);
            }
        }
    };
}

pub mod attention;
pub mod decode_attention;
pub mod elementwise;
pub mod fp8_gemm;
pub mod grid_dep;
pub mod llama_ops;
pub mod matmul;
pub mod ops;
pub mod prefill_attention;
pub mod qkv_rope;
pub mod residual_norm;
pub mod rmsnorm;
pub mod rope;
pub mod softmax;

use dsl_core::prelude::{bf16, e4m3, e5m2, f16, Elem, Interpreter, Runtime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A named check: runs one or more launches on a backend and panics on a mismatch.
pub type Case<R> = (&'static str, fn(&R));


/// Every generic case of every module, in module order: what a backend must pass.
pub fn all_cases<R: Runtime>() -> Vec<Case<R>> {
    let mut v = elementwise::cases::<R>();
    v.extend(softmax::cases::<R>());
    v.extend(rmsnorm::cases::<R>());
    v.extend(rope::cases::<R>());
    v.extend(qkv_rope::cases::<R>());
    v.extend(matmul::cases::<R>());
    v.extend(attention::cases::<R>());
    v.extend(decode_attention::cases::<R>());
    v.extend(prefill_attention::cases::<R>());
    v.extend(llama_ops::cases::<R>());
    v.extend(fp8_gemm::cases::<R>());
    v.extend(residual_norm::cases::<R>());
    v.extend(grid_dep::cases::<R>());
    v.extend(ops::cases::<R>());
    v
}

/// Cases that check the interpreter's own behaviour (the fault it reports for an out-of-bounds access,
/// the IR printer), named like [`all_cases`]'s. Not for other backends.
pub fn interp_only_cases() -> Vec<Case<Interpreter>> {
    vec![
        ("elementwise::add_ir_prints", elementwise::add_ir_prints as fn(&Interpreter)),
        ("rope::rope_position_out_of_table_is_an_error", rope::rope_position_out_of_table_is_an_error),
        ("matmul::matmul_buffer_too_small_is_an_error", matmul::matmul_buffer_too_small_is_an_error),
    ]
}

/// Runs one case, catching its panic: `Err` holds the panic message. (The panic hook still prints it.)
pub fn run_case<R>(rt: &R, case: fn(&R)) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| case(rt))).map_err(|p| {
        if let Some(s) = p.downcast_ref::<String>() {
            s.clone()
        } else if let Some(s) = p.downcast_ref::<&str>() {
            s.to_string()
        } else {
            "panic with a non-string payload".to_string()
        }
    })
}

// ---- backend plumbing: every failure is a panic carrying the backend error's Display text ----

/// Panics with `"{what}: {error}"` (Display, not Debug) if `res` is an error.
pub fn ok<T, E: Display>(what: &str, res: Result<T, E>) -> T {
    res.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// [`ok`] for a kernel launch: panics with `"{what}: launch failed: {error}"`.
pub fn launched<E: Display>(what: &str, res: Result<(), E>) {
    ok(&format!("{what}: launch failed"), res)
}

/// A new buffer of `rt` holding `values`.
pub fn upload<R: Runtime, T: Elem>(rt: &R, values: &[T]) -> R::Buffer<T> {
    ok(&format!("upload of {} {} elements", values.len(), T::DTYPE), rt.upload(values))
}

/// A new buffer of `rt` holding `len` copies of `value`.
pub fn filled<R: Runtime, T: Elem>(rt: &R, len: usize, value: T) -> R::Buffer<T> {
    upload(rt, &vec![value; len])
}

/// A new buffer of `rt` holding `len` poison values (NaN): unwritten elements show.
pub fn poisoned<R: Runtime, T: TestElem>(rt: &R, len: usize) -> R::Buffer<T> {
    filled(rt, len, T::poison())
}

/// A buffer's contents, copied back to the host.
pub fn download<R: Runtime, T: Elem>(rt: &R, buffer: &R::Buffer<T>) -> Vec<T> {
    ok(&format!("download of a {} buffer", T::DTYPE), rt.download(buffer))
}

/// A buffer's contents as f64 (exact).
pub fn download_f64<R: Runtime, T: TestElem>(rt: &R, buffer: &R::Buffer<T>) -> Vec<f64> {
    download(rt, buffer).into_iter().map(TestElem::to_f64).collect()
}

// ---- data ----

/// A seeded RNG (reproducible tests).
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A standard-normal-ish sample (Box–Muller), never exactly zero.
pub fn normal(r: &mut StdRng) -> f64 {
    loop {
        let u1: f64 = r.gen_range(f64::MIN_POSITIVE..1.0);
        let u2: f64 = r.gen();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        if z != 0.0 {
            return z;
        }
    }
}

/// `n` normal-ish values times `scale`.
pub fn randn(r: &mut StdRng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| normal(r) * scale).collect()
}

/// Element types the tests use, with exact conversion to f64 and round-to-nearest from f64.
/// What fp8 tensor cores may add to a dot's error, relative to `sum |a·b|`, beyond f32 accumulation:
/// Hopper's fp8 `wgmma` keeps about 14 bits of the running sum inside the groups of up to 128
/// elements of k that the code generator then adds into f32 (codegen-ptx `lower::wgmma`); measured
/// on an H100 before that promotion, 4 chained instructions reached 3.6e-4. 2^-11 bounds one group.
pub const FP8_TENSOR_CORE_ERR: f64 = 1.0 / 2048.0;

/// [`FP8_TENSOR_CORE_ERR`] for a dot of `A x B` operands (0 unless one of them is fp8).
pub fn fp8_dot_err<A: TestElem, B: TestElem>() -> f64 {
    let fp8 = |name: &str| name == "e4m3" || name == "e5m2";
    if fp8(A::NAME) || fp8(B::NAME) { FP8_TENSOR_CORE_ERR } else { 0.0 }
}

pub trait TestElem: Elem {
    const NAME: &'static str;
    /// Unit roundoff (half an ulp at 1): 2^-24 for f32, 2^-11 for f16, 2^-8 for bf16.
    const U: f64;
    /// Absolute rounding error bound in the subnormal range (half the smallest subnormal).
    const TINY: f64;
    fn to_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
    /// A poison value for output buffers (NaN).
    fn poison() -> Self {
        Self::from_f64(f64::NAN)
    }
}
impl TestElem for f32 {
    const NAME: &'static str = "f32";
    const TINY: f64 = f64::from_bits(((1023 - 150) as u64) << 52);
    const U: f64 = 1.0 / (1u64 << 24) as f64;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}
impl TestElem for f16 {
    const NAME: &'static str = "f16";
    const TINY: f64 = f64::from_bits(((1023 - 25) as u64) << 52);
    const U: f64 = 1.0 / 2048.0;
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn from_f64(x: f64) -> Self {
        f16::from_f64(x)
    }
}
impl TestElem for bf16 {
    const NAME: &'static str = "bf16";
    const TINY: f64 = f64::from_bits(((1023 - 134) as u64) << 52);
    const U: f64 = 1.0 / 256.0;
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn from_f64(x: f64) -> Self {
        bf16::from_f64(x)
    }
}
impl TestElem for e4m3 {
    const NAME: &'static str = "e4m3";
    const TINY: f64 = 1.0 / 1024.0;
    const U: f64 = 1.0 / 16.0;
    fn to_f64(self) -> f64 {
        e4m3::to_f64(&self)
    }
    fn from_f64(x: f64) -> Self {
        e4m3::from_f64(x)
    }
}
impl TestElem for e5m2 {
    const NAME: &'static str = "e5m2";
    const TINY: f64 = f64::from_bits(((1023 - 17) as u64) << 52);
    const U: f64 = 1.0 / 8.0;
    fn to_f64(self) -> f64 {
        e5m2::to_f64(&self)
    }
    fn from_f64(x: f64) -> Self {
        e5m2::from_f64(x)
    }
}

/// Rounds `v` to `T`: the values to upload, and the same values back in f64 (what references use).
pub fn round_to<T: TestElem>(v: &[f64]) -> (Vec<T>, Vec<f64>) {
    let t: Vec<T> = v.iter().map(|&x| T::from_f64(x)).collect();
    let back = t.iter().map(|&x| x.to_f64()).collect();
    (t, back)
}

/// `n` random normal-ish values (times `scale`) rounded to `T`: (device values, exact f64 values).
pub fn rand_elems<T: TestElem>(r: &mut StdRng, n: usize, scale: f64) -> (Vec<T>, Vec<f64>) {
    round_to::<T>(&randn(r, n, scale))
}

/// `cdiv(a, b)` on host integers, as a grid dimension.
pub fn blocks(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

// ---- comparisons ----

/// Checks `got[i]` against `want[i]` for every `i` with `pick(i)`: `|got - want| <= atol + rtol * |want|`
/// (per-element `atol` from `atol_of(i)`). NaN in `got` fails. Panics naming the worst index.
pub fn assert_close_where(
    what: &str,
    got: &[f64],
    want: &[f64],
    rtol: f64,
    atol_of: impl Fn(usize) -> f64,
    pick: impl Fn(usize) -> bool,
) {
    assert_eq!(got.len(), want.len(), "{what}: length mismatch");
    let mut worst: Option<(usize, f64)> = None;
    let mut bad = 0usize;
    let mut checked = 0usize;
    for i in 0..got.len() {
        if !pick(i) {
            continue;
        }
        checked += 1;
        let tol = atol_of(i) + rtol * want[i].abs();
        let err = (got[i] - want[i]).abs();
        // ratio of error to tolerance; NaN (unwritten / poisoned) counts as infinitely bad.
        let ratio = if err.is_nan() { f64::INFINITY } else { err / tol.max(f64::MIN_POSITIVE) };
        if ratio > 1.0 {
            bad += 1;
        }
        if worst.is_none_or(|(_, w)| ratio > w) {
            worst = Some((i, ratio));
        }
    }
    assert!(checked > 0 || got.is_empty(), "{what}: nothing checked");
    if bad > 0 {
        let (i, ratio) = worst.unwrap();
        panic!(
            "{what}: {bad}/{checked} elements out of tolerance; worst at index {i}: got {}, want {}, |err| = {:e} \
             ({ratio:.3}x the tolerance; rtol {rtol:e}, atol {:e})",
            got[i],
            want[i],
            (got[i] - want[i]).abs(),
            atol_of(i)
        );
    }
}

/// [`assert_close_where`] over every element with one `atol`.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_close_where(what, got, want, rtol, |_| atol, |_| true);
}

/// Checks that every element with `!written(i)` still holds its poison (NaN): the kernel wrote nothing
/// outside its region.
pub fn assert_poison_kept(what: &str, got: &[f64], written: impl Fn(usize) -> bool) {
    for (i, g) in got.iter().enumerate() {
        if !written(i) {
            assert!(g.is_nan(), "{what}: element {i} outside the written region was overwritten with {g}");
        }
    }
}

/// Checks that two results are the same bits element for element (two NaNs count as equal: poison
/// left in both), e.g. a fused kernel against the kernels it replaces.
pub fn assert_same_bits(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{what}: element {i}: got {g:e}, want {w:e}");
    }
}
