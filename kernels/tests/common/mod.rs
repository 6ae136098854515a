//! Shared test helpers: seeded random data, element conversions, f64 references' comparison helpers.
#![allow(dead_code)]

use dsl_core::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// A host buffer's contents as f64.
pub fn to_f64<T: TestElem>(b: &HostBuffer<T>) -> Vec<f64> {
    b.to_vec().into_iter().map(|x| x.to_f64()).collect()
}

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

/// `cdiv(a, b)` on host integers, as a grid dimension.
pub fn blocks(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}
