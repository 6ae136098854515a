//! The host API of the fp8 GEMM: argument checks, the configuration (heuristic or the caller's), and the
//! launches of the kernels' declared instances.

use super::{
    ScaledMmFusedCombineInstance, ScaledMmInstance, ScaledMmStreamkInstance, ScaledMvInstance, SplitkReduceInstance,
    StreamkReduceInstance, ZeroFillInstance,
};
use dsl_core::lang::{DotOperands, Numeric};
use dsl_core::runtime::{AnyBuffer, Grid, Launch, LaunchOptions, Runtime};
use dsl_core::types::Elem;

/// The RMSNorm a matrix-vector product applies to its row of `A` (a row of the residual stream) before
/// the product: `A ⊙ gamma / sqrt(mean(A²) + eps)` ([`scaled_matvec`], [`swiglu_matvec`](super::swiglu_matvec)).
pub struct RmsNorm<'a, Buf> {
    /// `K` f32 weights.
    pub gamma: &'a Buf,
    pub eps: f32,
}

// By hand: a derive would ask `Buf: Copy`.
impl<Buf> Clone for RmsNorm<'_, Buf> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Buf> Copy for RmsNorm<'_, Buf> {}

/// A row-major matrix in a buffer: `rows x cols`, rows `row_stride` elements apart.
pub struct Operand<'a, Buf> {
    pub buf: &'a Buf,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

// By hand, as for `Scale`: only the reference is copied.
impl<Buf> Clone for Operand<'_, Buf> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Buf> Copy for Operand<'_, Buf> {}

/// How a scale applies: one value for the whole tensor, one per row of `A` (per token), or one per
/// column of the output (per output channel, i.e. per row of `B`). f32 buffers.
pub enum Scale<'a, Buf> {
    PerTensor(&'a Buf),
    PerRow(&'a Buf),
    PerColumn(&'a Buf),
}

// By hand: a derive would ask `Buf: Copy`, and only the reference is copied.
impl<Buf> Clone for Scale<'_, Buf> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Buf> Copy for Scale<'_, Buf> {}

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
/// output tile), a matrix-vector product for `M = 1` (`block_m == 1`: [`scaled_mv`](super::scaled_mv),
/// `block_n` rows of `B` per one-warp program, no split), or stream-K over `stream_k` persistent programs ([`scaled_mm_streamk`](super::scaled_mm_streamk);
/// `split_k` is unused), which always combines through the workspace in a fixed order. `options` (warps,
/// pipeline stages, programmatic launch) apply to the GEMM kernel's launch; unset ones take the runtime's
/// defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmConfig {
    pub block_m: u32,
    pub block_n: u32,
    pub block_k: u32,
    pub split_k: u32,
    pub stream_k: u32,
    /// A deterministic split-K (`split_k > 1`) combined by the last program of each tile
    /// ([`scaled_mm_fused_combine`](super::scaled_mm_fused_combine): one launch, the same bits), instead
    /// of by a second kernel. Needs [`Workspace::tickets`].
    pub fused_combine: bool,
    pub options: LaunchOptions,
}

impl GemmConfig {
    /// A split-K grid.
    pub fn split(block_m: u32, block_n: u32, block_k: u32, split_k: u32) -> GemmConfig {
        GemmConfig { block_m, block_n, block_k, split_k, stream_k: 0, fused_combine: false, options: LaunchOptions::default() }
    }

    /// The matrix-vector product of `M = 1` ([`scaled_mv`](super::scaled_mv)): `rows` rows of `B` per
    /// program, `block_k` (512 for 1-byte operands, 256 for 16-bit ones) columns per load, one warp.
    pub fn matvec(rows: u32, block_k: u32) -> GemmConfig {
        let options = LaunchOptions { num_warps: Some(1), ..LaunchOptions::default() };
        GemmConfig { block_m: 1, block_n: rows, block_k, split_k: 1, stream_k: 0, fused_combine: false, options }
    }

    /// A matrix-vector product ([`GemmConfig::matvec`]).
    pub fn is_matvec(&self) -> bool {
        self.block_m == 1
    }

    /// Stream-K over `programs` programs.
    pub fn stream(block_m: u32, block_n: u32, block_k: u32, programs: u32) -> GemmConfig {
        GemmConfig { block_m, block_n, block_k, split_k: 1, stream_k: programs, fused_combine: false, options: LaunchOptions::default() }
    }

    /// This split-K grid with its combine fused into the GEMM where it has one (`split_k > 1`) and the
    /// fused kernel declares its tile ([`fused_combine_tiles`]); otherwise unchanged.
    pub fn with_fused_combine(self) -> GemmConfig {
        let declared = fused_combine_tiles().contains(&(self.block_m, self.block_n, self.block_k));
        GemmConfig { fused_combine: self.stream_k == 0 && self.split_k > 1 && declared, ..self }
    }
}

/// The scratch memory of [`fp8_gemm`]'s combines, shared by every GEMM of a stream.
pub struct Workspace<'a, F, T> {
    /// f32 partial products, [`workspace_len`] elements.
    pub partials: &'a mut F,
    /// One i32 ticket counter per output tile ([`tickets_len`]), for [`GemmConfig::fused_combine`]:
    /// zero before the first GEMM that uses it; every GEMM leaves it zero.
    pub tickets: Option<&'a mut T>,
}

impl<'a, F, T> Workspace<'a, F, T> {
    /// Partials only (no fused combine).
    pub fn partials(partials: &'a mut F) -> Self {
        Workspace { partials, tickets: None }
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
    /// `out += result` instead of `out = result` (a transformer's residual add, fused): the combine
    /// adds into `out`, and a single split adds atomically (one add per element: still the same bits
    /// every run). Takes the same workspace.
    pub accumulate: bool,
}

impl Default for GemmOptions {
    fn default() -> Self {
        GemmOptions { config: None, mode: SplitKMode::Deterministic, sm_count: 132, accumulate: false }
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
    #[error("fp8_gemm: no {schedule} kernel for blocks {block_m}x{block_n}x{block_k} (declared: {supported})")]
    Blocks { schedule: &'static str, block_m: u32, block_n: u32, block_k: u32, supported: String },
    #[error("fp8_gemm: a matrix-vector config (block_m 1, {0}) takes one row of A with no split; A has {1} rows")]
    Matvec(String, usize),
    #[error("fp8_gemm: a matrix-vector product takes a matrix-vector config (GemmConfig::matvec), not {0}")]
    NotMatvec(String),
    #[error("swiglu_matvec: the fused gate-and-up weight has {0} rows; it needs an even count (gate rows, then as many up rows)")]
    Gated(usize),
    #[error("fp8_gemm: a matrix-vector product with an RMSNorm takes no bias and does not accumulate into out")]
    NormedEpilogue,
    #[error("swiglu_matvec: no kernel for {0} (a program reads 2 or 4 rows of a 1-byte weight, 4 or 8 of a 16-bit one)")]
    GatedTile(String),
    #[error("fp8_gemm: split_k {0} must be between 1 and 64")]
    SplitK(u32),
    #[error("fp8_gemm: stream_k {0} must be between 1 and 65536 programs (0: a split-K grid)")]
    StreamKPrograms(u32),
    #[error("fp8_gemm: stream-K combines through the workspace in a fixed order; atomic mode applies to split-K grids")]
    StreamKAtomic,
    #[error("fp8_gemm: the deterministic combine ({parts} partial products per output) needs an f32 workspace of {need} elements ({have})")]
    Workspace { parts: u32, need: usize, have: String },
    #[error("fp8_gemm: the fused combine needs {need} zeroed i32 ticket counters, one per output tile ({have})")]
    Tickets { need: usize, have: String },
    #[error("fp8_gemm: a fused combine applies to deterministic split-K grids with split_k > 1 (this config: {0})")]
    FusedCombine(String),
    #[error("fp8_gemm_partials: partial products come from a split-K grid with split_k 2 to 64 (this config: {0})")]
    Partials(String),
    #[error(transparent)]
    Runtime(E),
}

/// The block sizes of the split-K GEMM's declared instances ([`ScaledMmInstance::ALL`]), each once.
pub fn split_k_tiles() -> Vec<(u32, u32, u32)> {
    tiles_of(ScaledMmInstance::ALL.iter().map(|i| (i.block_m, i.block_n, i.block_k)))
}

/// The block sizes of the fused-combine GEMM's declared instances ([`ScaledMmFusedCombineInstance::ALL`]).
pub fn fused_combine_tiles() -> Vec<(u32, u32, u32)> {
    tiles_of(ScaledMmFusedCombineInstance::ALL.iter().map(|i| (i.block_m, i.block_n, i.block_k)))
}

/// The `(rows, block_k)` of the matrix-vector product's declared instances ([`ScaledMvInstance::ALL`]).
pub fn matvec_tiles() -> Vec<(u32, u32)> {
    matvec_blocks().into_iter().map(|(_, n, k)| (n, k)).collect()
}

/// [`matvec_tiles`] as GEMM blocks (`block_m` 1).
fn matvec_blocks() -> Vec<(u32, u32, u32)> {
    tiles_of(ScaledMvInstance::ALL.iter().map(|i| (1, i.block_n, i.block_k)))
}

/// The block sizes of the stream-K GEMM's declared instances ([`ScaledMmStreamkInstance::ALL`]).
pub fn stream_k_tiles() -> Vec<(u32, u32, u32)> {
    tiles_of(ScaledMmStreamkInstance::ALL.iter().map(|i| (i.block_m, i.block_n, i.block_k)))
}

pub(crate) fn tiles_of(it: impl Iterator<Item = (i32, i32, i32)>) -> Vec<(u32, u32, u32)> {
    let mut v: Vec<(u32, u32, u32)> = vec![];
    for (m, n, k) in it {
        let t = (m as u32, n as u32, k as u32);
        if !v.contains(&t) {
            v.push(t);
        }
    }
    v
}

/// The distinct `(block_n, block_k)` of a matrix-vector kernel's instances, in declaration order.
pub(crate) fn matvec_tiles_of(it: impl Iterator<Item = (i32, i32)>) -> Vec<(u32, u32)> {
    tiles_of(it.map(|(n, k)| (1, n, k))).into_iter().map(|(_, n, k)| (n, k)).collect()
}

/// The launch of `programs` one-warp programs of a matrix-vector config (its other launch options kept).
pub(crate) fn matvec_grid(programs: usize, cfg: &GemmConfig) -> Launch {
    Grid::from(programs as u32).with(LaunchOptions { num_warps: Some(1), ..cfg.options })
}

/// Picks blocks and split-K from the problem and the GPU size: the smallest `block_m` that covers `M`
/// (the tensor cores work on 16 rows; a decode GEMM is bound by reading `B`), narrow tiles with a long
/// `block_k` for small `M` (many small programs keep bytes in flight on every SM), and enough splits of
/// `K` that about 1.5 programs run per SM, keeping at least 4 blocks of `K` per split. (The autotuned
/// winners of bench/fp8_gemm, H100: these tiles at every M; split-K within a factor of 2.)
pub fn heuristic(m: usize, n: usize, k: usize, sm_count: u32) -> GemmConfig {
    // From 33 rows on, 16 rows per warp: on sm_90a such tiles run on wgmma (see codegen-ptx's
    // `lower::wgmma`; at 4096^3 128x128x64 on 8 warps was 2.1x its mma.sync speed on the H100).
    let (block_m, block_n, block_k, warps) = match m {
        0..=16 => (16, 32, 256, None),
        17..=32 => (32, 32, 256, None),
        33..=256 => (64, 64, 128, None),
        _ => (128, 128, 64, Some(8)),
    };
    let tiles = m.div_ceil(block_m as usize) * n.div_ceil(block_n as usize);
    let want = (3 * sm_count as usize).div_ceil(2 * tiles.max(1));
    let most = (k / (4 * block_k as usize)).max(1);
    let split_k = want.min(most).clamp(1, 16).next_power_of_two().min(16) as u32;
    let mut cfg = GemmConfig::split(block_m, block_n, block_k, split_k);
    cfg.options.num_warps = warps;
    cfg
}

/// The ticket counters (i32) a fused combine with `cfg` needs for an `m x n` output: one per output tile
/// (0 without a fused combine).
pub fn tickets_len(m: usize, n: usize, cfg: &GemmConfig) -> usize {
    match cfg.fused_combine && cfg.stream_k == 0 && cfg.split_k > 1 {
        true => m.div_ceil(cfg.block_m as usize) * n.div_ceil(cfg.block_n as usize),
        false => 0,
    }
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

/// The buffers of `scale_a` (per tensor, or per row: `m`) and `scale_b` (per tensor, or per column:
/// `n`), each with whether it is per row / per column; refuses the other modes and short buffers.
#[allow(clippy::type_complexity)]
pub fn check_scales<'s, E: std::error::Error, Buf: AnyBuffer>(
    scale_a: Scale<'s, Buf>,
    scale_b: Scale<'s, Buf>,
    m: usize,
    n: usize,
) -> Result<((&'s Buf, bool), (&'s Buf, bool)), GemmError<E>> {
    let a = match scale_a {
        Scale::PerTensor(s) => (s, check_len("scale_a", s.len(), 1).map(|_| false)?),
        Scale::PerRow(s) => (s, check_len("scale_a (per row)", s.len(), m).map(|_| true)?),
        Scale::PerColumn(_) => return Err(GemmError::ScaleMode { what: "scale_a", mode: "per-column" }),
    };
    let b = match scale_b {
        Scale::PerTensor(s) => (s, check_len("scale_b", s.len(), 1).map(|_| false)?),
        Scale::PerColumn(s) => (s, check_len("scale_b (per column)", s.len(), n).map(|_| true)?),
        Scale::PerRow(_) => return Err(GemmError::ScaleMode { what: "scale_b", mode: "per-row" }),
    };
    Ok((a, b))
}

/// Refuses blocks that `cfg`'s schedule (split-K, stream-K or matrix-vector) declares no kernel instance for.
fn check_tiles<E: std::error::Error>(cfg: &GemmConfig) -> Result<(), GemmError<E>> {
    let (schedule, tiles) = match cfg.stream_k {
        0 if cfg.is_matvec() => ("matrix-vector", matvec_blocks()),
        0 => ("split-K", split_k_tiles()),
        _ => ("stream-K", stream_k_tiles()),
    };
    check_tiles_in(schedule, &tiles, cfg)
}

/// Refuses `cfg` unless its `(block_m, block_n, block_k)` is one of `tiles` (a kernel's declared
/// instances), naming them.
pub(crate) fn check_tiles_in<E: std::error::Error>(schedule: &'static str, tiles: &[(u32, u32, u32)], cfg: &GemmConfig) -> Result<(), GemmError<E>> {
    if !tiles.contains(&(cfg.block_m, cfg.block_n, cfg.block_k)) {
        let supported = tiles.iter().map(|(m, n, k)| format!("{m}x{n}x{k}")).collect::<Vec<_>>().join(", ");
        return Err(GemmError::Blocks { schedule, block_m: cfg.block_m, block_n: cfg.block_n, block_k: cfg.block_k, supported });
    }
    Ok(())
}

pub(super) fn check_len<E: std::error::Error>(what: &'static str, len: usize, need: usize) -> Result<(), GemmError<E>> {
    if len < need {
        return Err(GemmError::TooSmall { what, need, len });
    }
    Ok(())
}

/// `out[M, N] = (A[M, K] · B[N, K]ᵀ) * scale_a * scale_b (+ bias)`, rounded once to `O` (with
/// [`GemmOptions::accumulate`], `out += ...`).
///
/// `A`, `B`: fp8 (e4m3 / e5m2, mixed allowed) or both bf16; `O`: bf16, f16 or f32. `out`'s rows are
/// `out_row_stride` apart. `workspace` ([`Workspace`]: [`workspace_len`] f32 partials; with a fused
/// combine, [`tickets_len`] ticket counters too) is needed for deterministic split-K with `split_k > 1`
/// and for stream-K. Returns the configuration launched.
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
    workspace: Option<Workspace<'_, R::Buffer<f32>, R::Buffer<i32>>>,
    opts: &GemmOptions,
) -> Result<GemmConfig, GemmError<R::Error>>
where
    R: Runtime,
    A: Numeric + DotOperands<B> + Elem,
    B: Numeric + Elem,
    O: Numeric + Elem,
{
    if let Some(cfg) = opts.config.filter(GemmConfig::is_matvec) {
        return scaled_matvec(rt, a, b, scale_a, scale_b, bias, out, out_row_stride, None, &cfg, opts.accumulate).map(|_| cfg);
    }
    check_operand("A", &a)?;
    check_operand("B", &b)?;
    let (m, n, k) = (a.rows, b.rows, a.cols);
    if b.cols != k {
        return Err(GemmError::KMismatch { m, ka: k, n, kb: b.cols });
    }
    check_operand("out", &Operand { buf: &*out, rows: m, cols: n, row_stride: out_row_stride })?;
    let ((sa, row_scale), (sb, col_scale)) = check_scales(scale_a, scale_b, m, n)?;
    if let Some(bias) = bias {
        check_len("bias", bias.len(), n)?;
    }
    let cfg = opts.config.unwrap_or_else(|| heuristic(m, n, k, opts.sm_count));
    if !(1..=64).contains(&cfg.split_k) {
        return Err(GemmError::SplitK(cfg.split_k));
    }
    check_tiles(&cfg)?;
    let flags = Flags { row_scale, col_scale, bias: bias.is_some(), accumulate: opts.accumulate };
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
    if cfg.fused_combine && (stream.is_some() || parts < 2 || opts.mode != SplitKMode::Deterministic) {
        return Err(GemmError::FusedCombine(format!("{}, {:?}", super::tuning::describe(&cfg), opts.mode)));
    }
    // Stream-K always goes through the workspace (C may be 16-bit); split-K only when deterministic.
    let ws = if stream.is_some() || (parts > 1 && opts.mode == SplitKMode::Deterministic) {
        let need = parts * m * n; // = workspace_len(m, n, k, &cfg), without dividing the problem again
        if need > i32::MAX as usize {
            return Err(GemmError::TooLarge { what: "workspace", elems: need });
        }
        let Some(Workspace { partials, tickets }) = workspace else {
            return Err(GemmError::Workspace { parts: parts as u32, need, have: "none given".into() });
        };
        if partials.len() < need {
            return Err(GemmError::Workspace { parts: parts as u32, need, have: format!("{} given", partials.len()) });
        }
        let tickets = match (cfg.fused_combine, tickets) {
            (false, _) => None,
            (true, Some(t)) if t.len() >= tickets_len(m, n, &cfg) => Some(t),
            (true, t) => {
                let have = t.map_or("none given".to_string(), |t| format!("{} given", t.len()));
                return Err(GemmError::Tickets { need: tickets_len(m, n, &cfg), have });
            }
        };
        Some((partials, tickets))
    } else {
        None
    };
    let args = Args { a: a.buf, b: b.buf, sa, sb, m, n, k, sam: a.row_stride, sbn: b.row_stride, scm: out_row_stride, stream };
    launch_all(rt, &args, cfg, flags, bias, out, ws).map_err(GemmError::Runtime)?;
    Ok(cfg)
}

/// The matrix-vector product of a [`GemmConfig::matvec`] config: `out[0, N] = A[1, K] · B[N, K]ᵀ` with
/// [`fp8_gemm`]'s scales, bias and accumulation, for any pair of operand types, not only the pairs a
/// tensor-core `dot` takes: bf16 activations against e4m3 weights (W8A16) are the decode step's case,
/// with no quantization of the activations. [`fp8_gemm`] comes here for a matvec config. Refuses more
/// than one row of `A`, a split, stream-K and tiles the kernel does not declare.
#[allow(clippy::too_many_arguments)]
pub fn scaled_matvec<R, A, B, O>(
    rt: &R,
    a: Operand<R::Buffer<A>>,
    b: Operand<R::Buffer<B>>,
    scale_a: Scale<R::Buffer<f32>>,
    scale_b: Scale<R::Buffer<f32>>,
    bias: Option<&R::Buffer<f32>>,
    out: &mut R::Buffer<O>,
    out_row_stride: usize,
    norm: Option<RmsNorm<R::Buffer<f32>>>,
    cfg: &GemmConfig,
    accumulate: bool,
) -> Result<(), GemmError<R::Error>>
where
    R: Runtime,
    A: Numeric + Elem,
    B: Numeric + Elem,
    O: Numeric + Elem,
{
    check_operand("out", &Operand { buf: &*out, rows: a.rows, cols: b.rows, row_stride: out_row_stride })?;
    let ((sa, _), (sb, col_scale)) = check_matvec(&a, &b, scale_a, scale_b, norm, cfg)?;
    if let Some(bias) = bias {
        check_len("bias", bias.len(), b.rows)?;
    }
    if norm.is_some() && (bias.is_some() || accumulate) {
        return Err(GemmError::NormedEpilogue);
    }
    check_tiles(cfg)?;
    let flags = Flags { row_scale: false, col_scale, bias: bias.is_some(), accumulate };
    launch_matvec(rt, a.buf, b, sa, sb, bias, norm, out, *cfg, flags).map_err(GemmError::Runtime)
}

/// The checks of a matrix-vector product ([`scaled_matvec`], [`swiglu_matvec`](super::swiglu_matvec)):
/// the operands (one row of `A`), the scales (`scale_b` per tensor or per row of `B`), the norm's
/// weights, and a matvec config with no split. Returns the scale buffers as [`check_scales`] does.
#[allow(clippy::type_complexity)]
pub(crate) fn check_matvec<'s, E: std::error::Error, BA: AnyBuffer, BB: AnyBuffer, BS: AnyBuffer>(
    a: &Operand<BA>,
    b: &Operand<BB>,
    scale_a: Scale<'s, BS>,
    scale_b: Scale<'s, BS>,
    norm: Option<RmsNorm<'_, BS>>,
    cfg: &GemmConfig,
) -> Result<((&'s BS, bool), (&'s BS, bool)), GemmError<E>> {
    check_operand("A", a)?;
    check_operand("B", b)?;
    let (m, n, k) = (a.rows, b.rows, a.cols);
    if b.cols != k {
        return Err(GemmError::KMismatch { m, ka: k, n, kb: b.cols });
    }
    let scales = check_scales(scale_a, scale_b, m, n)?;
    if let Some(norm) = norm {
        check_len("gamma (the RMSNorm's weights)", norm.gamma.len(), k)?;
    }
    if !cfg.is_matvec() {
        return Err(GemmError::NotMatvec(super::tuning::describe(cfg)));
    }
    if m != 1 || cfg.split_k != 1 || cfg.stream_k != 0 || cfg.fused_combine {
        return Err(GemmError::Matvec(super::tuning::describe(cfg), m));
    }
    Ok(scales)
}

/// A split-K GEMM's output left as raw partial products ([`fp8_gemm_partials`]): `splits` planes of
/// `[M, N]` f32, with the scales a combine applies to their sum.
pub struct Partials<'a, B> {
    pub buf: &'a B,
    pub splits: usize,
    /// Per tensor or per row (token).
    pub scale_a: Scale<'a, B>,
    /// Per tensor or per column (output channel).
    pub scale_b: Scale<'a, B>,
}

/// The first half of a deterministic split-K [`fp8_gemm`], for a consumer that combines the partial
/// products itself (`kv_attention::qkv_combine` finishes the QKV projection inside RoPE):
/// `partials[s, m, n]` = the raw f32 product `A · Bᵀ` over `K` chunk `s` of `cfg.split_k` (2 to 64).
/// Returns them with `scale_a` and `scale_b` (checked as [`fp8_gemm`] checks them), which the
/// consumer applies. `cfg` as for [`fp8_gemm`], but a split-K grid; a fused-combine config runs its
/// plain grid.
#[allow(clippy::too_many_arguments)]
pub fn fp8_gemm_partials<'p, R, A, B>(
    rt: &R,
    a: Operand<R::Buffer<A>>,
    b: Operand<R::Buffer<B>>,
    scale_a: Scale<'p, R::Buffer<f32>>,
    scale_b: Scale<'p, R::Buffer<f32>>,
    partials: &'p mut R::Buffer<f32>,
    cfg: &GemmConfig,
) -> Result<Partials<'p, R::Buffer<f32>>, GemmError<R::Error>>
where
    R: Runtime,
    A: Numeric + DotOperands<B> + Elem,
    B: Numeric + Elem,
{
    check_operand("A", &a)?;
    check_operand("B", &b)?;
    let (m, n, k) = (a.rows, b.rows, a.cols);
    if b.cols != k {
        return Err(GemmError::KMismatch { m, ka: k, n, kb: b.cols });
    }
    let ((sa, _), (sb, _)) = check_scales(scale_a, scale_b, m, n)?;
    if cfg.stream_k != 0 || !(2..=64).contains(&cfg.split_k) {
        return Err(GemmError::Partials(super::tuning::describe(cfg)));
    }
    check_tiles(&cfg)?;
    let need = cfg.split_k as usize * m * n;
    if need > i32::MAX as usize {
        return Err(GemmError::TooLarge { what: "partials", elems: need });
    }
    check_len("partials", partials.len(), need)?;
    let (bm, bn, bk) = (cfg.block_m as i32, cfg.block_n as i32, cfg.block_k as i32);
    let grid = Grid::from((m.div_ceil(bm as usize) as u32, n.div_ceil(bn as usize) as u32, cfg.split_k)).with(cfg.options);
    let main = ScaledMmInstance { block_m: bm, block_n: bn, block_k: bk, row_scale: false, col_scale: false, bias: false, epilogue: false, atomic: false };
    let (ni, ki, sam, sbn) = (n as i32, k as i32, a.row_stride as i32, b.row_stride as i32);
    // Without an epilogue the scale and bias parameters are not read.
    main.launch::<A, B, f32, R>(rt, grid, a.buf, b.buf, &mut *partials, sa, sb, sa, m as i32, ni, ki, sam, sbn, ni).map_err(GemmError::Runtime)?;
    Ok(Partials { buf: partials, splits: cfg.split_k as usize, scale_a, scale_b })
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

/// The epilogue's choices of one [`fp8_gemm`].
#[derive(Clone, Copy)]
struct Flags {
    row_scale: bool,
    col_scale: bool,
    bias: bool,
    accumulate: bool,
}

/// The one launch of a matrix-vector product (`M = 1`): one warp per `cfg.block_n` rows of `B`.
#[allow(clippy::too_many_arguments)]
fn launch_matvec<R, A, B, O>(
    rt: &R,
    a: &R::Buffer<A>,
    b: Operand<R::Buffer<B>>,
    sa: &R::Buffer<f32>,
    sb: &R::Buffer<f32>,
    bias: Option<&R::Buffer<f32>>,
    norm: Option<RmsNorm<R::Buffer<f32>>>,
    out: &mut R::Buffer<O>,
    cfg: GemmConfig,
    Flags { col_scale, bias: with_bias, accumulate, .. }: Flags,
) -> Result<(), R::Error>
where
    R: Runtime,
    A: Numeric + Elem,
    B: Numeric + Elem,
    O: Numeric + Elem,
{
    let (n, k) = (b.rows, b.cols);
    let grid = matvec_grid(n.div_ceil(cfg.block_n as usize), &cfg);
    let mv = ScaledMvInstance { block_n: cfg.block_n as i32, block_k: cfg.block_k as i32, norm: norm.is_some(), col_scale, bias: with_bias, accumulate };
    // At one row a per-row scale is one value, read as per tensor; without a bias or a norm, `sa`
    // stands in for the pointer the kernel does not read.
    let (gamma, eps) = norm.map_or((sa, 0.0), |n| (n.gamma, n.eps));
    mv.launch::<A, B, O, R>(rt, grid, a, b.buf, out, sa, sb, bias.unwrap_or(sa), gamma, eps, n as i32, k as i32, b.row_stride as i32)
}

/// The launches of one GEMM: its main kernel, then the ordered combine where there is one (or, for
/// atomic split-K, the zero fill of `C` before it, unless the GEMM accumulates into `C`).
#[allow(clippy::type_complexity)]
fn launch_all<R, A, B, O>(
    rt: &R,
    x: &Args<R::Buffer<A>, R::Buffer<B>, R::Buffer<f32>>,
    cfg: GemmConfig,
    Flags { row_scale, col_scale, bias: with_bias, accumulate }: Flags,
    bias: Option<&R::Buffer<f32>>,
    out: &mut R::Buffer<O>,
    ws: Option<(&mut R::Buffer<f32>, Option<&mut R::Buffer<i32>>)>,
) -> Result<(), R::Error>
where
    R: Runtime,
    A: Numeric + DotOperands<B> + Elem,
    B: Numeric + Elem,
    O: Numeric + Elem,
{
    let (bm, bn, bk) = (cfg.block_m as i32, cfg.block_n as i32, cfg.block_k as i32);
    let grid = Grid::from((x.m.div_ceil(bm as usize) as u32, x.n.div_ceil(bn as usize) as u32, cfg.split_k)).with(cfg.options);
    let (m, n, k, sam, sbn, scm) = (x.m as i32, x.n as i32, x.k as i32, x.sam as i32, x.sbn as i32, x.scm as i32);
    // The combines take the runtime's warps and stages (they have no `dot`), and the GEMM's choice of
    // programmatic launch, so that a config turns it on or off for the whole GEMM.
    let combine = LaunchOptions { programmatic: cfg.options.programmatic, ..LaunchOptions::default() };
    // Without a bias, scale_a stands in for the (unread) bias parameter.
    let dummy = bias.unwrap_or(x.sa);
    if let Some(s) = x.stream {
        // Stream-K: raw partials into the tiles' slots, then the ordered combine with the epilogue.
        let ws = ws.expect("fp8_gemm checked the workspace").0;
        let programs = Grid::from(s.programs as u32).with(cfg.options);
        let main = ScaledMmStreamkInstance { block_m: bm, block_n: bn, block_k: bk };
        main.launch::<A, B, R>(rt, programs, x.a, x.b, &mut *ws, m, n, k, sam, sbn, s.segments as i32)?;
        // 16 x 32 blocks divide every declared tile (a unit test checks it).
        let reduce = StreamkReduceInstance { block_m: 16, block_n: 32, row_scale, col_scale, bias: with_bias, accumulate };
        let g2 = Grid::from((x.m.div_ceil(16) as u32, x.n.div_ceil(32) as u32)).with(combine);
        let (iters, p) = (s.iters as i32, s.programs as i32);
        return reduce.launch::<O, R>(rt, g2, &*ws, out, x.sa, x.sb, dummy, m, n, scm, bm, bn, iters, p);
    }
    let main = |epilogue: bool, atomic: bool| {
        let (row_scale, col_scale, bias) = if epilogue { (row_scale, col_scale, with_bias) } else { (false, false, false) };
        ScaledMmInstance { block_m: bm, block_n: bn, block_k: bk, row_scale, col_scale, bias, epilogue, atomic }
    };
    if let Some((ws, Some(tickets))) = ws {
        // Deterministic split-K whose last program per tile combines.
        let fused = ScaledMmFusedCombineInstance { block_m: bm, block_n: bn, block_k: bk, row_scale, col_scale, bias: with_bias, accumulate };
        return fused.launch::<A, B, O, R>(rt, grid, x.a, x.b, out, ws, tickets, x.sa, x.sb, dummy, m, n, k, sam, sbn, scm);
    }
    if let Some((ws, None)) = ws {
        // Deterministic split-K: raw partials, then the ordered combine with the epilogue.
        main(false, false).launch::<A, B, f32, R>(rt, grid, x.a, x.b, ws, x.sa, x.sb, x.sa, m, n, k, sam, sbn, n)?;
        let reduce = SplitkReduceInstance { block_m: 32, block_n: 64, row_scale, col_scale, bias: with_bias, accumulate };
        let g2 = Grid::from((x.m.div_ceil(32) as u32, x.n.div_ceil(64) as u32)).with(combine);
        return reduce.launch::<O, R>(rt, g2, &*ws, out, x.sa, x.sb, dummy, m, n, cfg.split_k as i32, scm);
    }
    // No workspace: one split stores C, several add into it atomically (C zeroed first); accumulating,
    // every split adds into C as it is.
    let atomic = cfg.split_k > 1 || accumulate;
    if atomic && !accumulate {
        let g0 = Grid::from((x.m.div_ceil(32) as u32, x.n.div_ceil(64) as u32)).with(combine);
        ZeroFillInstance { block_m: 32, block_n: 64 }.launch::<O, R>(rt, g0, &mut *out, m, n, scm)?;
    }
    main(true, atomic).launch::<A, B, O, R>(rt, grid, x.a, x.b, out, x.sa, x.sb, dummy, m, n, k, sam, sbn, scm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `streamk_reduce` runs 16 x 32 blocks, each inside one GEMM tile.
    #[test]
    fn reduce_blocks_divide_every_tile() {
        assert!(!stream_k_tiles().is_empty());
        assert!(stream_k_tiles().iter().all(|&(m, n, _)| m % 16 == 0 && n % 32 == 0));
    }

    /// Every tile stream-K declares is a split-K tile too (the tuner and the heuristic may switch a
    /// tile's schedule), and a tile outside the declared set is refused with the declared list.
    #[test]
    fn stream_k_tiles_are_split_k_tiles() {
        let split = split_k_tiles();
        assert!(stream_k_tiles().iter().all(|t| split.contains(t)), "{:?} vs {split:?}", stream_k_tiles());
        let bad = ScaledMmInstance { block_m: 8, block_n: 32, block_k: 256, row_scale: false, col_scale: false, bias: false, epilogue: true, atomic: false };
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("no declared instance BLOCK_M=8,BLOCK_N=32,BLOCK_K=256") && e.contains("BLOCK_M=16,BLOCK_N=32,BLOCK_K=256"), "{e}");
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
