//! The small kernels of a Llama forward pass that the other modules do not cover: the embedding
//! lookup, RMSNorm from the f32 residual stream to the GEMMs' input type (the residual add is in the
//! GEMMs' combine: `fp8_gemm`'s `GemmOptions::accumulate`), and the SwiGLU product of a fused
//! gate-and-up projection; and, for FP8 weights, the per-token fp8 quantization of what the next GEMM
//! reads: fused into RMSNorm (one program per row), and after the SwiGLU over many programs (block
//! maxima, then the quantization). Math in f32.
//!
//! Every kernel here first lets the next kernel start and then waits for the one ahead
//! (`gdc_launch_dependents`, `gdc_wait`): under programmatic dependent launch (Hopper) a step's
//! launches overlap the end of the kernel before them; elsewhere both do nothing.

use crate::fp8_gemm::{fp8_row_scale, fp8_saturate};
use dsl_core::prelude::*;

/// `1 / sqrt(mean(x_row[..cols]^2) + eps)` given the row's first `BLOCK` columns `x0` (0 past `cols`),
/// the rest walked `BLOCK` at a time. The kernels keep their first block in registers, so a row that
/// fits one block (a decode step's) is read from memory once: each further pass over a row is one more
/// round of dependent loads. The sum has the bits of one walk over the whole row.
#[kernel_fn]
fn inv_rms<const BLOCK: i32>(x_row: Ptr<f32>, x0: Tile<f32>, cols: Tile<i32>, eps: Tile<f32>) -> Tile<f32> {
    let mut sq = x0 * x0;
    for c0 in (BLOCK..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let v = load_masked(x_row + offs, offs < cols, 0.0);
        sq = sq + v * v;
    }
    1.0 / sqrt(sum(sq, 0) / cols.to::<f32>() + eps)
}

/// `out[t, j] = silu(gu[t, j]) * gu[t, f + j]` over block `program_id(1)` of token `program_id(0)`'s
/// row, rounded to `T`; returns the block (0 where masked off).
#[kernel_fn]
fn swiglu_block<T: Float, const BLOCK: i32>(gu: Ptr<T>, out: MutPtr<T>, f: Tile<i32>) -> Tile<T> {
    let t = program_id(0).to::<i64>();
    let offs = program_id(1) * BLOCK + arange(0, BLOCK);
    let ok = offs < f;
    let g = load_masked(gu + t * 2 * f + offs, ok, 0.0).to::<f32>();
    let u = load_masked(gu + t * 2 * f + f + offs, ok, 0.0).to::<f32>();
    let y = (g * sigmoid(g) * u).to::<T>();
    store_masked(out + t * f + offs, y, ok);
    y
}

/// `out[t, :] = table[ids[t], :]` as f32 (the residual stream starts in f32).
///
/// - Grid: `(tokens, cdiv(d, BLOCK))`. `table` is `[vocab, d]` row-major; `ids[t]` must be below
///   `vocab` (the host checks token ids before upload).
#[kernel]
pub fn embed_rows<T: Float, const BLOCK: i32>(table: Ptr<T>, ids: Ptr<i32>, out: MutPtr<f32>, d: i32) {
    gdc_launch_dependents();
    gdc_wait();
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
/// - Grid: `rows` programs; program `r` normalizes the row of `x` at element `x_offset + r * x_row_stride`
///   (the last token's row alone before the LM head; with a stride of a sequence's rows, the last row
///   of each sequence) into row `r` of `out` (rows `cols` apart); `w` has
///   `cols` f32 values. Any `cols`: the first `BLOCK` columns are read once, the rest twice (sum of
///   squares, then scale) `BLOCK` at a time.
#[kernel]
pub fn rmsnorm_to<O: Float, const BLOCK: i32>(x: Ptr<f32>, w: Ptr<f32>, out: MutPtr<O>, cols: i32, x_row_stride: i32, x_offset: i32, eps: f32) {
    gdc_launch_dependents();
    gdc_wait();
    let row = program_id(0).to::<i64>();
    let x_row = x + (x_offset.to::<i64>() + row * x_row_stride);
    let out_row = out + row * cols;
    let offs0 = arange(0, BLOCK);
    let ok0 = offs0 < cols;
    let (x0, w0) = (load_masked(x_row + offs0, ok0, 0.0), load_masked(w + offs0, ok0, 0.0));
    let inv_rms = inv_rms::<BLOCK>(x_row, x0, cols, eps);
    store_masked(out_row + offs0, (x0 * inv_rms * w0).to::<O>(), ok0);
    for c0 in (BLOCK..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let ok = offs < cols;
        let v = load_masked(x_row + offs, ok, 0.0);
        let g = load_masked(w + offs, ok, 0.0);
        store_masked(out_row + offs, (v * inv_rms * g).to::<O>(), ok);
    }
}

/// RMSNorm of each f32 row quantized per row to fp8, as [`rmsnorm_to`] then
/// [`quantize_rows`](crate::fp8_gemm::quantize_rows) would but with no rounding in between: `y[r, c] =
/// x[r, c] / sqrt(mean_c(x[r, :]^2) + eps) * w[c]`, `scale[r] = max_c |y[r, c]| / 448` (1 for an
/// all-zero row), `q[r, c] = Q(y[r, c] / scale[r])` saturated to ±448.
///
/// - Grid: `rows` programs over packed rows (`cols` apart in `x` and `q`). The first `BLOCK` columns
///   are read once and kept; the rest in three passes (sum of squares, largest magnitude, quantize),
///   `BLOCK` at a time.
#[kernel]
pub fn rmsnorm_quant<Q: Numeric, const BLOCK: i32>(x: Ptr<f32>, w: Ptr<f32>, q: MutPtr<Q>, scale: MutPtr<f32>, cols: i32, eps: f32) {
    gdc_launch_dependents();
    gdc_wait();
    let row = program_id(0).to::<i64>();
    let x_row = x + row * cols;
    let offs0 = arange(0, BLOCK);
    let ok0 = offs0 < cols;
    let (x0, w0) = (load_masked(x_row + offs0, ok0, 0.0), load_masked(w + offs0, ok0, 0.0));
    let inv_rms = inv_rms::<BLOCK>(x_row, x0, cols, eps);
    let y0 = x0 * inv_rms * w0;
    let mut amax = abs(y0);
    for c0 in (BLOCK..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let ok = offs < cols;
        let y = load_masked(x_row + offs, ok, 0.0) * inv_rms * load_masked(w + offs, ok, 0.0);
        amax = maximum(amax, abs(y));
    }
    let s = fp8_row_scale(max(amax, 0));
    store(scale + row, s);
    let inv_s = 1.0 / s;
    store_masked(q + row * cols + offs0, fp8_saturate::<Q>(y0, inv_s), ok0);
    for c0 in (BLOCK..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let ok = offs < cols;
        let y = load_masked(x_row + offs, ok, 0.0) * inv_rms * load_masked(w + offs, ok, 0.0);
        store_masked(q + row * cols + offs, fp8_saturate::<Q>(y, inv_s), ok);
    }
}

/// SwiGLU as [`silu_mul_halves`], and each program's largest magnitude of what it stored: `part_max[t
/// * blocks + b] = max_j |out[t, j]|` over its block `b` (`blocks = num_programs(1)`). With
/// [`quantize_blocks`], the per-token fp8 quantization of the down projection's input over many
/// programs: at decode one row is 14336 wide, and one program walking it (SiLU and quantization fused)
/// took 14.9 µs on the H200 against ~2 µs for a launch (bench/llama_gpu/NOTES.md).
///
/// - Grid: `(tokens, cdiv(f, BLOCK))`; `gu` is `[tokens, 2 f]`, `out` is `[tokens, f]`, `part_max`
///   is `[tokens, blocks]`.
#[kernel]
pub fn silu_mul_block_max<T: Float, const BLOCK: i32>(gu: Ptr<T>, out: MutPtr<T>, part_max: MutPtr<f32>, f: i32) {
    gdc_launch_dependents();
    gdc_wait();
    let y = swiglu_block::<T, BLOCK>(gu, out, f);
    // Masked lanes hold silu(0) * 0 = 0, which never raises the maximum.
    let (t, b) = (program_id(0).to::<i64>(), program_id(1));
    store(part_max + t * num_programs(1) + b, max(abs(y.to::<f32>()), 0));
}

/// Per-row fp8 quantization over many programs, given each row's block maxima (as
/// [`silu_mul_block_max`] leaves them): the values of [`quantize_rows`](crate::fp8_gemm::quantize_rows),
/// `scale[t] = max |x[t, :]| / 448` (1 for an all-zero row) and `q[t, c] = Q(x[t, c] / scale[t])`
/// saturated to ±448.
///
/// - Grid: `(tokens, cdiv(cols, BLOCK))`; `x` and `q` are `[tokens, cols]`, `part_max` is `[tokens,
///   blocks]` (`blocks = num_programs(1)`), read `PARTS` at a time by every program; program `(t, 0)`
///   stores `scale[t]`.
#[kernel]
pub fn quantize_blocks<T: Float, Q: Numeric, const BLOCK: i32, const PARTS: i32>(x: Ptr<T>, part_max: Ptr<f32>, q: MutPtr<Q>, scale: MutPtr<f32>, cols: i32) {
    gdc_launch_dependents();
    gdc_wait();
    let t = program_id(0).to::<i64>();
    let b = program_id(1);
    let blocks = num_programs(1);
    let mut amax = zeros::<f32>([PARTS]);
    for p0 in (0..blocks).step_by(PARTS) {
        let ps = p0 + arange(0, PARTS);
        amax = maximum(amax, load_masked(part_max + t * blocks + ps, ps < blocks, 0.0));
    }
    let s = fp8_row_scale(max(amax, 0));
    let first = arange(0, 1);
    store_masked(scale + t + first, zeros::<f32>([1]) + s, first + b == 0);
    let offs = b * BLOCK + arange(0, BLOCK);
    let ok = offs < cols;
    let v = load_masked(x + t * cols + offs, ok, 0.0).to::<f32>();
    store_masked(q + t * cols + offs, fp8_saturate::<Q>(v, 1.0 / s), ok);
}

/// SwiGLU of a fused gate-and-up projection: `out[t, j] = silu(gu[t, j]) * gu[t, f + j]` for `j < f`
/// (`gu` is `[tokens, 2 f]`: the gate's `f` columns, then the up projection's), rounded once to `T`.
///
/// - Grid: `(tokens, cdiv(f, BLOCK))`; `out` is `[tokens, f]`.
#[kernel]
pub fn silu_mul_halves<T: Float, const BLOCK: i32>(gu: Ptr<T>, out: MutPtr<T>, f: i32) {
    gdc_launch_dependents();
    gdc_wait();
    swiglu_block::<T, BLOCK>(gu, out, f);
}
