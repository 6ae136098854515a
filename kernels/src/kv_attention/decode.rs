//! Attention for decode: one new query token per sequence against the KV cache (layout in the
//! [module docs](super)), the context split over programs (Flash-Decoding) so that a small batch still
//! fills the GPU.
//!
//! **Context lengths** are read from a device buffer (`ctx_lens[b]`, the keys the step attends,
//! including the one just appended; at least 1), so one CUDA graph serves every step: the grid and the
//! split length are fixed by the cache's capacity, and splits past a sequence's context do no work.
//!
//! - [`decode_attention`]: per (sequence, KV head, split), the partial max, sum and unnormalized
//!   output of softmax(scale · q kᵀ) · v over the split's keys, for all the group's query heads.
//! - [`decode_combine`]: per (sequence, query head), the splits combined into the output.
//!
//! [`decode_splits`] picks the split count from the capacity and the GPU's size.

use super::softmax::{kv_scaled, online_softmax_step};
use dsl_core::lang::DotOperands;
use dsl_core::prelude::*;

/// One split of decode attention for one (sequence, KV head): the group's query heads against keys
/// `[s * split_len, min((s + 1) * split_len, ctx_lens[b]))`.
///
/// - Grid: `(batch * kv_heads, splits)`. `BLOCK_G >= group` rows of query heads (a power of two, 16 or
///   more for tensor cores: rows past `group` are masked), `BLOCK_N` keys per step, `BLOCK_D >= head_dim`.
/// - `q`: sequence `b`'s query heads from element `b * q_stride`, `kv_heads * group` rows of `head_dim`
///   contiguous (query head `h * group + g` uses KV head `h`); `q_stride` is `kv_heads * group *
///   head_dim` when packed, a fused QKV projection's row when read in place (batched decode).
/// - `split_len`: a multiple of `BLOCK_N`.
/// - `ctx_lens` is read before `gdc_wait`: under programmatic dependent launch no kernel earlier in the
///   chain may write it (kernels that release their dependents early let this part overlap kernels
///   further back); the Llama runtime writes it from the host before each step.
/// - `FULL_D`: `head_dim == BLOCK_D` (the host's choice). Rows are then a compile-time `BLOCK_D` apart and
///   no column is masked, so each thread's K and V copies are one base address plus constants, each
///   predicated by its row alone: the address and mask arithmetic was about half of the one-warp
///   program's instructions (SASS, sm_90a), and a one-warp program's time is its instruction count.
/// - Outputs, for query head row `r = (b * kv_heads + h) * group + g` and split `s`: `part_o[r, s, :]` the
///   unnormalized `sum_j 2^(x_j - m) v_j` (f32, `head_dim` values, rows `head_dim` apart, splits
///   `splits * head_dim` apart), `part_m[r, s]` the max `m` of the base-2 scores
///   `x_j = scale · log2(e) · q · k_j`, and `part_l[r, s]` the sum `sum_j 2^(x_j - m)`. A split with no
///   keys writes `m = -inf`, `l = 0`, `o = 0`.
/// - `COMBINE`: the splits are also combined here, into `out` (as [`decode_combine`] would), by the
///   last split of each (sequence, KV head) to finish: each program takes a ticket (`tickets[b * kv_heads
///   + h]`, zero before the launch and left zero) after storing its partials, and the one that takes the
///   last reads every split's partials back in split order (so the output does not depend on which
///   program came last). One launch a step fewer, but the last split's fence, ticket and `splits`
///   dependent rounds of loads from L2 cost more than the separate combine, which is launched early
///   and waits (see [`DecodeConfig::for_shape`]). Without `COMBINE`, `tickets` and `out` are not
///   touched.
#[kernel(instances(BLOCK_G = 16, BLOCK_N in [32, 64], BLOCK_D in [16, 32, 64, 128, 256], FULL_D in bool, COMBINE in bool))]
pub fn decode_attention<T, C, const BLOCK_G: i32, const BLOCK_N: i32, const BLOCK_D: i32, const FULL_D: bool, const COMBINE: bool>(
    q: Ptr<T>,
    k_cache: Ptr<C>,
    v_cache: Ptr<C>,
    k_scales: Ptr<f32>,
    v_scales: Ptr<f32>,
    ctx_lens: Ptr<i32>,
    part_o: MutPtr<f32>,
    part_m: MutPtr<f32>,
    part_l: MutPtr<f32>,
    tickets: MutPtr<i32>,
    out: MutPtr<T>,
    q_stride: i32,
    kv_heads: i32,
    group: i32,
    head_dim: i32,
    max_ctx: i32,
    split_len: i32,
    scale: f32,
) where
    T: Float + DotOperands<T>,
    C: Float,
{
    // The kernel after a separate combine is the combine itself (tiny, it waits): released at once.
    // After a combined one it is the O product, whose waiting programs would take room the splits
    // need: released after the split's loop, below.
    if !COMBINE {
        gdc_launch_dependents();
    }
    let bh = program_id(0);
    let s = program_id(1);
    let splits = num_programs(1);
    // Before the wait: the context lengths are the host's, written before the step (see the docs), so
    // their round trip overlaps the kernel ahead instead of standing between it and the first K/V loads.
    let b = bh / kv_heads;
    let ctx = load(ctx_lens + b);
    gdc_wait();
    let lo = s * split_len;
    let hi = minimum(lo + split_len, ctx);
    let rg = arange(0, BLOCK_G);
    let rd = arange(0, BLOCK_D);
    let rn0 = arange(0, BLOCK_N);
    let g_ok = rg < group;
    // The row stride, a constant where FULL_D; the column mask, none there.
    let hd = if FULL_D { full::<i32>((), BLOCK_D) } else { head_dim };
    let d_ok = rd.expand_dims(0) < hd;
    let q_mask = if FULL_D { g_ok.expand_dims(1).broadcast_to([BLOCK_G, BLOCK_D]) } else { g_ok.expand_dims(1) & d_ok };
    // Query heads of this KV head: rows h * group + g of sequence b's queries; in the partials and the
    // output, rows bh * group + g.
    let q_rows = b.to::<i64>() * q_stride + ((bh - b * kv_heads) * group + rg).to::<i64>() * hd;
    let q_tile = load_masked(q + q_rows.expand_dims(1) + rd.expand_dims(0), q_mask, 0.0);
    let rows = bh.to::<i64>() * group + rg;
    let kv_base = bh.to::<i64>() * max_ctx * hd;
    let scaled = kv_scaled::<T, C>();

    let scale2 = scale * std::f32::consts::LOG2_E;
    let mut m_i = full::<f32>([BLOCK_G], f32::NEG_INFINITY);
    let mut l_i = zeros::<f32>([BLOCK_G]);
    let mut acc = zeros::<f32>([BLOCK_G, BLOCK_D]);
    // A key's offset within a step, in 64 bits from the start: each thread's offsets are then its base
    // plus constants, added to one scalar per step.
    let in_step = rn0.to::<i64>().expand_dims(1) * hd + rd.to::<i64>().expand_dims(0);
    for start in (lo..hi).step_by(BLOCK_N) {
        let row_ok = rn0.expand_dims(1) < hi - start;
        let kv_mask = if FULL_D { row_ok.broadcast_to([BLOCK_N, BLOCK_D]) } else { row_ok & d_ok };
        let kv_offs = (kv_base + start.to::<i64>() * hd) + in_step;
        let k_tile = load_masked(k_cache + kv_offs, kv_mask, 0.0).to::<T>();
        let mut x = dot(q_tile, k_tile.trans(), zeros::<f32>([BLOCK_G, BLOCK_N]));
        // A scaled (fp8) cache: each key's scale on its scores, each value's on its probabilities. A
        // cache of T reads no scales (`v_scale` is then any tile: not read, and no op is emitted).
        let mut v_scale = x;
        if scaled {
            let at = bh.to::<i64>() * max_ctx + start + rn0;
            let key_ok = rn0 < hi - start;
            x = x * load_masked(k_scales + at, key_ok, 0.0).expand_dims(0);
            v_scale = load_masked(v_scales + at, key_ok, 0.0).expand_dims(0);
        }
        // Only the split's last step can hold keys past its end.
        if start + BLOCK_N > hi {
            x = where_((rn0.expand_dims(0) < hi - start).broadcast_to([BLOCK_G, BLOCK_N]), x, f32::NEG_INFINITY);
        }
        let (m, l, a) = online_softmax_step::<T, C>(x, v_cache, kv_offs, kv_mask, v_scale, m_i, l_i, acc, scale2);
        m_i = m;
        l_i = l;
        acc = a;
    }
    if COMBINE {
        gdc_launch_dependents();
    }
    let slot = rows * splits + s;
    store_masked(part_o + slot.expand_dims(1) * hd + rd.expand_dims(0), acc, q_mask);
    store_masked(part_m + slot, m_i, g_ok);
    store_masked(part_l + slot, l_i, g_ok);
    if COMBINE {
        // Release: this split's partials are stored before its ticket.
        fence();
        if atomic_add(tickets + bh, 1, true) == splits - 1 {
            // Acquire: every other split stored its partials before taking its ticket.
            fence();
            combine_splits::<T, BLOCK_G, BLOCK_D>(part_o, part_m, part_l, out, rows, splits, hd, rd, g_ok, q_mask);
            atomic_xchg(tickets + bh, 0, true);
        }
    }
}

/// The combine of [`decode_attention`]'s `COMBINE`: for the `BLOCK_G` query head rows `rows` (where
/// `g_ok`), `out = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s` over the splits in order, the max
/// `M` kept running (each split's loads are one round, independent of the sums so far).
#[kernel_fn]
fn combine_splits<T: Float, const BLOCK_G: i32, const BLOCK_D: i32>(
    part_o: MutPtr<f32>,
    part_m: MutPtr<f32>,
    part_l: MutPtr<f32>,
    out: MutPtr<T>,
    rows: Tile<i64>,
    splits: Tile<i32>,
    hd: Tile<i32>,
    rd: Tile<i32>,
    g_ok: Tile<bool>,
    q_mask: Tile<bool>,
) {
    let mut big = full::<f32>([BLOCK_G], f32::NEG_INFINITY);
    let mut den = zeros::<f32>([BLOCK_G]);
    let mut num = zeros::<f32>([BLOCK_G, BLOCK_D]);
    for t in 0..splits {
        let at = rows * splits + t;
        let m_t = load_masked(part_m + at, g_ok, f32::NEG_INFINITY);
        let l_t = load_masked(part_l + at, g_ok, 0.0);
        let o_t = load_masked(part_o + at.expand_dims(1) * hd + rd.expand_dims(0), q_mask, 0.0);
        let new = maximum(big, m_t);
        // A split with no keys (m = -inf) weighs nothing; neither does the -inf start.
        let keep = where_(big > f32::NEG_INFINITY, exp2(big - new), 0.0);
        let take = where_(m_t > f32::NEG_INFINITY, exp2(m_t - new), 0.0);
        den = den * keep + l_t * take;
        num = num * keep.expand_dims(1) + o_t * take.expand_dims(1);
        big = new;
    }
    store_masked(out + rows.expand_dims(1) * hd + rd.expand_dims(0), (num / den.expand_dims(1)).to::<T>(), q_mask);
}

/// Combines the splits of [`decode_attention`]: for query head row `r`,
/// `out[r, :] = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s` with `M = max_s m_s` (base-2 maxima).
///
/// - Grid: `(batch * q_heads, cdiv(head_dim, BLOCK_D))`: each program combines `BLOCK_D` of one row's
///   values in one pass, `BLOCK_S >= splits` (a power of two) partials at once. (One program per row
///   looping over `head_dim` left 32 programs for a Llama 3 step at batch 1, each walking its partials
///   chunk after chunk: at 128 splits the combine took longer than the attention, H100 2026-12-05.)
///   Up to 8 splits the host launches an 8-row tile on one warp (the sums over the splits in-thread
///   adds, the whole head in one program): 4 splits in the 64-row tile on 4 warps took 10.1 µs at
///   batch 16, the 8-row tile on one warp 5.3 (ncu, H100, 2026-12-06). The 64-row tile stays on 4
///   warps: on one it took 5.6 µs against 4.7 (64 splits at batch 1).
/// - `out`: `[batch, q_heads, head_dim]` contiguous, rounded once to `T`.
#[kernel(instances((BLOCK_S, BLOCK_D) in [(8, 64), (8, 128), (64, 32), (256, 16)]))]
pub fn decode_combine<T: Float, const BLOCK_S: i32, const BLOCK_D: i32>(
    part_o: Ptr<f32>,
    part_m: Ptr<f32>,
    part_l: Ptr<f32>,
    out: MutPtr<T>,
    splits: i32,
    head_dim: i32,
) {
    // Released after the wait, not before: the attention ahead is launched under programmatic launch
    // too, so releasing first let the next kernel (the O product, 1024-2048 waiting programs) start
    // while the attention still ran, and at long contexts its programs took the SM room the
    // attention's needed (8B bf16 at ctx 4096: -7% on the H200; this order won +6-7% back on an H100,
    // and +1-2% at ctx 128; 2026-12-07).
    gdc_wait();
    gdc_launch_dependents();
    let r = program_id(0).to::<i64>();
    let rs = arange(0, BLOCK_S);
    let s_ok = rs < splits;
    let m = load_masked(part_m + r * splits + rs, s_ok, f32::NEG_INFINITY);
    let l = load_masked(part_l + r * splits + rs, s_ok, 0.0);
    let big = max(m, 0);
    // Splits with no keys have m = -inf: weight 0 (split 0 always has a key).
    let w = where_(s_ok & (m > f32::NEG_INFINITY), exp2(m - big), 0.0);
    let den = sum(l * w, 0);
    let slots = (r * splits + rs.expand_dims(1)) * head_dim;
    let rd = program_id(1) * BLOCK_D + arange(0, BLOCK_D);
    let d_ok = rd < head_dim;
    let o = load_masked(part_o + slots + rd.expand_dims(0), s_ok.expand_dims(1) & d_ok.expand_dims(0), 0.0);
    let num = sum(o * w.expand_dims(1), 0);
    store_masked(out + r * head_dim + rd, (num / den).to::<T>(), d_ok);
}

// ---- host API

use super::{need, AttnError, CacheShape};
use dsl_core::runtime::Runtime;
use dsl_core::types::Elem;

/// How a decode step is cut: `splits` programs per (sequence, KV head) (1 to [`MAX_SPLITS`]), each
/// visiting `block_n` keys per step of its loop (32 or 64, the declared instances) on `num_warps` warps
/// (1, 2, 4 or 8; on one warp the 16 query rows lie in one warp, so the online softmax stays in the
/// tensor-core registers), its K and V tiles loaded `num_stages - 1` steps ahead (2 to 4; each stage
/// holds one step's K and V tiles in shared memory). With `fused_combine` (at most
/// [`MAX_FUSED_SPLITS`] splits), the last split of each (sequence, KV head) combines them
/// ([`decode_attention`]'s `COMBINE`) and [`decode_combine`] does not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeConfig {
    pub splits: usize,
    pub block_n: usize,
    pub num_warps: u32,
    pub num_stages: u32,
    pub fused_combine: bool,
}

/// The most splits [`decode_combine`] takes (its largest `BLOCK_S`).
pub const MAX_SPLITS: usize = 256;

/// The most splits a fused combine takes: its loads are one dependent round from L2 per split, where
/// the separate combine's are one round in all (after its launch).
pub const MAX_FUSED_SPLITS: usize = 8;

impl DecodeConfig {
    /// `splits` splits of 32-key steps on 4 warps, 3 stages, combined by [`decode_combine`].
    pub fn splits(splits: usize) -> DecodeConfig {
        DecodeConfig { splits, block_n: 32, num_warps: 4, num_stages: 3, fused_combine: false }
    }

    /// The same, combined by the last split ([`DecodeConfig::fused_combine`]).
    pub fn with_fused_combine(self, fused: bool) -> DecodeConfig {
        DecodeConfig { fused_combine: fused, ..self }
    }

    /// The heuristic (the H200 sweep of 2026-12-05 in `bench/attention/NOTES.md`): [`decode_splits`]
    /// splits; with fewer programs than SMs, 4 warps with 64-key steps; otherwise one warp (the softmax
    /// in the tensor-core registers) with 32-key steps above head_dim 64 and 64 at 64 and under, and at
    /// head_dim 128 with more than two programs per SM, 2 stages instead of 3 (a 3-stage program's 48 KB
    /// of K and V tiles let too few programs share an SM: 64 splits of Llama 3 at batch 1 took 16.5 µs
    /// at a 4096 context on 3 stages, 12.3 on 2). The combine is a second kernel: fused into the last
    /// split (`fused_combine`, 4 splits of Llama-3-8B at batch 1) the step lost 3.4% at 8B fp8 and 16%
    /// at SmolLM2 (H100, 2026-12-07): the second kernel, launched early and waiting, combines in one
    /// round of loads, where the last split takes a fence, a ticket and a round per split.
    pub fn for_shape(shape: &CacheShape, sm_count: u32) -> DecodeConfig {
        let splits = decode_splits(shape, sm_count);
        let programs = splits * shape.batch * shape.kv_heads;
        let sms = sm_count as usize;
        if programs < sms {
            return DecodeConfig { splits, block_n: 64, num_warps: 4, num_stages: 3, fused_combine: false };
        }
        let wide = shape.head_dim > 64;
        let num_stages = if wide && programs > 2 * sms { 2 } else { 3 };
        DecodeConfig { splits, block_n: if wide { 32 } else { 64 }, num_warps: 1, num_stages, fused_combine: false }
    }
}

/// The number of splits of the context: about four programs per SM over all (sequence, KV head) pairs,
/// rounded down to a power of two, each split at least 64 keys (on the H200, 64-key splits beat
/// longer ones at short contexts, where a few pairs leave most SMs idle), at most 128 (256 splits were
/// no faster anywhere in the sweep). Fixed by the capacity, so one graph serves every step.
pub fn decode_splits(shape: &CacheShape, sm_count: u32) -> usize {
    let pairs = (shape.batch * shape.kv_heads).max(1);
    let want = (4 * sm_count as usize).div_ceil(pairs);
    let pow2 = 1usize << (usize::BITS - 1 - want.leading_zeros());
    let most = shape.max_ctx.div_ceil(64).max(1);
    pow2.clamp(1, 128).min(most)
}

/// Keys per split: a multiple of the config's `block_n`.
pub fn split_len(shape: &CacheShape, cfg: &DecodeConfig) -> usize {
    let b = cfg.block_n.max(1);
    shape.max_ctx.div_ceil(cfg.splits.max(1)).div_ceil(b) * b
}

/// Elements of each f32 workspace buffer: `part_o` needs `rows * splits * head_dim`, `part_m` and
/// `part_l` `rows * splits` (`rows = batch * kv_heads * group`).
pub fn workspace_lens(shape: &CacheShape, splits: usize) -> (usize, usize) {
    let rows = shape.batch * shape.kv_heads * shape.group;
    (rows * splits * shape.head_dim, rows * splits)
}

/// The i32 ticket counters a fused combine needs (zeroed once; each step leaves them zero): one per
/// (sequence, KV head).
pub fn tickets_len(shape: &CacheShape) -> usize {
    shape.batch * shape.kv_heads
}

/// The buffers of one decode step (see the module docs for their layouts). The caches hold `C`: `T`
/// itself, or an fp8 type (`e4m3`) whose rows are scaled by `k_scales` / `v_scales` ([`super::cache`]).
pub struct DecodeBuffers<'a, R: Runtime, T: Elem, C: Elem = T> {
    pub q: &'a R::Buffer<T>,
    /// Elements from one sequence's query heads to the next in `q` ([`decode_attention`]): at least
    /// `q_heads * head_dim`, which is the packed layout.
    pub q_stride: usize,
    pub k_cache: &'a R::Buffer<C>,
    pub v_cache: &'a R::Buffer<C>,
    /// An fp8 cache's scales, `[batch, kv_heads, max_ctx]` f32 each (key `j`'s row is `k_cache`'s times
    /// `k_scales[.., j]`); not read for a cache of `T`, where any buffer does (even an empty one).
    pub k_scales: &'a R::Buffer<f32>,
    pub v_scales: &'a R::Buffer<f32>,
    pub ctx_lens: &'a R::Buffer<i32>,
    pub part_o: &'a mut R::Buffer<f32>,
    pub part_m: &'a mut R::Buffer<f32>,
    pub part_l: &'a mut R::Buffer<f32>,
    /// [`tickets_len`] zeroed counters, for a config with `fused_combine` (not touched otherwise).
    pub tickets: &'a mut R::Buffer<i32>,
    pub out: &'a mut R::Buffer<T>,
}

/// Decode attention over the cache for every sequence and query head: [`decode_attention`] cut as
/// `cfg` says (e.g. [`DecodeConfig::for_shape`]), then [`decode_combine`] (or the combine inside, with
/// `cfg.fused_combine`). `scale` is usually `1 / sqrt(head_dim)`. Checks shapes and buffer sizes; the
/// contexts are device data (each in `1..=max_ctx`, the caller's promise, as for positions),
/// written before the launch and by no kernel of the programmatic chain ahead ([`decode_attention`] reads
/// them before its programmatic wait).
pub fn decode_step<R, T, C>(rt: &R, shape: &CacheShape, cfg: DecodeConfig, scale: f32, bufs: DecodeBuffers<'_, R, T, C>) -> Result<(), AttnError<R::Error>>
where
    R: Runtime,
    T: Float + DotOperands<T> + Elem,
    C: Float + Elem,
{
    shape.check()?;
    let CacheShape { batch, kv_heads, group, head_dim, max_ctx } = *shape;
    let splits = cfg.splits;
    if !(1..=MAX_SPLITS).contains(&splits) {
        return Err(AttnError::Shape(format!("splits {splits} must be 1 to {MAX_SPLITS}")));
    }
    if ![1, 2, 4, 8].contains(&cfg.num_warps) {
        return Err(AttnError::Shape(format!("num_warps {} must be 1, 2, 4 or 8", cfg.num_warps)));
    }
    if !(2..=4).contains(&cfg.num_stages) {
        return Err(AttnError::Shape(format!("num_stages {} must be 2, 3 or 4", cfg.num_stages)));
    }
    if cfg.fused_combine && splits > MAX_FUSED_SPLITS {
        return Err(AttnError::Shape(format!("a fused combine takes at most {MAX_FUSED_SPLITS} splits, not {splits}")));
    }
    let cache = shape.cache_len();
    let rows = batch * kv_heads * group;
    let q_width = kv_heads * group * head_dim;
    if bufs.q_stride < q_width || (batch - 1) * bufs.q_stride + q_width > i32::MAX as usize {
        return Err(AttnError::Shape(format!("q_stride {} must be at least {q_width} (the query heads of a sequence), and the queries within 2^31 elements", bufs.q_stride)));
    }
    need("q", &*bufs.q, (batch - 1) * bufs.q_stride + q_width)?;
    need("k_cache", &*bufs.k_cache, cache)?;
    need("v_cache", &*bufs.v_cache, cache)?;
    super::check_scales::<R::Error, T, C>(shape, bufs.k_scales, bufs.v_scales)?;
    need("ctx_lens", &*bufs.ctx_lens, batch)?;
    let (po, pm) = workspace_lens(shape, splits);
    need("part_o", &*bufs.part_o, po)?;
    need("part_m", &*bufs.part_m, pm)?;
    need("part_l", &*bufs.part_l, pm)?;
    need("out", &*bufs.out, rows * head_dim)?;
    if cfg.fused_combine {
        need("tickets", &*bufs.tickets, tickets_len(shape))?;
    }
    let len = split_len(shape, &cfg) as i32;
    let (kh, g, d, mc) = (kv_heads as i32, group as i32, head_dim as i32, max_ctx as i32);
    let grid = ((batch * kv_heads) as u32, splits as u32);
    let run = |r: Result<(), R::Error>| r.map_err(AttnError::Runtime);
    let block_d = shape.block_d();
    let main = DecodeAttentionInstance { block_g: 16, block_n: cfg.block_n as i32, block_d, full_d: head_dim == block_d as usize, combine: cfg.fused_combine };
    main.check().map_err(|e| AttnError::Shape(e.message))?;
    let launch = dsl_core::runtime::Launch::from(grid).num_warps(cfg.num_warps).num_stages(cfg.num_stages);
    let (po, pm, pl) = (&mut *bufs.part_o, &mut *bufs.part_m, &mut *bufs.part_l);
    run(main.launch::<T, C, R>(rt, launch, bufs.q, bufs.k_cache, bufs.v_cache, bufs.k_scales, bufs.v_scales, bufs.ctx_lens, po, pm, pl, &mut *bufs.tickets, &mut *bufs.out, bufs.q_stride as i32, kh, g, d, mc, len, scale))?;
    if cfg.fused_combine {
        return Ok(());
    }
    let (block_s, block_d, warps) = match splits {
        ..=8 => (8, if head_dim <= 64 { 64 } else { 128 }, 1),
        ..=64 => (64, 32, 4),
        _ => (256, 16, 4),
    };
    let combine = DecodeCombineInstance { block_s, block_d };
    let chunks = head_dim.div_ceil(block_d as usize) as u32;
    let launch = dsl_core::runtime::Launch::from((rows as u32, chunks)).num_warps(warps);
    run(combine.launch::<T, R>(rt, launch, &*bufs.part_o, &*bufs.part_m, &*bufs.part_l, bufs.out, splits as i32, d))
}
