//! Rotary position embedding (RoPE) for Llama, in the half-split layout.
//!
//! # Layout
//! Each head vector `x` of `head_dim = d` elements (`d` even) is split in halves (Hugging Face's
//! `rotate_half` convention, not the interleaved-pairs one of the original Llama code):
//! `x1 = x[..d/2]`, `x2 = x[d/2..]`, and with `c = cos_table[pos, ..d/2]`, `s = sin_table[pos, ..d/2]`:
//!
//! ```text
//! out[..d/2] = x1 * c - x2 * s
//! out[d/2..] = x2 * c + x1 * s
//! ```
//!
//! Element `i < d/2` is rotated together with element `i + d/2` by the angle `pos * theta_i`, whose
//! cosine and sine the caller tabulates as f32 `[positions, d/2]` matrices (row stride `cs_row_stride`).
//! Tensors `q`/`k` are `[tokens, heads, head_dim]` with the given token and head strides and a
//! contiguous head_dim; token `t` has position `pos[t]` (an `i32` buffer of `tokens` entries).

use dsl_core::prelude::*;

/// The rotation of one half-split head vector, in f32: returns `(x1 * c - x2 * s, x2 * c + x1 * s)`.
#[kernel_fn]
pub fn rotate_half(x1: Tile<f32>, x2: Tile<f32>, c: Tile<f32>, s: Tile<f32>) -> (Tile<f32>, Tile<f32>) {
    (x1 * c - x2 * s, x2 * c + x1 * s)
}

/// Out-of-place RoPE: `out[t, h, :] = rope(x[t, h, :], pos[t])` (module docs give the layout).
///
/// - Grid: `(tokens, heads)`: one program per (token, head) vector.
/// - `HALF_BLOCK` is a power of two `>= head_dim / 2`; the tail is masked.
/// - Math in f32 (cos/sin tables are f32), rounded once to `T`.
/// - `pos[t]` must index a row of the tables (else the launch faults out of bounds).
#[kernel]
pub fn rope<T: Float, const HALF_BLOCK: i32>(
    x: Ptr<T>,
    out: MutPtr<T>,
    cos_table: Ptr<f32>,
    sin_table: Ptr<f32>,
    pos: Ptr<i32>,
    head_dim: i32,
    x_token_stride: i32,
    x_head_stride: i32,
    out_token_stride: i32,
    out_head_stride: i32,
    cs_row_stride: i32,
) {
    let t = program_id(0).to::<i64>();
    let h = program_id(1).to::<i64>();
    let half = head_dim / 2;
    let offs = arange(0, HALF_BLOCK);
    let mask = offs < half;
    let p = load(pos + t).to::<i64>();
    let c = load_masked(cos_table + p * cs_row_stride + offs, mask, 0.0);
    let s = load_masked(sin_table + p * cs_row_stride + offs, mask, 0.0);
    let xv = x + t * x_token_stride + h * x_head_stride;
    let x1 = load_masked(xv + offs, mask, 0.0).to::<f32>();
    let x2 = load_masked(xv + half + offs, mask, 0.0).to::<f32>();
    let (o1, o2) = rotate_half(x1, x2, c, s);
    let ov = out + t * out_token_stride + h * out_head_stride;
    store_masked(ov + offs, o1.to::<T>(), mask);
    store_masked(ov + half + offs, o2.to::<T>(), mask);
}

/// In-place RoPE: `x[t, h, :] = rope(x[t, h, :], pos[t])` (module docs give the layout).
///
/// - Grid: `(tokens, heads)`: one program per (token, head) vector; each program reads both halves of
///   its vector before writing them, and no two programs touch the same vector.
/// - `HALF_BLOCK` is a power of two `>= head_dim / 2`; the tail is masked.
/// - Math in f32, rounded once to `T`.
#[kernel]
pub fn rope_inplace<T: Float, const HALF_BLOCK: i32>(
    x: MutPtr<T>,
    cos_table: Ptr<f32>,
    sin_table: Ptr<f32>,
    pos: Ptr<i32>,
    head_dim: i32,
    token_stride: i32,
    head_stride: i32,
    cs_row_stride: i32,
) {
    let t = program_id(0).to::<i64>();
    let h = program_id(1).to::<i64>();
    let half = head_dim / 2;
    let offs = arange(0, HALF_BLOCK);
    let mask = offs < half;
    let p = load(pos + t).to::<i64>();
    let c = load_masked(cos_table + p * cs_row_stride + offs, mask, 0.0);
    let s = load_masked(sin_table + p * cs_row_stride + offs, mask, 0.0);
    let xv = x + t * token_stride + h * head_stride;
    let x1 = load_masked(xv + offs, mask, 0.0).to::<f32>();
    let x2 = load_masked(xv + half + offs, mask, 0.0).to::<f32>();
    let (o1, o2) = rotate_half(x1, x2, c, s);
    store_masked(xv + offs, o1.to::<T>(), mask);
    store_masked(xv + half + offs, o2.to::<T>(), mask);
}
