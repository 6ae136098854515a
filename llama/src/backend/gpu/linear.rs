//! Which kernel a linear layer of a step launches, and the buffers every GEMM shares ([`Gemm`]): the
//! split-K GEMM (with its input quantized to e4m3 for FP8 weights, or its partial products left to the
//! next kernel), or at one row the matrix-vector product, alone or with the step's next operation in
//! its epilogue (the SwiGLU; RoPE and the cache append) and the norm before it in its loop.

use super::configs::GemmConfigs;
use super::weights::{dev, zeros, Matrix, Weight};
use crate::error::{LlamaError, Result};
use dsl_core::lang::Numeric;
use dsl_core::prelude::{bf16, e4m3};
use dsl_core::runtime::{AnyBuffer, Launch, Runtime};
use dsl_core::types::Elem;
use kernels::fp8_gemm::{fp8_gemm, fp8_gemm_partials, quantize_rows, residual_norm_matvec, scaled_matvec, swiglu_matvec, NextNorm, tickets_len, workspace_len, GemmConfig, GemmOptions, Operand, RmsNorm, Scale, Workspace};
use kernels::kv_attention::cache::RopeTables;
use kernels::kv_attention::qkv_matvec::qkv_rope_matvec;
use kernels::kv_attention::CacheShape;
use std::sync::Arc;

/// Elements per step of the kernels where one program walks a whole row (norms, quantization): the
/// row in one or a few steps, because each step waits on its loads. At 256, RMSNorm of a 4096-wide
/// row took 14 µs on the H200 (32 dependent loads); see bench/llama_gpu/NOTES.md.
pub(super) fn row_block(cols: usize) -> (i32, u32) {
    match cols {
        0..=256 => (256, 4),
        257..=1024 => (1024, 4),
        _ => (4096, 8),
    }
}

/// Runs `$e` with `$b` the const [`row_block`] picks for `$cols`, `$l` the launch of `$grid` programs.
macro_rules! by_row_block {
    ($cols:expr, $grid:expr, $b:ident, $l:ident => $e:expr) => {{
        let (block, warps) = row_block($cols);
        let $l = Launch::from($grid).num_warps(warps);
        match block {
            256 => {
                const $b: i32 = 256;
                $e
            }
            1024 => {
                const $b: i32 = 1024;
                $e
            }
            _ => {
                const $b: i32 = 4096;
                $e
            }
        }
    }};
}
pub(super) use by_row_block;

/// What every GEMM of a step shares: the split-K workspace and ticket counters (grown on demand), the
/// unit scale, the FP8 activations and their per-token scales, the configurations.
pub struct Gemm<R: Runtime> {
    pub(super) ws: R::Buffer<f32>,
    /// Zero between GEMMs (each fused split-K combine leaves them so).
    pub(super) tickets: R::Buffer<i32>,
    pub(super) one: R::Buffer<f32>,
    /// `[rows, max K]` e4m3 activations and `[rows]` scales (FP8 weights only).
    pub(super) aq: R::Buffer<e4m3>,
    pub(super) a_scale: R::Buffer<f32>,
    pub(super) configs: Arc<GemmConfigs>,
    /// Bumped when the workspace moves (a recorded graph holds its address).
    pub moved: u64,
}

impl<R: Runtime> Gemm<R> {
    /// For steps of up to `rows` tokens and GEMMs of up to `max_k` columns.
    pub(super) fn new(rt: &R, rows: usize, max_k: usize, configs: Arc<GemmConfigs>) -> Result<Gemm<R>> {
        let what = "allocating the GEMM buffers";
        Ok(Gemm {
            ws: zeros(rt, 1, what)?,
            tickets: zeros(rt, 1, what)?,
            one: rt.upload(&[1.0f32]).map_err(dev(what))?,
            aq: zeros(rt, rows * max_k, what)?,
            a_scale: zeros(rt, rows, what)?,
            configs,
            moved: 0,
        })
    }
}

/// A linear layer's input rows: bf16, or already quantized per token into [`Gemm::aq`] and
/// [`Gemm::a_scale`] by a fused kernel (FP8 weights only), or the residual row and the norm to apply.
pub(super) enum Input<'a, R: Runtime> {
    Bf16(&'a R::Buffer<bf16>),
    Quantized,
    /// One f32 row of the residual stream, normed by the matrix-vector product itself
    /// ([`RmsNorm`]): decode at batch 1 with no norm kernel ahead.
    Normed(&'a R::Buffer<f32>, RmsNorm<'a, R::Buffer<f32>>),
    /// A bf16 row `x ⊙ gamma` and one f32 factor `1 / rms(x)` that the GEMM applies as its activation
    /// scale: the norm's inputs written by the residual add before it ([`residual_norm_linear`]).
    Prescaled(&'a R::Buffer<bf16>, &'a R::Buffer<f32>),
}

impl<'a, R: Runtime> Input<'a, R> {
    /// The rows already quantized into [`Gemm::aq`] (`quantized`), else the bf16 `rows`.
    pub(super) fn of(quantized: bool, rows: &'a R::Buffer<bf16>) -> Input<'a, R> {
        if quantized {
            Input::Quantized
        } else {
            Input::Bf16(rows)
        }
    }
}

/// How a linear layer's result lands in its output.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Out {
    /// `out = a · wᵀ`.
    Store,
    /// `out += a · wᵀ` (the residual add, fused into the GEMM's combine).
    Add,
    /// As `Store`, but where the config splits `K` the raw partial products stay in the workspace for
    /// the next kernel to combine ([`fp8_gemm_partials`]; the QKV projection, combined inside RoPE).
    Partials,
}

/// `out[m, w.rows] = a[m, w.cols] · wᵀ` (or `+=`) in f32, rounded to `O`: bf16 operands, or, for FP8
/// weights, `a` quantized per token to e4m3 (here, unless the input comes quantized) and both scales
/// applied in the GEMM's epilogue; or, for FP8 weights where [`GemmConfigs::reads_bf16`] says so (a
/// decode step's matrix-vector products), bf16 `a` against the e4m3 weight and its scales (W8A16).
///
/// Returns the split count when, with [`Out::Partials`], the partial products were left in
/// [`Gemm::ws`] instead of combined into `out`.
pub(super) fn linear<R: Runtime, O: Numeric + Elem>(rt: &R, g: &mut Gemm<R>, a: Input<'_, R>, m: usize, w: &Matrix<R>, out: &mut R::Buffer<O>, into: Out) -> Result<Option<usize>> {
    let (n, k) = (w.rows, w.cols);
    let mut cfg = g.configs.choose(m, n, k, matches!(w.w, Weight::Fp8 { .. })).config;
    let partials = into == Out::Partials && cfg.stream_k == 0 && cfg.split_k > 1;
    if partials {
        // The GEMM's own grid, its combine done by the consumer.
        cfg.fused_combine = false;
    }
    let need = workspace_len(m, n, k, &cfg);
    if g.ws.len() < need {
        g.ws = zeros(rt, need, "allocating the GEMM workspace")?;
        g.moved += 1;
    }
    if g.tickets.len() < tickets_len(m, n, &cfg) {
        g.tickets = zeros(rt, tickets_len(m, n, &cfg), "allocating the GEMM's ticket counters")?;
        g.moved += 1;
    }
    let opts = GemmOptions { config: Some(cfg), sm_count: g.configs.sm_count(), accumulate: into == Out::Add, ..GemmOptions::default() };
    let gemm = |e| LlamaError::Backend(format!("GEMM {m}x{n}x{k}: {e}"));
    // A prescaled row is read as bf16, its factor in place of the unit activation scale.
    let (a, prescale) = match a {
        Input::Prescaled(rows, factor) => (Input::Bf16(rows), Some(factor)),
        a => (a, None),
    };
    let one = prescale.unwrap_or(&g.one);
    if partials && prescale.is_some() {
        // The consumer of the partials applies the unit activation scale.
        return Err(LlamaError::Backend("internal: a prescaled row for a GEMM that leaves its partial products".into()));
    }
    match (&w.w, a) {
        (Weight::Bf16(b), Input::Bf16(a)) => {
            let a = Operand { buf: a, rows: m, cols: k, row_stride: k };
            let b = Operand { buf: b, rows: n, cols: k, row_stride: k };
            // A bf16 weight's scales are both the unit; the activations' takes a prescaled row's factor.
            let (sa, sb) = (Scale::PerTensor(one), Scale::PerTensor(&g.one));
            if partials {
                fp8_gemm_partials(rt, a, b, sa, sb, &mut g.ws, &cfg).map_err(gemm)?;
                return Ok(Some(cfg.split_k as usize));
            }
            fp8_gemm(rt, a, b, sa, sb, None, out, n, Some(Workspace { partials: &mut g.ws, tickets: Some(&mut g.tickets) }), &opts).map_err(gemm)?;
        }
        (_, Input::Prescaled(..)) => unreachable!("read as bf16 above"),
        (Weight::Bf16(_), Input::Quantized) => {
            return Err(LlamaError::Backend("internal: fp8 activations for a bf16 weight".into()));
        }
        (_, Input::Normed(x, norm)) => {
            let a = Operand { buf: x, rows: m, cols: k, row_stride: k };
            let (_, sb) = scales(&w.w, &g.one, &g.a_scale);
            match &w.w {
                Weight::Bf16(b) => scaled_matvec(rt, a, Operand { buf: b, rows: n, cols: k, row_stride: k }, Scale::PerTensor(&g.one), sb, None, out, n, Some(norm), &cfg, into == Out::Add),
                Weight::Fp8 { q, .. } => scaled_matvec(rt, a, Operand { buf: q, rows: n, cols: k, row_stride: k }, Scale::PerTensor(&g.one), sb, None, out, n, Some(norm), &cfg, into == Out::Add),
            }
            .map_err(gemm)?;
        }
        (Weight::Fp8 { q, .. }, Input::Bf16(a)) if g.configs.reads_bf16(m, true) => {
            // W8A16: the matrix-vector product reads the bf16 rows as they are; no activation scale.
            let a = Operand { buf: a, rows: m, cols: k, row_stride: k };
            let b = Operand { buf: q, rows: n, cols: k, row_stride: k };
            let (_, sb) = scales(&w.w, &g.one, &g.a_scale);
            scaled_matvec(rt, a, b, Scale::PerTensor(one), sb, None, out, n, None, &cfg, into == Out::Add).map_err(gemm)?;
        }
        (Weight::Fp8 { .. }, _) if prescale.is_some() => {
            return Err(LlamaError::Backend("internal: a prescaled row for a GEMM that quantizes its input".into()));
        }
        (Weight::Fp8 { q, .. }, a) => {
            if let Input::Bf16(a) = a {
                let kk = k as i32;
                by_row_block!(k, m as u32, B, lc => quantize_rows::<bf16, e4m3, B>::launch(rt, lc, a, &mut g.aq, &mut g.a_scale, kk, kk, kk))
                    .map_err(dev("quantizing activations"))?;
            }
            let a = Operand { buf: &g.aq, rows: m, cols: k, row_stride: k };
            let b = Operand { buf: q, rows: n, cols: k, row_stride: k };
            let (sa, sb) = scales(&w.w, &g.one, &g.a_scale);
            if partials {
                fp8_gemm_partials(rt, a, b, sa, sb, &mut g.ws, &cfg).map_err(gemm)?;
                return Ok(Some(cfg.split_k as usize));
            }
            fp8_gemm(rt, a, b, sa, sb, None, out, n, Some(Workspace { partials: &mut g.ws, tickets: Some(&mut g.tickets) }), &opts).map_err(gemm)?;
        }
    }
    Ok(None)
}

/// `x[0, :] += a · wᵀ` for one bf16 row `a` (the O or down projection's residual add, as [`linear`]
/// with [`Out::Add`] at one row), writing also the next RMSNorm's inputs into `next` (`x ⊙ gamma` and
/// `1 / rms(x)`), for the product after the norm to read as [`Input::Prescaled`]
/// ([`residual_norm_matvec`]). FP8 weights read `a` as bf16.
pub(super) fn residual_norm_linear<R: Runtime>(rt: &R, g: &Gemm<R>, a: &R::Buffer<bf16>, w: &Matrix<R>, x: &mut R::Buffer<f32>, next: NextNorm<'_, R, bf16>) -> Result<()> {
    let (n, k) = (w.rows, w.cols);
    let cfg = g.configs.choose(1, n, k, w.is_fp8()).config;
    let (_, sb) = scales(&w.w, &g.one, &g.a_scale);
    let one = Scale::PerTensor(&g.one);
    match &w.w {
        Weight::Bf16(b) => residual_norm_matvec(rt, mat(a, 1, k), mat(b, n, k), one, sb, x, next, &cfg),
        Weight::Fp8 { q, .. } => residual_norm_matvec(rt, mat(a, 1, k), mat(q, n, k), one, sb, x, next, &cfg),
    }
    .map_err(|e| LlamaError::Backend(format!("GEMM with the residual add and the next norm 1x{n}x{k}: {e}")))
}

/// `out[0, j] = silu(g_j) * u_j` of one bf16 row `a` against the fused gate-and-up weight `w` (`[2f, K]`),
/// the SwiGLU in the matrix-vector product's epilogue ([`swiglu_matvec`]); FP8 weights read `a` as bf16.
pub(super) fn swiglu_linear<R: Runtime>(rt: &R, g: &Gemm<R>, a: Input<'_, R>, w: &Matrix<R>, out: &mut R::Buffer<bf16>) -> Result<()> {
    let (n, k) = (w.rows, w.cols);
    let cfg = g.configs.choose(1, n, k, w.is_fp8()).config;
    let gemm = |e| LlamaError::Backend(format!("gate-and-up GEMM with SwiGLU 1x{n}x{k}: {e}"));
    let (_, sb) = scales(&w.w, &g.one, &g.a_scale);
    let one = Scale::PerTensor(&g.one);
    match (a, &w.w) {
        (Input::Bf16(a), Weight::Bf16(b)) => swiglu_matvec(rt, mat(a, 1, k), mat(b, n, k), one, sb, None, out, &cfg),
        (Input::Bf16(a), Weight::Fp8 { q, .. }) => swiglu_matvec(rt, mat(a, 1, k), mat(q, n, k), one, sb, None, out, &cfg),
        (Input::Prescaled(a, f), Weight::Bf16(b)) => swiglu_matvec(rt, mat(a, 1, k), mat(b, n, k), Scale::PerTensor(f), sb, None, out, &cfg),
        (Input::Prescaled(a, f), Weight::Fp8 { q, .. }) => swiglu_matvec(rt, mat(a, 1, k), mat(q, n, k), Scale::PerTensor(f), sb, None, out, &cfg),
        (Input::Normed(x, norm), Weight::Bf16(b)) => swiglu_matvec(rt, mat(x, 1, k), mat(b, n, k), one, sb, Some(norm), out, &cfg),
        (Input::Normed(x, norm), Weight::Fp8 { q, .. }) => swiglu_matvec(rt, mat(x, 1, k), mat(q, n, k), one, sb, Some(norm), out, &cfg),
        (Input::Quantized, _) => return Err(LlamaError::Backend("internal: e4m3 activations for the SwiGLU's matrix-vector product".into())),
    }
    .map_err(gemm)
}

/// One decode token's QKV projection with RoPE and the cache append in the matrix-vector product's
/// epilogue ([`qkv_rope_matvec`]): the query heads rotated into `q`, keys (rotated) and values into
/// the caches at the position `pos[0]`. FP8 weights read `a` as bf16.
#[allow(clippy::too_many_arguments)]
pub(super) fn qkv_rope_linear<R: Runtime>(
    rt: &R,
    g: &Gemm<R>,
    shape: &CacheShape,
    a: Input<'_, R>,
    w: &Matrix<R>,
    rope: RopeTables<'_, R::Buffer<f32>>,
    pos: &R::Buffer<i32>,
    q: &mut R::Buffer<bf16>,
    (k_cache, v_cache): (&mut R::Buffer<bf16>, &mut R::Buffer<bf16>),
) -> Result<()> {
    let (n, k) = (w.rows, w.cols);
    let cfg = g.configs.choose(1, n, k, w.is_fp8()).config;
    let (_, sb) = scales(&w.w, &g.one, &g.a_scale);
    let one = Scale::PerTensor(&g.one);
    let caches = (k_cache, v_cache);
    match a {
        Input::Bf16(a) => launch_qkv_rope(rt, shape, mat(a, 1, k), w, one, sb, None, rope, pos, q, caches, &cfg),
        Input::Prescaled(a, f) => launch_qkv_rope(rt, shape, mat(a, 1, k), w, Scale::PerTensor(f), sb, None, rope, pos, q, caches, &cfg),
        Input::Normed(x, norm) => launch_qkv_rope(rt, shape, mat(x, 1, k), w, one, sb, Some(norm), rope, pos, q, caches, &cfg),
        Input::Quantized => Err(LlamaError::Backend("internal: e4m3 activations for the QKV matrix-vector product with RoPE".into())),
    }
}

/// [`qkv_rope_matvec`] over `w`'s bf16 or e4m3 rows.
#[allow(clippy::too_many_arguments)]
fn launch_qkv_rope<R: Runtime, A: Numeric + Elem>(
    rt: &R,
    shape: &CacheShape,
    a: Operand<'_, R::Buffer<A>>,
    w: &Matrix<R>,
    one: Scale<'_, R::Buffer<f32>>,
    sb: Scale<'_, R::Buffer<f32>>,
    norm: Option<RmsNorm<'_, R::Buffer<f32>>>,
    rope: RopeTables<'_, R::Buffer<f32>>,
    pos: &R::Buffer<i32>,
    q: &mut R::Buffer<bf16>,
    (kc, vc): (&mut R::Buffer<bf16>, &mut R::Buffer<bf16>),
    cfg: &GemmConfig,
) -> Result<()> {
    let (n, k) = (w.rows, w.cols);
    match &w.w {
        Weight::Bf16(b) => qkv_rope_matvec(rt, shape, a, mat(b, n, k), one, sb, norm, rope, pos, q, kc, vc, cfg),
        Weight::Fp8 { q: b, .. } => qkv_rope_matvec(rt, shape, a, mat(b, n, k), one, sb, norm, rope, pos, q, kc, vc, cfg),
    }
    .map_err(|e| LlamaError::Backend(format!("QKV GEMM with RoPE 1x{n}x{k}: {e}")))
}

/// `rows` packed rows of `k` elements of `buf`, as an operand.
fn mat<B>(buf: &B, rows: usize, k: usize) -> Operand<'_, B> {
    Operand { buf, rows, cols: k, row_stride: k }
}

/// The scales a GEMM with weight `w` applies: for FP8, the activations' per-token `a_scale` and the
/// weight's per-channel scales; for bf16, `one` (a single 1.0) for both.
pub(super) fn scales<'a, R: Runtime>(w: &'a Weight<R>, one: &'a R::Buffer<f32>, a_scale: &'a R::Buffer<f32>) -> (Scale<'a, R::Buffer<f32>>, Scale<'a, R::Buffer<f32>>) {
    match w {
        Weight::Fp8 { scale, .. } => (Scale::PerRow(a_scale), Scale::PerColumn(scale)),
        Weight::Bf16(_) => (Scale::PerTensor(one), Scale::PerTensor(one)),
    }
}
