//! The model's weights as the GPU backend keeps them: every linear layer as bf16 or as FP8 e4m3 with one
//! scale per output channel ([`Weight`]), Q/K/V fused into one matrix and gate/up into another, norms in
//! f32, and the RoPE tables. Made from a loaded model ([`upload`]) or at random on the device
//! ([`random`], for benchmarks of an architecture without a file).

use super::WeightFormat;
use crate::config::{LlamaConfig, RopeLayout};
use crate::error::{LlamaError, Result};
use crate::model::LlamaWeights;
use crate::quant::DType;
use crate::tensor::Tensor;
use dsl_core::prelude::{bf16, e4m3};
use dsl_core::runtime::Runtime;
use dsl_core::types::Elem;
use kernels::random::fill_uniform;
use rayon::prelude::*;

/// The largest finite e4m3 value: a row's largest magnitude maps to it.
const E4M3_MAX: f32 = 448.0;

/// A linear layer's weight, `[rows, cols]` row-major (PyTorch layout).
pub enum Weight<R: Runtime> {
    Bf16(R::Buffer<bf16>),
    /// `w[r, c] ≈ q[r, c] * scale[r]`: e4m3 values and one f32 scale per row (output channel).
    Fp8 { q: R::Buffer<e4m3>, scale: R::Buffer<f32> },
}

/// A `[rows, cols]` matrix on the device.
pub struct Matrix<R: Runtime> {
    pub w: Weight<R>,
    pub rows: usize,
    pub cols: usize,
}

impl<R: Runtime> Matrix<R> {
    /// Whether the GEMM reads this weight as fp8 (and so its input quantized per token).
    pub fn is_fp8(&self) -> bool {
        matches!(self.w, Weight::Fp8 { .. })
    }
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
    /// The LM head, bf16 in both formats (its logits decide the tokens; 1 GB of a Llama 3's 8 GB).
    pub output: Matrix<R>,
    /// `[capacity, rope_dim / 2]` cosines and sines of every position's angles (f32, computed in f64
    /// as the CPU backend does).
    pub cos: R::Buffer<f32>,
    pub sin: R::Buffer<f32>,
}

/// Device bytes of the weights of `c` in `format` (what [`upload`] and [`random`] allocate).
pub fn weight_bytes(c: &LlamaConfig, format: WeightFormat, capacity: usize) -> u64 {
    let (d, qd, kvd, f) = (c.d_model as u64, c.q_dim() as u64, c.kv_dim() as u64, c.ffn_dim as u64);
    let per_layer_params = (qd + 2 * kvd) * d + d * qd + 2 * f * d + d * f;
    let per_layer_rows = (qd + 2 * kvd) + d + 2 * f + d;
    let layer = match format {
        WeightFormat::Bf16 => 2 * per_layer_params,
        WeightFormat::Fp8 => per_layer_params + 4 * per_layer_rows,
    } + 8 * d;
    let vocab = c.vocab_size as u64;
    c.n_layers as u64 * layer + 2 * 2 * vocab * d + 4 * d + 2 * 4 * capacity as u64 * (c.rope_dim as u64 / 2)
}

pub(super) fn dev<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> LlamaError + '_ {
    move |e| LlamaError::Backend(format!("{what}: {e}"))
}

fn to_bf16(v: &[f32]) -> Vec<bf16> {
    v.par_iter().map(|&x| bf16::from_f32(x)).collect()
}

/// Per-row FP8 quantization: `scale[r] = max |w[r, :]| / 448` (1 for a zero row), `q = e4m3(w / scale)`.
pub fn quantize_per_row(values: &[f32], cols: usize) -> (Vec<e4m3>, Vec<f32>) {
    let scales: Vec<f32> = values
        .par_chunks(cols)
        .map(|row| {
            let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            if amax > 0.0 {
                amax / E4M3_MAX
            } else {
                1.0
            }
        })
        .collect();
    let q = values
        .par_chunks(cols)
        .zip(&scales)
        .flat_map_iter(|(row, &s)| row.iter().map(move |&v| e4m3::from_f32((v / s).clamp(-E4M3_MAX, E4M3_MAX))))
        .collect();
    (q, scales)
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

fn matrix<R: Runtime>(rt: &R, values: &[f32], rows: usize, cols: usize, format: WeightFormat, what: &str) -> Result<Matrix<R>> {
    let w = match format {
        WeightFormat::Bf16 => Weight::Bf16(rt.upload(&to_bf16(values)).map_err(dev(what))?),
        WeightFormat::Fp8 => {
            let (q, scale) = quantize_per_row(values, cols);
            Weight::Fp8 { q: rt.upload(&q).map_err(dev(what))?, scale: rt.upload(&scale).map_err(dev(what))? }
        }
    };
    Ok(Matrix { w, rows, cols })
}

/// The e4m3 values and row scales of `parts` stacked, if every part is an FP8 weight as stored
/// (`F8_E4M3` with its row scales); `None` otherwise.
fn stored_fp8(parts: &[(&Tensor, usize)]) -> Option<(Vec<e4m3>, Vec<f32>)> {
    let (mut q, mut scale) = (vec![], vec![]);
    for (t, _) in parts {
        let s = t.row_scale.as_ref().filter(|_| t.dtype == DType::F8E4M3)?;
        q.extend(t.bytes().iter().map(|&b| e4m3::from_bits(b)));
        scale.extend_from_slice(s);
    }
    Some((q, scale))
}

/// One linear layer's matrix: the rows of `parts` stacked (Q, K, V; gate, up; or one weight), each
/// `(weight, heads)` with `heads > 0` for Q and K, whose rows get the rotary order of [`rows_for_rope`].
/// In fp8, a checkpoint's FP8 weights go up as stored, bytes and scales unchanged (nothing is rounded
/// twice); other weights are quantized per row here.
fn linear<R: Runtime>(rt: &R, c: &LlamaConfig, parts: &[(&Tensor, usize)], format: WeightFormat, what: &str) -> Result<Matrix<R>> {
    let cols = parts.first().map_or(0, |(t, _)| t.cols());
    if let Some((t, _)) = parts.iter().find(|(t, _)| t.cols() != cols) {
        return Err(LlamaError::tensor(&t.name, format!("{} columns where the layer's other weights have {cols}", t.cols())));
    }
    let rows = parts.iter().map(|(t, _)| t.rows()).sum();
    let reordered = c.rope_layout != RopeLayout::Half && parts.iter().any(|&(_, heads)| heads > 0);
    if let (WeightFormat::Fp8, false, Some((q, scale))) = (format, reordered, stored_fp8(parts)) {
        let w = Weight::Fp8 { q: rt.upload(&q).map_err(dev(what))?, scale: rt.upload(&scale).map_err(dev(what))? };
        return Ok(Matrix { w, rows, cols });
    }
    let mut values = Vec::with_capacity(rows * cols);
    for &(t, heads) in parts {
        values.extend(if heads > 0 { rows_for_rope(t, heads, c)? } else { t.to_f32()? });
    }
    matrix(rt, &values, rows, cols, format, what)
}

fn check_rope(c: &LlamaConfig) -> Result<()> {
    if c.rope_dim % 2 != 0 || c.rope_dim > c.head_dim {
        return Err(LlamaError::Backend(format!("rope over {} of {} dimensions per head is not supported on the GPU", c.rope_dim, c.head_dim)));
    }
    Ok(())
}

fn rope_tables<R: Runtime>(rt: &R, c: &LlamaConfig, capacity: usize) -> Result<(R::Buffer<f32>, R::Buffer<f32>)> {
    let inv = c.rope_inv_freqs();
    let (mut cos, mut sin) = (Vec::with_capacity(capacity * inv.len()), Vec::with_capacity(capacity * inv.len()));
    for p in 0..capacity {
        let (cs, sn) = crate::backend::cpu::rope_table(p, &inv, c.rope_linear_scale);
        cos.extend(cs);
        sin.extend(sn);
    }
    Ok((rt.upload(&cos).map_err(dev("uploading the RoPE table"))?, rt.upload(&sin).map_err(dev("uploading the RoPE table"))?))
}

/// Uploads `w` in `format` for a cache of `capacity` positions (the RoPE tables' length), calling
/// `progress(layer)` after each layer.
pub fn upload<R: Runtime>(rt: &R, w: &LlamaWeights, format: WeightFormat, capacity: usize, progress: &mut dyn FnMut(usize)) -> Result<WeightsOnDevice<R>> {
    let c = &w.config;
    check_rope(c)?;
    let f32s = |t: &Tensor, what: &str| -> Result<R::Buffer<f32>> { rt.upload(&t.to_f32()?).map_err(dev(what)) };
    let mut layers = Vec::with_capacity(w.layers.len());
    for (i, l) in w.layers.iter().enumerate() {
        let what = format!("uploading layer {i}");
        layers.push(LayerOnDevice {
            attn_norm: f32s(&l.attn_norm, &what)?,
            qkv: linear(rt, c, &[(&l.wq, c.n_heads), (&l.wk, c.n_kv_heads), (&l.wv, 0)], format, &what)?,
            wo: linear(rt, c, &[(&l.wo, 0)], format, &what)?,
            ffn_norm: f32s(&l.ffn_norm, &what)?,
            gate_up: linear(rt, c, &[(&l.w_gate, 0), (&l.w_up, 0)], format, &what)?,
            down: linear(rt, c, &[(&l.w_down, 0)], format, &what)?,
        });
        progress(i + 1);
    }
    let (cos, sin) = rope_tables(rt, c, capacity)?;
    Ok(WeightsOnDevice {
        tok_embd: rt.upload(&to_bf16(&w.tok_embd.to_f32()?)).map_err(dev("uploading the embeddings"))?,
        layers,
        norm: f32s(&w.norm, "uploading the output norm")?,
        output: matrix(rt, &w.output.to_f32()?, c.vocab_size, c.d_model, WeightFormat::Bf16, "uploading the LM head")?,
        cos,
        sin,
    })
}

/// Elements per program of the random fill.
const FILL_BLOCK: i32 = 1024;

/// A buffer of `n` values uniform on `[-scale, scale)`, made on the device from `seed`.
fn random_buf<R: Runtime, T: dsl_core::lang::Numeric + dsl_core::types::Elem + Default>(rt: &R, n: usize, seed: u32, scale: f32) -> Result<R::Buffer<T>> {
    let what = "making random weights";
    let mut b = rt.upload(&vec![T::default(); n]).map_err(dev(what))?;
    if n >= i32::MAX as usize {
        return Err(LlamaError::Backend(format!("a random tensor of {n} elements is too large")));
    }
    fill_uniform::<T, FILL_BLOCK>::launch(rt, n.div_ceil(FILL_BLOCK as usize) as u32, &mut b, n as i32, seed, scale).map_err(dev(what))?;
    Ok(b)
}

/// A random `[rows, cols]` matrix with the variance of `1 / cols` (uniform on `±sqrt(3 / cols)`), so
/// that activations keep their size through the layers.
fn random_matrix<R: Runtime>(rt: &R, rows: usize, cols: usize, format: WeightFormat, seed: u32) -> Result<Matrix<R>> {
    let a = (3.0 / cols as f32).sqrt();
    let w = match format {
        WeightFormat::Bf16 => Weight::Bf16(random_buf(rt, rows * cols, seed, a)?),
        WeightFormat::Fp8 => Weight::Fp8 {
            q: random_buf(rt, rows * cols, seed, E4M3_MAX)?,
            scale: rt.upload(&vec![a / E4M3_MAX; rows]).map_err(dev("making random weights"))?,
        },
    };
    Ok(Matrix { w, rows, cols })
}

/// Random weights of the architecture `c`, made on the device (no host copy of them exists): uniform
/// matrices (see [`random_matrix`]), unit norms, embeddings uniform on `±1`. For speed measurements:
/// the values are not a trained model's, the work and the bytes are.
pub fn random<R: Runtime>(rt: &R, c: &LlamaConfig, format: WeightFormat, capacity: usize, seed: u32, progress: &mut dyn FnMut(usize)) -> Result<WeightsOnDevice<R>> {
    check_rope(c)?;
    let (d, qd, kvd, f) = (c.d_model, c.q_dim(), c.kv_dim(), c.ffn_dim);
    let ones = |n: usize| rt.upload(&vec![1f32; n]).map_err(dev("making random weights"));
    let mut layers = Vec::with_capacity(c.n_layers);
    for i in 0..c.n_layers {
        let s = seed.wrapping_add(16 * i as u32 + 1);
        layers.push(LayerOnDevice {
            attn_norm: ones(d)?,
            qkv: random_matrix(rt, qd + 2 * kvd, d, format, s)?,
            wo: random_matrix(rt, d, qd, format, s + 1)?,
            ffn_norm: ones(d)?,
            gate_up: random_matrix(rt, 2 * f, d, format, s + 2)?,
            down: random_matrix(rt, d, f, format, s + 3)?,
        });
        progress(i + 1);
    }
    let (cos, sin) = rope_tables(rt, c, capacity)?;
    Ok(WeightsOnDevice {
        tok_embd: random_buf(rt, c.vocab_size * d, seed ^ 0x5eed, 1.0)?,
        layers,
        norm: ones(d)?,
        output: random_matrix(rt, c.vocab_size, d, WeightFormat::Bf16, seed ^ 0xbead)?,
        cos,
        sin,
    })
}

/// A device buffer of `n` (at least one) default values; `what` names the allocation in an error.
pub(super) fn zeros<R: Runtime, T: Elem + Default + Copy>(rt: &R, n: usize, what: &str) -> Result<R::Buffer<T>> {
    rt.upload(&vec![T::default(); n.max(1)]).map_err(dev(what))
}
