//! `kernels::softmax`: row-wise softmax.

use super::*;
use dsl_core::prelude::{bf16, f16, Float, Runtime};
use kernels::softmax::softmax;

cases!("softmax": softmax_f32, softmax_f16, softmax_bf16, softmax_rows_sum_to_one);

fn softmax_ref(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// `rows × cols` softmax with row strides wider than `cols` (gaps poisoned, must stay poisoned).
fn check<R: Runtime, T: TestElem + Float, const BLOCK: i32>(rt: &R, rows: usize, cols: usize, seed: u64) {
    let mut r = rng(seed);
    let (xs, os) = (cols + 3, cols + 5);
    let (x, xf) = rand_elems::<T>(&mut r, rows * xs, 3.0);
    let mut out = poisoned::<R, T>(rt, rows * os);
    let what = format!("softmax<{}> {rows}x{cols}", T::NAME);
    launched(
        &what,
        softmax::<T, BLOCK>::launch(rt, rows as u32, &upload(rt, &x), &mut out, cols as i32, xs as i32, os as i32),
    );
    let got = download_f64(rt, &out);
    let mut want = vec![f64::NAN; rows * os];
    for i in 0..rows {
        let w = softmax_ref(&xf[i * xs..i * xs + cols]);
        want[i * os..i * os + cols].copy_from_slice(&w);
    }
    let written = |i: usize| i % os < cols;
    // f32 math: the error of `x - max` (|x - max| up to ~20) is amplified by exp; then one rounding to T.
    // This also covers a GPU: its exp (ex2.approx, ~2 ulp; even uncorrected, the rounding of
    // (x - max) * log2 e would add only ~|x - max| units of 2^-24) and its tree-ordered sum of positive
    // terms (a smaller error bound than the sequential one) stay well inside 64 eps = 128 units.
    let rtol = T::U + 64.0 * f32::EPSILON as f64;
    assert_close_where(&what, &got, &want, rtol, |_| T::TINY, written);
    assert_poison_kept("softmax", &got, written);
}

pub fn softmax_f32<R: Runtime>(rt: &R) {
    check::<R, f32, 1>(rt, 3, 1, 1);
    check::<R, f32, 8>(rt, 5, 7, 2);
    check::<R, f32, 128>(rt, 17, 100, 3);
    check::<R, f32, 1024>(rt, 4, 1000, 4);
    // BLOCK much larger than cols.
    check::<R, f32, 64>(rt, 2, 33, 5);
}

pub fn softmax_f16<R: Runtime>(rt: &R) {
    check::<R, f16, 8>(rt, 5, 7, 6);
    check::<R, f16, 256>(rt, 9, 255, 7);
    check::<R, f16, 1024>(rt, 3, 1000, 8);
}

pub fn softmax_bf16<R: Runtime>(rt: &R) {
    check::<R, bf16, 8>(rt, 5, 7, 9);
    check::<R, bf16, 128>(rt, 9, 100, 10);
    check::<R, bf16, 2048>(rt, 2, 1337, 11);
}

/// Each row of a contiguous f32 softmax (inputs spread wide: most outputs are tiny) is a probability
/// distribution: every element in `[0, 1]`, and the row sums to 1 within 1e-5.
pub fn softmax_rows_sum_to_one<R: Runtime>(rt: &R) {
    let mut r = rng(12);
    let (rows, cols) = (6, 50);
    let (x, _) = rand_elems::<f32>(&mut r, rows * cols, 10.0);
    let mut out = filled(rt, rows * cols, f32::NAN);
    launched(
        "softmax rows_sum_to_one",
        softmax::<f32, 64>::launch(rt, rows as u32, &upload(rt, &x), &mut out, cols as i32, cols as i32, cols as i32),
    );
    let o = download_f64(rt, &out);
    if let Some(i) = o.iter().position(|p| !(0.0..=1.0).contains(p)) {
        panic!("softmax rows_sum_to_one: element {i} is {}, not a probability", o[i]);
    }
    for i in 0..rows {
        let s: f64 = o[i * cols..(i + 1) * cols].iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "row {i} sums to {s}");
    }
}
