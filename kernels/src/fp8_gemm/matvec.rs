//! The GEMM at `M = 1` (a decode step at batch 1) as a matrix-vector product on the CUDA cores.
//!
//! Why a kernel of its own: at one row of `A` the split-K GEMM pads its tensor-core tile to 16 rows,
//! stages `B` through shared memory and, to fill the GPU, splits `K` and combines the partials (a
//! workspace round trip, often a second launch). A matrix-vector product needs none of it: each
//! program is one warp that reads `BLOCK_N` rows of `B` straight into registers with 16-byte loads,
//! multiplies them by the matching columns of `A` (each lane holds the same columns of `A` and of every
//! row, so the broadcast of `A` over the rows is a register copy) and adds into an f32 tile; one row
//! reduction (lane shuffles) at the end. Every program reads whole rows, so there is no split and no
//! combine, and with `N / BLOCK_N` programs of one warp the GPU is full at any `N` of a Llama layer.

use super::store_combined;
use dsl_core::lang::Numeric;
use dsl_core::prelude::*;

/// `C[1, N] = epilogue(A[1, K] · B[N, K]ᵀ)` (with `ACCUMULATE`, `C += ...`): the epilogue of
/// [`scaled_mm`](super::scaled_mm) (`scale_a` is one value at one row, per tensor or per row alike;
/// `scale_b` per tensor or, with `COL_SCALE`, per output column; `BIAS`), rounded once to `O`.
///
/// - Run it on one warp. Grid: `cdiv(N, BLOCK_N)`; program `j` computes outputs
///   `j * BLOCK_N .. (j + 1) * BLOCK_N`.
/// - `BLOCK_K` is 32 lanes' 16-byte chunks: 512 for 1-byte types, 256 for 16-bit ones (so each row of
///   the tile is one chunk per lane and the final reduction stays within the warp). Each step reads two
///   blocks of `K` before using either, and the next step's two while it multiplies, so up to four
///   loads per row are in flight.
/// - Programmatic launch: the first step's weights are loaded before `gdc_wait` (they are no kernel's
///   output), so they stream while the kernel ahead ends; `A`, the scales and `C` are read after it.
/// - `B`'s rows are `stride_bn` apart; `A`'s elements and each row's are contiguous. Any `K >= 1`
///   (masked; with `K` and `stride_bn` multiples of 16 the loads are 16 bytes).
///
/// With `NORM`, `A` is a row of the residual stream and the product is that of its RMSNorm: `A · Bᵀ`
/// becomes `rms(A) * ((A ⊙ gamma) · Bᵀ)` with `rms(A) = 1 / sqrt(mean(A²) + eps)`, the sum of squares
/// taken in the same loop (each program reads all of `A` anyway), so no norm kernel runs before it.
#[kernel(instances(
    (BLOCK_N, BLOCK_K) in [(2, 512), (4, 512), (4, 256), (8, 256)],
    (NORM = false, COL_SCALE in bool, BIAS in bool, ACCUMULATE in bool) | (NORM = true, COL_SCALE in bool, BIAS = false, ACCUMULATE = false),
))]
pub fn scaled_mv<
    A,
    B,
    O,
    const BLOCK_N: i32,
    const BLOCK_K: i32,
    const NORM: bool,
    const COL_SCALE: bool,
    const BIAS: bool,
    const ACCUMULATE: bool,
>(
    a: Ptr<A>,
    b: Ptr<B>,
    c: MutPtr<O>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    bias: Ptr<f32>,
    gamma: Ptr<f32>,
    eps: f32,
    n: i32,
    k: i32,
    stride_bn: i32,
) where
    A: Numeric,
    B: Numeric,
    O: Numeric,
{
    let rn = program_id(0) * BLOCK_N + arange(0, BLOCK_N);
    let (dots, squares) = row_dots::<A, B, BLOCK_N, BLOCK_K, NORM>(a, b, gamma, rn * stride_bn, rn < n, k);
    // One output row: row 0 of an `M = 1` problem, stride unused.
    let (row, one) = (zeros::<i32>([1]), full::<i32>([1], 1));
    let out = dots.expand_dims(0);
    let out = if NORM { out * inv_rms(squares, k, eps) } else { out };
    let ok = rn.expand_dims(0) < n;
    store_combined::<O, false, COL_SCALE, BIAS, ACCUMULATE>(out, c, scale_a, scale_b, bias, row, rn, one, n, row, ok);
}

/// The loop of [`scaled_mv`]: `A · B[row]ᵀ` in f32 for the `BLOCK_N` rows of `B` at element offsets
/// `row_offs` (rows outside `rows_ok` read as zero; with `NORM`, of `A ⊙ gamma`) and, with `NORM`, `A`'s
/// squares summed lane-wise (for [`inv_rms`]).
///
/// Calls `gdc_launch_dependents`, loads the first step's weights, then calls `gdc_wait`: call it at the
/// top level of a kernel, before any write and before reading anything a kernel ahead writes.
#[kernel_fn]
pub(crate) fn row_dots<A, B, const BLOCK_N: i32, const BLOCK_K: i32, const NORM: bool>(
    a: Ptr<A>,
    b: Ptr<B>,
    gamma: Ptr<f32>,
    row_offs: Tile<i32>,
    rows_ok: Tile<bool>,
    k: Tile<i32>,
) -> (Tile<f32>, Tile<f32>)
where
    A: Numeric,
    B: Numeric,
{
    // The kernel after this one may start its programs once all of ours have started (it waits for
    // our end at its own `gdc_wait`).
    gdc_launch_dependents();
    let rk = arange(0, BLOCK_K);
    let n_ok = rows_ok.expand_dims(1);
    // Offsets, not pointers, per row: built from `arange`s and scalars, they are recomputed where
    // broadcast instead of exchanged.
    let row_offs = row_offs.expand_dims(1);
    // The first step's weights, loaded before `gdc_wait`: weights are no kernel's output, so under
    // programmatic launch they stream while the kernel ahead (the norm, the attention) ends.
    let mut w1 = weight_block::<B>(b, row_offs, n_ok, rk, k);
    let mut w2 = weight_block::<B>(b, row_offs, n_ok, rk + BLOCK_K, k);
    gdc_wait();
    let mut acc = zeros::<f32>([BLOCK_N, BLOCK_K]);
    let mut squares = zeros::<f32>([BLOCK_K]);
    for k0 in (0..k).step_by(2 * BLOCK_K) {
        let k1 = k0 + rk;
        let k2 = k0 + BLOCK_K + rk;
        let x1 = load_masked(a + k1, k1 < k, 0).to::<f32>();
        let x2 = load_masked(a + k2, k2 < k, 0).to::<f32>();
        // The next step's weights, in flight while this step's are used.
        let w3 = weight_block::<B>(b, row_offs, n_ok, k1 + 2 * BLOCK_K, k);
        let w4 = weight_block::<B>(b, row_offs, n_ok, k2 + 2 * BLOCK_K, k);
        squares = if NORM { fma(x2, x2, fma(x1, x1, squares)) } else { squares };
        let x1 = if NORM { x1 * load_masked(gamma + k1, k1 < k, 0.0) } else { x1 };
        let x2 = if NORM { x2 * load_masked(gamma + k2, k2 < k, 0.0) } else { x2 };
        acc = fma(w1.to::<f32>(), x1.expand_dims(0), acc);
        acc = fma(w2.to::<f32>(), x2.expand_dims(0), acc);
        w1 = w3;
        w2 = w4;
    }
    (sum(acc, 1), squares)
}

/// Columns `cols` of the weight rows at element offsets `row_offs` (`[BLOCK_N, 1]`), zero outside
/// `rows_ok` and past column `k`.
#[kernel_fn]
pub(crate) fn weight_block<B: Numeric>(b: Ptr<B>, row_offs: Tile<i32>, rows_ok: Tile<bool>, cols: Tile<i32>, k: Tile<i32>) -> Tile<B> {
    load_masked(b + (row_offs + cols.expand_dims(0)), rows_ok & (cols.expand_dims(0) < k), 0)
}

/// `1 / sqrt(sum(squares) / k + eps)`: the RMSNorm factor of a row whose squares were summed into
/// `squares` (lane-wise), as a one-element tile.
#[kernel_fn]
pub(crate) fn inv_rms(squares: Tile<f32>, k: Tile<i32>, eps: Tile<f32>) -> Tile<f32> {
    1.0 / sqrt(sum(squares, 0) / k.to::<f32>() + eps)
}
