//! FP8 split-K GEMM (the TK-GEMM method) for small-batch inference: `C[M, N] = epilogue(A[M, K] · B[N, K]ᵀ)`
//! with `A`, `B` in fp8 (e4m3 or e5m2, either operand; also bf16 x bf16), f32 accumulation, and the
//! epilogue `acc * scale_a * scale_b (+ bias)` rounded once to `C`'s type (bf16, f16 or f32).
//!
//! Scales (the modes `torch._scaled_mm` accepts): `scale_a` per tensor (one f32) or per row of `A`
//! (`ROW_SCALE`: `M` f32, dynamic per-token quantization), `scale_b` per tensor or per column of the
//! output (`COL_SCALE`: `N` f32, per output channel); `BIAS`: `N` values of `C`'s type.
//!
//! Split-K: `K` is cut into `num_programs(2)` chunks (multiples of `BLOCK_K`), so a small `M` still fills
//! the GPU. The partial products are combined in one of two ways:
//! - *atomic* ([`scaled_mm`] with `ATOMIC`): each program applies the epilogue to its partial product
//!   and atomically adds it into a zeroed `C` (bias from the first chunk only); one kernel, but the order
//!   of additions (and so the last bits) varies between runs, and 16-bit outputs round each partial;
//! - *deterministic*: each program stores its raw f32 partial into a workspace `[split_k, M, N]`
//!   ([`scaled_mm`] without `EPILOGUE`), then [`splitk_reduce`] adds the chunks in order and applies the
//!   epilogue: identical bits every run; or [`scaled_mm_fused_combine`], the same combine done by the
//!   last program of each tile to finish (an atomic ticket), in one launch.
//!
//! Stream-K ([`scaled_mm_streamk`], [`GemmConfig::stream`]): a fixed number of programs (one to three
//! per SM) each take an equal, contiguous share of all (tile, K block) iterations, so no SM idles in a
//! partial last wave; partial products go to workspace slots that [`streamk_reduce`] adds in order
//! (deterministic too).
//!
//! At `M = 1` (decode at batch 1), [`scaled_mv`] computes the same as a matrix-vector product on the
//! CUDA cores (`GemmConfig::matvec`): one warp per few rows of `B`, no split, no combine.
//!
//! With `split_k == 1` [`scaled_mm`] applies the epilogue and stores `C` directly. [`quantize_rows`] is the
//! activation quantization that precedes each fp8 GEMM of a layer (bf16 → e4m3 with a per-row scale).
//!
//! [`fp8_gemm`] is the host API (`host.rs`): it checks shapes, strides and buffer sizes, picks a
//! configuration ([`heuristic`], or the caller's, e.g. an autotuned one) and launches the kernels'
//! declared instances on any [`Runtime`]. [`tuning`] holds the autotuning candidates and keys as plain
//! data.

use dsl_core::lang::{DotOperands, Numeric};
use dsl_core::prelude::*;

/// `acc * scale_a * scale_b + bias` for the output tile at rows `rm`, columns `rn` (f32).
#[kernel_fn]
fn epilogue<O: Numeric, const ROW_SCALE: bool, const COL_SCALE: bool, const BIAS: bool>(
    acc: Tile<f32>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    bias: Ptr<f32>,
    rm: Tile<i32>,
    rn: Tile<i32>,
    m: Tile<i32>,
    n: Tile<i32>,
    with_bias: Tile<bool>,
) -> Tile<f32> {
    let sa = if ROW_SCALE { load_masked(scale_a + rm, rm < m, 0.0).expand_dims(1) } else { load(scale_a) };
    let sb = if COL_SCALE { load_masked(scale_b + rn, rn < n, 0.0).expand_dims(0) } else { load(scale_b) };
    let out = acc * sa * sb;
    if BIAS {
        let bv = load_masked(bias + rn, (rn < n) & with_bias, 0.0);
        out + bv.expand_dims(0)
    } else {
        out
    }
}

/// The main loop of one split-K program: `A[rm, k_lo..k_hi] · B[rn, k_lo..k_hi]ᵀ` in f32 (rows outside
/// `m_ok` / `n_ok` read as zero).
#[kernel_fn]
fn split_k_product<A, B, const BLOCK_M: i32, const BLOCK_N: i32, const BLOCK_K: i32>(
    a: Ptr<A>,
    b: Ptr<B>,
    rm: Tile<i32>,
    rn: Tile<i32>,
    rk: Tile<i32>,
    k_lo: Tile<i32>,
    k_hi: Tile<i32>,
    k: Tile<i32>,
    stride_am: Tile<i32>,
    stride_bn: Tile<i32>,
    m_ok: Tile<bool>,
    n_ok: Tile<bool>,
) -> Tile<f32>
where
    A: Numeric + DotOperands<B>,
    B: Numeric,
{
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_N]);
    for k0 in (k_lo..k_hi).step_by(BLOCK_K) {
        // Chunks are multiples of BLOCK_K, so only the end of K itself can cut a block: `kk < k` (with
        // `k` divisible by 16 the mask is constant over 16-byte runs, and the loads become cp.async).
        let kk = (k0 + rk).expand_dims(0);
        let k_ok = kk < k;
        let a_tile = load_masked(a + (rm.expand_dims(1) * stride_am + kk), m_ok & k_ok, 0);
        let b_tile = load_masked(b + (rn.expand_dims(1) * stride_bn + kk), n_ok & k_ok, 0);
        acc = dot(a_tile, b_tile.trans(), acc);
    }
    acc
}

/// One split of `C = epilogue(A · Bᵀ)`.
///
/// - `A`: `[M, K]`, rows `stride_am` apart; `B`: `[N, K]` (a weight, rows `stride_bn` apart); elements
///   of a row contiguous. `C`: `[M, N]`, rows `stride_cm` apart.
/// - Grid: `(cdiv(M, BLOCK_M), cdiv(N, BLOCK_N), split_k)`; program `(i, j, s)` covers the
///   `BLOCK_M x BLOCK_N` tile `(i, j)` and `k` in `[s * chunk, min((s + 1) * chunk, K))`,
///   `chunk = cdiv(cdiv(K, split_k), BLOCK_K) * BLOCK_K`.
/// - `EPILOGUE && !ATOMIC`: stores `epilogue(acc)` (use with `split_k == 1`). `EPILOGUE && ATOMIC`: adds
///   it atomically into a zeroed `C`. `!EPILOGUE`: stores the raw f32 partial of split `s` at
///   `C + s * M * stride_cm` (a workspace for [`splitk_reduce`]; `O` is f32).
#[kernel(instances(
    (BLOCK_M, BLOCK_N, BLOCK_K) in [
        (16, 32, 256), (16, 64, 256), (16, 64, 512), (16, 128, 128), (32, 32, 256), (32, 32, 512),
        (32, 64, 256), (64, 64, 128), (64, 128, 128), (128, 128, 64), (128, 128, 32),
    ],
    // The epilogue in the kernel (stored, or added atomically), or a raw f32 partial for a combine.
    (EPILOGUE = true, ATOMIC in bool, ROW_SCALE in bool, COL_SCALE in bool, BIAS in bool)
        | (EPILOGUE = false, ATOMIC = false, ROW_SCALE = false, COL_SCALE = false, BIAS = false),
))]
pub fn scaled_mm<
    A,
    B,
    O,
    const BLOCK_M: i32,
    const BLOCK_N: i32,
    const BLOCK_K: i32,
    const ROW_SCALE: bool,
    const COL_SCALE: bool,
    const BIAS: bool,
    const EPILOGUE: bool,
    const ATOMIC: bool,
>(
    a: Ptr<A>,
    b: Ptr<B>,
    c: MutPtr<O>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    bias: Ptr<f32>,
    m: i32,
    n: i32,
    k: i32,
    stride_am: i32,
    stride_bn: i32,
    stride_cm: i32,
) where
    A: Numeric + DotOperands<B>,
    B: Numeric,
    O: Numeric,
{
    let rm = program_id(0) * BLOCK_M + arange(0, BLOCK_M);
    let rn = program_id(1) * BLOCK_N + arange(0, BLOCK_N);
    let rk = arange(0, BLOCK_K);
    let split = program_id(2);
    let chunk = cdiv(cdiv(k, num_programs(2)), BLOCK_K) * BLOCK_K;
    let k_lo = split * chunk;
    let k_hi = minimum(k_lo + chunk, k);
    let m_ok = rm.expand_dims(1) < m;
    let n_ok = rn.expand_dims(1) < n;
    let acc = split_k_product::<A, B, BLOCK_M, BLOCK_N, BLOCK_K>(a, b, rm, rn, rk, k_lo, k_hi, k, stride_am, stride_bn, m_ok, n_ok);
    let c_ok = m_ok & (rn.expand_dims(0) < n);
    let c_offs = rm.expand_dims(1) * stride_cm + rn.expand_dims(0);
    if EPILOGUE {
        let out = epilogue::<O, ROW_SCALE, COL_SCALE, BIAS>(acc, scale_a, scale_b, bias, rm, rn, m, n, split == 0);
        if ATOMIC {
            atomic_add(c + c_offs, out.to::<O>(), c_ok);
        } else {
            store_masked(c + c_offs, out.to::<O>(), c_ok);
        }
    } else {
        store_masked(c + split * (m * stride_cm) + c_offs, acc.to::<O>(), c_ok);
    }
}

/// Split-K with the combine in the same launch: each program stores its raw f32 partial product into
/// `workspace[s]` and takes a ticket for its output tile (an atomic count, after a release `fence`);
/// the program that takes the tile's last ticket (its last split to finish) acquires the others'
/// partials, adds them in order `s = 0, 1, ...`, applies the epilogue (with `ACCUMULATE`, adds into
/// `C`) and resets the tile's count to 0. The bits of [`scaled_mm`] then [`splitk_reduce`], in one
/// launch: no combine kernel to launch and wait for.
///
/// - Grid, `A`, `B`, `C` as [`scaled_mm`]'s, with `split_k > 1` programs along axis 2.
/// - `workspace`: `[split_k, M, N]` f32, rows `N` apart. `tickets`: one i32 per output tile
///   (`cdiv(M, BLOCK_M) * cdiv(N, BLOCK_N)`), zero before the launch and left zero after it, so one
///   buffer serves every GEMM of a stream.
#[kernel(instances(
    (BLOCK_M, BLOCK_N, BLOCK_K) in [(16, 32, 256), (16, 64, 256)],
    ROW_SCALE in bool, COL_SCALE in bool, BIAS in bool, ACCUMULATE in bool,
))]
pub fn scaled_mm_fused_combine<
    A,
    B,
    O,
    const BLOCK_M: i32,
    const BLOCK_N: i32,
    const BLOCK_K: i32,
    const ROW_SCALE: bool,
    const COL_SCALE: bool,
    const BIAS: bool,
    const ACCUMULATE: bool,
>(
    a: Ptr<A>,
    b: Ptr<B>,
    c: MutPtr<O>,
    workspace: MutPtr<f32>,
    tickets: MutPtr<i32>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    bias: Ptr<f32>,
    m: i32,
    n: i32,
    k: i32,
    stride_am: i32,
    stride_bn: i32,
    stride_cm: i32,
) where
    A: Numeric + DotOperands<B>,
    B: Numeric,
    O: Numeric,
{
    let rm = program_id(0) * BLOCK_M + arange(0, BLOCK_M);
    let rn = program_id(1) * BLOCK_N + arange(0, BLOCK_N);
    let rk = arange(0, BLOCK_K);
    let (split, splits) = (program_id(2), num_programs(2));
    let chunk = cdiv(cdiv(k, splits), BLOCK_K) * BLOCK_K;
    let k_lo = split * chunk;
    let k_hi = minimum(k_lo + chunk, k);
    let m_ok = rm.expand_dims(1) < m;
    let n_ok = rn.expand_dims(1) < n;
    let acc = split_k_product::<A, B, BLOCK_M, BLOCK_N, BLOCK_K>(a, b, rm, rn, rk, k_lo, k_hi, k, stride_am, stride_bn, m_ok, n_ok);
    let ok = m_ok & (rn.expand_dims(0) < n);
    let offs = rm.expand_dims(1) * n + rn.expand_dims(0);
    store_masked(workspace + split * (m * n) + offs, acc, ok);
    // Release: this program's partial is stored before its ticket.
    fence();
    let tile = program_id(0) * num_programs(1) + program_id(1);
    let ticket = atomic_add(tickets + tile, 1, true);
    if ticket == splits - 1 {
        // Acquire: every other split of the tile stored its partial before taking its ticket.
        fence();
        let mut total = zeros::<f32>([BLOCK_M, BLOCK_N]);
        for s in 0..splits {
            total = total + load_masked(workspace + s * (m * n) + offs, ok, 0.0);
        }
        store_combined::<O, ROW_SCALE, COL_SCALE, BIAS, ACCUMULATE>(total, c, scale_a, scale_b, bias, rm, rn, m, n, stride_cm, ok);
        atomic_xchg(tickets + tile, 0, true);
    }
}

/// The end of the three combines: `C = epilogue(acc)` (`C += ...` with `ACCUMULATE`) where `ok`, for the
/// output block at rows `rm`, columns `rn`.
#[kernel_fn]
fn store_combined<O: Numeric, const ROW_SCALE: bool, const COL_SCALE: bool, const BIAS: bool, const ACCUMULATE: bool>(
    acc: Tile<f32>,
    c: MutPtr<O>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    bias: Ptr<f32>,
    rm: Tile<i32>,
    rn: Tile<i32>,
    m: Tile<i32>,
    n: Tile<i32>,
    stride_cm: Tile<i32>,
    ok: Tile<bool>,
) {
    let out = epilogue::<O, ROW_SCALE, COL_SCALE, BIAS>(acc, scale_a, scale_b, bias, rm, rn, m, n, m > 0);
    let c_offs = rm.expand_dims(1) * stride_cm + rn.expand_dims(0);
    let out = if ACCUMULATE { out + load_masked(c + c_offs, ok, 0).to::<f32>() } else { out };
    store_masked(c + c_offs, out.to::<O>(), ok);
}

/// The deterministic split-K combine: `C = epilogue(sum over s of workspace[s])`, the chunks added in
/// order `s = 0, 1, ...` (identical bits every run); with `ACCUMULATE`, `C += epilogue(...)` (the
/// residual add of a transformer layer fused into its last GEMM). `workspace` is `[split_k, M, N]` f32
/// (rows `N` apart) as [`scaled_mm`] without `EPILOGUE` wrote it.
///
/// - Grid: `(cdiv(M, BLOCK_M), cdiv(N, BLOCK_N))`.
#[kernel(instances((BLOCK_M, BLOCK_N) = (32, 64), ROW_SCALE in bool, COL_SCALE in bool, BIAS in bool, ACCUMULATE in bool))]
pub fn splitk_reduce<
    O: Numeric,
    const BLOCK_M: i32,
    const BLOCK_N: i32,
    const ROW_SCALE: bool,
    const COL_SCALE: bool,
    const BIAS: bool,
    const ACCUMULATE: bool,
>(
    workspace: Ptr<f32>,
    c: MutPtr<O>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    bias: Ptr<f32>,
    m: i32,
    n: i32,
    split_k: i32,
    stride_cm: i32,
) {
    gdc_launch_dependents();
    gdc_wait();
    let rm = program_id(0) * BLOCK_M + arange(0, BLOCK_M);
    let rn = program_id(1) * BLOCK_N + arange(0, BLOCK_N);
    let ok = (rm.expand_dims(1) < m) & (rn.expand_dims(0) < n);
    let offs = rm.expand_dims(1) * n + rn.expand_dims(0);
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_N]);
    for s in 0..split_k {
        acc = acc + load_masked(workspace + s * (m * n) + offs, ok, 0.0);
    }
    store_combined::<O, ROW_SCALE, COL_SCALE, BIAS, ACCUMULATE>(acc, c, scale_a, scale_b, bias, rm, rn, m, n, stride_cm, ok);
}

/// Stream-K (a persistent schedule): the `tiles * iters` (output tile, K block) iterations of the whole
/// GEMM, tile by tile, are cut into `num_programs(0)` contiguous shares of equal length, so every SM gets
/// the same amount of work whatever the tile count (a split-K grid leaves a partial last wave). A share
/// may start or end inside a tile: each program stores the raw f32 partial product of every tile its
/// share touches into slot `p - first(t)` of the workspace (`first(t)`: the program whose share holds the
/// tile's first K block), and [`streamk_reduce`] adds a tile's slots in order.
///
/// - Grid: `programs` (1-D). `segments`: the most tiles one share touches (see [`stream_k_shape`]).
/// - `workspace`: `[slots, M, N]` f32, rows `N` apart; `A`, `B` as in [`scaled_mm`].
#[kernel(instances(
    (BLOCK_M, BLOCK_N, BLOCK_K) in [(16, 32, 256), (16, 64, 256), (16, 128, 128), (32, 32, 256), (32, 64, 256), (64, 64, 128)],
))]
pub fn scaled_mm_streamk<A, B, const BLOCK_M: i32, const BLOCK_N: i32, const BLOCK_K: i32>(
    a: Ptr<A>,
    b: Ptr<B>,
    workspace: MutPtr<f32>,
    m: i32,
    n: i32,
    k: i32,
    stride_am: i32,
    stride_bn: i32,
    segments: i32,
) where
    A: Numeric + DotOperands<B>,
    B: Numeric,
{
    let p = program_id(0);
    let programs = num_programs(0);
    let iters = cdiv(k, BLOCK_K);
    let tiles_n = cdiv(n, BLOCK_N);
    let work = cdiv(m, BLOCK_M) * tiles_n * iters;
    let lo = p * work / programs;
    let hi = (p + 1) * work / programs;
    let rk = arange(0, BLOCK_K);
    for seg in 0..segments {
        let t = lo / iters + seg;
        let u_lo = maximum(lo, t * iters);
        let u_hi = minimum(hi, t * iters + iters);
        let tm = t / tiles_n;
        let rm = tm * BLOCK_M + arange(0, BLOCK_M);
        let rn = (t - tm * tiles_n) * BLOCK_N + arange(0, BLOCK_N);
        let m_ok = rm.expand_dims(1) < m;
        let n_ok = rn.expand_dims(1) < n;
        let mut acc = zeros::<f32>([BLOCK_M, BLOCK_N]);
        // Empty when this segment lies past the share (`u_lo >= u_hi`).
        for u in u_lo..u_hi {
            let kk = ((u - t * iters) * BLOCK_K + rk).expand_dims(0);
            let k_ok = kk < k;
            let a_tile = load_masked(a + (rm.expand_dims(1) * stride_am + kk), m_ok & k_ok, 0);
            let b_tile = load_masked(b + (rn.expand_dims(1) * stride_bn + kk), n_ok & k_ok, 0);
            acc = dot(a_tile, b_tile.trans(), acc);
        }
        let first = ((t * iters + 1) * programs - 1) / work;
        let ok = m_ok & (rn.expand_dims(0) < n) & (u_lo < u_hi);
        let offs = (p - first) * (m * n) + rm.expand_dims(1) * n + rn.expand_dims(0);
        store_masked(workspace + offs, acc, ok);
    }
}

/// The stream-K combine: `C = epilogue(sum of the tile's slots)`, slots added in order (identical bits
/// every run); with `ACCUMULATE`, `C += epilogue(...)`. The GEMM's tiling (`gemm_block_m x
/// gemm_block_n`, `iters` K blocks per tile, `programs`) gives the GEMM tile this block lies in and how
/// many programs' shares cover it.
///
/// - Grid: `(cdiv(M, BLOCK_M), cdiv(N, BLOCK_N))`, blocks that divide the GEMM's (so each lies in one
///   GEMM tile).
#[kernel(instances((BLOCK_M, BLOCK_N) = (16, 32), ROW_SCALE in bool, COL_SCALE in bool, BIAS in bool, ACCUMULATE in bool))]
pub fn streamk_reduce<
    O: Numeric,
    const BLOCK_M: i32,
    const BLOCK_N: i32,
    const ROW_SCALE: bool,
    const COL_SCALE: bool,
    const BIAS: bool,
    const ACCUMULATE: bool,
>(
    workspace: Ptr<f32>,
    c: MutPtr<O>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    bias: Ptr<f32>,
    m: i32,
    n: i32,
    stride_cm: i32,
    gemm_block_m: i32,
    gemm_block_n: i32,
    iters: i32,
    programs: i32,
) {
    gdc_launch_dependents();
    gdc_wait();
    let (i, j) = (program_id(0), program_id(1));
    let rm = i * BLOCK_M + arange(0, BLOCK_M);
    let rn = j * BLOCK_N + arange(0, BLOCK_N);
    let ok = (rm.expand_dims(1) < m) & (rn.expand_dims(0) < n);
    let offs = rm.expand_dims(1) * n + rn.expand_dims(0);
    let tiles_n = cdiv(n, gemm_block_n);
    let work = cdiv(m, gemm_block_m) * tiles_n * iters;
    let t = (i * BLOCK_M / gemm_block_m) * tiles_n + j * BLOCK_N / gemm_block_n;
    // The programs holding the tile's first and last K blocks, and every one between, wrote a slot.
    let first = ((t * iters + 1) * programs - 1) / work;
    let last = ((t + 1) * iters * programs - 1) / work;
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_N]);
    for s in 0..last - first + 1 {
        acc = acc + load_masked(workspace + s * (m * n) + offs, ok, 0.0);
    }
    store_combined::<O, ROW_SCALE, COL_SCALE, BIAS, ACCUMULATE>(acc, c, scale_a, scale_b, bias, rm, rn, m, n, stride_cm, ok);
}

/// The per-row fp8 scale of a row whose largest magnitude is `amax`: `amax / 448` (e4m3's largest
/// finite value), or 1 for an all-zero row (so that dividing by it is safe).
#[kernel_fn]
pub fn fp8_row_scale(amax: Tile<f32>) -> Tile<f32> {
    where_(amax > 0.0, amax / 448.0, 1.0)
}

/// `v * inv_scale` saturated to ±448 and rounded to the fp8 type `Q` (out-of-range values clamp
/// instead of becoming NaN).
#[kernel_fn]
pub fn fp8_saturate<Q: Numeric>(v: Tile<f32>, inv_scale: Tile<f32>) -> Tile<Q> {
    minimum(maximum(v * inv_scale, -448.0), 448.0).to::<Q>()
}

/// Dynamic per-row fp8 quantization: `scale[r] = max(|x[r, :]|) / 448` (e4m3's largest finite value;
/// 1 for an all-zero row) and `q[r, c] = e4m3(x[r, c] / scale[r])`, saturating.
///
/// - Grid: `rows` programs, one per row; `BLOCK` a power of two `>= 16`; rows of any length: the first
///   `BLOCK` columns are read once and kept in registers, the rest twice (largest magnitude, then
///   quantize). `x` rows `x_stride` apart, `q` rows `q_stride` apart.
#[kernel]
pub fn quantize_rows<T: Float, Q: Numeric, const BLOCK: i32>(
    x: Ptr<T>,
    q: MutPtr<Q>,
    scale: MutPtr<f32>,
    cols: i32,
    x_stride: i32,
    q_stride: i32,
) {
    gdc_launch_dependents();
    gdc_wait();
    let row = program_id(0).to::<i64>();
    let (x_row, q_row) = (x + row * x_stride, q + row * q_stride);
    // The first block stays in registers: a row that fits one block is read once.
    let offs0 = arange(0, BLOCK);
    let x0 = load_masked(x_row + offs0, offs0 < cols, 0.0).to::<f32>();
    let mut amax = abs(x0);
    for c0 in (BLOCK..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let v = load_masked(x_row + offs, offs < cols, 0.0).to::<f32>();
        amax = maximum(amax, abs(v));
    }
    let s = fp8_row_scale(max(amax, 0));
    store(scale + row, s);
    let inv = 1.0 / s;
    store_masked(q_row + offs0, fp8_saturate::<Q>(x0, inv), offs0 < cols);
    for c0 in (BLOCK..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let mask = offs < cols;
        let v = load_masked(x_row + offs, mask, 0.0).to::<f32>();
        store_masked(q_row + offs, fp8_saturate::<Q>(v, inv), mask);
    }
}

/// Zeroes `C[M, N]` (rows `stride_cm` apart) before atomic split-K adds into it. Grid: `(cdiv(M,
/// BLOCK_M), cdiv(N, BLOCK_N))`.
#[kernel(instances((BLOCK_M, BLOCK_N) = (32, 64)))]
pub fn zero_fill<O: Numeric, const BLOCK_M: i32, const BLOCK_N: i32>(c: MutPtr<O>, m: i32, n: i32, stride_cm: i32) {
    gdc_launch_dependents();
    gdc_wait();
    let rm = program_id(0) * BLOCK_M + arange(0, BLOCK_M);
    let rn = program_id(1) * BLOCK_N + arange(0, BLOCK_N);
    let ok = (rm.expand_dims(1) < m) & (rn.expand_dims(0) < n);
    store_masked(c + rm.expand_dims(1) * stride_cm + rn.expand_dims(0), zeros::<O>([BLOCK_M, BLOCK_N]), ok);
}

mod host;
mod matvec;
mod gated;
mod residual_norm;
pub mod tuning;

pub use host::*;
pub use matvec::*;
pub use gated::*;
pub use residual_norm::*;
