//! One forward step as launches: the buffers a step works in ([`Activations`]) and the sequence of
//! kernels over them ([`launch_step`]). Every buffer is allocated once and overwritten in place, and
//! every per-step value the kernels need (token ids, the first position, the context length) is read from a
//! device buffer, so the launches of a decode step are the same at every position: what lets one
//! recorded graph serve every token.

use super::configs::GemmConfigs;
use super::linear::{by_row_block, linear, qkv_rope_linear, residual_norm_linear, row_block, scales, swiglu_linear, Gemm, Input, Out};
use super::weights::{dev, zeros, Matrix, WeightsOnDevice};
use crate::backend::forward::{forward, Linear, Norm, Ops};
use crate::config::LlamaConfig;
use crate::error::{LlamaError, Result};
use dsl_core::prelude::{bf16, e4m3};
use dsl_core::runtime::{Launch, Runtime};
use kernels::fp8_gemm::{NextNorm, Partials, RmsNorm};
use kernels::greedy::{argmax_rows, partials_len};
use kernels::kv_attention::cache::{rope_append_rows, RopeTables, RowsAt};
use kernels::kv_attention::decode::{decode_step, tickets_len, workspace_lens, DecodeBuffers, DecodeConfig, MAX_FUSED_SPLITS};
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

/// The model on the device: weights, the KV cache and the decode kernel's partials.
pub struct Model<R: Runtime> {
    pub config: LlamaConfig,
    pub w: WeightsOnDevice<R>,
    /// Per layer, `[batch, kv_heads, capacity, head_dim]` bf16 (`batch` sequences side by side).
    pub k_cache: Vec<R::Buffer<bf16>>,
    pub v_cache: Vec<R::Buffer<bf16>>,
    pub shape: CacheShape,
    pub decode: DecodeConfig,
    pub part: (R::Buffer<f32>, R::Buffer<f32>, R::Buffer<f32>),
    /// The fused decode combine's ticket counters (zero between steps).
    pub tickets: R::Buffer<i32>,
    /// The device runs tiles of 16 rows per warp on `wgmma`: the prefill attention's tiles follow
    /// ([`PrefillConfig::for_chunk`]).
    pub warpgroups: bool,
}

impl<R: Runtime> Model<R> {
    pub fn new(rt: &R, config: LlamaConfig, w: WeightsOnDevice<R>, shape: CacheShape, sm_count: u32, warpgroups: bool, fused_attention_combine: bool) -> Result<Model<R>> {
        let mut k_cache = vec![];
        let mut v_cache = vec![];
        for _ in 0..config.n_layers {
            k_cache.push(zeros(rt, shape.cache_len(), "allocating the KV cache")?);
            v_cache.push(zeros(rt, shape.cache_len(), "allocating the KV cache")?);
        }
        let heuristic = DecodeConfig::for_shape(&shape, sm_count);
        let decode = heuristic.with_fused_combine(fused_attention_combine && heuristic.splits <= MAX_FUSED_SPLITS);
        let (po, pm) = workspace_lens(&shape, decode.splits);
        let part = (zeros(rt, po, "allocating")?, zeros(rt, pm, "allocating")?, zeros(rt, pm, "allocating")?);
        // The ticket counters only a fused combine touches (one element otherwise: a buffer to pass).
        let tickets = zeros(rt, if decode.fused_combine { tickets_len(&shape) } else { 1 }, "allocating")?;
        Ok(Model { config, w, k_cache, v_cache, shape, decode, part, tickets, warpgroups })
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

/// The buffers of a step of up to `rows` tokens: `seqs` sequences of `rows / seqs` tokens each, rows
/// sequence-major (row `b * tokens + t` is token `t` of sequence `b`).
pub struct Activations<R: Runtime> {
    pub rows: usize,
    pub seqs: usize,
    pub ids: R::Buffer<i32>,
    /// The step's first position (where its keys go) and the context length after it (what decode
    /// attends to): one value per sequence (the sequences run in lockstep, so the values are equal;
    /// the kernels take them per sequence).
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
    /// The next RMSNorm's inputs as a residual add writes them (decode, `GpuOptions::norm_in_residual`):
    /// `x ⊙ gamma`, `1 / rms(x)`, the programs' sum of squares (fixed point) and their ticket.
    xg: R::Buffer<bf16>,
    inv_rms: R::Buffer<f32>,
    norm_sum_sq: R::Buffer<i64>,
    norm_tickets: R::Buffer<i32>,
    pub gemm: Gemm<R>,
    pub head: Head<R>,
}

impl<R: Runtime> Activations<R> {
    /// Buffers for `rows` tokens of `seqs` sequences, of which `out_rows` in all get logits.
    pub fn new(rt: &R, c: &LlamaConfig, seqs: usize, rows: usize, out_rows: usize, configs: Arc<GemmConfigs>) -> Result<Activations<R>> {
        let (d, qd, kvd, f) = (c.d_model, c.q_dim(), c.kv_dim(), c.ffn_dim);
        let what = "allocating activations";
        let max_k = d.max(qd).max(f);
        Ok(Activations {
            rows,
            seqs,
            ids: zeros(rt, rows, what)?,
            start: zeros(rt, seqs, what)?,
            ctx_len: zeros(rt, seqs, what)?,
            x: zeros(rt, rows * d, what)?,
            h: zeros(rt, rows * d, what)?,
            qkv: zeros(rt, rows * (qd + 2 * kvd), what)?,
            att: zeros(rt, rows * qd, what)?,
            gu: zeros(rt, rows * 2 * f, what)?,
            act: zeros(rt, rows * f, what)?,
            act_max: zeros(rt, rows * f.div_ceil(QUANT_BLOCK), what)?,
            xg: zeros(rt, d, what)?,
            inv_rms: zeros(rt, 1, what)?,
            norm_sum_sq: zeros(rt, 1, what)?,
            norm_tickets: zeros(rt, 1, what)?,
            gemm: Gemm::new(rt, rows, max_k, configs)?,
            head: Head::new(rt, c, out_rows)?,
        })
    }

    /// Writes the inputs of a step of `tokens` (each sequence's in turn, equal counts) at positions
    /// `start..` of every sequence: ids (padded to the buffers' rows), the start and the context length
    /// after the step.
    pub fn write_inputs(&mut self, rt: &R, tokens: &[u32], start: usize) -> Result<()> {
        let what = "uploading token ids";
        let mut ids = vec![0i32; self.rows];
        for (i, &t) in tokens.iter().enumerate() {
            ids[i] = t as i32;
        }
        rt.write(&mut self.ids, &ids).map_err(dev(what))?;
        rt.write(&mut self.start, &vec![start as i32; self.seqs]).map_err(dev(what))?;
        let ctx = start + tokens.len() / self.seqs;
        rt.write(&mut self.ctx_len, &vec![ctx as i32; self.seqs]).map_err(dev(what))
    }
}

/// What a step computes: `n` rows, `n / seqs` tokens of each of `seqs` sequences from position `start`
/// (more than one token a sequence: through the prefill kernel, which takes `start` from the host; one:
/// through the split-KV decode kernel, which reads the context lengths from `Activations::ctx_len`),
/// with logits and greedy tokens for the last `out_rows` of each sequence (all its tokens, or, with
/// several sequences, its last one).
#[derive(Clone, Copy, Debug)]
pub struct StepShape {
    pub n: usize,
    pub seqs: usize,
    pub start: usize,
    pub out_rows: usize,
}

impl StepShape {
    /// Tokens of each sequence.
    pub fn tokens(&self) -> usize {
        self.n / self.seqs
    }

    /// The rows that get logits: `(first, count, stride)` in rows of the step.
    fn out_rows_at(&self) -> (usize, usize, usize) {
        let tokens = self.tokens();
        if self.seqs == 1 || self.out_rows == tokens {
            (self.n - self.seqs * self.out_rows, self.seqs * self.out_rows, 1)
        } else {
            // The last token of each sequence.
            (tokens - 1, self.seqs, tokens)
        }
    }
}

/// Launches the forward pass of one step (inputs already written by [`Activations::write_inputs`]).
pub fn launch_step<R: Runtime>(rt: &R, m: &mut Model<R>, a: &mut Activations<R>, s: StepShape) -> Result<()> {
    debug_assert!(s.n <= a.rows && s.n % s.seqs == 0 && s.seqs == m.shape.batch && s.seqs == a.seqs);
    debug_assert!(s.seqs * s.out_rows <= a.head.rows && (s.out_rows == 1 || s.out_rows == s.tokens() || s.seqs == 1));
    let layers = m.config.n_layers;
    forward(&mut GpuStep { rt, m, a, s, quantized: false, qkv_partials: None, swiglu_done: false, rope_done: false, normed: false, prescaled: false }, layers)
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
    /// The QKV projection rotated its queries and appended its keys and values itself
    /// ([`qkv_rope_linear`]): the RoPE op has nothing left to do.
    rope_done: bool,
    /// The norm before the next GEMM was left to it (a matrix-vector product reading the residual
    /// row itself: [`Input::Normed`]).
    normed: bool,
    /// The last residual add wrote the next norm's inputs ([`residual_norm_linear`]): the norm has
    /// nothing left to do, and the GEMM after it reads [`Input::Prescaled`].
    prescaled: bool,
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
        g.configs.fuses_norm(w.cols) && g.configs.choose(self.s.n, w.rows, w.cols, fp8).config.is_matvec() && g.configs.reads_bf16(self.s.n, fp8)
    }

    /// Whether the residual add with weight `producer` writes the inputs of the norm before the GEMM with
    /// weight `consumer`: both matrix-vector products (one row) reading bf16 activations, and that
    /// norm not inside the consumer already.
    fn norm_in_residual(&self, producer: &Matrix<R>, consumer: &Matrix<R>) -> bool {
        let g = &self.a.gemm;
        let matvec_bf16 = |w: &Matrix<R>| g.configs.choose(self.s.n, w.rows, w.cols, w.is_fp8()).config.is_matvec() && g.configs.reads_bf16(self.s.n, w.is_fp8());
        g.configs.norms_in_residual() && self.s.n == 1 && self.m.shape.batch == 1 && matvec_bf16(producer) && matvec_bf16(consumer) && !self.norm_fuses(consumer)
    }

    /// Whether layer `layer`'s QKV projection applies RoPE and appends to the cache itself: a
    /// matrix-vector product (one token of one sequence) reading bf16 activations, whole-head rotary
    /// embeddings, and a tile whose pairs of rows divide half a head.
    fn rope_fuses(&self, layer: usize) -> bool {
        let (m, g) = (&self.m, &self.a.gemm);
        let (w, fp8, c) = (&m.w.layers[layer].qkv, m.w.layers[layer].qkv.is_fp8(), &m.config);
        let cfg = g.configs.choose(self.s.n, w.rows, w.cols, fp8).config;
        let pairs = cfg.block_n as usize / 2;
        g.configs.fuses_rope() && m.shape.batch == 1 && cfg.is_matvec() && g.configs.reads_bf16(self.s.n, fp8) && c.rope_dim == c.head_dim && cfg.block_n % 2 == 0 && (c.head_dim / 2) % pairs == 0
    }

    /// Whether layer `layer`'s gate-and-up projection writes the SwiGLU itself: a matrix-vector product
    /// (one row) reading bf16 activations whose output the down projection reads as bf16.
    fn swiglu_fuses(&self, layer: usize) -> bool {
        let (l, g) = (&self.m.w.layers[layer], &self.a.gemm);
        let (w, fp8) = (&l.gate_up, l.gate_up.is_fp8());
        g.configs.fuses_swiglu() && g.configs.choose(self.s.n, w.rows, w.cols, fp8).config.is_matvec() && g.configs.reads_bf16(self.s.n, fp8) && !self.quantizes(&l.down)
    }

    /// Takes what the op before the next GEMM left for it: its input rows quantized, the norm left to
    /// it, or the norm's inputs written by the residual add.
    fn take_source(&mut self) -> Source {
        let quantized = std::mem::take(&mut self.quantized);
        match (std::mem::take(&mut self.normed), std::mem::take(&mut self.prescaled)) {
            (_, true) => Source::Prescaled,
            (true, false) => Source::Normed,
            (false, false) => Source::Rows { quantized },
        }
    }

    /// The QKV projection into `qkv`: with RoPE and the cache append in its epilogue where
    /// [`GpuStep::rope_fuses`], else leaving its split-K partials for the RoPE kernel to combine.
    fn qkv(&mut self, layer: usize, src: Source) -> Result<()> {
        let fused_rope = self.rope_fuses(layer);
        let (rt, n, a, m) = (self.rt, self.s.n, &mut *self.a, &mut *self.m);
        let l = &m.w.layers[layer];
        let input = src.input((&a.h, &a.x, &a.xg, &a.inv_rms), &l.attn_norm, m.config.rms_eps);
        if fused_rope {
            let tables = RopeTables { cos: &m.w.cos, sin: &m.w.sin, rope_dim: m.config.rope_dim };
            let caches = (&mut m.k_cache[layer], &mut m.v_cache[layer]);
            qkv_rope_linear(rt, &a.gemm, &m.shape, input, &l.qkv, tables, &a.start, &mut a.qkv, caches)?;
            self.rope_done = true;
        } else {
            self.qkv_partials = linear(rt, &mut a.gemm, input, n, &l.qkv, &mut a.qkv, Out::Partials)?;
        }
        Ok(())
    }

    /// The gate-and-up projection: into `act` with the SwiGLU in its epilogue where
    /// [`GpuStep::swiglu_fuses`], else into `gu` for the SwiGLU kernel.
    fn gate_up(&mut self, layer: usize, src: Source) -> Result<()> {
        let fused_swiglu = self.swiglu_fuses(layer);
        let (rt, n, a, m) = (self.rt, self.s.n, &mut *self.a, &*self.m);
        let l = &m.w.layers[layer];
        let input = src.input((&a.h, &a.x, &a.xg, &a.inv_rms), &l.ffn_norm, m.config.rms_eps);
        if fused_swiglu {
            swiglu_linear(rt, &a.gemm, input, &l.gate_up, &mut a.act)?;
            self.swiglu_done = true;
        } else {
            linear(rt, &mut a.gemm, input, n, &l.gate_up, &mut a.gu, Out::Store)?;
        }
        Ok(())
    }

    /// The O or down projection added into the residual stream `x`; where [`GpuStep::norm_in_residual`],
    /// writing the next norm's inputs too (after O the MLP's norm; after down the next layer's
    /// attention norm, or the final norm before the LM head).
    fn residual_add(&mut self, layer: usize, which: Linear, src: Source) -> Result<()> {
        let w = &self.m.w;
        let (l, next) = (&w.layers[layer], w.layers.get(layer + 1));
        let (weight, consumer, gamma) = match which {
            Linear::Out => (&l.wo, &l.gate_up, &l.ffn_norm),
            _ => (&l.down, next.map_or(&w.output, |n| &n.qkv), next.map_or(&w.norm, |n| &n.attn_norm)),
        };
        let writes_norm = self.norm_in_residual(weight, consumer);
        let (rt, n, a) = (self.rt, self.s.n, &mut *self.a);
        // O reads the attention's bf16 rows; down, the SwiGLU's, quantized by it where it said so.
        let quantized = matches!(src, Source::Rows { quantized: true });
        let rows = if which == Linear::Out { &a.att } else { &a.act };
        if writes_norm {
            let next = NextNorm { gamma, eps: self.m.config.rms_eps, xg: &mut a.xg, inv_rms: &mut a.inv_rms, sum_sq: &mut a.norm_sum_sq, tickets: &mut a.norm_tickets };
            residual_norm_linear(rt, &a.gemm, rows, weight, &mut a.x, next)?;
            self.prescaled = true;
        } else {
            linear(rt, &mut a.gemm, Input::of(quantized, rows), n, weight, &mut a.x, Out::Add)?;
        }
        Ok(())
    }
}

/// Where a GEMM after a norm finds its input, as the ops before it left it ([`GpuStep::take_source`]).
#[derive(Clone, Copy)]
enum Source {
    /// Rows in `h` (or, `quantized`, in the GEMM's e4m3 buffer).
    Rows { quantized: bool },
    /// The residual row, normed by the matrix-vector product itself ([`Input::Normed`]).
    Normed,
    /// The norm's inputs written by the residual add before ([`Input::Prescaled`]).
    Prescaled,
}

impl Source {
    /// The GEMM input from the step's buffers (`h`, `x`, `xg`, `inv_rms` of [`Activations`]): the norm
    /// (weights `gamma`) applied where it was left to the GEMM.
    fn input<'a, R: Runtime>(self, (h, x, xg, inv_rms): NormBuffers<'a, R>, gamma: &'a R::Buffer<f32>, eps: f32) -> Input<'a, R> {
        match self {
            Source::Rows { quantized } => Input::of(quantized, h),
            Source::Normed => Input::Normed(x, RmsNorm { gamma, eps }),
            Source::Prescaled => Input::Prescaled(xg, inv_rms),
        }
    }
}

/// `h`, `x`, `xg` and `inv_rms` of [`Activations`]: where a GEMM after a norm may find its input.
type NormBuffers<'a, R> = (&'a <R as Runtime>::Buffer<bf16>, &'a <R as Runtime>::Buffer<f32>, &'a <R as Runtime>::Buffer<bf16>, &'a <R as Runtime>::Buffer<f32>);

/// RMSNorm of `count` rows of the residual stream `x`, from row `first` and `stride` rows apart, times
/// `w`, into packed bf16 rows of `out`.
fn norm_rows<R: Runtime>(rt: &R, c: &LlamaConfig, x: &R::Buffer<f32>, w: &R::Buffer<f32>, (first, count, stride): (usize, usize, usize), out: &mut R::Buffer<bf16>) -> Result<()> {
    let d = c.d_model;
    let i32_of = |v: usize| i32::try_from(v).map_err(|_| LlamaError::Invalid(format!("RMSNorm: offset {v} past the 2^31 elements of 32-bit offsets")));
    let (row_stride, offset) = (i32_of(stride * d)?, i32_of(first * d)?);
    by_row_block!(d, count as u32, B, lc => rmsnorm_to::<bf16, B>::launch(rt, lc, x, w, out, d as i32, row_stride, offset, c.rms_eps)).map_err(dev("RMSNorm"))
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
        if self.prescaled {
            // The residual add before wrote this norm's inputs; the GEMM after reads them.
            return Ok(());
        }
        if self.norm_fuses(next) {
            self.normed = true;
            return Ok(());
        }
        self.quantized = fp8;
        if !fp8 {
            return norm_rows(self.rt, &self.m.config, &self.a.x, w, (0, self.s.n, 1), &mut self.a.h);
        }
        let (c, g) = (&self.m.config, &mut self.a.gemm);
        let di = c.d_model as i32;
        by_row_block!(c.d_model, self.s.n as u32, B, lc => rmsnorm_quant::<e4m3, B>::launch(self.rt, lc, &self.a.x, w, &mut g.aq, &mut g.a_scale, di, c.rms_eps))
            .map_err(dev("RMSNorm"))
    }

    fn linear(&mut self, layer: usize, which: Linear) -> Result<()> {
        let src = self.take_source();
        match which {
            Linear::Qkv => self.qkv(layer, src),
            Linear::GateUp => self.gate_up(layer, src),
            Linear::Out | Linear::Down => self.residual_add(layer, which, src),
        }
    }

    /// RoPE of Q in place, K rotated into the cache, V copied: one launch.
    fn rope_append(&mut self, layer: usize) -> Result<()> {
        if std::mem::take(&mut self.rope_done) {
            return Ok(());
        }
        let m = &mut *self.m;
        let c = &m.config;
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        let at = RowsAt { k_off: qd, v_off: qd + kvd, stride: qd + 2 * kvd };
        let tables = RopeTables { cos: &m.w.cos, sin: &m.w.sin, rope_dim: c.rope_dim };
        let (a, (kc, vc)) = (&mut *self.a, (&mut m.k_cache[layer], &mut m.v_cache[layer]));
        let tokens = self.s.tokens();
        let Some(splits) = self.qkv_partials.take() else {
            return rope_append_rows(self.rt, &m.shape, tokens, &mut a.qkv, at, tables, &a.start, kc, vc).map_err(attn);
        };
        // The QKV projection left its partial products: combined here, with the scales its combine
        // would have applied.
        let g = &a.gemm;
        let (scale_a, scale_b) = scales(&m.w.layers[layer].qkv.w, &g.one, &g.a_scale);
        let parts = Partials { buf: &g.ws, splits, scale_a, scale_b };
        combine_rope_append_rows(self.rt, &m.shape, tokens, parts, &mut a.qkv, at, tables, &a.start, kc, vc).map_err(attn)
    }

    /// One token a sequence: split-KV decode, reading the context lengths from the device; a chunk:
    /// prefill over the cache from the host's `start`. Both read the queries in place in `qkv`.
    fn attention(&mut self, layer: usize) -> Result<()> {
        let (m, a, s) = (&mut *self.m, &mut *self.a, self.s);
        let c = &m.config;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let shape = m.shape;
        let row = c.q_dim() + 2 * c.kv_dim();
        // The caches hold the activations' type, so they read no scales: the rope table stands in.
        if s.tokens() == 1 {
            let (po, pm, pl) = &mut m.part;
            let bufs = DecodeBuffers { q: &a.qkv, q_stride: row, k_cache: &m.k_cache[layer], v_cache: &m.v_cache[layer], k_scales: &m.w.cos, v_scales: &m.w.cos, ctx_lens: &a.ctx_len, part_o: po, part_m: pm, part_l: pl, tickets: &mut m.tickets, out: &mut a.att };
            decode_step(self.rt, &shape, m.decode, scale, bufs).map_err(attn)
        } else {
            let chunk = Chunk { q_len: s.tokens(), start: s.start, causal: true };
            let bufs = PrefillBuffers { q: &a.qkv, k_cache: &m.k_cache[layer], v_cache: &m.v_cache[layer], k_scales: &m.w.cos, v_scales: &m.w.cos, out: &mut a.att };
            let at = QueriesAt { off: 0, stride: row };
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

    /// The last `out_rows` rows of each sequence: RMSNorm, the LM head and the greedy token of each.
    fn head(&mut self) -> Result<()> {
        let (n, c) = (self.s.n, &self.m.config);
        let (first, out_rows, stride) = self.s.out_rows_at();
        let fused = n == 1 && self.norm_fuses(&self.m.w.output);
        let prescaled = std::mem::take(&mut self.prescaled);
        let (rt, a) = (self.rt, &mut *self.a);
        let h = &mut a.head;
        let input = if prescaled {
            Input::Prescaled(&a.xg, &a.inv_rms)
        } else if fused {
            Input::Normed(&a.x, RmsNorm { gamma: &self.m.w.norm, eps: c.rms_eps })
        } else {
            norm_rows(rt, c, &a.x, &self.m.w.norm, (first, out_rows, stride), &mut h.hn)?;
            Input::Bf16(&h.hn)
        };
        linear(rt, &mut a.gemm, input, out_rows, &self.m.w.output, &mut h.logits, Out::Store)?;
        argmax_rows(rt, &h.logits, out_rows, c.vocab_size, &mut h.part_v, &mut h.part_i, &mut h.tokens).map_err(dev("argmax"))
    }
}

fn attn<E: std::error::Error>(e: AttnError<E>) -> LlamaError {
    LlamaError::Backend(e.to_string())
}
