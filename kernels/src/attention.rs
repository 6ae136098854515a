//! Flash-attention forward pass (online softmax), one (batch, head) slice per grid row.

use dsl_core::lang::DotOperands;
use dsl_core::prelude::*;

/// `out = softmax(scale · Q Kᵀ + mask) · V` for each of the `batch * heads` slices, computed without
/// materializing the `[seq, seq]` score matrix (FlashAttention-2's forward loop).
///
/// - Layout: `Q`, `K`, `V`, `out` are `[batch * heads, seq, head_dim]` tensors; slice `bh` of `Q` starts
///   at `q + bh * stride_qb`, its row `i` at `+ i * stride_qs`, and `head_dim` is contiguous (likewise
///   `stride_kb/ks`, `stride_vb/vs`, `stride_ob/os`). Queries and keys have the same `seq`.
/// - Grid: `(cdiv(seq, BLOCK_M), batch * heads)`: program `(i, bh)` computes query rows
///   `i * BLOCK_M..` of slice `bh`.
/// - `BLOCK_D` is a power of two `>= head_dim` (the head_dim tail is masked); keys are visited in
///   `BLOCK_N`-wide blocks by a runtime loop carrying the running row max `m`, running sum `l` and the
///   unnormalized output `acc` (rescaled by `exp(m_old - m_new)` when the max grows).
/// - `CAUSAL`: query `i` attends keys `j <= i` only, and the loop stops at the block holding the
///   diagonal; otherwise all `seq` keys.
/// - Scores and softmax in f32; `P` is converted to `T` for the `P · V` product (as Triton's tutorial
///   does), with f32 accumulation; the output is rounded once to `T` (`f32`, `f16`, `bf16`).
#[kernel]
pub fn flash_attention<T, const CAUSAL: bool, const BLOCK_M: i32, const BLOCK_N: i32, const BLOCK_D: i32>(
    q: Ptr<T>,
    k: Ptr<T>,
    v: Ptr<T>,
    out: MutPtr<T>,
    seq: i32,
    head_dim: i32,
    stride_qb: i32,
    stride_qs: i32,
    stride_kb: i32,
    stride_ks: i32,
    stride_vb: i32,
    stride_vs: i32,
    stride_ob: i32,
    stride_os: i32,
    scale: f32,
) where
    T: Float + DotOperands<T>,
{
    let start_m = program_id(0) * BLOCK_M;
    let bh = program_id(1).to::<i64>();
    let rm = start_m + arange(0, BLOCK_M);
    let rd = arange(0, BLOCK_D);
    let rn0 = arange(0, BLOCK_N);
    let d_ok = rd.expand_dims(0) < head_dim;
    let q_mask = (rm.expand_dims(1) < seq) & d_ok;
    let q_tile = load_masked(q + bh * stride_qb + rm.expand_dims(1) * stride_qs + rd.expand_dims(0), q_mask, 0.0);
    let k_base = k + bh * stride_kb;
    let v_base = v + bh * stride_vb;

    let mut m_i = full::<f32>([BLOCK_M], f32::NEG_INFINITY);
    let mut l_i = zeros::<f32>([BLOCK_M]);
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_D]);
    let hi = if CAUSAL { minimum(start_m + BLOCK_M, seq) } else { seq };
    for start_n in (0..hi).step_by(BLOCK_N) {
        let rn = start_n + rn0;
        let kv_mask = (rn.expand_dims(1) < seq) & d_ok;
        let kv_offs = rn.expand_dims(1) * stride_ks + rd.expand_dims(0);
        let k_tile = load_masked(k_base + kv_offs, kv_mask, 0.0);
        let s = dot(q_tile, k_tile.trans(), zeros::<f32>([BLOCK_M, BLOCK_N])) * scale;
        let in_seq = (rn.expand_dims(0) < seq).broadcast_to([BLOCK_M, BLOCK_N]);
        let valid = if CAUSAL { in_seq & (rn.expand_dims(0) <= rm.expand_dims(1)) } else { in_seq };
        let s = where_(valid, s, f32::NEG_INFINITY);
        let m_new = maximum(m_i, max(s, 1));
        let p = exp(s - m_new.expand_dims(1));
        let alpha = exp(m_i - m_new);
        l_i = l_i * alpha + sum(p, 1);
        let v_offs = rn.expand_dims(1) * stride_vs + rd.expand_dims(0);
        let v_tile = load_masked(v_base + v_offs, kv_mask, 0.0);
        acc = dot(p.to::<T>(), v_tile, acc * alpha.expand_dims(1));
        m_i = m_new;
    }
    let o = acc / l_i.expand_dims(1);
    let o_offs = rm.expand_dims(1) * stride_os + rd.expand_dims(0);
    store_masked(out + bh * stride_ob + o_offs, o.to::<T>(), q_mask);
}
