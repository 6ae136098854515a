//! `kernels::rmsnorm`: RMSNorm.

use super::*;
use dsl_core::prelude::{bf16, f16, Float, Runtime};
use kernels::rmsnorm::rmsnorm;

cases!("rmsnorm": rmsnorm_f32_single_block, rmsnorm_f32_looped, rmsnorm_f16, rmsnorm_bf16);

fn rmsnorm_ref(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, g)| v * inv * g).collect()
}

/// `rows × cols` RMSNorm with padded row strides (gaps poisoned, must stay poisoned). `BLOCK` may be
/// smaller than `cols`: the kernel loops over the row.
fn check<R: Runtime, T: TestElem + Float, const BLOCK: i32>(rt: &R, rows: usize, cols: usize, seed: u64) {
    let mut r = rng(seed);
    let (xs, os) = (cols + 2, cols + 7);
    let eps = 1e-5f32;
    let (x, xf) = rand_elems::<T>(&mut r, rows * xs, 1.5);
    let (w, wf) = round_to::<T>(&randn(&mut r, cols, 0.3).iter().map(|v| 1.0 + v).collect::<Vec<_>>());
    let mut out = poisoned::<R, T>(rt, rows * os);
    let what = format!("rmsnorm<{}, BLOCK={BLOCK}> {rows}x{cols}", T::NAME);
    launched(
        &what,
        rmsnorm::<T, BLOCK>::launch(
            rt,
            rows as u32,
            &upload(rt, &x),
            &upload(rt, &w),
            &mut out,
            cols as i32,
            xs as i32,
            os as i32,
            eps,
        ),
    );
    let got = download_f64(rt, &out);
    let mut want = vec![f64::NAN; rows * os];
    for i in 0..rows {
        let y = rmsnorm_ref(&xf[i * xs..i * xs + cols], &wf, eps as f64);
        want[i * os..i * os + cols].copy_from_slice(&y);
    }
    let written = |i: usize| i % os < cols;
    // f32 math: sum of squares, sqrt, divide, two products (a handful of f32 roundings); one rounding to T.
    // The sum of squares adds positive terms: a tree-ordered reduction (a GPU's) has a smaller error bound
    // (~log2 n roundings deep) than the interpreter's sequential one, so this holds on any backend.
    let rtol = T::U + 16.0 * f32::EPSILON as f64;
    assert_close_where(&what, &got, &want, rtol, |_| T::TINY, written);
    assert_poison_kept(&what, &got, written);
}

pub fn rmsnorm_f32_single_block<R: Runtime>(rt: &R) {
    check::<R, f32, 1>(rt, 1, 1, 1);
    check::<R, f32, 8>(rt, 3, 7, 2);
    check::<R, f32, 128>(rt, 5, 100, 3);
}

pub fn rmsnorm_f32_looped<R: Runtime>(rt: &R) {
    // cols > BLOCK: several chunks, ragged last chunk.
    check::<R, f32, 4>(rt, 3, 7, 4);
    check::<R, f32, 64>(rt, 4, 1000, 5);
    check::<R, f32, 256>(rt, 2, 1337, 6);
    check::<R, f32, 16>(rt, 17, 33, 7);
}

pub fn rmsnorm_f16<R: Runtime>(rt: &R) {
    check::<R, f16, 32>(rt, 3, 100, 8);
    check::<R, f16, 128>(rt, 2, 1337, 9);
}

pub fn rmsnorm_bf16<R: Runtime>(rt: &R) {
    check::<R, bf16, 32>(rt, 3, 100, 10);
    check::<R, bf16, 512>(rt, 2, 1000, 11);
}
