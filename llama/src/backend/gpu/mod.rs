//! GPU backend: the forward pass as launches of the `kernels` crate's kernels, generic over
//! [`Runtime`], so the same code runs on a GPU (`CudaRuntime`) and on the reference interpreter (what
//! CI runs on the tiny models).
//!
//! Weights (bf16, [`weights`]), activations and the KV cache stay on the device; token ids go in and
//! logits come out. A layer: RMSNorm (f32 residual → bf16), the fused QKV GEMM, RoPE of Q and K in
//! place, K and V appended to the cache from the QKV buffer, attention (prefill over the cache for a
//! chunk, split-KV decode for one token), the output GEMM and the residual add; then RMSNorm, the fused
//! gate/up GEMM, SwiGLU, the down GEMM and the residual add. GEMMs are the split-K GEMM of
//! `kernels::fp8_gemm` with bf16 operands.

pub mod weights;

use super::Backend;
use crate::config::LlamaConfig;
use crate::error::{LlamaError, Result};
use crate::model::LlamaWeights;
use dsl_core::lang::Numeric;
use dsl_core::prelude::bf16;
use dsl_core::runtime::{AnyBuffer, Runtime};
use dsl_core::types::Elem;
use kernels::fp8_gemm::{fp8_gemm, heuristic, workspace_len, GemmOptions, Operand, Scale};
use kernels::kv_attention::cache::{append_rows, RowsAt};
use kernels::kv_attention::decode::{decode_step, workspace_lens, DecodeBuffers, DecodeConfig};
use kernels::kv_attention::prefill::{prefill_step, Chunk, PrefillBuffers, PrefillConfig, QueriesAt};
use kernels::kv_attention::CacheShape;
use kernels::llama_ops::{add_into, embed_rows, rmsnorm_to, silu_mul_halves};
use kernels::rope::rope_inplace;
use weights::{dev, Matrix, WeightsOnDevice};

/// Elements per program of the row kernels (embedding, norms, adds, SwiGLU).
const BLOCK: usize = 256;

/// Runs a [`LlamaWeights`] on a [`Runtime`].
pub struct GpuBackend<R: Runtime> {
    rt: R,
    name: &'static str,
    config: LlamaConfig,
    w: WeightsOnDevice<R>,
    /// Per layer, `[1, kv_heads, capacity, head_dim]` bf16.
    k_cache: Vec<R::Buffer<bf16>>,
    v_cache: Vec<R::Buffer<bf16>>,
    shape: CacheShape,
    decode: DecodeConfig,
    part: (R::Buffer<f32>, R::Buffer<f32>, R::Buffer<f32>),
    gemm: Gemm<R>,
    capacity: usize,
    pos: usize,
}

/// What every GEMM of a step shares: the split-K workspace (grown on demand), the unit scale, the GPU's
/// size.
struct Gemm<R: Runtime> {
    ws: R::Buffer<f32>,
    one: R::Buffer<f32>,
    sm_count: u32,
}

/// `out[m, w.rows] = a[m, w.cols] · wᵀ` (bf16 operands, f32 accumulation, rounded to `O`).
fn linear<R: Runtime, O: Numeric + Elem>(rt: &R, g: &mut Gemm<R>, a: &R::Buffer<bf16>, m: usize, w: &Matrix<R>, out: &mut R::Buffer<O>) -> Result<()> {
    let (n, k) = (w.rows, w.cols);
    let cfg = heuristic(m, n, k, g.sm_count);
    let need = workspace_len(m, n, k, &cfg);
    if g.ws.len() < need {
        g.ws = zeros(rt, need, "allocating the GEMM workspace")?;
    }
    let opts = GemmOptions { config: Some(cfg), sm_count: g.sm_count, ..GemmOptions::default() };
    let a = Operand { buf: a, rows: m, cols: k, row_stride: k };
    let b = Operand { buf: &w.buf, rows: n, cols: k, row_stride: k };
    fp8_gemm(rt, a, b, Scale::PerTensor(&g.one), Scale::PerTensor(&g.one), None, out, n, Some(&mut g.ws), &opts).map_err(dev("GEMM"))?;
    Ok(())
}

fn zeros<R: Runtime, T: Elem + Default + Copy>(rt: &R, n: usize, what: &str) -> Result<R::Buffer<T>> {
    rt.upload(&vec![T::default(); n.max(1)]).map_err(dev(what))
}

impl<R: Runtime> GpuBackend<R> {
    /// Uploads `w` and allocates caches for `capacity` positions (clamped to the model's context).
    /// `name` is what [`Backend::name`] reports; `sm_count` sizes the GEMM and decode splits.
    pub fn new(rt: R, name: &'static str, sm_count: u32, w: &LlamaWeights, capacity: usize) -> Result<GpuBackend<R>> {
        w.validate()?;
        let c = w.config.clone();
        let capacity = capacity.clamp(1, c.context_length);
        if c.n_heads % c.n_kv_heads != 0 {
            return Err(LlamaError::Backend(format!("{} query heads over {} KV heads is not a whole group", c.n_heads, c.n_kv_heads)));
        }
        let shape = CacheShape { batch: 1, kv_heads: c.n_kv_heads, group: c.n_heads / c.n_kv_heads, head_dim: c.head_dim, max_ctx: capacity };
        shape.check::<R::Error>().map_err(|e| LlamaError::Backend(format!("this model's attention does not fit the GPU kernels: {e}")))?;
        let weights = weights::upload(&rt, w, capacity)?;
        let mut k_cache = vec![];
        let mut v_cache = vec![];
        for _ in 0..c.n_layers {
            k_cache.push(zeros(&rt, shape.cache_len(), "allocating the KV cache")?);
            v_cache.push(zeros(&rt, shape.cache_len(), "allocating the KV cache")?);
        }
        let decode = DecodeConfig::for_shape(&shape, sm_count);
        let (po, pm) = workspace_lens(&shape, decode.splits);
        let part = (zeros(&rt, po, "allocating")?, zeros(&rt, pm, "allocating")?, zeros(&rt, pm, "allocating")?);
        let gemm = Gemm { ws: zeros(&rt, 1, "allocating")?, one: rt.upload(&[1.0f32]).map_err(dev("allocating"))?, sm_count };
        Ok(GpuBackend { name, config: c, w: weights, k_cache, v_cache, shape, decode, part, gemm, capacity, pos: 0, rt })
    }

    /// RMSNorm of rows `row0..row0 + rows` of the residual `x` into `out` (bf16).
    fn norm(&self, x: &R::Buffer<f32>, w: &R::Buffer<f32>, row0: usize, rows: usize, out: &mut R::Buffer<bf16>) -> Result<()> {
        let d = self.config.d_model as i32;
        rmsnorm_to::<bf16, { BLOCK as i32 }>::launch(&self.rt, rows as u32, x, w, out, d, d, row0 as i32, self.config.rms_eps).map_err(dev("RMSNorm"))
    }

    /// RoPE of Q's and K's heads in place in the QKV buffer (K's heads follow Q's in each row).
    fn rope(&self, qkv: &mut R::Buffer<bf16>, pos: &R::Buffer<i32>, n: usize) -> Result<()> {
        let c = &self.config;
        let width = (c.q_dim() + 2 * c.kv_dim()) as i32;
        let grid = (n as u32, (c.n_heads + c.n_kv_heads) as u32);
        let (rd, hd, half) = (c.rope_dim as i32, c.head_dim as i32, (c.rope_dim / 2) as i32);
        let (cos, sin) = (&self.w.cos, &self.w.sin);
        macro_rules! go {
            ($hb:literal) => {
                rope_inplace::<bf16, $hb>::launch(&self.rt, grid, qkv, cos, sin, pos, rd, width, hd, half)
            };
        }
        match (c.rope_dim / 2).next_power_of_two() {
            0..=4 => go!(4),
            8 => go!(8),
            16 => go!(16),
            32 => go!(32),
            64 => go!(64),
            _ => go!(128),
        }
        .map_err(dev("RoPE"))
    }

    fn upload<T: Elem>(&self, v: &[T], what: &str) -> Result<R::Buffer<T>> {
        self.rt.upload(v).map_err(dev(what))
    }
}

impl<R: Runtime> Backend for GpuBackend<R>
where
    GpuBackend<R>: Send,
{
    fn name(&self) -> &'static str {
        self.name
    }
    fn config(&self) -> &LlamaConfig {
        &self.config
    }
    fn position(&self) -> usize {
        self.pos
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn rewind(&mut self, pos: usize) {
        // Positions past `pos` are overwritten before they are attended again.
        self.pos = self.pos.min(pos);
    }

    fn forward(&mut self, tokens: &[u32], all_logits: bool) -> Result<Vec<f32>> {
        let c = self.config.clone();
        let n = tokens.len();
        super::check_batch(&c, self.pos, self.capacity, tokens)?;
        let (d, qd, kvd, f) = (c.d_model, c.q_dim(), c.kv_dim(), c.ffn_dim);
        let width = qd + 2 * kvd;
        let start = self.pos;
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let positions: Vec<i32> = (start..start + n).map(|p| p as i32).collect();
        let ids = self.upload(&ids, "uploading token ids")?;
        let pos = self.upload(&positions, "uploading positions")?;
        let start_buf = self.upload(&[start as i32], "uploading positions")?;
        let ctx_lens = self.upload(&[(start + n) as i32], "uploading positions")?;

        let mut x: R::Buffer<f32> = zeros(&self.rt, n * d, "allocating activations")?;
        let grid = (n as u32, d.div_ceil(BLOCK) as u32);
        embed_rows::<bf16, { BLOCK as i32 }>::launch(&self.rt, grid, &self.w.tok_embd, &ids, &mut x, d as i32).map_err(dev("embedding"))?;
        let mut h: R::Buffer<bf16> = zeros(&self.rt, n * d, "allocating activations")?;
        let mut qkv: R::Buffer<bf16> = zeros(&self.rt, n * width, "allocating activations")?;
        let mut att: R::Buffer<bf16> = zeros(&self.rt, n * qd, "allocating activations")?;
        let mut proj: R::Buffer<bf16> = zeros(&self.rt, n * d, "allocating activations")?;
        let mut gu: R::Buffer<bf16> = zeros(&self.rt, n * 2 * f, "allocating activations")?;
        let mut act: R::Buffer<bf16> = zeros(&self.rt, n * f, "allocating activations")?;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let shape = self.shape;
        let attn = |e: kernels::kv_attention::AttnError<R::Error>| LlamaError::Backend(e.to_string());

        for li in 0..c.n_layers {
            let l = &self.w.layers[li];
            self.norm(&x, &l.attn_norm, 0, n, &mut h)?;
            linear(&self.rt, &mut self.gemm, &h, n, &self.w.layers[li].qkv, &mut qkv)?;
            self.rope(&mut qkv, &pos, n)?;
            let at = RowsAt { k_off: qd, v_off: qd + kvd, stride: width };
            append_rows(&self.rt, &shape, n, &qkv, &qkv, at, &start_buf, &mut self.k_cache[li], &mut self.v_cache[li]).map_err(attn)?;
            if n == 1 {
                let (po, pm, pl) = &mut self.part;
                let bufs = DecodeBuffers { q: &qkv, k_cache: &self.k_cache[li], v_cache: &self.v_cache[li], ctx_lens: &ctx_lens, part_o: po, part_m: pm, part_l: pl, out: &mut att };
                decode_step(&self.rt, &shape, self.decode, scale, bufs).map_err(attn)?;
            } else {
                let chunk = Chunk { q_len: n, start, causal: true };
                let bufs = PrefillBuffers { q: &qkv, k_cache: &self.k_cache[li], v_cache: &self.v_cache[li], out: &mut att };
                prefill_step(&self.rt, &shape, chunk, QueriesAt { off: 0, stride: width }, PrefillConfig::for_chunk(&shape, &chunk), scale, bufs).map_err(attn)?;
            }
            linear(&self.rt, &mut self.gemm, &att, n, &self.w.layers[li].wo, &mut proj)?;
            let blocks = (n * d).div_ceil(BLOCK) as u32;
            add_into::<bf16, { BLOCK as i32 }>::launch(&self.rt, blocks, &mut x, &proj, (n * d) as i32).map_err(dev("residual add"))?;
            self.norm(&x, &self.w.layers[li].ffn_norm, 0, n, &mut h)?;
            linear(&self.rt, &mut self.gemm, &h, n, &self.w.layers[li].gate_up, &mut gu)?;
            let grid = (n as u32, f.div_ceil(BLOCK) as u32);
            silu_mul_halves::<bf16, { BLOCK as i32 }>::launch(&self.rt, grid, &gu, &mut act, f as i32).map_err(dev("SwiGLU"))?;
            linear(&self.rt, &mut self.gemm, &act, n, &self.w.layers[li].down, &mut proj)?;
            add_into::<bf16, { BLOCK as i32 }>::launch(&self.rt, blocks, &mut x, &proj, (n * d) as i32).map_err(dev("residual add"))?;
        }
        self.pos += n;

        let rows = if all_logits { n } else { 1 };
        let mut hn: R::Buffer<bf16> = zeros(&self.rt, rows * d, "allocating activations")?;
        self.norm(&x, &self.w.norm, n - rows, rows, &mut hn)?;
        let mut logits: R::Buffer<f32> = zeros(&self.rt, rows * c.vocab_size, "allocating logits")?;
        linear(&self.rt, &mut self.gemm, &hn, rows, &self.w.output, &mut logits)?;
        self.rt.download(&logits).map(|mut v| {
            v.truncate(rows * c.vocab_size);
            v
        }).map_err(dev("downloading logits"))
    }
}
