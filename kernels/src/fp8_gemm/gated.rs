//! The gate-and-up projection of a Llama MLP at `M = 1` with its SwiGLU in the epilogue: one launch
//! where a decode step ran the matrix-vector product, then a SwiGLU kernel (and no `[1, 2f]` round trip).
//!
//! Each program reads the gate rows `j` and the matching up rows `f + j` of the fused `[2f, K]` weight,
//! as [`scaled_mv`](super::scaled_mv) reads its rows, so both products of an output are in one warp's
//! registers when the SwiGLU needs them.

use super::host::{check_len, check_matvec, matvec_grid, matvec_tiles_of, GemmError, Operand, RmsNorm, Scale};
use super::matvec::{inv_rms, weight_block};
use dsl_core::lang::Numeric;
use dsl_core::prelude::*;
use dsl_core::runtime::{AnyBuffer, Runtime};
use dsl_core::types::Elem;

/// `out[j] = silu(g_j) * u_j` for `j < f`, where `g_j = (A · B[j]ᵀ) * scale_a * scale_b[j]` and
/// `u_j = (A · B[f + j]ᵀ) * scale_a * scale_b[f + j]` (`B` is `[2f, K]`: the gate's rows, then the up
/// projection's), in f32, rounded once to `O`.
///
/// - Run it on one warp. Grid: `cdiv(f, BLOCK_N)`; program `p` computes outputs `p * BLOCK_N ..`,
///   reading `2 * BLOCK_N` rows of `B`.
/// - `BLOCK_K`, the loads and the masks as in [`scaled_mv`](super::scaled_mv); `scale_b` per tensor or,
///   with `COL_SCALE`, per row of `B` (`2f` values); `scale_a` one value.
/// - With `NORM`, the product is that of `A`'s RMSNorm (`gamma`, `eps`), as in
///   [`scaled_mv`](super::scaled_mv).
#[kernel(instances((BLOCK_N, BLOCK_K) in [(1, 512), (2, 512), (2, 256), (4, 256)], NORM in bool, COL_SCALE in bool))]
pub fn swiglu_mv<A, B, O, const BLOCK_N: i32, const BLOCK_K: i32, const NORM: bool, const COL_SCALE: bool>(
    a: Ptr<A>,
    b: Ptr<B>,
    out: MutPtr<O>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    gamma: Ptr<f32>,
    eps: f32,
    f: i32,
    k: i32,
    stride_bn: i32,
) where
    A: Numeric,
    B: Numeric,
    O: Numeric,
{
    let rn = program_id(0) * BLOCK_N + arange(0, BLOCK_N);
    let (gate, up, squares) = paired_rows::<A, B, BLOCK_N, BLOCK_K, NORM>(a, b, gamma, rn * stride_bn, (rn + f) * stride_bn, rn < f, k);
    let ok = rn < f;
    let sa = load(scale_a);
    let (sg, su) = if COL_SCALE {
        (load_masked(scale_b + rn, ok, 0.0), load_masked(scale_b + f + rn, ok, 0.0))
    } else {
        (zeros::<f32>([BLOCK_N]) + load(scale_b), zeros::<f32>([BLOCK_N]) + load(scale_b))
    };
    let r = if NORM { inv_rms(squares, k, eps) * sa } else { sa };
    let g = gate * r * sg;
    let u = up * r * su;
    store_masked(out + rn, (g * sigmoid(g) * u).to::<O>(), ok);
}

/// The loop of a matrix-vector product whose program reads two groups of `BLOCK_N` rows of `B` (at
/// element offsets `first` and `second`; rows outside `rows_ok` read as zero), as
/// [`scaled_mv`](super::scaled_mv) reads its rows: returns the row sums `A · B[first]ᵀ` and
/// `A · B[second]ᵀ` in f32 (with `NORM`, of `A ⊙ gamma`) and, with `NORM`, `A`'s squares summed
/// lane-wise (for [`inv_rms`]). Calls `gdc_wait` (after loading the first weights): call it at the top
/// level of a kernel, before any write and before reading anything a kernel ahead writes. Used where an epilogue needs two rows of each output: the SwiGLU's gate
/// and up rows, RoPE's pairs of rows half a head apart (`kv_attention::qkv_matvec`).
#[kernel_fn]
pub(crate) fn paired_rows<A, B, const BLOCK_N: i32, const BLOCK_K: i32, const NORM: bool>(
    a: Ptr<A>,
    b: Ptr<B>,
    gamma: Ptr<f32>,
    first: Tile<i32>,
    second: Tile<i32>,
    rows_ok: Tile<bool>,
    k: Tile<i32>,
) -> (Tile<f32>, Tile<f32>, Tile<f32>)
where
    A: Numeric,
    B: Numeric,
{
    gdc_launch_dependents();
    let rk = arange(0, BLOCK_K);
    let n_ok = rows_ok.expand_dims(1);
    let (first, second) = (first.expand_dims(1), second.expand_dims(1));
    // The first step's weights before `gdc_wait`, the next step's in flight during each step: as in
    // `scaled_mv`.
    let mut f1 = weight_block::<B>(b, first, n_ok, rk, k);
    let mut f2 = weight_block::<B>(b, first, n_ok, rk + BLOCK_K, k);
    let mut s1 = weight_block::<B>(b, second, n_ok, rk, k);
    let mut s2 = weight_block::<B>(b, second, n_ok, rk + BLOCK_K, k);
    gdc_wait();
    let mut acc_1 = zeros::<f32>([BLOCK_N, BLOCK_K]);
    let mut acc_2 = zeros::<f32>([BLOCK_N, BLOCK_K]);
    let mut squares = zeros::<f32>([BLOCK_K]);
    for k0 in (0..k).step_by(2 * BLOCK_K) {
        let k1 = k0 + rk;
        let k2 = k0 + BLOCK_K + rk;
        let x1 = load_masked(a + k1, k1 < k, 0).to::<f32>();
        let x2 = load_masked(a + k2, k2 < k, 0).to::<f32>();
        let (k3, k4) = (k1 + 2 * BLOCK_K, k2 + 2 * BLOCK_K);
        let (f3, f4) = (weight_block::<B>(b, first, n_ok, k3, k), weight_block::<B>(b, first, n_ok, k4, k));
        let (s3, s4) = (weight_block::<B>(b, second, n_ok, k3, k), weight_block::<B>(b, second, n_ok, k4, k));
        squares = if NORM { fma(x2, x2, fma(x1, x1, squares)) } else { squares };
        let x1 = if NORM { x1 * load_masked(gamma + k1, k1 < k, 0.0) } else { x1 }.expand_dims(0);
        let x2 = if NORM { x2 * load_masked(gamma + k2, k2 < k, 0.0) } else { x2 }.expand_dims(0);
        acc_1 = fma(f1.to::<f32>(), x1, acc_1);
        acc_2 = fma(s1.to::<f32>(), x1, acc_2);
        acc_1 = fma(f2.to::<f32>(), x2, acc_1);
        acc_2 = fma(s2.to::<f32>(), x2, acc_2);
        f1 = f3;
        f2 = f4;
        s1 = s3;
        s2 = s4;
    }
    (sum(acc_1, 1), sum(acc_2, 1), squares)
}

/// [`swiglu_mv`] from its host: `out[0, j] = silu(g_j) * u_j` for the `f = b.rows / 2` outputs of a fused
/// gate-and-up weight `b` (`[2f, K]`, the gate's rows first), one row of `a` (with `norm`, of its
/// RMSNorm), with the scales of
/// [`fp8_gemm`](super::fp8_gemm) (`scale_b` per tensor or per row of `b`). `cfg` is a
/// [`GemmConfig::matvec`](super::GemmConfig::matvec) of `2 * BLOCK_N` weight rows a program (2 or 4
/// with 1-byte weights, 4 or 8 with 16-bit ones); any pair of operand types.
#[allow(clippy::too_many_arguments)]
pub fn swiglu_matvec<R, A, B, O>(
    rt: &R,
    a: Operand<R::Buffer<A>>,
    b: Operand<R::Buffer<B>>,
    scale_a: Scale<R::Buffer<f32>>,
    scale_b: Scale<R::Buffer<f32>>,
    norm: Option<RmsNorm<R::Buffer<f32>>>,
    out: &mut R::Buffer<O>,
    cfg: &super::GemmConfig,
) -> Result<(), GemmError<R::Error>>
where
    R: Runtime,
    A: Numeric + Elem,
    B: Numeric + Elem,
    O: Numeric + Elem,
{
    if b.rows % 2 != 0 {
        return Err(GemmError::Gated(b.rows));
    }
    let f = b.rows / 2;
    // The gate and up rows of a program: `cfg.block_n` weight rows, half of them outputs.
    let tile = super::GemmConfig { block_n: cfg.block_n / 2, ..*cfg };
    let ((sa, _), (sb, col_scale)) = check_matvec(&a, &b, scale_a, scale_b, norm, cfg)?;
    check_len("out", out.len(), f)?;
    if cfg.block_n % 2 != 0 || !swiglu_tiles().contains(&(tile.block_n, cfg.block_k)) {
        return Err(GemmError::GatedTile(super::tuning::describe(cfg)));
    }
    let grid = matvec_grid(f.div_ceil(tile.block_n as usize), cfg);
    let mv = SwigluMvInstance { block_n: tile.block_n as i32, block_k: cfg.block_k as i32, norm: norm.is_some(), col_scale };
    // Without a norm, `sa` stands in for the `gamma` the kernel does not read.
    let (gamma, eps) = norm.map_or((sa, 0.0), |n| (n.gamma, n.eps));
    mv.launch::<A, B, O, R>(rt, grid, a.buf, b.buf, out, sa, sb, gamma, eps, f as i32, b.cols as i32, b.row_stride as i32).map_err(GemmError::Runtime)
}

/// The `(outputs, block_k)` tiles [`swiglu_mv`] declares (a program reads twice the outputs in rows).
pub fn swiglu_tiles() -> Vec<(u32, u32)> {
    matvec_tiles_of(SwigluMvInstance::ALL.iter().map(|i| (i.block_n, i.block_k)))
}
