//! The model's weights as the GPU backend keeps them: bf16 matrices on the device, Q/K/V fused into one
//! matrix and gate/up into another, norms in f32, and the RoPE tables.

use crate::config::{LlamaConfig, RopeLayout};
use crate::error::{LlamaError, Result};
use crate::model::LlamaWeights;
use crate::tensor::Tensor;
use dsl_core::prelude::bf16;
use dsl_core::runtime::Runtime;

/// A `[rows, cols]` bf16 matrix on the device (a linear layer's weight, PyTorch layout).
pub struct Matrix<R: Runtime> {
    pub buf: R::Buffer<bf16>,
    pub rows: usize,
    pub cols: usize,
}

/// One transformer block's weights.
pub struct LayerOnDevice<R: Runtime> {
    pub attn_norm: R::Buffer<f32>,
    /// `[q_dim + 2 kv_dim, d]`: Q's rows, then K's, then V's.
    pub qkv: Matrix<R>,
    pub wo: Matrix<R>,
    pub ffn_norm: R::Buffer<f32>,
    /// `[2 ffn, d]`: the gate's rows, then up's.
    pub gate_up: Matrix<R>,
    pub down: Matrix<R>,
}

/// Every weight of the model on the device.
pub struct WeightsOnDevice<R: Runtime> {
    pub tok_embd: R::Buffer<bf16>,
    pub layers: Vec<LayerOnDevice<R>>,
    pub norm: R::Buffer<f32>,
    pub output: Matrix<R>,
    /// `[capacity, rope_dim / 2]` cosines and sines of every position's angles (f32, computed in f64
    /// as the CPU backend does).
    pub cos: R::Buffer<f32>,
    pub sin: R::Buffer<f32>,
}

pub(super) fn dev<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> LlamaError + '_ {
    move |e| LlamaError::Backend(format!("{what}: {e}"))
}

fn to_bf16(v: &[f32]) -> Vec<bf16> {
    v.iter().map(|&x| bf16::from_f32(x)).collect()
}

/// The rows of `w` as f32, with the rows of each head reordered from llama.cpp's interleaved RoPE pairs
/// to the half-split ones the RoPE kernel rotates (for Q and K of a GGUF file): row `2i` of a head goes
/// to `i`, row `2i + 1` to `rope_dim / 2 + i`. Q·K is unchanged, since both get the same order.
fn rows_for_rope(w: &Tensor, heads: usize, c: &LlamaConfig) -> Result<Vec<f32>> {
    let v = w.to_f32()?;
    if c.rope_layout == RopeLayout::Half {
        return Ok(v);
    }
    let (hd, half, cols) = (c.head_dim, c.rope_dim / 2, w.cols());
    let mut out = v.clone();
    for h in 0..heads {
        for i in 0..half {
            let (src_a, src_b) = (h * hd + 2 * i, h * hd + 2 * i + 1);
            let (dst_a, dst_b) = (h * hd + i, h * hd + half + i);
            out[dst_a * cols..(dst_a + 1) * cols].copy_from_slice(&v[src_a * cols..(src_a + 1) * cols]);
            out[dst_b * cols..(dst_b + 1) * cols].copy_from_slice(&v[src_b * cols..(src_b + 1) * cols]);
        }
    }
    Ok(out)
}

fn matrix<R: Runtime>(rt: &R, values: &[f32], rows: usize, cols: usize, what: &str) -> Result<Matrix<R>> {
    let buf = rt.upload(&to_bf16(values)).map_err(dev(what))?;
    Ok(Matrix { buf, rows, cols })
}

/// Uploads `w` for a cache of `capacity` positions (the RoPE tables' length).
pub fn upload<R: Runtime>(rt: &R, w: &LlamaWeights, capacity: usize) -> Result<WeightsOnDevice<R>> {
    let c = &w.config;
    let (d, qd, kvd, f) = (c.d_model, c.q_dim(), c.kv_dim(), c.ffn_dim);
    if c.rope_dim % 2 != 0 || c.rope_dim > c.head_dim {
        return Err(LlamaError::Backend(format!("rope over {} of {} dimensions per head is not supported on the GPU", c.rope_dim, c.head_dim)));
    }
    let f32s = |t: &Tensor, what: &str| -> Result<R::Buffer<f32>> { rt.upload(&t.to_f32()?).map_err(dev(what)) };
    let mut layers = Vec::with_capacity(w.layers.len());
    for (i, l) in w.layers.iter().enumerate() {
        let mut qkv = rows_for_rope(&l.wq, c.n_heads, c)?;
        qkv.extend(rows_for_rope(&l.wk, c.n_kv_heads, c)?);
        qkv.extend(l.wv.to_f32()?);
        let mut gate_up = l.w_gate.to_f32()?;
        gate_up.extend(l.w_up.to_f32()?);
        let what = format!("uploading layer {i}");
        layers.push(LayerOnDevice {
            attn_norm: f32s(&l.attn_norm, &what)?,
            qkv: matrix(rt, &qkv, qd + 2 * kvd, d, &what)?,
            wo: matrix(rt, &l.wo.to_f32()?, d, qd, &what)?,
            ffn_norm: f32s(&l.ffn_norm, &what)?,
            gate_up: matrix(rt, &gate_up, 2 * f, d, &what)?,
            down: matrix(rt, &l.w_down.to_f32()?, d, f, &what)?,
        });
    }
    let inv = c.rope_inv_freqs();
    let (mut cos, mut sin) = (Vec::with_capacity(capacity * inv.len()), Vec::with_capacity(capacity * inv.len()));
    for p in 0..capacity {
        let (cs, sn) = crate::backend::cpu::rope_table(p, &inv, c.rope_linear_scale);
        cos.extend(cs);
        sin.extend(sn);
    }
    Ok(WeightsOnDevice {
        tok_embd: rt.upload(&to_bf16(&w.tok_embd.to_f32()?)).map_err(dev("uploading the embeddings"))?,
        layers,
        norm: f32s(&w.norm, "uploading the output norm")?,
        output: matrix(rt, &w.output.to_f32()?, c.vocab_size, d, "uploading the LM head")?,
        cos: rt.upload(&cos).map_err(dev("uploading the RoPE table"))?,
        sin: rt.upload(&sin).map_err(dev("uploading the RoPE table"))?,
    })
}
