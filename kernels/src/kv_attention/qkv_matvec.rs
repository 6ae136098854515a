//! The QKV projection of a decode step at batch 1 with RoPE and the cache append in its epilogue: one
//! launch where the step ran the matrix-vector product, then [`rope_kv_append`](super::cache::rope_kv_append).
//!
//! RoPE rotates element `i` of a head with element `i + head_dim / 2`, which are rows half a head apart
//! of the fused `[Wq; Wk; Wv]` weight. So each one-warp program reads such pairs of rows (as
//! `swiglu_mv` reads its gate and up rows, through the same loop), and holds both products of each
//! rotation when its epilogue needs them: it rotates query heads into `q`, key heads into the key
//! cache at the step's position, and copies value heads into the value cache.

use super::cache::{check_rope_append, RopeTables, RowsAt};
use super::{need, AttnError, CacheShape};
use crate::fp8_gemm::{check_matvec, inv_rms, matvec_grid, paired_rows, matvec_tiles_of, GemmConfig, Operand, RmsNorm, Scale};
use crate::rope::rotate_half;
use dsl_core::lang::Numeric;
use dsl_core::prelude::*;
use dsl_core::runtime::Runtime;
use dsl_core::types::Elem;

/// One token's `qkv = A · Bᵀ` with the scales of [`scaled_mv`](crate::fp8_gemm::scaled_mv) (`scale_a`
/// one value; `scale_b` per tensor or, with `COL_SCALE`, per row of `B`), each value rounded to `T`,
/// then, at position `p = pos[0]`: query head `h` rotated into `q[h * head_dim ..]`, key head `j`
/// rotated into `k_cache[j, p, :]`, value head `j` copied into `v_cache[j, p, :]` (caches
/// `[kv_heads, max_ctx, head_dim]`; rotation in the half-split layout of [`crate::rope`], tables
/// `[positions, head_dim / 2]`). The bits of `scaled_matvec` into a `qkv` row, then `rope_kv_append`.
///
/// - `B` is `[(q_heads + 2 * kv_heads) * head_dim, K]`: the query heads' rows, the keys', the values'.
/// - Run it on one warp. Grid: `(q_heads + 2 * kv_heads) * head_dim / (2 * BLOCK_N)`; program `p`
///   computes the pairs `p * BLOCK_N ..` (pair `i` of head `h`: rows `h * head_dim + i` and that plus
///   `head_dim / 2`), so `BLOCK_N` must divide `head_dim / 2`.
/// - `BLOCK_K`, the loads and the masks as in [`scaled_mv`](crate::fp8_gemm::scaled_mv); with `NORM`,
///   the product is that of `A`'s RMSNorm (`gamma`, `eps`).
#[kernel(instances((BLOCK_N, BLOCK_K) in [(1, 512), (2, 512), (2, 256), (4, 256)], NORM in bool, COL_SCALE in bool))]
pub fn qkv_rope_mv<A, B, T, const BLOCK_N: i32, const BLOCK_K: i32, const NORM: bool, const COL_SCALE: bool>(
    a: Ptr<A>,
    b: Ptr<B>,
    q: MutPtr<T>,
    k_cache: MutPtr<T>,
    v_cache: MutPtr<T>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    gamma: Ptr<f32>,
    eps: f32,
    cos_table: Ptr<f32>,
    sin_table: Ptr<f32>,
    pos: Ptr<i32>,
    k: i32,
    stride_bn: i32,
    q_heads: i32,
    kv_heads: i32,
    head_dim: i32,
    max_ctx: i32,
) where
    A: Numeric,
    B: Numeric,
    T: Float,
{
    let half = head_dim / 2;
    let pair0 = program_id(0) * BLOCK_N;
    // A program's pairs lie in one head (`BLOCK_N` divides `half`).
    let head = pair0 / half;
    let i = pair0 % half + arange(0, BLOCK_N);
    let first = head * head_dim + i;
    let second = first + half;
    let (x1, x2, squares) = paired_rows::<A, B, BLOCK_N, BLOCK_K, NORM>(a, b, gamma, first * stride_bn, second * stride_bn, i < half, k);
    // `scaled_mv`'s order of the factors, then its rounding to `T`: the unfused path's bits.
    let (x1, x2) = if NORM {
        let r = inv_rms(squares, k, eps);
        (x1 * r, x2 * r)
    } else {
        (x1, x2)
    };
    let sa = load(scale_a);
    let (s1, s2) = if COL_SCALE { (load(scale_b + first), load(scale_b + second)) } else { (zeros::<f32>([BLOCK_N]) + load(scale_b), zeros::<f32>([BLOCK_N]) + load(scale_b)) };
    let x1 = (x1 * sa * s1).to::<T>().to::<f32>();
    let x2 = (x2 * sa * s2).to::<T>().to::<f32>();
    let p = load(pos);
    // Query and key heads rotate; value heads (from `q_heads + kv_heads`) are copied.
    let rotates = zeros::<i32>([BLOCK_N]) + head < q_heads + kv_heads;
    let c = load_masked(cos_table + p.to::<i64>() * half + i, rotates, 1.0);
    let s = load_masked(sin_table + p.to::<i64>() * half + i, rotates, 0.0);
    let (o1, o2) = rotate_half(x1, x2, c, s);
    let (o1, o2) = (where_(rotates, o1, x1).to::<T>(), where_(rotates, o2, x2).to::<T>());
    if head < q_heads {
        let dst = q + head * head_dim;
        store(dst + i, o1);
        store(dst + half + i, o2);
    } else {
        let j = head - q_heads;
        if j < kv_heads {
            let dst = k_cache + (j.to::<i64>() * max_ctx + p) * head_dim;
            store(dst + i, o1);
            store(dst + half + i, o2);
        } else {
            let dst = v_cache + ((j - kv_heads).to::<i64>() * max_ctx + p) * head_dim;
            store(dst + i, o1);
            store(dst + half + i, o2);
        }
    }
}

/// [`qkv_rope_mv`] from its host: one decode token's QKV projection (`a`: its row, with `norm` the
/// residual row whose RMSNorm is projected; `b`: the fused `[Wq; Wk; Wv]` weight, `[(q_heads + 2 *
/// kv_heads) * head_dim, K]`), its query heads rotated into `q` (the first `q_heads * head_dim`
/// elements), its keys (rotated) and values appended to the caches at position `pos[0]` (device data,
/// `< max_ctx`: the caller's promise). Scales as for [`fp8_gemm`](crate::fp8_gemm::fp8_gemm) (`scale_b`
/// per tensor or per row of `b`). `cfg` is a [`GemmConfig::matvec`] of `2 * BLOCK_N` weight rows a
/// program (2 or 4 with 1-byte weights, 4 or 8 with 16-bit ones).
///
/// Refused (before any launch): a batch other than 1, partial rotary embeddings (`rope.rope_dim <
/// head_dim`), a weight of the wrong height, a tile that does not divide half a head, and what
/// [`scaled_matvec`](crate::fp8_gemm::scaled_matvec) and [`rope_append_rows`](super::cache::rope_append_rows) refuse.
#[allow(clippy::too_many_arguments)]
pub fn qkv_rope_matvec<R, A, B, T>(
    rt: &R,
    shape: &CacheShape,
    a: Operand<R::Buffer<A>>,
    b: Operand<R::Buffer<B>>,
    scale_a: Scale<R::Buffer<f32>>,
    scale_b: Scale<R::Buffer<f32>>,
    norm: Option<RmsNorm<R::Buffer<f32>>>,
    rope: RopeTables<'_, R::Buffer<f32>>,
    pos: &R::Buffer<i32>,
    q: &mut R::Buffer<T>,
    k_cache: &mut R::Buffer<T>,
    v_cache: &mut R::Buffer<T>,
    cfg: &GemmConfig,
) -> Result<(), AttnError<R::Error>>
where
    R: Runtime,
    A: Numeric + Elem,
    B: Numeric + Elem,
    T: Float + Elem,
{
    let CacheShape { batch, kv_heads, head_dim, max_ctx, .. } = *shape;
    let (qd, kvd) = (shape.q_heads() * head_dim, kv_heads * head_dim);
    let at = RowsAt { k_off: qd, v_off: qd + kvd, stride: qd + 2 * kvd };
    check_rope_append(shape, 1, at, &rope, pos, k_cache, v_cache)?;
    if batch != 1 {
        return Err(AttnError::Shape(format!("qkv_rope_matvec projects one token of one sequence; the caches hold {batch}")));
    }
    if rope.rope_dim != head_dim {
        return Err(AttnError::Shape(format!("qkv_rope_matvec rotates whole heads: rope_dim {} is not head_dim {head_dim}", rope.rope_dim)));
    }
    if b.rows != at.stride {
        return Err(AttnError::Shape(format!("the QKV weight has {} rows; {} query and 2 x {kv_heads} key and value heads of {head_dim} need {}", b.rows, shape.q_heads(), at.stride)));
    }
    let shape_err = |e: crate::fp8_gemm::GemmError<R::Error>| AttnError::Shape(e.to_string());
    let ((sa, _), (sb, col_scale)) = check_matvec(&a, &b, scale_a, scale_b, norm, cfg).map_err(shape_err)?;
    need("q", q, qd)?;
    let pairs = cfg.block_n / 2;
    if cfg.block_n % 2 != 0 || !qkv_rope_tiles().contains(&(pairs, cfg.block_k)) || (head_dim / 2) % pairs as usize != 0 {
        return Err(AttnError::Shape(format!(
            "no qkv_rope_mv kernel for {} rows x {} (pairs of rows a program, dividing head_dim / 2 = {}; declared: {:?})",
            cfg.block_n,
            cfg.block_k,
            head_dim / 2,
            qkv_rope_tiles()
        )));
    }
    let grid = matvec_grid(at.stride / cfg.block_n as usize, cfg);
    let mv = QkvRopeMvInstance { block_n: pairs as i32, block_k: cfg.block_k as i32, norm: norm.is_some(), col_scale };
    // Without a norm, `sa` stands in for the `gamma` the kernel does not read.
    let (gamma, eps) = norm.map_or((sa, 0.0), |n| (n.gamma, n.eps));
    let i = |x: usize| x as i32;
    let (kh, d, mc) = (i(kv_heads), i(head_dim), i(max_ctx));
    mv.launch::<A, B, T, R>(rt, grid, a.buf, b.buf, q, k_cache, v_cache, sa, sb, gamma, eps, rope.cos, rope.sin, pos, i(b.cols), i(b.row_stride), i(shape.q_heads()), kh, d, mc)
        .map_err(AttnError::Runtime)
}

/// The `(pairs of rows, block_k)` tiles [`qkv_rope_mv`] declares (a program reads twice the pairs in
/// rows).
pub fn qkv_rope_tiles() -> Vec<(u32, u32)> {
    matvec_tiles_of(QkvRopeMvInstance::ALL.iter().map(|i| (i.block_n, i.block_k)))
}
