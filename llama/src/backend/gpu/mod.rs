//! GPU backend: the forward pass as launches of the `kernels` crate's kernels, generic over
//! [`StepRuntime`] (a [`dsl_core::runtime::Runtime`] that may record graphs), so the same code runs on
//! a GPU (`CudaRuntime`) and on the reference interpreter (what CI runs on the tiny models).
//!
//! Weights ([`weights`]: bf16, or FP8 with per-channel scales), activations and the KV cache stay on
//! the device; token ids go in and logits, or the greedy token, come out. A layer ([`step`]): RMSNorm
//! (f32 residual → bf16), the fused QKV GEMM, RoPE of Q in place with K rotated into the cache and V
//! appended (one kernel, reading the QKV buffer), attention (prefill over the cache for a chunk,
//! split-KV decode for one token), the output GEMM and the residual add; then RMSNorm, the fused
//! gate/up GEMM, SwiGLU, the down GEMM and the residual add. GEMMs are the split-K GEMM of
//! `kernels::fp8_gemm`, with the configurations of [`configs`], launched by [`linear`]; at a decode
//! step of one sequence they are matrix-vector products that also apply the norm before them and
//! the SwiGLU, or RoPE and the cache append, after them (six kernels a layer).
//!
//! A decode step runs eagerly once (which compiles its kernels and sizes its workspace), is then
//! recorded as a graph ([`graph`]) and replayed for every later token; its inputs are written into
//! the same device buffers before each replay.

pub mod configs;
pub mod graph;
pub mod linear;
pub mod step;
pub mod weights;

use super::Backend;
use crate::config::LlamaConfig;
use crate::error::{LlamaError, Result};
use crate::model::LlamaWeights;
pub use graph::StepRuntime;
use configs::GemmConfigs;
use kernels::kv_attention::CacheShape;
use std::sync::Arc;
use step::{Activations, Model, StepShape};
use weights::{dev, WeightsOnDevice};

/// How the GPU backend stores the linear layers' weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// bf16 (the file's values rounded once): the default, the closest to the model as trained.
    #[default]
    Bf16,
    /// FP8 e4m3 with one scale per output channel, and activations quantized per token before each
    /// GEMM: half the bytes per token (the LM head stays bf16).
    Fp8,
}

impl std::str::FromStr for WeightFormat {
    type Err = LlamaError;
    fn from_str(s: &str) -> Result<WeightFormat> {
        match s.to_ascii_lowercase().as_str() {
            "bf16" => Ok(WeightFormat::Bf16),
            "fp8" | "e4m3" => Ok(WeightFormat::Fp8),
            other => Err(LlamaError::Invalid(format!("unknown weight format `{other}` (expected bf16 or fp8)"))),
        }
    }
}

/// Options of the GPU backend.
#[derive(Debug, Clone, Copy)]
pub struct GpuOptions {
    pub weights: WeightFormat,
    /// Sequences run side by side, in lockstep (one position for all; `llama bench --batch`): each
    /// step takes the same number of tokens of each, and the KV cache holds `batch` of them. 1 for
    /// generation and chat.
    pub batch: usize,
    /// Replay each decode step as one recorded graph (where the runtime records); off: launch eagerly.
    pub graphs: bool,
    /// Programmatic dependent launch on Hopper (each kernel of a step may start while the one before
    /// it ends; `CudaRuntime::set_programmatic_launch`). Applied where the CUDA runtime is made.
    pub programmatic: bool,
    /// FP8 GEMMs run the committed autotune winners for this GPU where there are some
    /// ([`configs`]); off: the heuristic everywhere.
    pub tuned_configs: bool,
    /// Split-K GEMMs combine their partial products in their last programs (one launch) instead of
    /// with a second kernel. Off by default: measured 0.6% slower in the 8B FP8 decode graph on the
    /// H200, where programmatic launch already overlaps the second kernel's start (NOTES.md).
    pub fused_combine: bool,
    /// Every GEMM splits `K` this many times (a split-K grid of the chosen tiles), whatever its config
    /// said: for tests of the split paths on models too small to split, and experiments. `None`: as
    /// configured.
    pub split_k: Option<u32>,
    /// GEMMs of one row (decode at batch 1) run the matrix-vector product (one warp per this many rows
    /// of the weight, the nearest declared; no split-K) instead of the split-K GEMM; `None`: the
    /// split-K GEMM. The default, 2 (4 for bf16 weights): on the H100, 8B fp8 decode 260 → 281 tokens/s
    /// at ctx 128, each 8B GEMM alone 9–24% shorter (bench/llama_gpu/NOTES.md).
    pub matvec_rows: Option<u32>,
    /// FP8 weights' matrix-vector products read their activations quantized per token to e4m3 (as the
    /// split-K GEMM does) instead of as bf16. Off by default (W8A16 at decode): no quantization
    /// kernel before those GEMMs, and no activation rounding (bench/llama_gpu/NOTES.md).
    pub matvec_fp8_activations: bool,
    /// The gate-and-up matrix-vector product (decode at batch 1, bf16 activations) applies the SwiGLU
    /// in its epilogue, so no SwiGLU kernel runs after it (bench/llama_gpu/NOTES.md); off: the SwiGLU
    /// kernel.
    pub fused_swiglu: bool,
    /// The matrix-vector products after an RMSNorm (QKV, gate-and-up, the LM head at decode) read the
    /// f32 residual row and apply the norm themselves, so no norm kernel runs before them, in models
    /// up to `configs::NORM_IN_PRODUCT_MAX_K` wide (SmolLM2, not Llama-3-8B: wider rows cost the
    /// products more than the kernel); off: the norm kernel everywhere.
    pub fused_norm: bool,
    /// The QKV matrix-vector product (decode at batch 1, bf16 activations, whole-head rotary
    /// embeddings) applies RoPE and appends the keys and values to the cache in its epilogue, so no
    /// RoPE kernel runs after it; off: the RoPE and cache-append kernel.
    pub fused_rope: bool,
    /// The residual adds of a decode step (the O and down matrix-vector products) write the next
    /// RMSNorm's inputs too (`x ⊙ gamma` and, from their last program, `1 / rms(x)`), so no norm
    /// kernel runs in models where the norm is not inside the products (`fused_norm`); off: the norm
    /// kernel. Off by default: measured slower at Llama-3-8B fp8 (bench/llama_gpu/NOTES.md, 2026-12-07).
    pub norm_in_residual: bool,
    /// The decode attention's last split of each KV head combines the splits (at up to
    /// `kernels::kv_attention::decode::MAX_FUSED_SPLITS`), so no combine kernel runs after it;
    /// off (the default): the combine kernel, measured faster (bench/llama_gpu/NOTES.md, 2026-12-07).
    pub fused_attention_combine: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions { weights: WeightFormat::Bf16, batch: 1, graphs: true, programmatic: true, tuned_configs: true, fused_combine: false, split_k: None, matvec_rows: Some(2), matvec_fp8_activations: false, fused_swiglu: true, fused_norm: true, fused_rope: true, norm_in_residual: false, fused_attention_combine: false }
    }
}

/// Where the weights come from.
pub enum WeightSource<'a> {
    Loaded(&'a LlamaWeights),
    /// Made on the device from a seed, for the architecture `config` (benchmarks).
    Random { config: &'a LlamaConfig, seed: u32 },
}

/// Runs a model on a [`StepRuntime`].
pub struct GpuBackend<R: StepRuntime> {
    rt: R,
    name: &'static str,
    model: Model<R>,
    /// The one-token step's buffers: fixed for the backend's life (the graph holds their addresses).
    decode: Activations<R>,
    /// A chunk's buffers, grown to the largest chunk seen.
    prefill: Option<Activations<R>>,
    graph: Option<R::Graph>,
    /// The workspace generation the graph was recorded with.
    graph_moved: u64,
    /// The decode step has run eagerly once.
    warm: bool,
    opts: GpuOptions,
    configs: Arc<GemmConfigs>,
    capacity: usize,
    pos: usize,
}

const GIB: f64 = (1u64 << 30) as f64;

impl<R: StepRuntime> GpuBackend<R> {
    /// Uploads (or makes) the weights and allocates caches for `capacity` positions (clamped to the
    /// model's context). `name` is what [`Backend::name`] reports; `sm_count` sizes the GEMM and decode
    /// splits. Fails with the bytes needed and free when the model does not fit in device memory.
    pub fn new(rt: R, name: &'static str, sm_count: u32, source: WeightSource<'_>, capacity: usize, opts: GpuOptions) -> Result<GpuBackend<R>> {
        Self::with_progress(rt, name, sm_count, source, capacity, opts, &mut |_| {})
    }

    /// [`GpuBackend::new`], calling `progress(layer)` as the layers' weights are made.
    pub fn with_progress(rt: R, name: &'static str, sm_count: u32, source: WeightSource<'_>, capacity: usize, opts: GpuOptions, progress: &mut dyn FnMut(usize)) -> Result<GpuBackend<R>> {
        let c = match &source {
            WeightSource::Loaded(w) => {
                w.validate()?;
                w.config.clone()
            }
            WeightSource::Random { config, .. } => {
                config.validate()?;
                (*config).clone()
            }
        };
        let capacity = capacity.clamp(1, c.context_length);
        if c.n_heads % c.n_kv_heads != 0 {
            return Err(LlamaError::Backend(format!("{} query heads over {} KV heads is not a whole group", c.n_heads, c.n_kv_heads)));
        }
        if opts.batch == 0 {
            return Err(LlamaError::Invalid("a batch of 0 sequences".into()));
        }
        let shape = CacheShape { batch: opts.batch, kv_heads: c.n_kv_heads, group: c.n_heads / c.n_kv_heads, head_dim: c.head_dim, max_ctx: capacity };
        shape.check::<R::Error>().map_err(|e| LlamaError::Backend(format!("this model's attention does not fit the GPU kernels: {e}")))?;
        check_memory(rt.memory(), &c, &shape, opts.weights, capacity)?;
        let w: WeightsOnDevice<R> = match source {
            WeightSource::Loaded(w) => weights::upload(&rt, w, opts.weights, capacity, progress)?,
            WeightSource::Random { seed, .. } => weights::random(&rt, &c, opts.weights, capacity, seed, progress)?,
        };
        let model = Model::new(&rt, c.clone(), w, shape, sm_count, rt.warpgroup_mma(), opts.fused_attention_combine)?;
        let device = if opts.tuned_configs { rt.device_name() } else { None };
        let configs = Arc::new(GemmConfigs::new(device.as_deref(), sm_count, opts.fused_combine).with_split_k(opts.split_k).with_matvec_rows(opts.matvec_rows).with_matvec_fp8_activations(opts.matvec_fp8_activations).with_fused_swiglu(opts.fused_swiglu).with_fused_norm(opts.fused_norm).with_fused_rope(opts.fused_rope).with_norm_in_residual(opts.norm_in_residual));
        let decode = Activations::new(&rt, &c, opts.batch, opts.batch, opts.batch, configs.clone())?;
        Ok(GpuBackend { rt, name, model, decode, prefill: None, graph: None, graph_moved: 0, warm: false, opts, configs, capacity, pos: 0 })
    }

    /// The GEMM configurations in use.
    pub fn gemm_configs(&self) -> &GemmConfigs {
        &self.configs
    }

    /// The runtime the backend launches on.
    pub fn runtime(&self) -> &R {
        &self.rt
    }

    /// Kernel launches in the recorded decode graph (0 before it is recorded, or without graphs).
    pub fn graph_launches(&self) -> usize {
        self.graph.as_ref().map_or(0, R::launches)
    }

    /// Runs `tokens` (each sequence's in turn, equal counts) from the current position; the last
    /// `out_rows` of each sequence get logits and greedy tokens (with several sequences: 1, or all).
    /// A one-token step (a token a sequence) with one output row runs in the decode buffers, any other in
    /// the chunk's.
    fn step(&mut self, tokens: &[u32], out_rows: usize) -> Result<()> {
        let seqs = self.model.shape.batch;
        let per = tokens.len() / seqs;
        if per * seqs != tokens.len() {
            return Err(LlamaError::Invalid(format!("{} tokens do not split into {seqs} sequences of equal length", tokens.len())));
        }
        // The first check refuses an empty step before the sequences are cut.
        super::check_batch(&self.model.config, self.pos, self.capacity, &tokens[..per])?;
        for seq in tokens.chunks(per).skip(1) {
            super::check_batch(&self.model.config, self.pos, self.capacity, seq)?;
        }
        if seqs > 1 && out_rows != 1 && out_rows != per {
            return Err(LlamaError::Invalid(format!("with {seqs} sequences a step gives logits for each one's last token or all of its tokens, not {out_rows}")));
        }
        let n = tokens.len();
        let s = StepShape { n, seqs, start: self.pos, out_rows };
        let rt = &self.rt;
        if per == 1 && out_rows == 1 {
            let a = &mut self.decode;
            a.write_inputs(rt, tokens, s.start)?;
            let model = &mut self.model;
            if self.graph.is_some() && self.graph_moved != a.gemm.moved {
                self.graph = None;
            }
            if self.opts.graphs && self.warm && self.graph.is_none() {
                self.graph = rt.record(&mut |rt| step::launch_step(rt, model, a, s))?;
                self.graph_moved = a.gemm.moved;
            }
            match &self.graph {
                Some(g) if self.graph_moved == a.gemm.moved => rt.replay(g)?,
                _ => step::launch_step(rt, model, a, s)?,
            }
            self.warm = true;
        } else {
            // The widest activations (gate and up, `2 * ffn_dim` a row) must stay within the 2^31
            // elements that the kernels' 32-bit offsets address: refused before anything is allocated.
            if n * 2 * self.model.config.ffn_dim > i32::MAX as usize {
                return Err(LlamaError::Invalid(format!(
                    "a step of {seqs} x {per} tokens is too large for one forward (its gate and up rows pass 2^31 elements): use fewer tokens a step (a smaller --batch or --prompt)"
                )));
            }
            let out_all = seqs * out_rows;
            if self.prefill.as_ref().is_none_or(|a| a.rows < n || a.head.rows < out_all) {
                let rows = n.max(self.prefill.as_ref().map_or(0, |a| a.rows));
                let out = out_all.max(self.prefill.as_ref().map_or(1, |a| a.head.rows));
                self.prefill = None;
                self.prefill = Some(Activations::new(rt, &self.model.config, seqs, rows, out, self.configs.clone())?);
            }
            let a = self.prefill.as_mut().expect("allocated above");
            a.write_inputs(rt, tokens, s.start)?;
            step::launch_step(rt, &mut self.model, a, s)?;
        }
        self.pos += per;
        Ok(())
    }

    /// The output rows of the last step (the decode buffers' after a token a sequence).
    fn last_head(&self, tokens: usize) -> &step::Head<R> {
        if tokens == self.model.shape.batch {
            &self.decode.head
        } else {
            &self.prefill.as_ref().expect("a chunk ran").head
        }
    }
}

/// Refuses a model whose weights and cache do not fit in the device's free memory (with 5% and
/// 512 MiB left for activations, workspaces and kernels), saying how much each needs.
/// `memory` is the device's `(free, total)` bytes (`None`: no limit known).
fn check_memory(memory: Option<(u64, u64)>, c: &LlamaConfig, shape: &CacheShape, format: WeightFormat, capacity: usize) -> Result<()> {
    let Some((free, total)) = memory else { return Ok(()) };
    let weights = weights::weight_bytes(c, format, capacity);
    let cache = 2 * 2 * c.n_layers as u64 * shape.cache_len() as u64;
    let margin = (free / 20).max(512 << 20);
    if weights + cache + margin > free {
        return Err(LlamaError::Backend(format!(
            "the model does not fit in GPU memory: {:.2} GiB of {format:?} weights + {:.2} GiB of KV cache ({capacity} positions) + {:.2} GiB of room for activations, but {:.2} GiB of {:.2} GiB are free (try --weights fp8 or a smaller --ctx-size)",
            weights as f64 / GIB,
            cache as f64 / GIB,
            margin as f64 / GIB,
            free as f64 / GIB,
            total as f64 / GIB
        )));
    }
    Ok(())
}

impl<R: StepRuntime> Backend for GpuBackend<R>
where
    GpuBackend<R>: Send,
{
    fn name(&self) -> &'static str {
        self.name
    }
    fn config(&self) -> &LlamaConfig {
        &self.model.config
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
    fn launch_mode(&self) -> String {
        // The interpreter cannot record, so it always launches eagerly.
        let mode = if self.opts.graphs && self.name == "cuda" { "graph" } else { "eager" };
        let pdl = if self.rt.overlaps_launches() { " + PDL" } else { "" };
        // Committed winners exist for FP8 GEMMs only.
        let tuned = self.opts.weights == WeightFormat::Fp8 && self.configs.committed() > 0;
        let gemms = if tuned { "tuned GEMMs" } else { "heuristic GEMMs" };
        let combine = if self.opts.fused_combine { ", fused split-K" } else { "" };
        let matvec = match self.opts.matvec_rows {
            // The rows the layers' GEMMs run (the nearest declared to the ones asked); with several
            // sequences a decode step's GEMMs have as many rows, and run the split-K GEMM.
            Some(_) if self.model.shape.batch == 1 => {
                let fp8 = self.opts.weights == WeightFormat::Fp8;
                let rows = self.configs.choose(1, 1, 1, fp8).config.block_n;
                let act = if !fp8 { "" } else if self.configs.reads_bf16(1, true) { ", bf16 activations" } else { ", e4m3 activations" };
                let bf16_in = self.configs.reads_bf16(1, fp8);
                let swiglu = if self.opts.fused_swiglu && bf16_in { ", SwiGLU fused" } else { "" };
                let norm = if self.configs.fuses_norm(self.model.config.d_model) && bf16_in { ", norms fused" } else { "" };
                let rope = if self.opts.fused_rope && bf16_in { ", RoPE fused" } else { "" };
                let residual = if self.opts.norm_in_residual && norm.is_empty() && bf16_in { ", norms in the residual adds" } else { "" };
                format!(", matrix-vector GEMMs at batch 1 ({rows} rows a program{act}{swiglu}{norm}{rope}{residual})")
            }
            _ => String::new(),
        };
        let attention = if self.model.decode.fused_combine { ", attention combine fused" } else { "" };
        format!("{mode}{pdl}, {gemms}{combine}{matvec}{attention}")
    }

    fn batch(&self) -> usize {
        self.model.shape.batch
    }

    fn forward(&mut self, tokens: &[u32], all_logits: bool) -> Result<Vec<f32>> {
        let seqs = self.model.shape.batch;
        let rows = if all_logits { tokens.len() / seqs } else { 1 };
        let vocab = self.model.config.vocab_size;
        self.step(tokens, rows)?;
        let mut v = self.rt.download(&self.last_head(tokens.len()).logits).map_err(dev("downloading logits"))?;
        v.truncate(seqs * rows * vocab);
        Ok(v)
    }

    fn forward_greedy(&mut self, tokens: &[u32]) -> Result<u32> {
        if self.model.shape.batch != 1 {
            return Err(LlamaError::Invalid(format!("this backend runs {} sequences: use forward_greedy_batch", self.model.shape.batch)));
        }
        Ok(self.forward_greedy_batch(tokens)?[0])
    }

    fn forward_greedy_batch(&mut self, tokens: &[u32]) -> Result<Vec<u32>> {
        self.step(tokens, 1)?;
        let mut t = self.rt.download(&self.last_head(tokens.len()).tokens).map_err(dev("downloading the tokens"))?;
        t.truncate(self.model.shape.batch);
        Ok(t.into_iter().map(|t| t as u32).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On an 80 GB GPU (79 GiB free): Llama-3-70B does not fit in bf16 (141 GB of weights) and the
    /// error says what it needs and what to try; in FP8 (71 GB) it fits, as does Llama-3-8B in bf16.
    #[test]
    fn the_memory_check_refuses_what_does_not_fit() {
        let h100 = Some((79u64 << 30, 80u64 << 30));
        let check = |arch: &str, format| {
            let c = crate::arch::by_name(arch).unwrap();
            let shape = CacheShape { batch: 1, kv_heads: c.n_kv_heads, group: c.n_heads / c.n_kv_heads, head_dim: c.head_dim, max_ctx: 4096 };
            check_memory(h100, &c, &shape, format, 4096)
        };
        let e = check("llama-3-70b", WeightFormat::Bf16).unwrap_err().to_string();
        assert!(e.contains("does not fit") && e.contains("GiB of Bf16 weights") && e.contains("79.00 GiB of 80.00 GiB are free") && e.contains("--weights fp8"), "{e}");
        let w = weights::weight_bytes(&crate::arch::by_name("llama-3-70b").unwrap(), WeightFormat::Bf16, 4096) as f64 / 1e9;
        assert!((w - 141.1).abs() < 1.0, "{w} GB");
        check("llama-3-70b", WeightFormat::Fp8).unwrap();
        check("llama-3-8b", WeightFormat::Bf16).unwrap();
        assert!(check_memory(None, &crate::arch::by_name("llama-3-70b").unwrap(), &CacheShape { batch: 1, kv_heads: 8, group: 8, head_dim: 128, max_ctx: 8 }, WeightFormat::Bf16, 8).is_ok());
    }
}
