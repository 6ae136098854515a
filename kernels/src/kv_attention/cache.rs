//! Writing keys and values into the cache (layout in the [module docs](super)).

use super::{need, AttnError, CacheShape};
use dsl_core::prelude::*;
use dsl_core::runtime::Runtime;
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
    let bh = program_id(0);
    let t = program_id(1);
    let tokens = num_programs(1);
    let b = bh / kv_heads;
    let h = bh % kv_heads;
    let p = load(pos + b) + t;
    let rd = arange(0, BLOCK_D);
    let ok = rd < head_dim;
    let src = (b * tokens + t).to::<i64>() * stride + h * head_dim + rd;
    let dst = (bh.to::<i64>() * max_ctx + p) * head_dim + rd;
    store_masked(k_cache + dst, load_masked(k_new + k_off + src, ok, 0.0), ok);
    store_masked(v_cache + dst, load_masked(v_new + v_off + src, ok, 0.0), ok);
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
    need("pos", pos, batch)?;
    need("k_cache", k_cache, shape.cache_len())?;
    need("v_cache", v_cache, shape.cache_len())?;
    let inst = KvAppendInstance { block_d: shape.block_d() };
    let grid = ((batch * kv_heads) as u32, tokens as u32);
    let (ko, vo, st) = (at.k_off as i32, at.v_off as i32, at.stride as i32);
    let (kh, d, mc) = (kv_heads as i32, head_dim as i32, max_ctx as i32);
    inst.launch::<T, R>(rt, grid, k_new, v_new, pos, k_cache, v_cache, ko, vo, st, kh, d, mc).map_err(AttnError::Runtime)
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
