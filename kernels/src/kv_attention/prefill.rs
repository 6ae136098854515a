//! Prefill and chunked prefill: `q_len` new queries per sequence, at positions `start..start + q_len`,
//! against a cache that already holds their keys and values (appended first, [`super::cache`]), so
//! it holds `start + q_len` keys. `start = 0` is plain causal prefill; `start > 0` continues a cached
//! prefix (a chat turn, or a long prompt cut in chunks).
//!
//! Grouped-query heads are packed into the tile's rows: a program takes `BLOCK_M / group` tokens of one
//! (sequence, KV head) with all `group` query heads of each, so every key and value tile it loads serves
//! the whole group (row `r` is token `r / group`, query head `r % group` of the group).

use super::softmax::{kv_scaled, online_softmax_step};
use super::{need, AttnError, CacheShape};
use dsl_core::lang::DotOperands;
use dsl_core::prelude::*;
use dsl_core::runtime::{Launch, Runtime};
use dsl_core::types::Elem;

/// Attention of a chunk of queries over the cache, online softmax (FlashAttention-2's loop).
///
/// - Grid: `(cdiv(q_len, BLOCK_M / group), batch * kv_heads)`; `group <= BLOCK_M`; `BLOCK_D >= head_dim`
///   (a power of two).
/// - `q`: token `t` of sequence `b`, query head `hq`, at `q_off + (b * q_len + t) * stride_q + hq * head_dim`
///   (`head_dim` contiguous: a fused QKV projection's output read in place, or packed queries).
/// - Caches as in the [module docs](super), holding at least `start + q_len` keys per sequence: of `T`,
///   or of fp8 `C` with f32 scales `k_scales` / `v_scales` `[batch, kv_heads, max_ctx]` (a key's row
///   times its scale; [`super::cache`]), not read for a cache of `T`.
/// - `out`: `[batch, q_len, kv_heads * group, head_dim]` packed, rounded once to `T`.
/// - `CAUSAL`: the query at position `p` attends keys `0..=p`; otherwise all `start + q_len` keys.
#[kernel(instances(CAUSAL in bool, (BLOCK_M, BLOCK_N) in [(16, 32), (16, 64), (32, 32), (32, 64), (64, 32), (64, 64), (128, 32), (128, 64), (128, 128)], BLOCK_D in [16, 32, 64, 128, 256]))]
pub fn prefill_attention<T, C, const CAUSAL: bool, const BLOCK_M: i32, const BLOCK_N: i32, const BLOCK_D: i32>(
    q: Ptr<T>,
    k_cache: Ptr<C>,
    v_cache: Ptr<C>,
    k_scales: Ptr<f32>,
    v_scales: Ptr<f32>,
    out: MutPtr<T>,
    q_off: i32,
    stride_q: i32,
    q_len: i32,
    start: i32,
    kv_heads: i32,
    group: i32,
    head_dim: i32,
    max_ctx: i32,
    scale: f32,
) where
    T: Float + DotOperands<T>,
    C: Float,
{
    gdc_launch_dependents();
    gdc_wait();
    let bh = program_id(1);
    let b = bh / kv_heads;
    let h = bh % kv_heads;
    let per = BLOCK_M / group; // tokens per program
    let t0 = program_id(0) * per;
    let r = arange(0, BLOCK_M);
    let t = t0 + r / group;
    let hq = h * group + r % group;
    let row_ok = (r < per * group) & (t < q_len);
    let tok = (b * q_len + t).to::<i64>();
    let rd = arange(0, BLOCK_D);
    let rn0 = arange(0, BLOCK_N);
    let d_ok = rd.expand_dims(0) < head_dim;
    let q_rows = tok * stride_q + q_off + hq * head_dim;
    let q_tile = load_masked(q + q_rows.expand_dims(1) + rd.expand_dims(0), row_ok.expand_dims(1) & d_ok, 0.0);
    let kv_base = bh.to::<i64>() * max_ctx * head_dim;
    let scaled = kv_scaled::<T, C>();
    let pos = start + t;
    let ctx = start + q_len;
    // A causal program stops after its last token's position; rows past it are masked below.
    let hi = if CAUSAL { minimum(start + t0 + per, ctx) } else { ctx };

    let scale2 = scale * std::f32::consts::LOG2_E;
    let mut m_i = full::<f32>([BLOCK_M], f32::NEG_INFINITY);
    let mut l_i = zeros::<f32>([BLOCK_M]);
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_D]);
    for start_n in (0..hi).step_by(BLOCK_N) {
        let rn = start_n + rn0;
        let kv_mask = (rn.expand_dims(1) < hi) & d_ok;
        let kv_offs = kv_base + rn.expand_dims(1) * head_dim + rd.expand_dims(0);
        let k_tile = load_masked(k_cache + kv_offs, kv_mask, 0.0).to::<T>();
        let mut x = dot(q_tile, k_tile.trans(), zeros::<f32>([BLOCK_M, BLOCK_N]));
        // A scaled (fp8) cache: each key's scale on its scores, each value's on its probabilities. A
        // cache of T reads no scales (`v_scale` is then any tile: not read, and no op is emitted).
        let mut v_scale = x;
        if scaled {
            let key_ok = rn < hi;
            let scales_base = bh.to::<i64>() * max_ctx;
            x = x * load_masked(k_scales + scales_base + rn, key_ok, 0.0).expand_dims(0);
            v_scale = load_masked(v_scales + scales_base + rn, key_ok, 0.0).expand_dims(0);
        }
        // Only the steps past the program's first position (causal) or the context's end hold keys
        // that some row must not see: the mask is computed there alone.
        let last_key = start_n + BLOCK_N - 1;
        let partial = if CAUSAL { last_key > start + t0 } else { last_key >= hi };
        if partial {
            // Key 0 is valid for every row (padding rows included), so no row's max stays -inf.
            // Causal: a stored row's position is below `hi`, so `key <= pos` also keeps its keys inside
            // the context (a padding row may see zero-filled keys past it: finite scores, never stored).
            let valid = if CAUSAL {
                (rn.expand_dims(0) <= pos.expand_dims(1)).broadcast_to([BLOCK_M, BLOCK_N])
            } else {
                (rn.expand_dims(0) < hi).broadcast_to([BLOCK_M, BLOCK_N])
            };
            x = where_(valid, x, f32::NEG_INFINITY);
        }
        let (m, l, a) = online_softmax_step::<T, C>(x, v_cache, kv_offs, kv_mask, v_scale, m_i, l_i, acc, scale2);
        m_i = m;
        l_i = l;
        acc = a;
    }
    let o = acc / l_i.expand_dims(1);
    let o_rows = (tok * kv_heads * group + hq) * head_dim;
    store_masked(out + o_rows.expand_dims(1) + rd.expand_dims(0), o.to::<T>(), row_ok.expand_dims(1) & d_ok);
}

// ---- host API

/// Which queries a prefill step computes: `q_len` tokens per sequence at positions
/// `start..start + q_len`, causal or attending the whole context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub q_len: usize,
    pub start: usize,
    pub causal: bool,
}

/// Where the queries sit in their buffer: the element offset of the first and the elements from one
/// token's row to the next (`kv_heads * group * head_dim` when packed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueriesAt {
    pub off: usize,
    pub stride: usize,
}

/// How a prefill step is cut: `block_m` rows (tokens x group) per program, `block_n` keys per step
/// (the declared instances: 16/32/64/128 rows and 32/64 keys, and 128 keys for 128 rows), `num_warps` warps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefillConfig {
    pub block_m: usize,
    pub block_n: usize,
    pub num_warps: u32,
}

impl PrefillConfig {
    /// The heuristic: 128 rows (64 at head_dim 64 and under, unless the chunk has 8192 queries or more),
    /// or the smallest declared tile covering a short chunk's rows, on at most 4 warps that split only
    /// the rows (so the online softmax and P stay in the tensor-core registers: `codegen_ptx`'s
    /// placement); 32-key steps above head_dim 64, 64 keys at 64 and under. The best of the H200 sweep
    /// at 8 of 12 points at head_dim 128 and 5 of 6 at 64, within 5% at the others
    /// (`bench/attention/NOTES.md`, 2026-12-04); at head_dim 64, 128 rows won at 16384 queries by
    /// 10–17% and lost at 4096 by up to 7% (H100, 2026-12-05).
    ///
    /// `warpgroups`: the device runs tiles of 16 rows per warp on warpgroup tensor cores (`wgmma`,
    /// sm_90a; `CudaRuntime::warpgroup_mma`). Then the tiles take one warp per 16 rows (128 rows on 8
    /// warps, so Q·Kᵀ and P·V both run on `wgmma`) and 64-key steps: at head_dim 128 that tile was the
    /// best of the H100 sweep at every point, 1.25–1.67x the `mma.sync` heuristic's (146–536 TFLOP/s
    /// against 107–332, `bench/wgmma/NOTES.md`, 2026-12-06); 128-key steps beat it by 2–12% at head_dim
    /// 128 from 4096 queries on (all but one point) and lost up to 8% at 1024.
    pub fn for_chunk(shape: &CacheShape, chunk: &Chunk, warpgroups: bool) -> PrefillConfig {
        let rows = (chunk.q_len * shape.group).max(shape.group);
        let wide = shape.head_dim > 64;
        let most = if wide || chunk.q_len >= 8192 { 128 } else { 64 };
        let block_m = [16, 32, 64, 128].into_iter().find(|&m| m >= rows).unwrap_or(most).min(most).max(shape.group.next_power_of_two());
        if warpgroups {
            let block_n = if wide && block_m == 128 && chunk.q_len >= 4096 { 128 } else { 64 };
            return PrefillConfig { block_m, block_n, num_warps: (block_m / 16) as u32 };
        }
        let block_n = if wide { 32 } else { 64 };
        PrefillConfig { block_m, block_n, num_warps: (block_m / 16).clamp(1, 4) as u32 }
    }
}

/// The buffers of one prefill step. The caches hold `T`, or fp8 `C` scaled by `k_scales` / `v_scales`
/// (as in [`super::decode::DecodeBuffers`]; any buffer, even empty, for a cache of `T`).
pub struct PrefillBuffers<'a, R: Runtime, T: Elem, C: Elem = T> {
    pub q: &'a R::Buffer<T>,
    pub k_cache: &'a R::Buffer<C>,
    pub v_cache: &'a R::Buffer<C>,
    pub k_scales: &'a R::Buffer<f32>,
    pub v_scales: &'a R::Buffer<f32>,
    pub out: &'a mut R::Buffer<T>,
}

/// Attention of `chunk`'s queries over the cache (which must already hold their keys: append them
/// first). `scale` is usually `1 / sqrt(head_dim)`. Checks shapes, the chunk and buffer sizes.
pub fn prefill_step<R, T, C>(
    rt: &R,
    shape: &CacheShape,
    chunk: Chunk,
    q_at: QueriesAt,
    cfg: PrefillConfig,
    scale: f32,
    bufs: PrefillBuffers<'_, R, T, C>,
) -> Result<(), AttnError<R::Error>>
where
    R: Runtime,
    T: Float + DotOperands<T> + Elem,
    C: Float + Elem,
{
    shape.check()?;
    let CacheShape { batch, kv_heads, group, head_dim, max_ctx } = *shape;
    let Chunk { q_len, start, causal } = chunk;
    if q_len == 0 || start + q_len > max_ctx {
        return Err(AttnError::Shape(format!("a chunk of {q_len} queries at positions {start}.. must be non-empty and end within max_ctx ({max_ctx})")));
    }
    if cfg.block_m < group {
        return Err(AttnError::Shape(format!("block_m {} is less than the group ({group} query heads per KV head)", cfg.block_m)));
    }
    let row = shape.q_heads() * head_dim;
    if q_at.stride < row {
        return Err(AttnError::Shape(format!("query row stride {} is less than q_heads x head_dim ({row})", q_at.stride)));
    }
    let span = q_at.off + (batch * q_len - 1) * q_at.stride + row;
    if span > i32::MAX as usize || batch * q_len * row > i32::MAX as usize {
        return Err(AttnError::Shape("the queries lie past the 2^31 elements that 32-bit offsets address".into()));
    }
    need("q", bufs.q, span)?;
    need("k_cache", bufs.k_cache, shape.cache_len())?;
    need("v_cache", bufs.v_cache, shape.cache_len())?;
    super::check_scales::<R::Error, T, C>(shape, bufs.k_scales, bufs.v_scales)?;
    need("out", &*bufs.out, batch * q_len * row)?;
    let inst = PrefillAttentionInstance {
        causal,
        block_m: cfg.block_m as i32,
        block_n: cfg.block_n as i32,
        block_d: shape.block_d(),
    };
    inst.check().map_err(|e| AttnError::Shape(e.message))?;
    let per = cfg.block_m / group;
    let grid = (q_len.div_ceil(per) as u32, (batch * kv_heads) as u32);
    let launch = Launch::from(grid).num_warps(cfg.num_warps);
    // 128-key steps hold 64 KB of K and V a stage at head_dim 128: two stages fit an SM's shared
    // memory (227 KB on Hopper), the default three do not.
    let launch = if cfg.block_n >= 128 { launch.num_stages(2) } else { launch };
    let (qo, qs, ql, st) = (q_at.off as i32, q_at.stride as i32, q_len as i32, start as i32);
    let (kh, g, d, mc) = (kv_heads as i32, group as i32, head_dim as i32, max_ctx as i32);
    inst.launch::<T, C, R>(rt, launch, bufs.q, bufs.k_cache, bufs.v_cache, bufs.k_scales, bufs.v_scales, bufs.out, qo, qs, ql, st, kh, g, d, mc, scale)
        .map_err(AttnError::Runtime)
}
