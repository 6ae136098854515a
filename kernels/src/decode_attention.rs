//! Attention for decode: one new query token per sequence against a KV cache, grouped-query (each KV
//! head serves `group` query heads), the context split over programs (Flash-Decoding) so that a small
//! batch still fills the GPU, and the step's keys and values appended to the cache.
//!
//! **Cache layout**: `K` and `V` caches are `[batch, kv_heads, max_ctx, head_dim]`, `head_dim`
//! contiguous. One (sequence, KV head) is then one contiguous `max_ctx x head_dim` block: the decode
//! kernel reads a `BLOCK_N x head_dim` key tile as one contiguous run of bytes (full 128-byte lines,
//! 16-byte vector loads), and every query head of the group uses that tile from registers, so each key
//! and value is read from memory once per step. The append writes one row per (sequence, KV head).
//!
//! **Context lengths** are read from a device buffer (`ctx_lens[b]`, the keys the step attends,
//! including the one just appended; at least 1), so one CUDA graph serves every step: the grid and the
//! split length are fixed by the cache's capacity, and splits past a sequence's context do no work.
//!
//! - [`kv_append`]: `cache[b, h, pos[b], :] = new[b, h, :]` for K and V.
//! - [`decode_attention`]: per (sequence, KV head, split), the partial max, sum and unnormalized
//!   output of softmax(scale · q kᵀ) · v over the split's keys, for all the group's query heads.
//! - [`decode_combine`]: per (sequence, query head), the splits combined into the output.
//!
//! [`decode_splits`] picks the split count from the capacity and the GPU's size.

use dsl_core::lang::DotOperands;
use dsl_core::prelude::*;

/// Appends the step's key and value rows: `k_cache[b, h, pos[b], :] = k_new[b, h, :]` (and `v`).
///
/// - Grid: `batch * kv_heads` programs; `BLOCK_D >= head_dim` (a power of two).
/// - `k_new`, `v_new`: `[batch, kv_heads, head_dim]` contiguous; caches as in the module docs.
/// - `pos[b]` must be below `max_ctx` (the host API checks the buffers; positions are device data).
#[kernel(instances(BLOCK_D in [16, 32, 64, 128, 256]))]
pub fn kv_append<T: Float, const BLOCK_D: i32>(
    k_new: Ptr<T>,
    v_new: Ptr<T>,
    pos: Ptr<i32>,
    k_cache: MutPtr<T>,
    v_cache: MutPtr<T>,
    kv_heads: i32,
    head_dim: i32,
    max_ctx: i32,
) {
    let bh = program_id(0);
    let b = bh / kv_heads;
    let p = load(pos + b);
    let rd = arange(0, BLOCK_D);
    let ok = rd < head_dim;
    let src = bh.to::<i64>() * head_dim + rd;
    let dst = (bh.to::<i64>() * max_ctx + p) * head_dim + rd;
    store_masked(k_cache + dst, load_masked(k_new + src, ok, 0.0), ok);
    store_masked(v_cache + dst, load_masked(v_new + src, ok, 0.0), ok);
}

/// One split of decode attention for one (sequence, KV head): the group's query heads against keys
/// `[s * split_len, min((s + 1) * split_len, ctx_lens[b]))`.
///
/// - Grid: `(batch * kv_heads, splits)`. `BLOCK_G >= group` rows of query heads (a power of two, 16 or
///   more for tensor cores: rows past `group` are masked), `BLOCK_N` keys per step, `BLOCK_D >= head_dim`.
/// - `q`: `[batch, kv_heads * group, head_dim]` contiguous (query head `h * group + g` uses KV head `h`).
/// - `split_len`: a multiple of `BLOCK_N`.
/// - Outputs, for query head row `r = (b * kv_heads + h) * group + g` and split `s`: `part_o[r, s, :]` the
///   unnormalized `sum_j exp(x_j - m) v_j` (f32, `head_dim` values, rows `head_dim` apart, splits
///   `splits * head_dim` apart), `part_m[r, s]` the max `m` of the scores `x_j = scale · q · k_j`, and
///   `part_l[r, s]` the sum `sum_j exp(x_j - m)`. A split with no keys writes `m = -inf`, `l = 0`, `o = 0`.
#[kernel(instances(BLOCK_G = 16, BLOCK_N in [32, 64], BLOCK_D in [16, 32, 64, 128, 256]))]
pub fn decode_attention<T, const BLOCK_G: i32, const BLOCK_N: i32, const BLOCK_D: i32>(
    q: Ptr<T>,
    k_cache: Ptr<T>,
    v_cache: Ptr<T>,
    ctx_lens: Ptr<i32>,
    part_o: MutPtr<f32>,
    part_m: MutPtr<f32>,
    part_l: MutPtr<f32>,
    kv_heads: i32,
    group: i32,
    head_dim: i32,
    max_ctx: i32,
    split_len: i32,
    scale: f32,
) where
    T: Float + DotOperands<T>,
{
    let bh = program_id(0);
    let s = program_id(1);
    let splits = num_programs(1);
    let ctx = load(ctx_lens + bh / kv_heads);
    let lo = s * split_len;
    let hi = minimum(lo + split_len, ctx);
    let rg = arange(0, BLOCK_G);
    let rd = arange(0, BLOCK_D);
    let rn0 = arange(0, BLOCK_N);
    let g_ok = rg < group;
    let d_ok = rd.expand_dims(0) < head_dim;
    // Query heads of this KV head: rows bh * group + g of q.
    let rows = bh.to::<i64>() * group + rg;
    let q_tile = load_masked(q + rows.expand_dims(1) * head_dim + rd.expand_dims(0), g_ok.expand_dims(1) & d_ok, 0.0);
    let kv_base = bh.to::<i64>() * max_ctx * head_dim;

    let mut m_i = full::<f32>([BLOCK_G], f32::NEG_INFINITY);
    let mut l_i = zeros::<f32>([BLOCK_G]);
    let mut acc = zeros::<f32>([BLOCK_G, BLOCK_D]);
    for start in (lo..hi).step_by(BLOCK_N) {
        let rn = start + rn0;
        let kv_mask = (rn.expand_dims(1) < hi) & d_ok;
        let kv_offs = kv_base + rn.expand_dims(1) * head_dim + rd.expand_dims(0);
        let k_tile = load_masked(k_cache + kv_offs, kv_mask, 0.0);
        let x = dot(q_tile, k_tile.trans(), zeros::<f32>([BLOCK_G, BLOCK_N])) * scale;
        let x = where_((rn.expand_dims(0) < hi).broadcast_to([BLOCK_G, BLOCK_N]), x, f32::NEG_INFINITY);
        let m_new = maximum(m_i, max(x, 1));
        let p = exp(x - m_new.expand_dims(1));
        let alpha = exp(m_i - m_new);
        l_i = l_i * alpha + sum(p, 1);
        let v_tile = load_masked(v_cache + kv_offs, kv_mask, 0.0);
        acc = dot(p.to::<T>(), v_tile, acc * alpha.expand_dims(1));
        m_i = m_new;
    }
    let slot = rows * splits + s;
    store_masked(part_o + slot.expand_dims(1) * head_dim + rd.expand_dims(0), acc, g_ok.expand_dims(1) & d_ok);
    store_masked(part_m + slot, m_i, g_ok);
    store_masked(part_l + slot, l_i, g_ok);
}

/// Combines the splits of [`decode_attention`]: for query head row `r`,
/// `out[r, :] = sum_s exp(m_s - M) o_s / sum_s exp(m_s - M) l_s` with `M = max_s m_s`.
///
/// - Grid: `batch * q_heads` programs; `BLOCK_S >= splits` (a power of two); `head_dim` of any size,
///   visited `BLOCK_D` at a time.
/// - `out`: `[batch, q_heads, head_dim]` contiguous, rounded once to `T`.
#[kernel(instances(BLOCK_S = 64, BLOCK_D = 64))]
pub fn decode_combine<T: Float, const BLOCK_S: i32, const BLOCK_D: i32>(
    part_o: Ptr<f32>,
    part_m: Ptr<f32>,
    part_l: Ptr<f32>,
    out: MutPtr<T>,
    splits: i32,
    head_dim: i32,
) {
    let r = program_id(0).to::<i64>();
    let rs = arange(0, BLOCK_S);
    let s_ok = rs < splits;
    let m = load_masked(part_m + r * splits + rs, s_ok, f32::NEG_INFINITY);
    let l = load_masked(part_l + r * splits + rs, s_ok, 0.0);
    let big = max(m, 0);
    // Splits with no keys have m = -inf: weight 0 (split 0 always has a key).
    let w = where_(s_ok & (m > f32::NEG_INFINITY), exp(m - big), 0.0);
    let den = sum(l * w, 0);
    let slots = (r * splits + rs.expand_dims(1)) * head_dim;
    for d0 in (0..head_dim).step_by(BLOCK_D) {
        let rd = d0 + arange(0, BLOCK_D);
        let d_ok = rd < head_dim;
        let o = load_masked(part_o + slots + rd.expand_dims(0), s_ok.expand_dims(1) & d_ok.expand_dims(0), 0.0);
        let num = sum(o * w.expand_dims(1), 0);
        store_masked(out + r * head_dim + rd, (num / den).to::<T>(), d_ok);
    }
}

// ---- host API

use dsl_core::runtime::{AnyBuffer, Runtime};
use dsl_core::types::Elem;

/// The shape of a decode step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeShape {
    pub batch: usize,
    pub kv_heads: usize,
    /// Query heads per KV head (1 to 16).
    pub group: usize,
    /// 16 to 256.
    pub head_dim: usize,
    /// The caches' capacity in keys per sequence.
    pub max_ctx: usize,
}

/// How a decode step is cut: `splits` programs per (sequence, KV head), each visiting `block_n` keys
/// per step of its loop (32 or 64, the declared instances).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeConfig {
    pub splits: usize,
    pub block_n: usize,
}

impl DecodeConfig {
    /// `splits` splits of 32-key steps.
    pub fn splits(splits: usize) -> DecodeConfig {
        DecodeConfig { splits, block_n: 32 }
    }
}

/// The number of splits of the context: enough programs for about two per SM over all (sequence, KV
/// head) pairs, each split at least 256 keys (shorter ones cost more in launch and combine than they
/// save), at most 64 (the combine's `BLOCK_S`). Fixed by the capacity, so one graph serves every step.
pub fn decode_splits(shape: &DecodeShape, sm_count: u32) -> usize {
    let pairs = (shape.batch * shape.kv_heads).max(1);
    let want = (2 * sm_count as usize).div_ceil(pairs);
    let most = shape.max_ctx.div_ceil(256).max(1);
    want.clamp(1, 64).min(most)
}

/// Keys per split: a multiple of the config's `block_n`.
pub fn split_len(shape: &DecodeShape, cfg: &DecodeConfig) -> usize {
    let b = cfg.block_n.max(1);
    shape.max_ctx.div_ceil(cfg.splits.max(1)).div_ceil(b) * b
}

/// Elements of each f32 workspace buffer: `part_o` needs `rows * splits * head_dim`, `part_m` and
/// `part_l` `rows * splits` (`rows = batch * kv_heads * group`).
pub fn workspace_lens(shape: &DecodeShape, splits: usize) -> (usize, usize) {
    let rows = shape.batch * shape.kv_heads * shape.group;
    (rows * splits * shape.head_dim, rows * splits)
}

/// A decode step [`decode_step`] refuses, or the runtime's error.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError<E: std::error::Error> {
    #[error("decode attention: {0}")]
    Shape(String),
    #[error("decode attention: {what} needs at least {need} elements, its buffer has {len}")]
    TooSmall { what: &'static str, need: usize, len: usize },
    #[error(transparent)]
    Runtime(E),
}

/// The buffers of one decode step (see the module docs for their layouts).
pub struct DecodeBuffers<'a, R: Runtime, T: Elem> {
    pub q: &'a R::Buffer<T>,
    pub k_cache: &'a R::Buffer<T>,
    pub v_cache: &'a R::Buffer<T>,
    pub ctx_lens: &'a R::Buffer<i32>,
    pub part_o: &'a mut R::Buffer<f32>,
    pub part_m: &'a mut R::Buffer<f32>,
    pub part_l: &'a mut R::Buffer<f32>,
    pub out: &'a mut R::Buffer<T>,
}

fn need<E: std::error::Error>(what: &'static str, len: usize, need: usize) -> Result<(), DecodeError<E>> {
    if len < need {
        return Err(DecodeError::TooSmall { what, need, len });
    }
    Ok(())
}

/// Decode attention over the cache for every sequence and query head: [`decode_attention`] cut as
/// `cfg` says (e.g. `DecodeConfig::splits(decode_splits(..))`), then [`decode_combine`]. `scale` is usually
/// `1 / sqrt(head_dim)`. Checks shapes and buffer sizes; the contexts are device data (each in
/// `1..=max_ctx`, the caller's promise, as for positions).
pub fn decode_step<R, T>(rt: &R, shape: &DecodeShape, cfg: DecodeConfig, scale: f32, bufs: DecodeBuffers<'_, R, T>) -> Result<(), DecodeError<R::Error>>
where
    R: Runtime,
    T: Float + DotOperands<T> + Elem,
{
    let DecodeShape { batch, kv_heads, group, head_dim, max_ctx } = *shape;
    let splits = cfg.splits;
    if batch == 0 || kv_heads == 0 || max_ctx == 0 {
        return Err(DecodeError::Shape(format!("empty problem: batch {batch}, kv_heads {kv_heads}, max_ctx {max_ctx}")));
    }
    if !(1..=16).contains(&group) {
        return Err(DecodeError::Shape(format!("group {group} (query heads per KV head) must be 1 to 16")));
    }
    if !(16..=256).contains(&head_dim) {
        return Err(DecodeError::Shape(format!("head_dim {head_dim} must be 16 to 256")));
    }
    if !(1..=64).contains(&splits) {
        return Err(DecodeError::Shape(format!("splits {splits} must be 1 to 64")));
    }
    let cache = batch * kv_heads * max_ctx * head_dim;
    if cache > i32::MAX as usize {
        return Err(DecodeError::Shape(format!("the caches hold {cache} elements, over the 2^31 that 32-bit offsets address")));
    }
    let rows = batch * kv_heads * group;
    need("q", bufs.q.len(), rows * head_dim)?;
    need("k_cache", bufs.k_cache.len(), cache)?;
    need("v_cache", bufs.v_cache.len(), cache)?;
    need("ctx_lens", bufs.ctx_lens.len(), batch)?;
    let (po, pm) = workspace_lens(shape, splits);
    need("part_o", bufs.part_o.len(), po)?;
    need("part_m", bufs.part_m.len(), pm)?;
    need("part_l", bufs.part_l.len(), pm)?;
    need("out", bufs.out.len(), rows * head_dim)?;
    let len = split_len(shape, &cfg) as i32;
    let (kh, g, d, mc) = (kv_heads as i32, group as i32, head_dim as i32, max_ctx as i32);
    let grid = ((batch * kv_heads) as u32, splits as u32);
    let run = |r: Result<(), R::Error>| r.map_err(DecodeError::Runtime);
    let main = DecodeAttentionInstance { block_g: 16, block_n: cfg.block_n as i32, block_d: head_dim.next_power_of_two() as i32 };
    main.check().map_err(|e| DecodeError::Shape(e.message))?;
    run(main.launch::<T, R>(rt, grid, bufs.q, bufs.k_cache, bufs.v_cache, bufs.ctx_lens, &mut *bufs.part_o, &mut *bufs.part_m, &mut *bufs.part_l, kh, g, d, mc, len, scale))?;
    let combine = DecodeCombineInstance { block_s: 64, block_d: 64 };
    run(combine.launch::<T, R>(rt, rows as u32, &*bufs.part_o, &*bufs.part_m, &*bufs.part_l, bufs.out, splits as i32, d))
}

/// Appends the step's keys and values (`[batch, kv_heads, head_dim]` each) to the caches at `pos[b]`
/// (device data, each below `max_ctx`: the caller's promise).
#[allow(clippy::too_many_arguments)]
pub fn append_kv<R, T>(
    rt: &R,
    shape: &DecodeShape,
    k_new: &R::Buffer<T>,
    v_new: &R::Buffer<T>,
    pos: &R::Buffer<i32>,
    k_cache: &mut R::Buffer<T>,
    v_cache: &mut R::Buffer<T>,
) -> Result<(), DecodeError<R::Error>>
where
    R: Runtime,
    T: Float + Elem,
{
    let DecodeShape { batch, kv_heads, head_dim, max_ctx, .. } = *shape;
    if !(16..=256).contains(&head_dim) {
        return Err(DecodeError::Shape(format!("head_dim {head_dim} must be 16 to 256")));
    }
    let cache = batch * kv_heads * max_ctx * head_dim;
    if cache > i32::MAX as usize {
        return Err(DecodeError::Shape(format!("the caches hold {cache} elements, over the 2^31 that 32-bit offsets address")));
    }
    need("k_new", k_new.len(), batch * kv_heads * head_dim)?;
    need("v_new", v_new.len(), batch * kv_heads * head_dim)?;
    need("pos", pos.len(), batch)?;
    need("k_cache", k_cache.len(), cache)?;
    need("v_cache", v_cache.len(), cache)?;
    let inst = KvAppendInstance { block_d: head_dim.next_power_of_two() as i32 };
    let (kh, d, mc) = (kv_heads as i32, head_dim as i32, max_ctx as i32);
    inst.launch::<T, R>(rt, (batch * kv_heads) as u32, k_new, v_new, pos, k_cache, v_cache, kh, d, mc).map_err(DecodeError::Runtime)
}
