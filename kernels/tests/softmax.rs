mod common;

use common::*;
use dsl_core::prelude::*;
use kernels::softmax::softmax;

fn softmax_ref(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// `rows × cols` softmax with row strides wider than `cols` (gaps poisoned, must stay poisoned).
fn check<T: TestElem + Float, const BLOCK: i32>(rows: usize, cols: usize, seed: u64) {
    let rt = Interpreter::new();
    let mut r = rng(seed);
    let (xs, os) = (cols + 3, cols + 5);
    let (x, xf) = rand_elems::<T>(&mut r, rows * xs, 3.0);
    let mut out = HostBuffer::filled(rows * os, T::poison());
    softmax::<T, BLOCK>::launch(&rt, rows as u32, &HostBuffer::from_slice(&x), &mut out, cols as i32, xs as i32, os as i32)
        .unwrap();
    let got = to_f64(&out);
    let mut want = vec![f64::NAN; rows * os];
    for i in 0..rows {
        let w = softmax_ref(&xf[i * xs..i * xs + cols]);
        want[i * os..i * os + cols].copy_from_slice(&w);
    }
    let written = |i: usize| i % os < cols;
    // f32 math: the error of `x - max` (|x - max| up to ~20) is amplified by exp; then one rounding to T.
    let rtol = T::U + 64.0 * f32::EPSILON as f64;
    assert_close_where(&format!("softmax<{}> {rows}x{cols}", T::NAME), &got, &want, rtol, |_| T::TINY, written);
    assert_poison_kept("softmax", &got, written);
}

#[test]
fn softmax_f32() {
    check::<f32, 1>(3, 1, 1);
    check::<f32, 8>(5, 7, 2);
    check::<f32, 128>(17, 100, 3);
    check::<f32, 1024>(4, 1000, 4);
    // BLOCK much larger than cols.
    check::<f32, 64>(2, 33, 5);
}

#[test]
fn softmax_f16() {
    check::<f16, 8>(5, 7, 6);
    check::<f16, 256>(9, 255, 7);
    check::<f16, 1024>(3, 1000, 8);
}

#[test]
fn softmax_bf16() {
    check::<bf16, 8>(5, 7, 9);
    check::<bf16, 128>(9, 100, 10);
    check::<bf16, 2048>(2, 1337, 11);
}

#[test]
fn softmax_rows_sum_to_one() {
    let rt = Interpreter::new();
    let mut r = rng(12);
    let (rows, cols) = (6, 50);
    let (x, _) = rand_elems::<f32>(&mut r, rows * cols, 10.0);
    let mut out = HostBuffer::filled(rows * cols, f32::NAN);
    softmax::<f32, 64>::launch(&rt, rows as u32, &HostBuffer::from_slice(&x), &mut out, cols as i32, cols as i32, cols as i32)
        .unwrap();
    let o = to_f64(&out);
    for i in 0..rows {
        let s: f64 = o[i * cols..(i + 1) * cols].iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "row {i} sums to {s}");
    }
}
