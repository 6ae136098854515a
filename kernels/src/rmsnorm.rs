//! RMSNorm (Llama's normalization layer).

use dsl_core::prelude::*;

/// RMSNorm of each row of a row-major `[rows, cols]` matrix:
/// `out[r, c] = x[r, c] / sqrt(mean_c(x[r, :]^2) + eps) * w[c]`.
///
/// - Grid: `rows` programs along axis 0, one per row.
/// - Layout: row `r` of `x` starts at `x + r * x_row_stride`, of `out` at `out + r * out_row_stride`;
///   elements of a row, and `w` (`cols` elements), are contiguous.
/// - Any `cols >= 1`: the row is walked in `BLOCK`-wide chunks twice (a runtime loop): first to
///   accumulate the sum of squares (an f32 tile carried through the loop), then to normalize and store.
///   The last chunk is masked.
/// - Math in f32 for `T` in `f32`, `f16`, `bf16`; `x * inv_rms` is computed in f32, multiplied by the
///   weight in f32 and rounded once to `T`.
#[kernel]
pub fn rmsnorm<T: Float, const BLOCK: i32>(
    x: Ptr<T>,
    w: Ptr<T>,
    out: MutPtr<T>,
    cols: i32,
    x_row_stride: i32,
    out_row_stride: i32,
    eps: f32,
) {
    let row = program_id(0).to::<i64>();
    let x_row = x + row * x_row_stride;
    let out_row = out + row * out_row_stride;
    let mut sq = zeros::<f32>([BLOCK]);
    for c0 in (0..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let mask = offs < cols;
        let v = load_masked(x_row + offs, mask, 0.0).to::<f32>();
        sq = sq + v * v;
    }
    let mean_sq = sum(sq, 0) / cols.to::<f32>();
    let inv_rms = 1.0 / sqrt(mean_sq + eps);
    for c0 in (0..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let mask = offs < cols;
        let v = load_masked(x_row + offs, mask, 0.0).to::<f32>();
        let g = load_masked(w + offs, mask, 0.0).to::<f32>();
        store_masked(out_row + offs, (v * inv_rms * g).to::<T>(), mask);
    }
}
