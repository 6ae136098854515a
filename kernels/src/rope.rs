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
    gdc_launch_dependents();
    gdc_wait();
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

/// Rotates the head vector at `xv` in place: loads both halves (`offs < half` masked by `mask`),
/// applies [`rotate_half`] with `c`/`s`, stores the result rounded to `T`.
#[kernel_fn]
pub(crate) fn rope_vector_inplace<T: Float>(xv: MutPtr<T>, half: Tile<i32>, offs: Tile<i32>, mask: Tile<bool>, c: Tile<f32>, s: Tile<f32>) {
    let x1 = load_masked(xv + offs, mask, 0.0).to::<f32>();
    let x2 = load_masked(xv + half + offs, mask, 0.0).to::<f32>();
    let (o1, o2) = rotate_half(x1, x2, c, s);
    store_masked(xv + offs, o1.to::<T>(), mask);
    store_masked(xv + half + offs, o2.to::<T>(), mask);
}

/// Fused in-place RoPE of `q` (`[tokens, q_heads, head_dim]`) and `k` (`[tokens, k_heads, head_dim]`,
/// e.g. fewer heads with grouped-query attention) in one launch (module docs give the layout).
///
/// - Grid: `(tokens, q_heads + k_heads)`: program `(t, h)` rotates `q[t, h]` if `h < q_heads`, else
///   `k[t, h - q_heads]` (a runtime branch on the program id).
/// - `HALF_BLOCK` is a power of two `>= head_dim / 2`; the tail is masked. Math in f32, rounded once to
///   `T`; the result equals [`rope_inplace`] applied to `q` and to `k`.
#[kernel]
pub fn rope_qk_inplace<T: Float, const HALF_BLOCK: i32>(
    q: MutPtr<T>,
    k: MutPtr<T>,
    cos_table: Ptr<f32>,
    sin_table: Ptr<f32>,
    pos: Ptr<i32>,
    q_heads: i32,
    head_dim: i32,
    q_token_stride: i32,
    q_head_stride: i32,
    k_token_stride: i32,
    k_head_stride: i32,
    cs_row_stride: i32,
) {
    let t = program_id(0).to::<i64>();
    let h = program_id(1);
    let half = head_dim / 2;
    let offs = arange(0, HALF_BLOCK);
    let mask = offs < half;
    let p = load(pos + t).to::<i64>();
    let c = load_masked(cos_table + p * cs_row_stride + offs, mask, 0.0);
    let s = load_masked(sin_table + p * cs_row_stride + offs, mask, 0.0);
    if h < q_heads {
        let qv = q + t * q_token_stride + h.to::<i64>() * q_head_stride;
        rope_vector_inplace(qv, half, offs, mask, c, s);
    } else {
        let kv = k + t * k_token_stride + (h - q_heads).to::<i64>() * k_head_stride;
        rope_vector_inplace(kv, half, offs, mask, c, s);
    }
}
