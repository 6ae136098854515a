mod common;

use common::*;
use dsl_core::prelude::*;
use kernels::rmsnorm::rmsnorm;

fn rmsnorm_ref(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, g)| v * inv * g).collect()
}

/// `rows × cols` RMSNorm with padded row strides (gaps poisoned, must stay poisoned). `BLOCK` may be
/// smaller than `cols`: the kernel loops over the row.
fn check<T: TestElem + Float, const BLOCK: i32>(rows: usize, cols: usize, seed: u64) {
    let rt = Interpreter::new();
    let mut r = rng(seed);
    let (xs, os) = (cols + 2, cols + 7);
    let eps = 1e-5f32;
    let (x, xf) = rand_elems::<T>(&mut r, rows * xs, 1.5);
    let (w, wf) = round_to::<T>(&randn(&mut r, cols, 0.3).iter().map(|v| 1.0 + v).collect::<Vec<_>>());
    let mut out = HostBuffer::filled(rows * os, T::poison());
    rmsnorm::<T, BLOCK>::launch(
        &rt,
        rows as u32,
        &HostBuffer::from_slice(&x),
        &HostBuffer::from_slice(&w),
        &mut out,
        cols as i32,
        xs as i32,
        os as i32,
        eps,
    )
    .unwrap();
    let got = to_f64(&out);
    let mut want = vec![f64::NAN; rows * os];
    for i in 0..rows {
        let y = rmsnorm_ref(&xf[i * xs..i * xs + cols], &wf, eps as f64);
        want[i * os..i * os + cols].copy_from_slice(&y);
    }
    let written = |i: usize| i % os < cols;
    // f32 math: sum of squares, sqrt, divide, two products (a handful of f32 roundings); one rounding to T.
    let rtol = T::U + 16.0 * f32::EPSILON as f64;
    let what = format!("rmsnorm<{}, BLOCK={BLOCK}> {rows}x{cols}", T::NAME);
    assert_close_where(&what, &got, &want, rtol, |_| T::TINY, written);
    assert_poison_kept(&what, &got, written);
}

#[test]
fn rmsnorm_f32_single_block() {
    check::<f32, 1>(1, 1, 1);
    check::<f32, 8>(3, 7, 2);
    check::<f32, 128>(5, 100, 3);
}

#[test]
fn rmsnorm_f32_looped() {
    // cols > BLOCK: several chunks, ragged last chunk.
    check::<f32, 4>(3, 7, 4);
    check::<f32, 64>(4, 1000, 5);
    check::<f32, 256>(2, 1337, 6);
    check::<f32, 16>(17, 33, 7);
}

#[test]
fn rmsnorm_f16() {
    check::<f16, 32>(3, 100, 8);
    check::<f16, 128>(2, 1337, 9);
}

#[test]
fn rmsnorm_bf16() {
    check::<bf16, 32>(3, 100, 10);
    check::<bf16, 512>(2, 1000, 11);
}
