//! The small kernels of a Llama forward pass that the other modules do not cover: the embedding
//! lookup, RMSNorm from the f32 residual stream to the GEMMs' input type, the residual add, and the
//! SwiGLU product of a fused gate-and-up projection; and, for FP8 weights, RMSNorm and SwiGLU fused
//! with the per-token fp8 quantization of their output (what the next GEMM reads), which saves a
//! launch and a round trip of the bf16 row each. Each is one program per row (or row block) and does
//! its math in f32.

use dsl_core::prelude::*;

/// `out[t, :] = table[ids[t], :]` as f32 (the residual stream starts in f32).
///
/// - Grid: `(tokens, cdiv(d, BLOCK))`. `table` is `[vocab, d]` row-major; `ids[t]` must be below
///   `vocab` (the host checks token ids before upload).
#[kernel]
pub fn embed_rows<T: Float, const BLOCK: i32>(table: Ptr<T>, ids: Ptr<i32>, out: MutPtr<f32>, d: i32) {
    let t = program_id(0).to::<i64>();
    let offs = program_id(1) * BLOCK + arange(0, BLOCK);
    let ok = offs < d;
    let id = load(ids + t).to::<i64>();
    let row = load_masked(table + id * d + offs, ok, 0.0).to::<f32>();
    store_masked(out + t * d + offs, row, ok);
}

/// RMSNorm of each f32 row into `O`: `out[r, c] = x[r, c] / sqrt(mean_c(x[r, :]^2) + eps) * w[c]`,
/// rounded once to `O`.
///
/// - Grid: `rows` programs; program `r` normalizes row `x_row0 + r` of `x` (rows `x_row_stride` apart:
///   the last token's row alone before the LM head) into row `r` of `out` (rows `cols` apart); `w` has
///   `cols` f32 values. Any `cols`: walked `BLOCK` at a time, twice (sum of squares, then scale).
#[kernel]
pub fn rmsnorm_to<O: Float, const BLOCK: i32>(x: Ptr<f32>, w: Ptr<f32>, out: MutPtr<O>, cols: i32, x_row_stride: i32, x_row0: i32, eps: f32) {
    let row = program_id(0).to::<i64>();
    let x_row = x + (row + x_row0) * x_row_stride;
    let mut sq = zeros::<f32>([BLOCK]);
    for c0 in (0..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let v = load_masked(x_row + offs, offs < cols, 0.0);
        sq = sq + v * v;
    }
    let inv_rms = 1.0 / sqrt(sum(sq, 0) / cols.to::<f32>() + eps);
    for c0 in (0..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let ok = offs < cols;
        let v = load_masked(x_row + offs, ok, 0.0);
        let g = load_masked(w + offs, ok, 0.0);
        store_masked(out + row * cols + offs, (v * inv_rms * g).to::<O>(), ok);
    }
}

/// RMSNorm of each f32 row quantized per row to fp8, as [`rmsnorm_to`] then
/// [`quantize_rows`](crate::fp8_gemm::quantize_rows) would but with no rounding in between: `y[r, c] =
/// x[r, c] / sqrt(mean_c(x[r, :]^2) + eps) * w[c]`, `scale[r] = max_c |y[r, c]| / 448` (1 for an
/// all-zero row), `q[r, c] = Q(y[r, c] / scale[r])` saturated to ±448.
///
/// - Grid: `rows` programs over packed rows (`cols` apart in `x` and `q`). Three passes over each row
///   (sum of squares, largest magnitude, quantize), `BLOCK` at a time: the row is read from L2 after
///   the first.
#[kernel]
pub fn rmsnorm_quant<Q: Numeric, const BLOCK: i32>(x: Ptr<f32>, w: Ptr<f32>, q: MutPtr<Q>, scale: MutPtr<f32>, cols: i32, eps: f32) {
    let row = program_id(0).to::<i64>();
    let x_row = x + row * cols;
    let mut sq = zeros::<f32>([BLOCK]);
    for c0 in (0..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let v = load_masked(x_row + offs, offs < cols, 0.0);
        sq = sq + v * v;
    }
    let inv_rms = 1.0 / sqrt(sum(sq, 0) / cols.to::<f32>() + eps);
    let mut amax = zeros::<f32>([BLOCK]);
    for c0 in (0..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let ok = offs < cols;
        let y = load_masked(x_row + offs, ok, 0.0) * inv_rms * load_masked(w + offs, ok, 0.0);
        amax = maximum(amax, abs(y));
    }
    let m = max(amax, 0);
    let s = where_(m > 0.0, m / 448.0, 1.0);
    store(scale + row, s);
    let inv_s = 1.0 / s;
    for c0 in (0..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let ok = offs < cols;
        let y = load_masked(x_row + offs, ok, 0.0) * inv_rms * load_masked(w + offs, ok, 0.0);
        store_masked(q + row * cols + offs, minimum(maximum(y * inv_s, -448.0), 448.0).to::<Q>(), ok);
    }
}

/// SwiGLU of a fused gate-and-up projection quantized per row to fp8, as [`silu_mul_halves`] then
/// [`quantize_rows`](crate::fp8_gemm::quantize_rows) would but with no rounding in between: `y[t, j] =
/// silu(gu[t, j]) * gu[t, f + j]`, `scale[t] = max_j |y[t, j]| / 448` (1 for an all-zero row), `q[t, j] =
/// Q(y[t, j] / scale[t])` saturated to ±448.
///
/// - Grid: `tokens` programs; `gu` is `[tokens, 2 f]`, `q` is `[tokens, f]`. Two passes over each row
///   (largest magnitude, quantize), `BLOCK` at a time.
#[kernel]
pub fn silu_mul_quant<T: Float, Q: Numeric, const BLOCK: i32>(gu: Ptr<T>, q: MutPtr<Q>, scale: MutPtr<f32>, f: i32) {
    let t = program_id(0).to::<i64>();
    let g_row = gu + t * 2 * f;
    let mut amax = zeros::<f32>([BLOCK]);
    for c0 in (0..f).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let ok = offs < f;
        let g = load_masked(g_row + offs, ok, 0.0).to::<f32>();
        let u = load_masked(g_row + f + offs, ok, 0.0).to::<f32>();
        amax = maximum(amax, abs(g * sigmoid(g) * u));
    }
    let m = max(amax, 0);
    let s = where_(m > 0.0, m / 448.0, 1.0);
    store(scale + t, s);
    let inv_s = 1.0 / s;
    for c0 in (0..f).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let ok = offs < f;
        let g = load_masked(g_row + offs, ok, 0.0).to::<f32>();
        let u = load_masked(g_row + f + offs, ok, 0.0).to::<f32>();
        store_masked(q + t * f + offs, minimum(maximum(g * sigmoid(g) * u * inv_s, -448.0), 448.0).to::<Q>(), ok);
    }
}

/// The residual add `x[i] += y[i]` (f32 `x`, `y` of any float type) for `i < n`.
///
/// - Grid: `cdiv(n, BLOCK)`.
#[kernel]
pub fn add_into<T: Float, const BLOCK: i32>(x: MutPtr<f32>, y: Ptr<T>, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let ok = offs < n;
    let a = load_masked(x + offs, ok, 0.0);
    let b = load_masked(y + offs, ok, 0.0).to::<f32>();
    store_masked(x + offs, a + b, ok);
}

/// SwiGLU of a fused gate-and-up projection: `out[t, j] = silu(gu[t, j]) * gu[t, f + j]` for `j < f`
/// (`gu` is `[tokens, 2 f]`: the gate's `f` columns, then the up projection's), rounded once to `T`.
///
/// - Grid: `(tokens, cdiv(f, BLOCK))`; `out` is `[tokens, f]`.
#[kernel]
pub fn silu_mul_halves<T: Float, const BLOCK: i32>(gu: Ptr<T>, out: MutPtr<T>, f: i32) {
    let t = program_id(0).to::<i64>();
    let offs = program_id(1) * BLOCK + arange(0, BLOCK);
    let ok = offs < f;
    let g = load_masked(gu + t * 2 * f + offs, ok, 0.0).to::<f32>();
    let u = load_masked(gu + t * 2 * f + f + offs, ok, 0.0).to::<f32>();
    store_masked(out + t * f + offs, (g * sigmoid(g) * u).to::<T>(), ok);
}
