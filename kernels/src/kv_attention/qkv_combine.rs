//! The split-K combine of a fused QKV projection, done by the kernel that rotates and appends its
//! result ([`super::cache::rope_kv_append`]): at decode the QKV GEMM splits `K` (one token leaves too
//! few output tiles to fill the GPU), and its combine would be one more launch between the GEMM and
//! RoPE. Here that launch reads the GEMM's raw f32 partials instead of its bf16 output.

use super::cache::{check_rope_append, RopeTables, RowsAt};
use super::{need, AttnError, CacheShape};
use crate::fp8_gemm::{check_scales, Partials};
use crate::rope::rotate_half;
use dsl_core::prelude::*;
use dsl_core::runtime::Runtime;
use dsl_core::types::Elem;

/// Elements `cols` (where `ok`) of output row `r` of a split-K GEMM, from its raw partials (`splits`
/// planes of `plane` f32, rows `row_at = r * n` in): the splits added in order, times the scales,
/// rounded to `T` (the bits `fp8_gemm`'s `splitk_reduce` stores), returned as f32.
#[kernel_fn]
fn combined<T: Float, const ROW_SCALE: bool, const COL_SCALE: bool>(
    partials: Ptr<f32>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    splits: Tile<i32>,
    plane: Tile<i32>,
    r: Tile<i32>,
    row_at: Tile<i32>,
    cols: Tile<i32>,
    ok: Tile<bool>,
) -> Tile<f32> {
    // Split 0 first, then the others: `0 + p0 + p1 + ...` in the reduce, the same bits.
    let mut acc = load_masked(partials + row_at + cols, ok, 0.0);
    for s in 1..splits {
        acc = acc + load_masked(partials + s * plane + row_at + cols, ok, 0.0);
    }
    let sa = if ROW_SCALE { load(scale_a + r) } else { load(scale_a) };
    let sb = if COL_SCALE { load_masked(scale_b + cols, ok, 0.0) } else { load(scale_b) };
    (acc * sa * sb).to::<T>().to::<f32>()
}

/// [`rope_kv_append`](super::cache::rope_kv_append) whose new rows are the raw partial products of a
/// split-K GEMM (`[splits, rows, stride]` f32, `rows = batch * tokens`) with its epilogue's scales
/// (`scale_a` per tensor or, `ROW_SCALE`, per row; `scale_b` per tensor or, `COL_SCALE`, per
/// column): program `(r, h)` combines the elements it needs, then rotates query head `h < q_heads`
/// into `q` (rows `stride` apart, as the GEMM's output would hold them; the first `q_heads *
/// head_dim` elements of each row are written, the rest untouched), or rotates key head `j = h -
/// q_heads` into `k_cache[b, j, p]` and copies value head `j` into `v_cache[b, j, p]`. The bits of
/// the GEMM's combine then `rope_kv_append`.
///
/// - Grid: `(batch * tokens, q_heads + kv_heads)`; `BLOCK_D >= head_dim` (a power of two).
#[kernel(instances(BLOCK_D in [16, 32, 64, 128, 256], ROW_SCALE in bool, COL_SCALE in bool))]
pub fn combine_rope_kv_append<T: Float, const BLOCK_D: i32, const ROW_SCALE: bool, const COL_SCALE: bool>(
    partials: Ptr<f32>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    q: MutPtr<T>,
    cos_table: Ptr<f32>,
    sin_table: Ptr<f32>,
    pos: Ptr<i32>,
    k_cache: MutPtr<T>,
    v_cache: MutPtr<T>,
    splits: i32,
    tokens: i32,
    q_heads: i32,
    kv_heads: i32,
    head_dim: i32,
    rope_dim: i32,
    stride: i32,
    k_off: i32,
    v_off: i32,
    max_ctx: i32,
) {
    gdc_launch_dependents();
    gdc_wait();
    let r = program_id(0);
    let h = program_id(1);
    let b = r / tokens;
    let p = load(pos + b) + r % tokens;
    let (plane, row_at) = (num_programs(0) * stride, r * stride);
    let half = rope_dim / 2;
    let offs = arange(0, BLOCK_D / 2);
    let rot = offs < half;
    let c = load_masked(cos_table + p.to::<i64>() * half + offs, rot, 0.0);
    let s = load_masked(sin_table + p.to::<i64>() * half + offs, rot, 0.0);
    // Past `rope_dim` (partial rotary embeddings) the values are copied.
    let rest = rope_dim + arange(0, BLOCK_D);
    let more = rest < head_dim;
    let head = where_(h < q_heads, h * head_dim, k_off + (h - q_heads) * head_dim);
    let x1 = combined::<T, ROW_SCALE, COL_SCALE>(partials, scale_a, scale_b, splits, plane, r, row_at, head + offs, rot);
    let x2 = combined::<T, ROW_SCALE, COL_SCALE>(partials, scale_a, scale_b, splits, plane, r, row_at, head + half + offs, rot);
    let tail = combined::<T, ROW_SCALE, COL_SCALE>(partials, scale_a, scale_b, splits, plane, r, row_at, head + rest, more);
    let (o1, o2) = rotate_half(x1, x2, c, s);
    if h < q_heads {
        let dst = q + row_at.to::<i64>() + head;
        store_masked(dst + offs, o1.to::<T>(), rot);
        store_masked(dst + half + offs, o2.to::<T>(), rot);
        store_masked(dst + rest, tail.to::<T>(), more);
    } else {
        let j = h - q_heads;
        let dst = ((b * kv_heads + j).to::<i64>() * max_ctx + p) * head_dim;
        store_masked(k_cache + dst + offs, o1.to::<T>(), rot);
        store_masked(k_cache + dst + half + offs, o2.to::<T>(), rot);
        store_masked(k_cache + dst + rest, tail.to::<T>(), more);
        let rd = arange(0, BLOCK_D);
        let ok = rd < head_dim;
        let v = combined::<T, ROW_SCALE, COL_SCALE>(partials, scale_a, scale_b, splits, plane, r, row_at, v_off + j * head_dim + rd, ok);
        store_masked(v_cache + dst + rd, v.to::<T>(), ok);
    }
}

/// [`rope_append_rows`](super::cache::rope_append_rows) for new rows that are still a split-K GEMM's
/// partials (`n = at.stride` columns, `batch * tokens` rows): combines them, rotates the query heads
/// into `q` (the GEMM's output buffer, rows `at.stride` apart), and appends keys (rotated) and values
/// at positions `pos[b]..pos[b] + tokens` (`pos[b] + tokens <= max_ctx`: the caller's promise), in
/// one launch ([`combine_rope_kv_append`]).
#[allow(clippy::too_many_arguments)]
pub fn combine_rope_append_rows<R, T>(
    rt: &R,
    shape: &CacheShape,
    tokens: usize,
    parts: Partials<'_, R::Buffer<f32>>,
    q: &mut R::Buffer<T>,
    at: RowsAt,
    rope: RopeTables<'_, R::Buffer<f32>>,
    pos: &R::Buffer<i32>,
    k_cache: &mut R::Buffer<T>,
    v_cache: &mut R::Buffer<T>,
) -> Result<(), AttnError<R::Error>>
where
    R: Runtime,
    T: Float + Elem,
{
    check_rope_append(shape, tokens, at, &rope, pos, k_cache, v_cache)?;
    let CacheShape { batch, kv_heads, head_dim, max_ctx, .. } = *shape;
    let rows = batch * tokens;
    if !(1..=64).contains(&parts.splits) || parts.splits * rows * at.stride > i32::MAX as usize {
        return Err(AttnError::Shape(format!("{} splits of {rows} x {} partials: 1 to 64 splits, under 2^31 elements", parts.splits, at.stride)));
    }
    need("partials", parts.buf, parts.splits * rows * at.stride)?;
    need("q", q, (rows - 1) * at.stride + shape.q_heads() * head_dim)?;
    let scales = check_scales::<R::Error, _>(parts.scale_a, parts.scale_b, rows, at.stride);
    let ((sa, row_scale), (sb, col_scale)) = scales.map_err(|e| AttnError::Shape(e.to_string()))?;
    let inst = CombineRopeKvAppendInstance { block_d: shape.block_d(), row_scale, col_scale };
    let grid = (rows as u32, (shape.q_heads() + kv_heads) as u32);
    let i = |x: usize| x as i32;
    let (sp, tk, qh, kh, d, rd) = (i(parts.splits), i(tokens), i(shape.q_heads()), i(kv_heads), i(head_dim), i(rope.rope_dim));
    inst.launch::<T, R>(rt, grid, parts.buf, sa, sb, q, rope.cos, rope.sin, pos, k_cache, v_cache, sp, tk, qh, kh, d, rd, i(at.stride), i(at.k_off), i(at.v_off), i(max_ctx))
        .map_err(AttnError::Runtime)
}
