//! CPU backend: rayon for parallelism, `matrixmultiply` for the batched
//! (prompt) matrix products.
//!
//! Weights stay in their stored format (quantized or not, usually borrowed
//! from the file's memory map). A matrix product dequantizes a block of
//! weight rows into an `f32` scratch buffer on the worker thread and
//! multiplies it right away, so memory use stays at the size of the file and
//! decode reads the compact quantized bytes rather than 4-byte floats.

use super::{kernels, Backend};
use crate::config::{LlamaConfig, RopeLayout};
use crate::error::{LlamaError, Result};
use crate::model::LlamaWeights;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::sync::Arc;

/// Weight rows dequantized per task in batched products.
const ROW_BLOCK: usize = 64;

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
        Ok(CpuBackend { inv_freqs, capacity, pos: 0, k_cache: vec![Vec::new(); n], v_cache: vec![Vec::new(); n], w })
    }
}

pub use super::kernels::dot;

/// `out[n, M] = x[n, K] · Wᵀ` for a weight `W` of shape `[M, K]` in any dtype.
pub fn matmul(w: &Tensor, x: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
    let (m, k) = (w.rows(), w.cols());
    if x.len() != n * k || out.len() != n * m {
        return Err(LlamaError::tensor(&w.name, format!("matmul shape mismatch: x {} (n={n}, k={k}), out {}", x.len(), out.len())));
    }
    if n == 1 {
        // Decode: one row at a time, dot with the activation; quantized rows
        // are read directly by a fused kernel when there is one.
        let rows_per_task = (m / (rayon::current_num_threads() * 8)).clamp(1, 256);
        let rb = w.row_bytes();
        let bytes = w.bytes();
        let fused = kernels::has_fused(w.dtype);
        let xsum = if fused { kernels::block_sums(x) } else { Vec::new() };
        return out.par_chunks_mut(rows_per_task).enumerate().try_for_each(|(ci, o)| {
            let mut row = if fused { Vec::new() } else { vec![0f32; k] };
            for (j, y) in o.iter_mut().enumerate() {
                let r = ci * rows_per_task + j;
                if fused {
                    let rbytes = &bytes[r * rb..(r + 1) * rb];
                    *y = kernels::row_dot(w.dtype, rbytes, x, &xsum).unwrap_or(0.0);
                } else {
                    w.dequantize_rows(r, &mut row)?;
                    *y = dot(&row, x);
                }
            }
            Ok(())
        });
    }
    // Prefill: out_t[M, n] = W_block · xᵀ via sgemm, one block of rows per task.
    let mut out_t = vec![0f32; m * n];
    out_t.par_chunks_mut(ROW_BLOCK * n).enumerate().try_for_each(|(ci, c)| -> Result<()> {
        let rows = c.len() / n;
        let mut wb = vec![0f32; rows * k];
        w.dequantize_rows(ci * ROW_BLOCK, &mut wb)?;
        // SAFETY: pointers and strides describe in-bounds row-major matrices:
        // A = wb [rows, k], B = xᵀ [k, n] (x is [n, k]), C = c [rows, n].
        unsafe {
            matrixmultiply::sgemm(
                rows, k, n, 1.0,
                wb.as_ptr(), k as isize, 1,
                x.as_ptr(), 1, k as isize,
                0.0,
                c.as_mut_ptr(), n as isize, 1,
            );
        }
        Ok(())
    })?;
    out.par_chunks_mut(m).enumerate().for_each(|(t, o)| {
        for (j, y) in o.iter_mut().enumerate() {
            *y = out_t[j * n + t];
        }
    });
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

/// Applies RoPE in place to one head vector at position `pos`.
pub fn rope(head: &mut [f32], pos: usize, inv_freqs: &[f32], linear_scale: f32, layout: RopeLayout) {
    let half = inv_freqs.len();
    let p = pos as f64 / linear_scale as f64;
    for (i, f) in inv_freqs.iter().enumerate() {
        let (s, c) = (p * *f as f64).sin_cos();
        let (s, c) = (s as f32, c as f32);
        let (a, b) = match layout {
            RopeLayout::Interleaved => (2 * i, 2 * i + 1),
            RopeLayout::Half => (i, i + half),
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * c - x1 * s;
        head[b] = x0 * s + x1 * c;
    }
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
        if n == 0 {
            return Err(LlamaError::Invalid("forward called with no tokens".into()));
        }
        if self.pos + n > self.capacity {
            return Err(LlamaError::Invalid(format!(
                "context full: {} positions used + {n} new > capacity {}",
                self.pos, self.capacity
            )));
        }
        let (d, qd, kvd, hd) = (c.d_model, c.q_dim(), c.kv_dim(), c.head_dim);
        let group = c.n_heads / c.n_kv_heads;

        // Embeddings.
        let mut x = vec![0f32; n * d];
        for (t, row) in tokens.iter().zip(x.chunks_exact_mut(d)) {
            if *t as usize >= c.vocab_size {
                return Err(LlamaError::Invalid(format!("token id {t} out of range (vocab {})", c.vocab_size)));
            }
            w.tok_embd.dequantize_rows(*t as usize, row)?;
        }

        let mut h = vec![0f32; n * d];
        let mut q = vec![0f32; n * qd];
        let mut k = vec![0f32; n * kvd];
        let mut v = vec![0f32; n * kvd];
        let mut att = vec![0f32; n * qd];
        let mut proj = vec![0f32; n * d];
        let mut gate = vec![0f32; n * c.ffn_dim];
        let mut up = vec![0f32; n * c.ffn_dim];
        let scale = 1.0 / (hd as f32).sqrt();
        let start = self.pos;

        for (li, l) in w.layers.iter().enumerate() {
            rms_norm(&x, &l.attn_norm.to_f32()?, c.rms_eps, &mut h);
            matmul(&l.wq, &h, n, &mut q)?;
            matmul(&l.wk, &h, n, &mut k)?;
            matmul(&l.wv, &h, n, &mut v)?;
            let (inv, ls, layout) = (&self.inv_freqs, c.rope_linear_scale, c.rope_layout);
            q.par_chunks_mut(qd).enumerate().for_each(|(t, row)| {
                row.chunks_exact_mut(hd).for_each(|hv| rope(&mut hv[..c.rope_dim], start + t, inv, ls, layout))
            });
            k.par_chunks_mut(kvd).enumerate().for_each(|(t, row)| {
                row.chunks_exact_mut(hd).for_each(|hv| rope(&mut hv[..c.rope_dim], start + t, inv, ls, layout))
            });
            let kc = &mut self.k_cache[li];
            let vc = &mut self.v_cache[li];
            if kc.capacity() == 0 {
                kc.reserve_exact(self.capacity * kvd);
                vc.reserve_exact(self.capacity * kvd);
            }
            kc.truncate(start * kvd);
            vc.truncate(start * kvd);
            kc.extend_from_slice(&k);
            vc.extend_from_slice(&v);
            let (kc, vc) = (&*kc, &*vc);

            // Causal attention, one task per (token, head).
            att.par_chunks_mut(hd).enumerate().for_each(|(idx, out)| {
                let (t, head) = (idx / c.n_heads, idx % c.n_heads);
                let kvh = head / group;
                let qv = &q[t * qd + head * hd..t * qd + (head + 1) * hd];
                let len = start + t + 1;
                let mut scores: Vec<f32> = (0..len)
                    .map(|j| dot(qv, &kc[j * kvd + kvh * hd..j * kvd + (kvh + 1) * hd]) * scale)
                    .collect();
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
            matmul(&l.wo, &att, n, &mut proj)?;
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);

            // SwiGLU MLP.
            rms_norm(&x, &l.ffn_norm.to_f32()?, c.rms_eps, &mut h);
            matmul(&l.w_gate, &h, n, &mut gate)?;
            matmul(&l.w_up, &h, n, &mut up)?;
            gate.par_iter_mut().zip(&up).for_each(|(g, u)| *g = silu(*g) * u);
            matmul(&l.w_down, &gate, n, &mut proj)?;
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        self.pos += n;

        let rows = if all_logits { n } else { 1 };
        let xs = &x[(n - rows) * d..];
        let mut hn = vec![0f32; rows * d];
        rms_norm(xs, &w.norm.to_f32()?, c.rms_eps, &mut hn);
        let mut logits = vec![0f32; rows * c.vocab_size];
        matmul(&w.output, &hn, rows, &mut logits)?;
        Ok(logits)
    }
}
