//! One forward step as launches: the buffers a step works in ([`Activations`]) and the sequence of
//! kernels over them ([`launch_step`]). Every buffer is allocated once and overwritten in place, and
//! every per-step value the kernels need (token ids, the first position, the context length) is read from a
//! device buffer, so the launches of a decode step are the same at every position: what lets one
//! recorded graph serve every token.

use super::configs::GemmConfigs;
use crate::backend::forward::{forward, Linear, Norm, Ops};
use super::weights::{dev, Matrix, Weight, WeightsOnDevice};
use crate::config::LlamaConfig;
use crate::error::{LlamaError, Result};
use dsl_core::lang::Numeric;
use dsl_core::prelude::{bf16, e4m3};
use dsl_core::runtime::{AnyBuffer, Launch, Runtime};
use dsl_core::types::Elem;
use kernels::fp8_gemm::{fp8_gemm, fp8_gemm_partials, quantize_rows, scaled_matvec, swiglu_matvec, tickets_len, RmsNorm, workspace_len, GemmOptions, Operand, Partials, Scale, Workspace};
use kernels::greedy::{argmax_rows, partials_len};
use kernels::kv_attention::cache::{rope_append_rows, RopeTables, RowsAt};
use kernels::kv_attention::decode::{decode_step, workspace_lens, DecodeBuffers, DecodeConfig};
use kernels::kv_attention::prefill::{prefill_step, Chunk, PrefillBuffers, PrefillConfig, QueriesAt};
use kernels::kv_attention::qkv_combine::combine_rope_append_rows;
use kernels::kv_attention::{AttnError, CacheShape};
use kernels::llama_ops::{embed_rows, quantize_blocks, rmsnorm_quant, rmsnorm_to, silu_mul_block_max, silu_mul_halves};
use std::sync::Arc;

/// Elements per program of the elementwise kernels (embedding, SwiGLU).
const BLOCK: usize = 256;

/// Elements per program of the SwiGLU and quantization before an fp8 down projection, and how many of
/// the row's block maxima each quantizing program reads at a time.

const QUANT_BLOCK: usize = 1024;
const QUANT_PARTS: i32 = 16;

/// Elements per step of the kernels where one program walks a whole row (norms, quantization): the
/// row in one or a few steps, because each step waits on its loads. At 256, RMSNorm of a 4096-wide
/// row took 14 µs on the H200 (32 dependent loads); see bench/llama_gpu/NOTES.md.
fn row_block(cols: usize) -> (i32, u32) {
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

pub(super) fn zeros<R: Runtime, T: Elem + Default + Copy>(rt: &R, n: usize, what: &str) -> Result<R::Buffer<T>> {
    rt.upload(&vec![T::default(); n.max(1)]).map_err(dev(what))
}

/// The model on the device: weights, the KV cache and the decode kernel's partials.
pub struct Model<R: Runtime> {
    pub config: LlamaConfig,
    pub w: WeightsOnDevice<R>,
    /// Per layer, `[1, kv_heads, capacity, head_dim]` bf16.
    pub k_cache: Vec<R::Buffer<bf16>>,
    pub v_cache: Vec<R::Buffer<bf16>>,
    pub shape: CacheShape,
    pub decode: DecodeConfig,
    pub part: (R::Buffer<f32>, R::Buffer<f32>, R::Buffer<f32>),
    /// The device runs tiles of 16 rows per warp on `wgmma`: the prefill attention's tiles follow
    /// ([`PrefillConfig::for_chunk`]).
    pub warpgroups: bool,
}

impl<R: Runtime> Model<R> {
    pub fn new(rt: &R, config: LlamaConfig, w: WeightsOnDevice<R>, shape: CacheShape, sm_count: u32, warpgroups: bool) -> Result<Model<R>> {
        let mut k_cache = vec![];
        let mut v_cache = vec![];
        for _ in 0..config.n_layers {
            k_cache.push(zeros(rt, shape.cache_len(), "allocating the KV cache")?);
            v_cache.push(zeros(rt, shape.cache_len(), "allocating the KV cache")?);
        }
        let decode = DecodeConfig::for_shape(&shape, sm_count);
        let (po, pm) = workspace_lens(&shape, decode.splits);
        let part = (zeros(rt, po, "allocating")?, zeros(rt, pm, "allocating")?, zeros(rt, pm, "allocating")?);
        Ok(Model { config, w, k_cache, v_cache, shape, decode, part, warpgroups })
    }
}

/// What every GEMM of a step shares: the split-K workspace and ticket counters (grown on demand), the
/// unit scale, the FP8 activations and their per-token scales, the configurations.
pub struct Gemm<R: Runtime> {
    ws: R::Buffer<f32>,
    /// Zero between GEMMs (each fused split-K combine leaves them so).
    tickets: R::Buffer<i32>,
    one: R::Buffer<f32>,
    /// `[rows, max K]` e4m3 activations and `[rows]` scales (FP8 weights only).
    aq: R::Buffer<e4m3>,
    a_scale: R::Buffer<f32>,
    configs: Arc<GemmConfigs>,
    /// Bumped when the workspace moves (a recorded graph holds its address).
    pub moved: u64,
}

/// A linear layer's input rows: bf16, or already quantized per token into [`Gemm::aq`] and
/// [`Gemm::a_scale`] by a fused kernel (FP8 weights only), or the residual row and the norm to apply.
enum Input<'a, R: Runtime> {
    Bf16(&'a R::Buffer<bf16>),
    Quantized,
    /// One f32 row of the residual stream, normed by the matrix-vector product itself
    /// ([`RmsNorm`]): decode at batch 1 with no norm kernel ahead.
    Normed(&'a R::Buffer<f32>, RmsNorm<'a, R::Buffer<f32>>),
}

impl<'a, R: Runtime> Input<'a, R> {
    /// The rows already quantized into [`Gemm::aq`] (`quantized`), else the bf16 `rows`.
    fn of(quantized: bool, rows: &'a R::Buffer<bf16>) -> Input<'a, R> {
        if quantized {
            Input::Quantized
        } else {
            Input::Bf16(rows)
        }
    }
}

/// How a linear layer's result lands in its output.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
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
fn linear<R: Runtime, O: Numeric + Elem>(rt: &R, g: &mut Gemm<R>, a: Input<'_, R>, m: usize, w: &Matrix<R>, out: &mut R::Buffer<O>, into: Out) -> Result<Option<usize>> {
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
    match (&w.w, a) {
        (Weight::Bf16(b), Input::Bf16(a)) => {
            let a = Operand { buf: a, rows: m, cols: k, row_stride: k };
            let b = Operand { buf: b, rows: n, cols: k, row_stride: k };
            let (sa, sb) = scales(&w.w, &g.one, &g.a_scale);
            if partials {
                fp8_gemm_partials(rt, a, b, sa, sb, &mut g.ws, &cfg).map_err(gemm)?;
                return Ok(Some(cfg.split_k as usize));
            }
            fp8_gemm(rt, a, b, sa, sb, None, out, n, Some(Workspace { partials: &mut g.ws, tickets: Some(&mut g.tickets) }), &opts).map_err(gemm)?;
        }
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
            scaled_matvec(rt, a, b, Scale::PerTensor(&g.one), sb, None, out, n, None, &cfg, into == Out::Add).map_err(gemm)?;
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

/// `out[0, j] = silu(g_j) * u_j` of one bf16 row `a` against the fused gate-and-up weight `w` (`[2f, K]`),
/// the SwiGLU in the matrix-vector product's epilogue ([`swiglu_matvec`]); FP8 weights read `a` as bf16.
fn swiglu_linear<R: Runtime>(rt: &R, g: &Gemm<R>, a: Input<'_, R>, w: &Matrix<R>, out: &mut R::Buffer<bf16>) -> Result<()> {
    let (n, k) = (w.rows, w.cols);
    let cfg = g.configs.choose(1, n, k, w.is_fp8()).config;
    let gemm = |e| LlamaError::Backend(format!("gate-and-up GEMM with SwiGLU 1x{n}x{k}: {e}"));
    let (_, sb) = scales(&w.w, &g.one, &g.a_scale);
    let one = Scale::PerTensor(&g.one);
    match (a, &w.w) {
        (Input::Bf16(a), Weight::Bf16(b)) => swiglu_matvec(rt, mat(a, 1, k), mat(b, n, k), one, sb, None, out, &cfg),
        (Input::Bf16(a), Weight::Fp8 { q, .. }) => swiglu_matvec(rt, mat(a, 1, k), mat(q, n, k), one, sb, None, out, &cfg),
        (Input::Normed(x, norm), Weight::Bf16(b)) => swiglu_matvec(rt, mat(x, 1, k), mat(b, n, k), one, sb, Some(norm), out, &cfg),
        (Input::Normed(x, norm), Weight::Fp8 { q, .. }) => swiglu_matvec(rt, mat(x, 1, k), mat(q, n, k), one, sb, Some(norm), out, &cfg),
        (Input::Quantized, _) => return Err(LlamaError::Backend("internal: e4m3 activations for the SwiGLU's matrix-vector product".into())),
    }
    .map_err(gemm)
}

/// `rows` packed rows of `k` elements of `buf`, as an operand.
fn mat<B>(buf: &B, rows: usize, k: usize) -> Operand<'_, B> {
    Operand { buf, rows, cols: k, row_stride: k }
}

/// The scales a GEMM with weight `w` applies: for FP8, the activations' per-token `a_scale` and the
/// weight's per-channel scales; for bf16, `one` (a single 1.0) for both.
fn scales<'a, R: Runtime>(w: &'a Weight<R>, one: &'a R::Buffer<f32>, a_scale: &'a R::Buffer<f32>) -> (Scale<'a, R::Buffer<f32>>, Scale<'a, R::Buffer<f32>>) {
    match w {
        Weight::Fp8 { scale, .. } => (Scale::PerRow(a_scale), Scale::PerColumn(scale)),
        Weight::Bf16(_) => (Scale::PerTensor(one), Scale::PerTensor(one)),
    }
}

/// The output rows of a step: the last norm, the logits and the greedy choice of each row.
pub struct Head<R: Runtime> {
    pub rows: usize,
    hn: R::Buffer<bf16>,
    pub logits: R::Buffer<f32>,
    part_v: R::Buffer<f32>,
    part_i: R::Buffer<i32>,
    pub tokens: R::Buffer<i32>,
}

impl<R: Runtime> Head<R> {
    pub fn new(rt: &R, c: &LlamaConfig, rows: usize) -> Result<Head<R>> {
        let what = "allocating the logits";
        Ok(Head {
            rows,
            hn: zeros(rt, rows * c.d_model, what)?,
            logits: zeros(rt, rows * c.vocab_size, what)?,
            part_v: zeros(rt, partials_len(rows, c.vocab_size), what)?,
            part_i: zeros(rt, partials_len(rows, c.vocab_size), what)?,
            tokens: zeros(rt, rows, what)?,
        })
    }
}

/// The buffers of a step of up to `rows` tokens.
pub struct Activations<R: Runtime> {
    pub rows: usize,
    pub ids: R::Buffer<i32>,
    /// The step's first position (where its keys go) and the context length after it (what decode
    /// attends to): one value each.
    pub start: R::Buffer<i32>,
    pub ctx_len: R::Buffer<i32>,
    x: R::Buffer<f32>,
    h: R::Buffer<bf16>,
    qkv: R::Buffer<bf16>,
    att: R::Buffer<bf16>,
    gu: R::Buffer<bf16>,
    act: R::Buffer<bf16>,
    /// The largest magnitude of each `QUANT_BLOCK` of `act` (FP8 down projections).
    act_max: R::Buffer<f32>,
    pub gemm: Gemm<R>,
    pub head: Head<R>,
}

impl<R: Runtime> Activations<R> {
    /// Buffers for `rows` tokens, of which `out_rows` get logits.
    pub fn new(rt: &R, c: &LlamaConfig, rows: usize, out_rows: usize, configs: Arc<GemmConfigs>) -> Result<Activations<R>> {
        let (d, qd, kvd, f) = (c.d_model, c.q_dim(), c.kv_dim(), c.ffn_dim);
        let what = "allocating activations";
        let max_k = d.max(qd).max(f);
        Ok(Activations {
            rows,
            ids: zeros(rt, rows, what)?,
            start: zeros(rt, 1, what)?,
            ctx_len: zeros(rt, 1, what)?,
            x: zeros(rt, rows * d, what)?,
            h: zeros(rt, rows * d, what)?,
            qkv: zeros(rt, rows * (qd + 2 * kvd), what)?,
            att: zeros(rt, rows * qd, what)?,
            gu: zeros(rt, rows * 2 * f, what)?,
            act: zeros(rt, rows * f, what)?,
            act_max: zeros(rt, rows * f.div_ceil(QUANT_BLOCK), what)?,
            gemm: Gemm {
                ws: zeros(rt, 1, what)?,
                tickets: zeros(rt, 1, what)?,
                one: rt.upload(&[1.0f32]).map_err(dev(what))?,
                aq: zeros(rt, rows * max_k, what)?,
                a_scale: zeros(rt, rows, what)?,
                configs,
                moved: 0,
            },
            head: Head::new(rt, c, out_rows)?,
        })
    }

    /// Writes the inputs of a step of `tokens` at positions `start..`: ids (padded to the buffers'
    /// rows), the start and the context length after the step.
    pub fn write_inputs(&mut self, rt: &R, tokens: &[u32], start: usize) -> Result<()> {
        let what = "uploading token ids";
        let mut ids = vec![0i32; self.rows];
        for (i, &t) in tokens.iter().enumerate() {
            ids[i] = t as i32;
        }
        rt.write(&mut self.ids, &ids).map_err(dev(what))?;
        rt.write(&mut self.start, &[start as i32]).map_err(dev(what))?;
        rt.write(&mut self.ctx_len, &[(start + tokens.len()) as i32]).map_err(dev(what))
    }
}

/// What a step computes: `n` tokens from position `start` (`n` > 1: through the prefill kernel, which
/// takes `start` from the host; `n` = 1: through the split-KV decode kernel, which reads the context
/// length from `Activations::ctx_len`), with logits and greedy tokens for the last `out_rows`.
#[derive(Clone, Copy, Debug)]
pub struct StepShape {
    pub n: usize,
    pub start: usize,
    pub out_rows: usize,
}

/// Launches the forward pass of one step (inputs already written by [`Activations::write_inputs`]).
pub fn launch_step<R: Runtime>(rt: &R, m: &mut Model<R>, a: &mut Activations<R>, s: StepShape) -> Result<()> {
    debug_assert!(s.n <= a.rows && s.out_rows <= a.head.rows && s.out_rows <= s.n);
    let layers = m.config.n_layers;
    forward(&mut GpuStep { rt, m, a, s, quantized: false, qkv_partials: None, swiglu_done: false, normed: None }, layers)
}

/// The [`Ops`] of a step as launches over a [`Model`] and its [`Activations`].
struct GpuStep<'a, R: Runtime> {
    rt: &'a R,
    m: &'a mut Model<R>,
    a: &'a mut Activations<R>,
    s: StepShape,
    /// The next GEMM's input rows are already quantized in [`Gemm::aq`] (FP8 weights: the norm or
    /// the SwiGLU before it quantized them in the same kernels).
    quantized: bool,
    /// The QKV projection's split-K partial products wait in [`Gemm::ws`] (this many splits), to be
    /// combined by the RoPE and cache-append kernel: one launch fewer per layer at decode.
    qkv_partials: Option<usize>,
    /// The gate-and-up projection wrote the SwiGLU itself ([`swiglu_matvec`]): the SwiGLU op has
    /// nothing left to do.
    swiglu_done: bool,
    /// The norm before the next GEMM was left to it (a matrix-vector product reading the residual
    /// row itself: [`Input::Normed`]).
    normed: Option<Norm>,
}

impl<R: Runtime> GpuStep<'_, R> {
    /// Whether the GEMM with weight `w` reads this step's activations quantized to e4m3 (FP8 weights,
    /// unless it is a matrix-vector product reading bf16): then the kernel before it quantizes them.
    fn quantizes(&self, w: &Matrix<R>) -> bool {
        w.is_fp8() && !self.a.gemm.configs.reads_bf16(self.s.n, true)
    }

    /// Whether the norm before the GEMM with weight `w` is left to that GEMM: a matrix-vector product
    /// (one row) reading bf16 activations ([`Input::Normed`]).
    fn norm_fuses(&self, w: &Matrix<R>) -> bool {
        let (g, fp8) = (&self.a.gemm, w.is_fp8());
        g.configs.fuses_norm() && g.configs.choose(self.s.n, w.rows, w.cols, fp8).config.is_matvec() && g.configs.reads_bf16(self.s.n, fp8)
    }

    /// Whether layer `layer`'s gate-and-up projection writes the SwiGLU itself: a matrix-vector product
    /// (one row) reading bf16 activations whose output the down projection reads as bf16.
    fn swiglu_fuses(&self, layer: usize) -> bool {
        let (l, g) = (&self.m.w.layers[layer], &self.a.gemm);
        let (w, fp8) = (&l.gate_up, l.gate_up.is_fp8());
        g.configs.fuses_swiglu() && g.configs.choose(self.s.n, w.rows, w.cols, fp8).config.is_matvec() && g.configs.reads_bf16(self.s.n, fp8) && !self.quantizes(&l.down)
    }
}

/// RMSNorm of `rows` rows of the residual stream `x` from `row0`, times `w`, into bf16 rows of `out`.
fn norm_rows<R: Runtime>(rt: &R, c: &LlamaConfig, x: &R::Buffer<f32>, w: &R::Buffer<f32>, row0: usize, rows: usize, out: &mut R::Buffer<bf16>) -> Result<()> {
    let di = c.d_model as i32;
    by_row_block!(c.d_model, rows as u32, B, lc => rmsnorm_to::<bf16, B>::launch(rt, lc, x, w, out, di, di, row0 as i32, c.rms_eps)).map_err(dev("RMSNorm"))
}

impl<R: Runtime> Ops for GpuStep<'_, R> {
    fn embed(&mut self) -> Result<()> {
        let (n, d) = (self.s.n, self.m.config.d_model);
        let grid = (n as u32, d.div_ceil(BLOCK) as u32);
        embed_rows::<bf16, { BLOCK as i32 }>::launch(self.rt, grid, &self.m.w.tok_embd, &self.a.ids, &mut self.a.x, d as i32).map_err(dev("embedding"))
    }

    /// Into bf16 rows in `h`, or, before an FP8 GEMM that reads e4m3 activations, fused with the
    /// per-token quantization; or left to the matrix-vector product after it ([`Input::Normed`]).
    fn norm(&mut self, layer: usize, which: Norm) -> Result<()> {
        let l = &self.m.w.layers[layer];
        let (w, fp8, next) = match which {
            Norm::Attention => (&l.attn_norm, self.quantizes(&l.qkv), &l.qkv),
            Norm::Mlp => (&l.ffn_norm, self.quantizes(&l.gate_up), &l.gate_up),
        };
        if self.norm_fuses(next) {
            self.normed = Some(which);
            return Ok(());
        }
        self.quantized = fp8;
        if !fp8 {
            return norm_rows(self.rt, &self.m.config, &self.a.x, w, 0, self.s.n, &mut self.a.h);
        }
        let (c, g) = (&self.m.config, &mut self.a.gemm);
        let di = c.d_model as i32;
        by_row_block!(c.d_model, self.s.n as u32, B, lc => rmsnorm_quant::<e4m3, B>::launch(self.rt, lc, &self.a.x, w, &mut g.aq, &mut g.a_scale, di, c.rms_eps))
            .map_err(dev("RMSNorm"))
    }

    fn linear(&mut self, layer: usize, which: Linear) -> Result<()> {
        let fused_swiglu = which == Linear::GateUp && self.swiglu_fuses(layer);
        let (rt, n, a) = (self.rt, self.s.n, &mut *self.a);
        let l = &self.m.w.layers[layer];
        let quantized = std::mem::take(&mut self.quantized);
        let eps = self.m.config.rms_eps;
        // The input of QKV and gate-and-up: the normed rows in `h`, or the residual row with the norm
        // left to the GEMM.
        let input = match self.normed.take() {
            Some(Norm::Attention) => Input::Normed(&a.x, RmsNorm { gamma: &l.attn_norm, eps }),
            Some(Norm::Mlp) => Input::Normed(&a.x, RmsNorm { gamma: &l.ffn_norm, eps }),
            None => Input::of(quantized, &a.h),
        };
        match which {
            Linear::Qkv => self.qkv_partials = linear(rt, &mut a.gemm, input, n, &l.qkv, &mut a.qkv, Out::Partials)?,
            Linear::Out => _ = linear(rt, &mut a.gemm, Input::Bf16(&a.att), n, &l.wo, &mut a.x, Out::Add)?,
            Linear::GateUp if fused_swiglu => {
                swiglu_linear(rt, &a.gemm, input, &l.gate_up, &mut a.act)?;
                self.swiglu_done = true;
            }
            Linear::GateUp => _ = linear(rt, &mut a.gemm, input, n, &l.gate_up, &mut a.gu, Out::Store)?,
            Linear::Down => _ = linear(rt, &mut a.gemm, Input::of(quantized, &a.act), n, &l.down, &mut a.x, Out::Add)?,
        }
        Ok(())
    }

    /// RoPE of Q in place, K rotated into the cache, V copied: one launch.
    fn rope_append(&mut self, layer: usize) -> Result<()> {
        let m = &mut *self.m;
        let c = &m.config;
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        let at = RowsAt { k_off: qd, v_off: qd + kvd, stride: qd + 2 * kvd };
        let tables = RopeTables { cos: &m.w.cos, sin: &m.w.sin, rope_dim: c.rope_dim };
        let (a, (kc, vc)) = (&mut *self.a, (&mut m.k_cache[layer], &mut m.v_cache[layer]));
        let Some(splits) = self.qkv_partials.take() else {
            return rope_append_rows(self.rt, &m.shape, self.s.n, &mut a.qkv, at, tables, &a.start, kc, vc).map_err(attn);
        };
        // The QKV projection left its partial products: combined here, with the scales its combine
        // would have applied.
        let g = &a.gemm;
        let (scale_a, scale_b) = scales(&m.w.layers[layer].qkv.w, &g.one, &g.a_scale);
        let parts = Partials { buf: &g.ws, splits, scale_a, scale_b };
        combine_rope_append_rows(self.rt, &m.shape, self.s.n, parts, &mut a.qkv, at, tables, &a.start, kc, vc).map_err(attn)
    }

    /// One token: split-KV decode, reading the context length from the device; a chunk: prefill over
    /// the cache from the host's `start`.
    fn attention(&mut self, layer: usize) -> Result<()> {
        let (m, a, s) = (&mut *self.m, &mut *self.a, self.s);
        let c = &m.config;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let shape = m.shape;
        if s.n == 1 {
            let (po, pm, pl) = &mut m.part;
            let bufs = DecodeBuffers { q: &a.qkv, k_cache: &m.k_cache[layer], v_cache: &m.v_cache[layer], ctx_lens: &a.ctx_len, part_o: po, part_m: pm, part_l: pl, out: &mut a.att };
            decode_step(self.rt, &shape, m.decode, scale, bufs).map_err(attn)
        } else {
            let chunk = Chunk { q_len: s.n, start: s.start, causal: true };
            let bufs = PrefillBuffers { q: &a.qkv, k_cache: &m.k_cache[layer], v_cache: &m.v_cache[layer], out: &mut a.att };
            let at = QueriesAt { off: 0, stride: c.q_dim() + 2 * c.kv_dim() };
            prefill_step(self.rt, &shape, chunk, at, PrefillConfig::for_chunk(&shape, &chunk, m.warpgroups), scale, bufs).map_err(attn)
        }
    }

    /// Before an FP8 down projection that reads e4m3 activations, fused with their quantization and
    /// over many programs (one program per 14336-wide row took 14.9 µs: bench/llama_gpu/NOTES.md).
    fn swiglu(&mut self, layer: usize) -> Result<()> {
        if std::mem::take(&mut self.swiglu_done) {
            return Ok(());
        }
        let quantize = self.quantizes(&self.m.w.layers[layer].down);
        let (rt, a, n) = (self.rt, &mut *self.a, self.s.n);
        let f = self.m.config.ffn_dim;
        let fi = f as i32;
        if quantize {
            let (g, grid) = (&mut a.gemm, (n as u32, f.div_ceil(QUANT_BLOCK) as u32));
            silu_mul_block_max::<bf16, { QUANT_BLOCK as i32 }>::launch(rt, grid, &a.gu, &mut a.act, &mut a.act_max, fi).map_err(dev("SwiGLU"))?;
            quantize_blocks::<bf16, e4m3, { QUANT_BLOCK as i32 }, QUANT_PARTS>::launch(rt, grid, &a.act, &a.act_max, &mut g.aq, &mut g.a_scale, fi)
                .map_err(dev("quantizing the SwiGLU"))?;
            self.quantized = true;
            Ok(())
        } else {
            silu_mul_halves::<bf16, { BLOCK as i32 }>::launch(rt, (n as u32, f.div_ceil(BLOCK) as u32), &a.gu, &mut a.act, fi).map_err(dev("SwiGLU"))
        }
    }

    /// The last `out_rows` rows: RMSNorm, the LM head and the greedy token of each.
    fn head(&mut self) -> Result<()> {
        let (StepShape { n, out_rows, .. }, c) = (self.s, &self.m.config);
        let fused = n == 1 && self.norm_fuses(&self.m.w.output);
        let (rt, a) = (self.rt, &mut *self.a);
        let h = &mut a.head;
        let input = if fused {
            Input::Normed(&a.x, RmsNorm { gamma: &self.m.w.norm, eps: c.rms_eps })
        } else {
            norm_rows(rt, c, &a.x, &self.m.w.norm, n - out_rows, out_rows, &mut h.hn)?;
            Input::Bf16(&h.hn)
        };
        linear(rt, &mut a.gemm, input, out_rows, &self.m.w.output, &mut h.logits, Out::Store)?;
        argmax_rows(rt, &h.logits, out_rows, c.vocab_size, &mut h.part_v, &mut h.part_i, &mut h.tokens).map_err(dev("argmax"))
    }
}

fn attn<E: std::error::Error>(e: AttnError<E>) -> LlamaError {
    LlamaError::Backend(e.to_string())
}
