//! Writing keys and values into the cache (layout in the [module docs](super)).

use super::{need, AttnError, CacheShape};
use super::softmax::fp8_max;
use crate::rope::{rope_vector_inplace, rotate_half};
use dsl_core::prelude::*;
use dsl_core::runtime::{AnyBuffer, Runtime};
use dsl_core::types::Elem;

/// Appends `tokens` key and value rows per sequence:
/// `k_cache[b, h, pos[b] + t, :] = k_new[k_off + (b * tokens + t) * stride + h * head_dim + ..]` (and `v`).
///
/// - Grid: `(batch * kv_heads, tokens)`; `BLOCK_D >= head_dim` (a power of two).
/// - The new rows are strided (`stride` elements from one token to the next, `h * head_dim` to KV head
///   `h`) from element offsets `k_off` / `v_off`, so they can be read in place from a fused QKV
///   projection's output.
/// - `pos[b] + tokens` must not exceed `max_ctx` (the host API checks the buffers; positions are device
///   data, so that one CUDA graph serves every decode step).
#[kernel(instances(BLOCK_D in [16, 32, 64, 128, 256]))]
pub fn kv_append<T: Float, const BLOCK_D: i32>(
    k_new: Ptr<T>,
    v_new: Ptr<T>,
    pos: Ptr<i32>,
    k_cache: MutPtr<T>,
    v_cache: MutPtr<T>,
    k_off: i32,
    v_off: i32,
    stride: i32,
    kv_heads: i32,
    head_dim: i32,
    max_ctx: i32,
) {
    gdc_launch_dependents();
    gdc_wait();
    let (src, key, rd, ok) = append_slot::<BLOCK_D>(pos, stride, kv_heads, head_dim, max_ctx);
    let dst = key * head_dim + rd;
    store_masked(k_cache + dst, load_masked(k_new + k_off + src, ok, 0.0), ok);
    store_masked(v_cache + dst, load_masked(v_new + v_off + src, ok, 0.0), ok);
}

/// Where program `(b * kv_heads + h, t)` of an append reads and writes: the new row's element offsets
/// `src` (before `k_off` / `v_off`), the cache row `key = (b, h, pos[b] + t)` (its scale's index; its
/// elements start at `key * head_dim`), the columns `rd` and their mask `ok`.
#[kernel_fn]
fn append_slot<const BLOCK_D: i32>(pos: Ptr<i32>, stride: Tile<i32>, kv_heads: Tile<i32>, head_dim: Tile<i32>, max_ctx: Tile<i32>) -> (Tile<i64>, Tile<i64>, Tile<i32>, Tile<bool>) {
    let bh = program_id(0);
    let t = program_id(1);
    let tokens = num_programs(1);
    let b = bh / kv_heads;
    let h = bh % kv_heads;
    let p = load(pos + b) + t;
    let rd = arange(0, BLOCK_D);
    let ok = rd < head_dim;
    let src = (b * tokens + t).to::<i64>() * stride + h * head_dim + rd;
    let key = bh.to::<i64>() * max_ctx + p;
    (src, key, rd, ok)
}

/// A row `x` (0 where masked) as an fp8 cache stores it: `x / s` rounded to `C`, and its scale `s = max
/// |x| / C's largest finite value` (1 for a row of zeros), so the largest element lands on `C`'s
/// largest and the row reads back as `C · s`.
#[kernel_fn]
pub fn scaled_row<C: Float>(x: Tile<f32>) -> (Tile<C>, Tile<f32>) {
    let amax = max(abs(x), 0);
    let s = where_(amax > 0.0, amax / fp8_max::<C>(), 1.0);
    ((x / s).to::<C>(), s)
}

/// [`kv_append`] into an fp8 cache (`C` e4m3 or e5m2): each appended key and value row stored as
/// [`scaled_row`] makes it, its scale at `k_scales[b, h, pos[b] + t]` (`v_scales` for the value;
/// `[batch, kv_heads, max_ctx]` f32). Per row, not per head or tensor: no calibration, and a row's
/// 3-bit mantissas are relative to its own largest element (the keys of a head differ by orders of
/// magnitude between positions and channels).
///
/// - Grid: `(batch * kv_heads, tokens)`; `BLOCK_D >= head_dim` (a power of two).
#[kernel(instances(BLOCK_D in [16, 32, 64, 128, 256]))]
pub fn kv_append_scaled<T: Float, C: Float, const BLOCK_D: i32>(
    k_new: Ptr<T>,
    v_new: Ptr<T>,
    pos: Ptr<i32>,
    k_cache: MutPtr<C>,
    v_cache: MutPtr<C>,
    k_scales: MutPtr<f32>,
    v_scales: MutPtr<f32>,
    k_off: i32,
    v_off: i32,
    stride: i32,
    kv_heads: i32,
    head_dim: i32,
    max_ctx: i32,
) {
    gdc_launch_dependents();
    gdc_wait();
    let (src, key, rd, ok) = append_slot::<BLOCK_D>(pos, stride, kv_heads, head_dim, max_ctx);
    let dst = key * head_dim + rd;
    let (kq, ks) = scaled_row::<C>(load_masked(k_new + k_off + src, ok, 0.0).to::<f32>());
    let (vq, vs) = scaled_row::<C>(load_masked(v_new + v_off + src, ok, 0.0).to::<f32>());
    store_masked(k_cache + dst, kq, ok);
    store_masked(v_cache + dst, vq, ok);
    store(k_scales + key, ks);
    store(v_scales + key, vs);
}

/// Rotary position embedding of a step's new queries and keys and the append of its keys and values to
/// the cache, in one launch. Row `r = b * tokens + t` of `qkv` (rows `stride` apart) is token `t` of
/// sequence `b`: `q_heads` query heads from element 0, `kv_heads` key heads from `k_off` and value
/// heads from `v_off`, each `head_dim` long. At position `p = pos[b] + t`:
/// - program `(r, h)` with `h < q_heads` rotates query head `h` in place;
/// - program `(r, q_heads + j)` rotates key head `j` into `k_cache[b, j, p]` and copies value head `j`
///   into `v_cache[b, j, p]` (the key in `qkv` stays as it was).
///
/// The first `rope_dim` elements of a head rotate in the half-split layout of [`crate::rope`] (tables
/// `[positions, rope_dim / 2]` f32), the rest are copied. The same bits as `rope_inplace` on the query
/// and key heads, then [`kv_append`].
///
/// - Grid: `(batch * tokens, q_heads + kv_heads)`; `BLOCK_D >= head_dim` (a power of two).
#[kernel(instances(BLOCK_D in [16, 32, 64, 128, 256]))]
pub fn rope_kv_append<T: Float, const BLOCK_D: i32>(
    qkv: MutPtr<T>,
    cos_table: Ptr<f32>,
    sin_table: Ptr<f32>,
    pos: Ptr<i32>,
    k_cache: MutPtr<T>,
    v_cache: MutPtr<T>,
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
    let half = rope_dim / 2;
    let offs = arange(0, BLOCK_D / 2);
    let rot = offs < half;
    let c = load_masked(cos_table + p.to::<i64>() * half + offs, rot, 0.0);
    let s = load_masked(sin_table + p.to::<i64>() * half + offs, rot, 0.0);
    let row = qkv + r.to::<i64>() * stride;
    if h < q_heads {
        rope_vector_inplace::<T>(row + h * head_dim, half, offs, rot, c, s);
    } else {
        let j = h - q_heads;
        let key = row + k_off + j * head_dim;
        let dst = ((b * kv_heads + j).to::<i64>() * max_ctx + p) * head_dim;
        let x1 = load_masked(key + offs, rot, 0.0).to::<f32>();
        let x2 = load_masked(key + half + offs, rot, 0.0).to::<f32>();
        let (o1, o2) = rotate_half(x1, x2, c, s);
        store_masked(k_cache + dst + offs, o1.to::<T>(), rot);
        store_masked(k_cache + dst + half + offs, o2.to::<T>(), rot);
        // Past `rope_dim` (partial rotary embeddings) the key is copied.
        let rest = rope_dim + arange(0, BLOCK_D);
        let more = rest < head_dim;
        store_masked(k_cache + dst + rest, load_masked(key + rest, more, 0.0), more);
        let rd = arange(0, BLOCK_D);
        let ok = rd < head_dim;
        store_masked(v_cache + dst + rd, load_masked(row + v_off + j * head_dim + rd, ok, 0.0), ok);
    }
}

/// The rotary tables of [`rope_append_rows`]: `cos` and `sin` `[positions, rope_dim / 2]` f32, covering
/// every position the cache holds.
pub struct RopeTables<'a, B> {
    pub cos: &'a B,
    pub sin: &'a B,
    /// The rotated elements of each head: even, 2 to `head_dim`.
    pub rope_dim: usize,
}

/// RoPE of `tokens` new rows per sequence (their query heads rotated in place in `qkv`) and the append
/// of their keys (rotated) and values to the caches at positions `pos[b]..pos[b] + tokens`, in one launch
/// ([`rope_kv_append`]; `pos[b] + tokens <= max_ctx`: the caller's promise). Query heads are the first
/// `shape.q_heads() * head_dim` elements of each row; keys and values sit where `at` says.
#[allow(clippy::too_many_arguments)]
pub fn rope_append_rows<R, T>(
    rt: &R,
    shape: &CacheShape,
    tokens: usize,
    qkv: &mut R::Buffer<T>,
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
    need("qkv", qkv, shape.batch * tokens * at.stride)?;
    let CacheShape { batch, kv_heads, head_dim, max_ctx, .. } = *shape;
    let inst = RopeKvAppendInstance { block_d: shape.block_d() };
    let grid = ((batch * tokens) as u32, (shape.q_heads() + kv_heads) as u32);
    let i = |x: usize| x as i32;
    let (tk, qh, kh, d, rd) = (i(tokens), i(shape.q_heads()), i(kv_heads), i(head_dim), i(rope.rope_dim));
    inst.launch::<T, R>(rt, grid, qkv, rope.cos, rope.sin, pos, k_cache, v_cache, tk, qh, kh, d, rd, i(at.stride), i(at.k_off), i(at.v_off), i(max_ctx))
        .map_err(AttnError::Runtime)
}

/// The checks of [`rope_append_rows`] (and of its form that reads a split-K GEMM's partials) but for
/// the buffer holding the new rows: the shape, `rope_dim`, where queries, keys and values sit in a
/// row of `at.stride` elements (apart, inside the row), 32-bit offsets, the tables, positions and
/// caches.
pub(crate) fn check_rope_append<E: std::error::Error>(
    shape: &CacheShape,
    tokens: usize,
    at: RowsAt,
    rope: &RopeTables<'_, impl AnyBuffer>,
    pos: &impl AnyBuffer,
    k_cache: &impl AnyBuffer,
    v_cache: &impl AnyBuffer,
) -> Result<(), AttnError<E>> {
    shape.check()?;
    let CacheShape { batch, kv_heads, head_dim, max_ctx, .. } = *shape;
    if tokens == 0 || tokens > max_ctx {
        return Err(AttnError::Shape(format!("{tokens} tokens to append: must be 1 to max_ctx ({max_ctx})")));
    }
    if rope.rope_dim < 2 || rope.rope_dim > head_dim || rope.rope_dim % 2 != 0 {
        return Err(AttnError::Shape(format!("rope_dim {} must be even, 2 to head_dim ({head_dim})", rope.rope_dim)));
    }
    let (q_width, row) = (shape.q_heads() * head_dim, kv_heads * head_dim);
    let parts = [(0, q_width), (at.k_off, row), (at.v_off, row)];
    let overlap = |(a, la): (usize, usize), (b, lb): (usize, usize)| a < b + lb && b < a + la;
    if parts.iter().any(|&(o, l)| o + l > at.stride) || overlap(parts[0], parts[1]) || overlap(parts[0], parts[2]) || overlap(parts[1], parts[2]) {
        return Err(AttnError::Shape(format!(
            "a row of {} elements must hold the queries ({q_width} from 0), keys and values ({row} each, from {} and {}) apart",
            at.stride, at.k_off, at.v_off
        )));
    }
    let len = batch * tokens * at.stride;
    if len > i32::MAX as usize {
        return Err(AttnError::Shape("the new rows lie past the 2^31 elements that 32-bit offsets address".into()));
    }
    need("cos", rope.cos, max_ctx * rope.rope_dim / 2)?;
    need("sin", rope.sin, max_ctx * rope.rope_dim / 2)?;
    need("pos", pos, batch)?;
    need("k_cache", k_cache, shape.cache_len())?;
    need("v_cache", v_cache, shape.cache_len())?;
    Ok(())
}

/// Where the new rows of [`append_rows`] sit: element offsets of the first key and value, and the
/// elements from one token's row to the next (`kv_heads * head_dim` when packed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowsAt {
    pub k_off: usize,
    pub v_off: usize,
    pub stride: usize,
}

/// Appends `tokens` keys and values per sequence at positions `pos[b]..pos[b] + tokens` (device data,
/// `pos[b] + tokens <= max_ctx`: the caller's promise). `k_new` and `v_new` may be one buffer (a fused
/// QKV projection's output) read at different offsets.
#[allow(clippy::too_many_arguments)]
pub fn append_rows<R, T>(
    rt: &R,
    shape: &CacheShape,
    tokens: usize,
    k_new: &R::Buffer<T>,
    v_new: &R::Buffer<T>,
    at: RowsAt,
    pos: &R::Buffer<i32>,
    k_cache: &mut R::Buffer<T>,
    v_cache: &mut R::Buffer<T>,
) -> Result<(), AttnError<R::Error>>
where
    R: Runtime,
    T: Float + Elem,
{
    check_append(shape, tokens, k_new, v_new, at, pos)?;
    need("k_cache", k_cache, shape.cache_len())?;
    need("v_cache", v_cache, shape.cache_len())?;
    let inst = KvAppendInstance { block_d: shape.block_d() };
    let CacheShape { batch, kv_heads, head_dim, max_ctx, .. } = *shape;
    let grid = ((batch * kv_heads) as u32, tokens as u32);
    let (ko, vo, st) = (at.k_off as i32, at.v_off as i32, at.stride as i32);
    let (kh, d, mc) = (kv_heads as i32, head_dim as i32, max_ctx as i32);
    inst.launch::<T, R>(rt, grid, k_new, v_new, pos, k_cache, v_cache, ko, vo, st, kh, d, mc).map_err(AttnError::Runtime)
}

/// An fp8 cache as the append writes it: keys and values of `C` (e4m3 or e5m2), and their f32 scales
/// `[batch, kv_heads, max_ctx]` ([`kv_append_scaled`]).
pub struct ScaledCachesMut<'a, R: Runtime, C: Elem> {
    pub k: &'a mut R::Buffer<C>,
    pub v: &'a mut R::Buffer<C>,
    pub k_scales: &'a mut R::Buffer<f32>,
    pub v_scales: &'a mut R::Buffer<f32>,
}

/// [`append_rows`] into an fp8 cache: each row stored scaled by its own largest element
/// ([`kv_append_scaled`]).
#[allow(clippy::too_many_arguments)]
pub fn append_rows_scaled<R, T, C>(
    rt: &R,
    shape: &CacheShape,
    tokens: usize,
    k_new: &R::Buffer<T>,
    v_new: &R::Buffer<T>,
    at: RowsAt,
    pos: &R::Buffer<i32>,
    cache: ScaledCachesMut<'_, R, C>,
) -> Result<(), AttnError<R::Error>>
where
    R: Runtime,
    T: Float + Elem,
    C: Float + Elem,
{
    check_append(shape, tokens, k_new, v_new, at, pos)?;
    if !C::DTYPE.is_fp8() {
        return Err(AttnError::Shape(format!("a scaled cache holds e4m3 or e5m2, not {}", C::DTYPE)));
    }
    need("k_cache", &*cache.k, shape.cache_len())?;
    need("v_cache", &*cache.v, shape.cache_len())?;
    let CacheShape { batch, kv_heads, head_dim, max_ctx, .. } = *shape;
    need("k_scales", &*cache.k_scales, batch * kv_heads * max_ctx)?;
    need("v_scales", &*cache.v_scales, batch * kv_heads * max_ctx)?;
    let inst = KvAppendScaledInstance { block_d: shape.block_d() };
    let grid = ((batch * kv_heads) as u32, tokens as u32);
    let (ko, vo, st) = (at.k_off as i32, at.v_off as i32, at.stride as i32);
    let (kh, d, mc) = (kv_heads as i32, head_dim as i32, max_ctx as i32);
    inst.launch::<T, C, R>(rt, grid, k_new, v_new, pos, cache.k, cache.v, cache.k_scales, cache.v_scales, ko, vo, st, kh, d, mc)
        .map_err(AttnError::Runtime)
}

/// The checks the appends share: the shape, the token count, where the new rows sit and `pos`.
fn check_append<E: std::error::Error>(shape: &CacheShape, tokens: usize, k_new: &impl AnyBuffer, v_new: &impl AnyBuffer, at: RowsAt, pos: &impl AnyBuffer) -> Result<(), AttnError<E>> {
    shape.check()?;
    let CacheShape { batch, kv_heads, head_dim, max_ctx, .. } = *shape;
    if tokens == 0 || tokens > max_ctx {
        return Err(AttnError::Shape(format!("{tokens} tokens to append: must be 1 to max_ctx ({max_ctx})")));
    }
    let row = kv_heads * head_dim;
    if at.stride < row {
        return Err(AttnError::Shape(format!("row stride {} is less than kv_heads x head_dim ({row})", at.stride)));
    }
    let span = (batch * tokens - 1) * at.stride + row;
    if at.k_off.max(at.v_off) + span > i32::MAX as usize {
        return Err(AttnError::Shape("the new rows lie past the 2^31 elements that 32-bit offsets address".into()));
    }
    need("k_new", k_new, at.k_off + span)?;
    need("v_new", v_new, at.v_off + span)?;
    need("pos", pos, batch)
}

/// Appends one decode step's keys and values (`[batch, kv_heads, head_dim]` each, packed) at `pos[b]`.
pub fn append_kv<R, T>(
    rt: &R,
    shape: &CacheShape,
    k_new: &R::Buffer<T>,
    v_new: &R::Buffer<T>,
    pos: &R::Buffer<i32>,
    k_cache: &mut R::Buffer<T>,
    v_cache: &mut R::Buffer<T>,
) -> Result<(), AttnError<R::Error>>
where
    R: Runtime,
    T: Float + Elem,
{
    let at = RowsAt { k_off: 0, v_off: 0, stride: shape.kv_heads * shape.head_dim };
    append_rows(rt, shape, 1, k_new, v_new, at, pos, k_cache, v_cache)
}
