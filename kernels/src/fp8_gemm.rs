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
//!   epilogue: identical bits every run.
//!
//! Stream-K ([`scaled_mm_streamk`], [`GemmConfig::stream`]): a fixed number of programs (one to three
//! per SM) each take an equal, contiguous share of all (tile, K block) iterations, so no SM idles in a
//! partial last wave; partial products go to workspace slots that [`streamk_reduce`] adds in order
//! (deterministic too).
//!
//! With `split_k == 1` [`scaled_mm`] applies the epilogue and stores `C` directly. [`quantize_rows`] is the
//! activation quantization that precedes each fp8 GEMM of a layer (bf16 → e4m3 with a per-row scale).
//!
//! [`fp8_gemm`] is the host API: it checks shapes, strides and buffer sizes, picks a configuration
//! ([`heuristic`], or the caller's, e.g. an autotuned one) and launches on any [`Runtime`].

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
#[kernel]
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

/// The deterministic split-K combine: `C = epilogue(sum over s of workspace[s])`, the chunks added in
/// order `s = 0, 1, ...` (identical bits every run). `workspace` is `[split_k, M, N]` f32 (rows `N`
/// apart) as [`scaled_mm`] without `EPILOGUE` wrote it.
///
/// - Grid: `(cdiv(M, BLOCK_M), cdiv(N, BLOCK_N))`.
#[kernel]
pub fn splitk_reduce<O: Numeric, const BLOCK_M: i32, const BLOCK_N: i32, const ROW_SCALE: bool, const COL_SCALE: bool, const BIAS: bool>(
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
    let rm = program_id(0) * BLOCK_M + arange(0, BLOCK_M);
    let rn = program_id(1) * BLOCK_N + arange(0, BLOCK_N);
    let ok = (rm.expand_dims(1) < m) & (rn.expand_dims(0) < n);
    let offs = rm.expand_dims(1) * n + rn.expand_dims(0);
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_N]);
    for s in 0..split_k {
        acc = acc + load_masked(workspace + s * (m * n) + offs, ok, 0.0);
    }
    let out = epilogue::<O, ROW_SCALE, COL_SCALE, BIAS>(acc, scale_a, scale_b, bias, rm, rn, m, n, m > 0);
    store_masked(c + rm.expand_dims(1) * stride_cm + rn.expand_dims(0), out.to::<O>(), ok);
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
#[kernel]
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
/// every run). The GEMM's tiling (`gemm_block_m x gemm_block_n`, `iters` K blocks per tile, `programs`)
/// gives the GEMM tile this block lies in and how many programs' shares cover it.
///
/// - Grid: `(cdiv(M, BLOCK_M), cdiv(N, BLOCK_N))`, blocks that divide the GEMM's (so each lies in one
///   GEMM tile).
#[kernel]
pub fn streamk_reduce<O: Numeric, const BLOCK_M: i32, const BLOCK_N: i32, const ROW_SCALE: bool, const COL_SCALE: bool, const BIAS: bool>(
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
    let out = epilogue::<O, ROW_SCALE, COL_SCALE, BIAS>(acc, scale_a, scale_b, bias, rm, rn, m, n, m > 0);
    store_masked(c + rm.expand_dims(1) * stride_cm + rn.expand_dims(0), out.to::<O>(), ok);
}

/// Dynamic per-row fp8 quantization: `scale[r] = max(|x[r, :]|) / 448` (e4m3's largest finite value;
/// 1 for an all-zero row) and `q[r, c] = e4m3(x[r, c] / scale[r])`, saturating.
///
/// - Grid: `rows` programs, one per row; `BLOCK` a power of two `>= 16`; rows of any length (two passes
///   over `BLOCK`-wide chunks). `x` rows `x_stride` apart, `q` rows `q_stride` apart.
#[kernel]
pub fn quantize_rows<T: Float, Q: Numeric, const BLOCK: i32>(
    x: Ptr<T>,
    q: MutPtr<Q>,
    scale: MutPtr<f32>,
    cols: i32,
    x_stride: i32,
    q_stride: i32,
) {
    let row = program_id(0).to::<i64>();
    let mut amax = zeros::<f32>([BLOCK]);
    for c0 in (0..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let v = load_masked(x + row * x_stride + offs, offs < cols, 0.0).to::<f32>();
        amax = maximum(amax, abs(v));
    }
    let m = max(amax, 0);
    let s = where_(m > 0.0, m / 448.0, 1.0);
    store(scale + row, s);
    let inv = 1.0 / s;
    for c0 in (0..cols).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let mask = offs < cols;
        let v = load_masked(x + row * x_stride + offs, mask, 0.0).to::<f32>();
        store_masked(q + row * q_stride + offs, minimum(maximum(v * inv, -448.0), 448.0).to::<Q>(), mask);
    }
}

/// Zeroes `C[M, N]` (rows `stride_cm` apart) before atomic split-K adds into it. Grid: `(cdiv(M,
/// BLOCK_M), cdiv(N, BLOCK_N))`.
#[kernel]
pub fn zero_fill<O: Numeric, const BLOCK_M: i32, const BLOCK_N: i32>(c: MutPtr<O>, m: i32, n: i32, stride_cm: i32) {
    let rm = program_id(0) * BLOCK_M + arange(0, BLOCK_M);
    let rn = program_id(1) * BLOCK_N + arange(0, BLOCK_N);
    let ok = (rm.expand_dims(1) < m) & (rn.expand_dims(0) < n);
    store_masked(c + rm.expand_dims(1) * stride_cm + rn.expand_dims(0), zeros::<O>([BLOCK_M, BLOCK_N]), ok);
}

// ---- host API

use dsl_core::runtime::{AnyBuffer, Runtime};
use dsl_core::types::Elem;

/// A row-major matrix in a buffer: `rows x cols`, rows `row_stride` elements apart.
pub struct Operand<'a, Buf> {
    pub buf: &'a Buf,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

/// How a scale applies: one value for the whole tensor, one per row of `A` (per token), or one per
/// column of the output (per output channel, i.e. per row of `B`). f32 buffers.
pub enum Scale<'a, Buf> {
    PerTensor(&'a Buf),
    PerRow(&'a Buf),
    PerColumn(&'a Buf),
}

/// How split-K partial products are combined (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SplitKMode {
    /// Through an f32 workspace, added in order by a second kernel: identical bits every run. The
    /// default: reproducible, no rounding of partials to 16 bits, and no slower at small M (the
    /// workspace is `split_k * M * N * 4` bytes against the weight's `N * K`; see bench/fp8_gemm).
    #[default]
    Deterministic,
    /// Atomic adds into `C` (zeroed first): one GEMM kernel, run-to-run variation in the last bits.
    Atomic,
}

/// Block sizes and schedule of one launch: a split-K grid (`stream_k == 0`: `split_k` chunks of `K` per
/// output tile), or stream-K over `stream_k` persistent programs ([`scaled_mm_streamk`]; `split_k` is
/// unused), which always combines through the workspace in a fixed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmConfig {
    pub block_m: u32,
    pub block_n: u32,
    pub block_k: u32,
    pub split_k: u32,
    pub stream_k: u32,
}

impl GemmConfig {
    /// A split-K grid.
    pub fn split(block_m: u32, block_n: u32, block_k: u32, split_k: u32) -> GemmConfig {
        GemmConfig { block_m, block_n, block_k, split_k, stream_k: 0 }
    }

    /// Stream-K over `programs` programs.
    pub fn stream(block_m: u32, block_n: u32, block_k: u32, programs: u32) -> GemmConfig {
        GemmConfig { block_m, block_n, block_k, split_k: 1, stream_k: programs }
    }
}

/// How a stream-K launch divides a problem (the kernel computes the same from its arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamK {
    /// Programs launched: the requested count, at most one per iteration (so that every share is
    /// non-empty and every program between a tile's first and last writes a slot of it).
    pub programs: usize,
    /// Output tiles and K blocks per tile.
    pub tiles: usize,
    pub iters: usize,
    /// The most tiles one program's share touches.
    pub segments: usize,
    /// The most programs whose shares touch one tile: the workspace's slots.
    pub slots: usize,
}

/// The stream-K division of an `m x n x k` problem with `cfg`'s blocks over `programs` programs (the
/// kernels' integer formulas, evaluated exactly).
pub fn stream_k_shape(m: usize, n: usize, k: usize, cfg: &GemmConfig, programs: usize) -> StreamK {
    let tiles = m.div_ceil(cfg.block_m as usize) * n.div_ceil(cfg.block_n as usize);
    let iters = k.div_ceil(cfg.block_k as usize);
    let work = tiles * iters;
    let p = programs.clamp(1, work.max(1));
    let mut segments = 0;
    for i in 0..p {
        let (lo, hi) = (i * work / p, (i + 1) * work / p);
        if hi > lo {
            segments = segments.max((hi - 1) / iters - lo / iters + 1);
        }
    }
    let mut slots = 0;
    for t in 0..tiles {
        let first = ((t * iters + 1) * p - 1) / work;
        let last = ((t + 1) * iters * p - 1) / work;
        slots = slots.max(last - first + 1);
    }
    StreamK { programs: p, tiles, iters, segments, slots }
}

/// Options of [`fp8_gemm`].
#[derive(Clone, Copy, Debug)]
pub struct GemmOptions {
    /// `None`: [`heuristic`].
    pub config: Option<GemmConfig>,
    pub mode: SplitKMode,
    /// Streaming multiprocessors of the GPU (the heuristic fills them); 132 on an H100 SXM.
    pub sm_count: u32,
}

impl Default for GemmOptions {
    fn default() -> Self {
        GemmOptions { config: None, mode: SplitKMode::Deterministic, sm_count: 132 }
    }
}

/// A problem [`fp8_gemm`] refuses, or the runtime's error.
#[derive(Debug, thiserror::Error)]
pub enum GemmError<E: std::error::Error> {
    #[error("fp8_gemm: A is {m}x{ka} but B is {n}x{kb} ([N, K]): the K dimensions differ")]
    KMismatch { m: usize, ka: usize, n: usize, kb: usize },
    #[error("fp8_gemm: {what} is empty ({rows}x{cols})")]
    Empty { what: &'static str, rows: usize, cols: usize },
    #[error("fp8_gemm: {what}: row stride {stride} is smaller than its {cols} columns")]
    Stride { what: &'static str, stride: usize, cols: usize },
    #[error("fp8_gemm: {what} needs at least {need} elements, its buffer has {len}")]
    TooSmall { what: &'static str, need: usize, len: usize },
    #[error("fp8_gemm: {what}: {mode} scales are not supported (A takes per-tensor or per-row scales, B per-tensor or per-column)")]
    ScaleMode { what: &'static str, mode: &'static str },
    #[error("fp8_gemm: {what} spans {elems} elements, over the 2^31 that 32-bit offsets address")]
    TooLarge { what: &'static str, elems: usize },
    #[error("fp8_gemm: no kernel for blocks {block_m}x{block_n}x{block_k} (supported: {supported})")]
    Blocks { block_m: u32, block_n: u32, block_k: u32, supported: String },
    #[error("fp8_gemm: split_k {0} must be between 1 and 64")]
    SplitK(u32),
    #[error("fp8_gemm: stream_k {0} must be between 1 and 65536 programs (0: a split-K grid)")]
    StreamKPrograms(u32),
    #[error("fp8_gemm: stream-K combines through the workspace in a fixed order; atomic mode applies to split-K grids")]
    StreamKAtomic,
    #[error("fp8_gemm: the deterministic combine ({parts} partial products per output) needs an f32 workspace of {need} elements ({have})")]
    Workspace { parts: u32, need: usize, have: String },
    #[error(transparent)]
    Runtime(E),
}

/// Calls `$callback!` with the block sizes [`fp8_gemm`] has kernels for, as `BM BN BK` literal triples
/// separated by commas: the one list that the host dispatch, [`TILES`] and the benchmark's
/// fingerprints expand (const generics need literal instances).
#[macro_export]
macro_rules! fp8_gemm_tiles {
    ($callback:ident) => {
        $callback!(16 32 256, 16 64 256, 16 64 512, 16 128 128, 32 32 256, 32 32 512, 32 64 256, 64 64 128, 64 128 128, 128 128 64, 128 128 32)
    };
}

macro_rules! tile_list {
    ($($m:literal $n:literal $k:literal),*) => {
        [$(($m, $n, $k)),*]
    };
}

/// The block sizes [`fp8_gemm`] has kernels for: `(block_m, block_n, block_k)`.
pub const TILES: [(u32, u32, u32); 11] = fp8_gemm_tiles!(tile_list);

/// Picks blocks and split-K from the problem and the GPU size: the smallest `block_m` that covers `M`
/// (the tensor cores work on 16 rows; a decode GEMM is bound by reading `B`), narrow tiles with a long
/// `block_k` for small `M` (many small programs keep bytes in flight on every SM), and enough splits of
/// `K` that about 1.5 programs run per SM, keeping at least 4 blocks of `K` per split. (The autotuned
/// winners of bench/fp8_gemm, H100: these tiles at every M; split-K within a factor of 2.)
pub fn heuristic(m: usize, n: usize, k: usize, sm_count: u32) -> GemmConfig {
    let (block_m, block_n, block_k) = match m {
        0..=16 => (16, 32, 256),
        17..=32 => (32, 32, 256),
        33..=256 => (64, 64, 128),
        _ => (128, 128, 32),
    };
    let tiles = m.div_ceil(block_m as usize) * n.div_ceil(block_n as usize);
    let want = (3 * sm_count as usize).div_ceil(2 * tiles.max(1));
    let most = (k / (4 * block_k as usize)).max(1);
    let split_k = want.min(most).clamp(1, 16).next_power_of_two().min(16) as u32;
    GemmConfig::split(block_m, block_n, block_k, split_k)
}

/// Elements of the f32 workspace a deterministic combine with `cfg` needs for an `m x n x k` problem:
/// `split_k * M * N` for a split-K grid (0 with one split), `slots * M * N` for stream-K.
pub fn workspace_len(m: usize, n: usize, k: usize, cfg: &GemmConfig) -> usize {
    match cfg.stream_k {
        0 if cfg.split_k > 1 => cfg.split_k as usize * m * n,
        0 => 0,
        p => stream_k_shape(m, n, k, cfg, p as usize).slots * m * n,
    }
}

fn check_operand<E: std::error::Error, B: AnyBuffer>(what: &'static str, o: &Operand<B>) -> Result<(), GemmError<E>> {
    if o.rows == 0 || o.cols == 0 {
        return Err(GemmError::Empty { what, rows: o.rows, cols: o.cols });
    }
    if o.row_stride < o.cols {
        return Err(GemmError::Stride { what, stride: o.row_stride, cols: o.cols });
    }
    let need = (o.rows - 1) * o.row_stride + o.cols;
    if need > i32::MAX as usize {
        return Err(GemmError::TooLarge { what, elems: need });
    }
    if o.buf.len() < need {
        return Err(GemmError::TooSmall { what, need, len: o.buf.len() });
    }
    Ok(())
}

fn check_len<E: std::error::Error>(what: &'static str, len: usize, need: usize) -> Result<(), GemmError<E>> {
    if len < need {
        return Err(GemmError::TooSmall { what, need, len });
    }
    Ok(())
}

/// `out[M, N] = (A[M, K] · B[N, K]ᵀ) * scale_a * scale_b (+ bias)`, rounded once to `O`.
///
/// `A`, `B`: fp8 (e4m3 / e5m2, mixed allowed) or both bf16; `O`: bf16, f16 or f32. `out`'s rows are
/// `out_row_stride` apart. `workspace` (f32, [`workspace_len`] elements) is needed for deterministic
/// split-K with `split_k > 1` and for stream-K. Returns the configuration launched.
#[allow(clippy::too_many_arguments)]
pub fn fp8_gemm<R, A, B, O>(
    rt: &R,
    a: Operand<R::Buffer<A>>,
    b: Operand<R::Buffer<B>>,
    scale_a: Scale<R::Buffer<f32>>,
    scale_b: Scale<R::Buffer<f32>>,
    bias: Option<&R::Buffer<f32>>,
    out: &mut R::Buffer<O>,
    out_row_stride: usize,
    workspace: Option<&mut R::Buffer<f32>>,
    opts: &GemmOptions,
) -> Result<GemmConfig, GemmError<R::Error>>
where
    R: Runtime,
    A: Numeric + DotOperands<B> + Elem,
    B: Numeric + Elem,
    O: Numeric + Elem,
{
    check_operand("A", &a)?;
    check_operand("B", &b)?;
    let (m, n, k) = (a.rows, b.rows, a.cols);
    if b.cols != k {
        return Err(GemmError::KMismatch { m, ka: k, n, kb: b.cols });
    }
    check_operand("out", &Operand { buf: &*out, rows: m, cols: n, row_stride: out_row_stride })?;
    let (sa, row_scale) = match scale_a {
        Scale::PerTensor(s) => (s, check_len("scale_a", s.len(), 1).map(|_| false)?),
        Scale::PerRow(s) => (s, check_len("scale_a (per row)", s.len(), m).map(|_| true)?),
        Scale::PerColumn(_) => return Err(GemmError::ScaleMode { what: "scale_a", mode: "per-column" }),
    };
    let (sb, col_scale) = match scale_b {
        Scale::PerTensor(s) => (s, check_len("scale_b", s.len(), 1).map(|_| false)?),
        Scale::PerColumn(s) => (s, check_len("scale_b (per column)", s.len(), n).map(|_| true)?),
        Scale::PerRow(_) => return Err(GemmError::ScaleMode { what: "scale_b", mode: "per-row" }),
    };
    if let Some(bias) = bias {
        check_len("bias", bias.len(), n)?;
    }
    let cfg = opts.config.unwrap_or_else(|| heuristic(m, n, k, opts.sm_count));
    if !(1..=64).contains(&cfg.split_k) {
        return Err(GemmError::SplitK(cfg.split_k));
    }
    if !TILES.contains(&(cfg.block_m, cfg.block_n, cfg.block_k)) {
        let supported = TILES.iter().map(|(m, n, k)| format!("{m}x{n}x{k}")).collect::<Vec<_>>().join(", ");
        return Err(GemmError::Blocks { block_m: cfg.block_m, block_n: cfg.block_n, block_k: cfg.block_k, supported });
    }
    let stream = match cfg.stream_k {
        0 => None,
        p if p > 65536 => return Err(GemmError::StreamKPrograms(p)),
        _ if opts.mode == SplitKMode::Atomic => return Err(GemmError::StreamKAtomic),
        p => {
            let s = stream_k_shape(m, n, k, &cfg, p as usize);
            // The kernels compute (t * iters + 1) * programs in 32 bits.
            let span = (s.tiles * s.iters + 1) * s.programs;
            if span > i32::MAX as usize {
                return Err(GemmError::TooLarge { what: "stream-K iterations x programs", elems: span });
            }
            Some(s)
        }
    };
    let parts = stream.map_or(cfg.split_k as usize, |s| s.slots);
    // Stream-K always goes through the workspace (C may be 16-bit); split-K only when deterministic.
    let ws = if stream.is_some() || (parts > 1 && opts.mode == SplitKMode::Deterministic) {
        let need = parts * m * n; // = workspace_len(m, n, k, &cfg), without dividing the problem again
        if need > i32::MAX as usize {
            return Err(GemmError::TooLarge { what: "workspace", elems: need });
        }
        match workspace {
            Some(w) if w.len() >= need => Some(w),
            other => {
                let have = other.map_or("none given".to_string(), |w| format!("{} given", w.len()));
                return Err(GemmError::Workspace { parts: parts as u32, need, have });
            }
        }
    } else {
        None
    };
    let args = Args { a: a.buf, b: b.buf, sa, sb, m, n, k, sam: a.row_stride, sbn: b.row_stride, scm: out_row_stride, stream };
    let flags = (row_scale, col_scale, bias.is_some());
    let run = |r: Result<(), R::Error>| r.map_err(GemmError::Runtime);
    macro_rules! dispatch {
        ($($m:literal $n:literal $k:literal),*) => {
            match (cfg.block_m, cfg.block_n, cfg.block_k) {
                $(($m, $n, $k) => launch_tile::<R, A, B, O, $m, $n, $k>(rt, &args, cfg, flags, bias, out, ws),)*
                _ => unreachable!("checked against TILES"),
            }
        };
    }
    if opts.mode == SplitKMode::Atomic && cfg.split_k > 1 && stream.is_none() {
        let grid = (m.div_ceil(32) as u32, n.div_ceil(64) as u32);
        run(zero_fill::<O, 32, 64>::launch(rt, grid, &mut *out, m as i32, n as i32, out_row_stride as i32))?;
    }
    run(fp8_gemm_tiles!(dispatch))?;
    Ok(cfg)
}

/// The buffers and sizes every launch of one [`fp8_gemm`] shares.
struct Args<'a, Buf, BufB, BufS> {
    a: &'a Buf,
    b: &'a BufB,
    sa: &'a BufS,
    sb: &'a BufS,
    m: usize,
    n: usize,
    k: usize,
    sam: usize,
    sbn: usize,
    scm: usize,
    stream: Option<StreamK>,
}

/// Calls `$launch!(ROW_SCALE, COL_SCALE, BIAS)` with the epilogue flags `(row, col, bias)` as the
/// literals const generics need.
macro_rules! with_flags {
    ($flags:expr, $launch:ident) => {
        match $flags {
            (false, false, false) => $launch!(false, false, false),
            (false, false, true) => $launch!(false, false, true),
            (false, true, false) => $launch!(false, true, false),
            (false, true, true) => $launch!(false, true, true),
            (true, false, false) => $launch!(true, false, false),
            (true, false, true) => $launch!(true, false, true),
            (true, true, false) => $launch!(true, true, false),
            (true, true, true) => $launch!(true, true, true),
        }
    };
}

#[allow(clippy::type_complexity)]
fn launch_tile<R, A, B, O, const BM: i32, const BN: i32, const BK: i32>(
    rt: &R,
    x: &Args<R::Buffer<A>, R::Buffer<B>, R::Buffer<f32>>,
    cfg: GemmConfig,
    flags: (bool, bool, bool),
    bias: Option<&R::Buffer<f32>>,
    out: &mut R::Buffer<O>,
    ws: Option<&mut R::Buffer<f32>>,
) -> Result<(), R::Error>
where
    R: Runtime,
    A: Numeric + DotOperands<B> + Elem,
    B: Numeric + Elem,
    O: Numeric + Elem,
{
    let grid = (x.m.div_ceil(BM as usize) as u32, x.n.div_ceil(BN as usize) as u32, cfg.split_k);
    let (m, n, k, sam, sbn, scm) = (x.m as i32, x.n as i32, x.k as i32, x.sam as i32, x.sbn as i32, x.scm as i32);
    // Without a bias, scale_a stands in for the (unread) bias parameter.
    let dummy = bias.unwrap_or(x.sa);
    if let Some(s) = x.stream {
        // Stream-K: raw partials into the tiles' slots, then the ordered combine with the epilogue.
        let ws = ws.expect("fp8_gemm checked the workspace");
        let programs = s.programs as u32;
        scaled_mm_streamk::<A, B, BM, BN, BK>::launch(rt, programs, x.a, x.b, &mut *ws, m, n, k, sam, sbn, s.segments as i32)?;
        // 16 x 32 blocks divide every tile of TILES.
        let g2 = (x.m.div_ceil(16) as u32, x.n.div_ceil(32) as u32);
        let (iters, p) = (s.iters as i32, programs as i32);
        macro_rules! reduce {
            ($r:literal, $c:literal, $b:literal) => {
                streamk_reduce::<O, 16, 32, $r, $c, $b>::launch(rt, g2, &*ws, out, x.sa, x.sb, dummy, m, n, scm, BM, BN, iters, p)
            };
        }
        return with_flags!(flags, reduce);
    }
    if let Some(ws) = ws {
        // Deterministic split-K: raw partials, then the ordered combine with the epilogue.
        scaled_mm::<A, B, f32, BM, BN, BK, false, false, false, false, false>::launch(
            rt, grid, x.a, x.b, ws, x.sa, x.sb, x.sa, m, n, k, sam, sbn, n,
        )?;
        let g2 = (x.m.div_ceil(32) as u32, x.n.div_ceil(64) as u32);
        let split = cfg.split_k as i32;
        macro_rules! reduce {
            ($r:literal, $c:literal, $b:literal) => {
                splitk_reduce::<O, 32, 64, $r, $c, $b>::launch(rt, g2, &*ws, out, x.sa, x.sb, dummy, m, n, split, scm)
            };
        }
        return with_flags!(flags, reduce);
    }
    macro_rules! main {
        ($r:literal, $c:literal, $b:literal) => {
            if cfg.split_k > 1 {
                scaled_mm::<A, B, O, BM, BN, BK, $r, $c, $b, true, true>::launch(rt, grid, x.a, x.b, out, x.sa, x.sb, dummy, m, n, k, sam, sbn, scm)
            } else {
                scaled_mm::<A, B, O, BM, BN, BK, $r, $c, $b, true, false>::launch(rt, grid, x.a, x.b, out, x.sa, x.sb, dummy, m, n, k, sam, sbn, scm)
            }
        };
    }
    with_flags!(flags, main)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `streamk_reduce` runs 16 x 32 blocks, each inside one GEMM tile.
    #[test]
    fn reduce_blocks_divide_every_tile() {
        assert!(TILES.iter().all(|&(m, n, _)| m % 16 == 0 && n % 32 == 0));
    }

    /// Replays the kernels' stream-K formulas: every (tile, K block) iteration is done by exactly one
    /// program, in a segment below `segments`, writing a slot below `slots` that no other program of
    /// the tile writes; the reduce's count of slots per tile matches.
    #[test]
    fn stream_k_shares_cover_every_iteration_once() {
        for (m, n, k, bm, bn, bk) in [(1, 150, 600, 16, 128, 128), (17, 70, 200, 16, 64, 256), (130, 8192, 8192, 64, 64, 128), (3, 10, 5000, 16, 32, 256)] {
            let cfg = GemmConfig::stream(bm, bn, bk, 1);
            for programs in [1, 2, 3, 7, 64, 132, 264, 1000] {
                let s = stream_k_shape(m, n, k, &cfg, programs);
                let (work, programs) = (s.tiles * s.iters, s.programs);
                let mut done = vec![0u8; work];
                let mut writers = vec![vec![]; s.tiles];
                for p in 0..programs {
                    let (lo, hi) = (p * work / programs, (p + 1) * work / programs);
                    for seg in 0..s.segments {
                        let t = lo / s.iters + seg;
                        let (u_lo, u_hi) = (lo.max(t * s.iters), hi.min(t * s.iters + s.iters));
                        if u_lo >= u_hi {
                            continue;
                        }
                        (u_lo..u_hi).for_each(|u| done[u] += 1);
                        let first = ((t * s.iters + 1) * programs - 1) / work;
                        assert!(p >= first && p - first < s.slots, "{m}x{n}x{k} P={programs}: program {p} slot {}", p - first);
                        writers[t].push(p - first);
                    }
                    assert!(hi == lo || (hi - 1) / s.iters < lo / s.iters + s.segments, "share of {p} needs more segments");
                }
                assert!(done.iter().all(|&d| d == 1), "{m}x{n}x{k} P={programs}: iterations not covered once");
                for (t, w) in writers.iter().enumerate() {
                    let first = ((t * s.iters + 1) * programs - 1) / work;
                    let last = ((t + 1) * s.iters * programs - 1) / work;
                    let want: Vec<usize> = (0..=last - first).collect();
                    assert_eq!(w, &want, "{m}x{n}x{k} P={programs}: tile {t}'s slots");
                }
            }
        }
    }
}
