//! CPU backend: rayon for parallelism, `matrixmultiply` for the batched
//! (prompt) matrix products.
//!
//! Weights stay in their stored format (quantized or not, usually borrowed
//! from the file's memory map). A matrix product dequantizes a block of
//! weight rows into an `f32` scratch buffer on the worker thread and
//! multiplies it right away, so memory use stays at the size of the file and
//! decode reads the compact quantized bytes rather than 4-byte floats.

use super::forward::{forward, Linear, Norm, Ops};
use super::{kernels, Backend};
use crate::config::{LlamaConfig, RopeLayout};
use crate::error::{LlamaError, Result};
use crate::model::LlamaWeights;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::sync::Arc;

/// Batches up to this many tokens use row-by-row dot products instead of sgemm.
pub const SMALL_BATCH: usize = 8;

/// Runs a [`LlamaWeights`] on the CPU.
pub struct CpuBackend {
    w: Arc<LlamaWeights>,
    inv_freqs: Vec<f32>,
    capacity: usize,
    pos: usize,
    /// Per layer, `[pos, kv_dim]` keys (after RoPE) and values.
    k_cache: Vec<Vec<f32>>,
    v_cache: Vec<Vec<f32>>,
}

impl CpuBackend {
    /// `capacity` is clamped to the model's context length.
    pub fn new(w: Arc<LlamaWeights>, capacity: usize) -> Result<CpuBackend> {
        w.validate()?;
        let c = &w.config;
        let capacity = capacity.clamp(1, c.context_length);
        let inv_freqs = c.rope_inv_freqs();
        let n = c.n_layers;
        Ok(CpuBackend {
            inv_freqs,
            capacity,
            pos: 0,
            k_cache: vec![Vec::new(); n],
            v_cache: vec![Vec::new(); n],
            w,
        })
    }
}

pub use super::kernels::dot;

/// `out[n, M] = x[n, K] · Wᵀ` for a weight `W` of shape `[M, K]` in any dtype.
pub fn matmul(w: &Tensor, x: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
    matmul_multi(&mut [(w, out)], x, n)
}

/// One unit of parallel work: rows `row0..` of a weight into `out`.
struct Task<'a> {
    w: &'a Tensor,
    row0: usize,
    out: &'a mut [f32],
}

/// Several products sharing the same input (`x·Wqᵀ`, `x·Wkᵀ`, `x·Wvᵀ`, or
/// gate and up) in a single parallel region, which halves the number of
/// thread synchronisations per layer during decode.
pub fn matmul_multi(jobs: &mut [(&Tensor, &mut [f32])], x: &[f32], n: usize) -> Result<()> {
    for (w, out) in jobs.iter() {
        let (m, k) = (w.rows(), w.cols());
        if x.len() != n * k || out.len() != n * m {
            return Err(LlamaError::tensor(
                &w.name,
                format!(
                    "matmul shape mismatch: x {} (n={n}, k={k}), out {}",
                    x.len(),
                    out.len()
                ),
            ));
        }
    }
    let threads = rayon::current_num_threads();
    if n == 1 {
        // Decode: one row at a time, dot with the activation; quantized rows
        // are read directly by a fused kernel when there is one.
        let xsum = kernels::block_sums(x);
        // Integer kernels need whole 32-blocks of activations.
        let int = kernels::has_int_kernels() && x.len() % 32 == 0;
        let xq = if int {
            Some(kernels::quantize_x(x))
        } else {
            None
        };
        let mut tasks = Vec::new();
        for (w, out) in jobs.iter_mut() {
            let per = (w.rows() / (threads * 8)).clamp(1, 256);
            for (ci, o) in out.chunks_mut(per).enumerate() {
                tasks.push(Task {
                    w,
                    row0: ci * per,
                    out: o,
                });
            }
        }
        return tasks.into_par_iter().try_for_each(|t| {
            let (w, k, rb) = (t.w, t.w.cols(), t.w.row_bytes());
            let bytes = w.bytes();
            if let (Some(xq), true) = (&xq, kernels::has_fused(w.dtype)) {
                for (j, y) in t.out.iter_mut().enumerate() {
                    let r = t.row0 + j;
                    let rbytes = &bytes[r * rb..(r + 1) * rb];
                    *y = match kernels::row_dot_int(w.dtype, rbytes, xq) {
                        Some(v) => v,
                        None => kernels::row_dot(w.dtype, rbytes, x, &xsum).unwrap_or(0.0),
                    };
                }
            } else if kernels::has_fused(w.dtype) {
                for (j, y) in t.out.iter_mut().enumerate() {
                    let r = t.row0 + j;
                    *y = kernels::row_dot(w.dtype, &bytes[r * rb..(r + 1) * rb], x, &xsum)
                        .unwrap_or(0.0);
                }
            } else {
                let mut row = vec![0f32; k];
                for (j, y) in t.out.iter_mut().enumerate() {
                    w.dequantize_rows(t.row0 + j, &mut row)?;
                    *y = dot(&row, x);
                }
            }
            Ok(())
        });
    }
    // Prefill: out_t[M, n] = W_block · xᵀ via sgemm, one block of rows per
    // task (dequantized into a scratch buffer first), then transposed.
    let mut outs_t: Vec<Vec<f32>> = jobs.iter().map(|(w, _)| vec![0f32; w.rows() * n]).collect();
    let mut tasks = Vec::new();
    for ((w, _), ot) in jobs.iter().zip(outs_t.iter_mut()) {
        // Big enough blocks to amortise sgemm's packing of xᵀ, small enough
        // to give every thread work.
        let block = (w.rows() / (threads * 2)).clamp(16, 256);
        for (ci, c) in ot.chunks_mut(block * n).enumerate() {
            tasks.push(Task {
                w,
                row0: ci * block,
                out: c,
            });
        }
    }
    tasks.into_par_iter().try_for_each(|t| -> Result<()> {
        let k = t.w.cols();
        let rows = t.out.len() / n;
        if n <= SMALL_BATCH {
            // Few tokens: sgemm would spend its time packing; dequantize one
            // row into L1 and dot it with each token instead.
            let mut row = vec![0f32; k];
            for (j, o) in t.out.chunks_exact_mut(n).enumerate() {
                t.w.dequantize_rows(t.row0 + j, &mut row)?;
                for (y, xt) in o.iter_mut().zip(x.chunks_exact(k)) {
                    *y = dot(&row, xt);
                }
            }
            return Ok(());
        }
        let mut wb = vec![0f32; rows * k];
        t.w.dequantize_rows(t.row0, &mut wb)?;
        // SAFETY: pointers and strides describe in-bounds row-major matrices:
        // A = wb [rows, k], B = xᵀ [k, n] (x is [n, k]), C = out [rows, n].
        unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                n,
                1.0,
                wb.as_ptr(),
                k as isize,
                1,
                x.as_ptr(),
                1,
                k as isize,
                0.0,
                t.out.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        Ok(())
    })?;
    for ((w, out), ot) in jobs.iter_mut().zip(&outs_t) {
        let m = w.rows();
        out.par_chunks_mut(m).enumerate().for_each(|(t, o)| {
            for (j, y) in o.iter_mut().enumerate() {
                *y = ot[j * n + t];
            }
        });
    }
    Ok(())
}

/// RMSNorm of each `d`-row of `x` times `weight`, into `out`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ms = xr.iter().map(|v| (v * v) as f64).sum::<f64>() / d as f64;
        let s = 1.0 / ((ms as f32) + eps).sqrt();
        for ((o, v), g) in or.iter_mut().zip(xr).zip(weight) {
            *o = v * s * g;
        }
    }
}

/// cos/sin of every rotated pair at `pos` (`inv_freqs.len()` each).
pub fn rope_table(pos: usize, inv_freqs: &[f32], linear_scale: f32) -> (Vec<f32>, Vec<f32>) {
    let p = pos as f64 / linear_scale as f64;
    inv_freqs
        .iter()
        .map(|f| {
            let (s, c) = (p * *f as f64).sin_cos();
            (c as f32, s as f32)
        })
        .unzip()
}

/// Rotates one head vector with a table from [`rope_table`].
pub fn rope_apply(head: &mut [f32], cos: &[f32], sin: &[f32], layout: RopeLayout) {
    let half = cos.len();
    for i in 0..half {
        let (a, b) = match layout {
            RopeLayout::Interleaved => (2 * i, 2 * i + 1),
            RopeLayout::Half => (i, i + half),
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * cos[i] - x1 * sin[i];
        head[b] = x0 * sin[i] + x1 * cos[i];
    }
}

/// Applies RoPE in place to one head vector at position `pos`.
pub fn rope(
    head: &mut [f32],
    pos: usize,
    inv_freqs: &[f32],
    linear_scale: f32,
    layout: RopeLayout,
) {
    let (c, s) = rope_table(pos, inv_freqs, linear_scale);
    rope_apply(head, &c, &s, layout);
}

#[inline]
fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn config(&self) -> &LlamaConfig {
        &self.w.config
    }
    fn position(&self) -> usize {
        self.pos
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn rewind(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
        let keep = self.pos * self.w.config.kv_dim();
        self.k_cache.iter_mut().for_each(|c| c.truncate(keep));
        self.v_cache.iter_mut().for_each(|c| c.truncate(keep));
    }

    fn forward(&mut self, tokens: &[u32], all_logits: bool) -> Result<Vec<f32>> {
        let w = self.w.clone();
        let c = &w.config;
        let n = tokens.len();
        super::check_batch(c, self.pos, self.capacity, tokens)?;
        let (d, qd, kvd, f) = (c.d_model, c.q_dim(), c.kv_dim(), c.ffn_dim);
        let start = self.pos;
        let tables = (0..n).map(|t| rope_table(start + t, &self.inv_freqs, c.rope_linear_scale)).collect();
        let out_rows = if all_logits { n } else { 1 };
        let mut step = CpuStep {
            w: &w,
            tokens,
            start,
            out_rows,
            tables,
            capacity: self.capacity,
            k_cache: &mut self.k_cache,
            v_cache: &mut self.v_cache,
            x: vec![0f32; n * d],
            h: vec![0f32; n * d],
            q: vec![0f32; n * qd],
            k: vec![0f32; n * kvd],
            v: vec![0f32; n * kvd],
            att: vec![0f32; n * qd],
            proj: vec![0f32; n * d],
            gate: vec![0f32; n * f],
            up: vec![0f32; n * f],
            logits: vec![],
        };
        forward(&mut step, c.n_layers)?;
        let logits = std::mem::take(&mut step.logits);
        self.pos += n;
        Ok(logits)
    }
}

/// One step's buffers on the CPU, and the [`Ops`] of the forward pass over them.
struct CpuStep<'a> {
    w: &'a LlamaWeights,
    tokens: &'a [u32],
    start: usize,
    /// The last rows that get logits.
    out_rows: usize,
    /// cos/sin of each token's position ([`rope_table`]).
    tables: Vec<(Vec<f32>, Vec<f32>)>,
    capacity: usize,
    k_cache: &'a mut [Vec<f32>],
    v_cache: &'a mut [Vec<f32>],
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    /// A product added to the residual stream.
    proj: Vec<f32>,
    /// The SwiGLU writes its output over `gate`.
    gate: Vec<f32>,
    up: Vec<f32>,
    logits: Vec<f32>,
}

impl Ops for CpuStep<'_> {
    fn embed(&mut self) -> Result<()> {
        let d = self.w.config.d_model;
        for (t, row) in self.tokens.iter().zip(self.x.chunks_exact_mut(d)) {
            self.w.tok_embd.dequantize_rows(*t as usize, row)?;
        }
        Ok(())
    }

    fn norm(&mut self, layer: usize, which: Norm) -> Result<()> {
        let l = &self.w.layers[layer];
        let weight = match which {
            Norm::Attention => &l.attn_norm,
            Norm::Mlp => &l.ffn_norm,
        };
        rms_norm(&self.x, &weight.to_f32()?, self.w.config.rms_eps, &mut self.h);
        Ok(())
    }

    fn linear(&mut self, layer: usize, which: Linear) -> Result<()> {
        let l = &self.w.layers[layer];
        let n = self.tokens.len();
        let s = &mut *self;
        match which {
            Linear::Qkv => matmul_multi(&mut [(&l.wq, &mut s.q), (&l.wk, &mut s.k), (&l.wv, &mut s.v)], &s.h, n),
            Linear::GateUp => matmul_multi(&mut [(&l.w_gate, &mut s.gate), (&l.w_up, &mut s.up)], &s.h, n),
            Linear::Out | Linear::Down => {
                let (w, input) = if which == Linear::Out { (&l.wo, &s.att) } else { (&l.w_down, &s.gate) };
                matmul(w, input, n, &mut s.proj)?;
                s.x.iter_mut().zip(&s.proj).for_each(|(a, b)| *a += b);
                Ok(())
            }
        }
    }

    fn rope_append(&mut self, layer: usize) -> Result<()> {
        let c = &self.w.config;
        let (qd, kvd, hd) = (c.q_dim(), c.kv_dim(), c.head_dim);
        for (t, (qr, kr)) in self.q.chunks_exact_mut(qd).zip(self.k.chunks_exact_mut(kvd)).enumerate() {
            let (cos, sin) = &self.tables[t];
            for hv in qr.chunks_exact_mut(hd).chain(kr.chunks_exact_mut(hd)) {
                rope_apply(&mut hv[..c.rope_dim], cos, sin, c.rope_layout);
            }
        }
        let (kc, vc) = (&mut self.k_cache[layer], &mut self.v_cache[layer]);
        if kc.capacity() == 0 {
            kc.reserve_exact(self.capacity * kvd);
            vc.reserve_exact(self.capacity * kvd);
        }
        kc.truncate(self.start * kvd);
        vc.truncate(self.start * kvd);
        kc.extend_from_slice(&self.k);
        vc.extend_from_slice(&self.v);
        Ok(())
    }

    fn attention(&mut self, layer: usize) -> Result<()> {
        let c = &self.w.config;
        let (qd, kvd, hd) = (c.q_dim(), c.kv_dim(), c.head_dim);
        let group = c.n_heads / c.n_kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let (kc, vc, q, start) = (&self.k_cache[layer], &self.v_cache[layer], &self.q, self.start);
        // Causal attention, one task per (token, head).
        self.att.par_chunks_mut(hd).enumerate().for_each(|(idx, out)| {
            let (t, head) = (idx / c.n_heads, idx % c.n_heads);
            let kvh = head / group;
            let qv = &q[t * qd + head * hd..t * qd + (head + 1) * hd];
            let len = start + t + 1;
            let mut scores: Vec<f32> = (0..len).map(|j| dot(qv, &kc[j * kvd + kvh * hd..j * kvd + (kvh + 1) * hd]) * scale).collect();
            let mx = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for s in scores.iter_mut() {
                *s = (*s - mx).exp();
                sum += *s;
            }
            out.iter_mut().for_each(|o| *o = 0.0);
            for (j, s) in scores.iter().enumerate() {
                let p = s / sum;
                let vv = &vc[j * kvd + kvh * hd..j * kvd + (kvh + 1) * hd];
                for (o, a) in out.iter_mut().zip(vv) {
                    *o += p * a;
                }
            }
        });
        Ok(())
    }

    fn swiglu(&mut self, _layer: usize) -> Result<()> {
        self.gate.par_iter_mut().zip(&self.up).for_each(|(g, u)| *g = silu(*g) * u);
        Ok(())
    }

    fn head(&mut self) -> Result<()> {
        let c = &self.w.config;
        let (d, rows) = (c.d_model, self.out_rows);
        let xs = &self.x[(self.tokens.len() - rows) * d..];
        let mut hn = vec![0f32; rows * d];
        rms_norm(xs, &self.w.norm.to_f32()?, c.rms_eps, &mut hn);
        self.logits = vec![0f32; rows * c.vocab_size];
        matmul(&self.w.output, &hn, rows, &mut self.logits)
    }
}
