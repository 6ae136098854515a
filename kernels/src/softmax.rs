//! Row-wise softmax.

use dsl_core::prelude::*;

/// Numerically stable softmax of each row of a row-major `[rows, cols]` matrix:
/// `out[r, c] = exp(x[r, c] - max_c x[r, :]) / sum_c exp(x[r, c] - max_c x[r, :])`.
///
/// - Grid: `rows` programs along axis 0, one per row.
/// - Layout: row `r` of `x` starts at `x + r * x_row_stride`, of `out` at `out + r * out_row_stride`;
///   elements of a row are contiguous.
/// - `BLOCK` is a power of two with `BLOCK >= cols`: the whole row is one tile. The tail
///   (`cols <= c < BLOCK`) reads as `-inf`, so it contributes `exp(-inf) = 0` and is never stored.
/// - Math in f32 whatever `T` is (`f32`, `f16`, `bf16`); the result is rounded once to `T`.
#[kernel]
pub fn softmax<T: Float, const BLOCK: i32>(
    x: Ptr<T>,
    out: MutPtr<T>,
    cols: i32,
    x_row_stride: i32,
    out_row_stride: i32,
) {
    let row = program_id(0).to::<i64>();
    let offs = arange(0, BLOCK);
    let mask = offs < cols;
    let v = load_masked(x + row * x_row_stride + offs, mask, 0.0).to::<f32>();
    let v = where_(mask, v, f32::NEG_INFINITY);
    let m = max(v, 0);
    let e = exp(v - m);
    let s = sum(e, 0);
    store_masked(out + row * out_row_stride + offs, (e / s).to::<T>(), mask);
}
