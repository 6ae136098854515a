//! A decode step's residual add with the next RMSNorm's inputs in its epilogue: the O and down
//! projections at `M = 1` add into the residual row `x`, and also write what the matrix-vector
//! product after the norm needs, so that no norm kernel runs between them.
//!
//! The norm `y = x ⊙ gamma / rms(x)` is split where it can be: every program writes `x[j] * gamma[j]`
//! for its own outputs (rounded to the next product's input type), and its outputs' sum of squares;
//! the sums meet in one fixed-point integer (an `atomic_add` on an i64: integer adds give the same total
//! in any order), and the last program to finish (an atomic ticket) reads it and writes the one factor
//! `1 / rms(x)`, which the next product applies as its activation scale (`scale_a`). The next
//! product then reads a bf16 row as it would the norm kernel's output, with no norm pass over `x` and
//! no launch between. (Applying the norm inside the next product instead reads the f32 row and
//! `gamma` in every one of its programs: four times the weights' bytes at Llama 3's widths.)

use super::host::{check_len, check_matvec, check_tiles_in, matvec_grid, tiles_of, GemmConfig, GemmError, Operand, Scale};
use super::matvec::row_dots;
use dsl_core::lang::Numeric;
use dsl_core::prelude::*;
use dsl_core::runtime::{AnyBuffer, Runtime};
use dsl_core::types::Elem;

/// The fixed point of the sum of squares: `2^24` units a unit. Each program rounds its sum to the
/// nearest unit (`2^-25` at most, unbiased), so a row of 2048 programs is off by about `1e-6` in
/// absolute terms, where Llama 3's smallest rows (the embeddings, `rms` about 0.01 over 4096 values)
/// sum to about 0.4. The i64 holds sums up to `5.4e11`: a row's `rms` up to 11,000 at 4096 values.
/// (An f32 per program summed by the last program took a `[2048]` tile, 64 registers a lane: 163 a
/// thread where the plain product takes 103, so 12 programs an SM instead of 19; H200, 2026-12-07.)
const SQUARES_UNIT: f32 = 16_777_216.0;

/// `x[j] += (A · B[j]ᵀ) * scale_a * scale_b[j]` for the `N` elements of one residual row (the bits of
/// [`scaled_mv`](super::scaled_mv) with `ACCUMULATE`), then the next RMSNorm's inputs:
/// `xg[j] = x[j] * gamma[j]` rounded to `G`, and, from the last program to finish,
/// `inv_rms[0] = 1 / sqrt(mean(x²) + eps)` over the new row.
///
/// - Run it on one warp. Grid: `cdiv(N, BLOCK_N)`; `BLOCK_K`, the loads, `scale_b` (per tensor, or with
///   `COL_SCALE` per output) and programmatic launch as in [`scaled_mv`](super::scaled_mv).
/// - `sum_sq` (one i64: the row's sum of squares in units of `1 / SQUARES_UNIT`) and `tickets` (one
///   i32): zero before the launch and left zero after it.
#[kernel(instances((BLOCK_N, BLOCK_K) in [(2, 512), (4, 512), (4, 256), (8, 256)], COL_SCALE in bool))]
pub fn residual_norm_mv<A, B, G, const BLOCK_N: i32, const BLOCK_K: i32, const COL_SCALE: bool>(
    a: Ptr<A>,
    b: Ptr<B>,
    x: MutPtr<f32>,
    scale_a: Ptr<f32>,
    scale_b: Ptr<f32>,
    gamma: Ptr<f32>,
    eps: f32,
    xg: MutPtr<G>,
    sum_sq: MutPtr<i64>,
    tickets: MutPtr<i32>,
    inv_rms: MutPtr<f32>,
    n: i32,
    k: i32,
    stride_bn: i32,
) where
    A: Numeric,
    B: Numeric,
    G: Numeric,
{
    let rn = program_id(0) * BLOCK_N + arange(0, BLOCK_N);
    let ok = rn < n;
    // No norm on this product's input (`scale_a` stands in for the unread gamma).
    let (dots, _) = row_dots::<A, B, BLOCK_N, BLOCK_K, false>(a, b, scale_a, rn * stride_bn, ok, k);
    let sb = if COL_SCALE { load_masked(scale_b + rn, ok, 0.0) } else { zeros::<f32>([BLOCK_N]) + load(scale_b) };
    let new = dots * load(scale_a) * sb + load_masked(x + rn, ok, 0.0);
    store_masked(x + rn, new, ok);
    store_masked(xg + rn, (new * load_masked(gamma + rn, ok, 0.0)).to::<G>(), ok);
    // Rounded to the nearest unit (the sum is not negative; the cast truncates).
    let mine = (sum(new * new, 0) * SQUARES_UNIT + 0.5).to::<i64>();
    atomic_add(sum_sq, mine, true);
    // Release: this program's add is done before its ticket.
    fence();
    if atomic_add(tickets, 1, true) == num_programs(0) - 1 {
        // Acquire: every other program added its sum before taking its ticket. The total is read and
        // reset in one.
        fence();
        let total = atomic_xchg(sum_sq, 0, true).to::<f32>() / SQUARES_UNIT;
        store(inv_rms, 1.0 / sqrt(total / n.to::<f32>() + eps));
        atomic_xchg(tickets, 0, true);
    }
}

/// The next RMSNorm's buffers for [`residual_norm_matvec`].
pub struct NextNorm<'a, R: Runtime, G: Elem> {
    /// The norm's weights, one per element of the row.
    pub gamma: &'a R::Buffer<f32>,
    pub eps: f32,
    /// Written: `x ⊙ gamma`, the next product's input row.
    pub xg: &'a mut R::Buffer<G>,
    /// Written: one value, `1 / rms(x)`, the next product's `scale_a`.
    pub inv_rms: &'a mut R::Buffer<f32>,
    /// One value, the programs' sum of squares (fixed point): zero before the launch and left zero.
    pub sum_sq: &'a mut R::Buffer<i64>,
    /// One counter, zero before the launch and left zero after it.
    pub tickets: &'a mut R::Buffer<i32>,
}

/// [`residual_norm_mv`] from its host: `x[0, :] += A · Bᵀ` (one row, the residual add of
/// [`scaled_matvec`](super::scaled_matvec) with `accumulate`, and its scales), then `next`'s `xg` and
/// `inv_rms` for the next product, which reads `xg` with `scale_a = inv_rms` in place of the norm's
/// output. `cfg` is a [`GemmConfig::matvec`] config; any pair of operand types.
#[allow(clippy::too_many_arguments)]
pub fn residual_norm_matvec<R, A, B, G>(
    rt: &R,
    a: Operand<R::Buffer<A>>,
    b: Operand<R::Buffer<B>>,
    scale_a: Scale<R::Buffer<f32>>,
    scale_b: Scale<R::Buffer<f32>>,
    x: &mut R::Buffer<f32>,
    next: NextNorm<'_, R, G>,
    cfg: &GemmConfig,
) -> Result<(), GemmError<R::Error>>
where
    R: Runtime,
    A: Numeric + Elem,
    B: Numeric + Elem,
    G: Numeric + Elem,
{
    let ((sa, _), (sb, col_scale)) = check_matvec(&a, &b, scale_a, scale_b, None, cfg)?;
    let n = b.rows;
    check_len("x (the residual row)", x.len(), n)?;
    check_len("gamma (the next RMSNorm's weights)", next.gamma.len(), n)?;
    check_len("xg (the next product's input)", next.xg.len(), n)?;
    check_len("inv_rms", next.inv_rms.len(), 1)?;
    check_len("sum_sq", next.sum_sq.len(), 1)?;
    check_len("tickets", next.tickets.len(), 1)?;
    let tiles = tiles_of(ResidualNormMvInstance::ALL.iter().map(|i| (1, i.block_n, i.block_k)));
    check_tiles_in("matrix-vector with the next norm", &tiles, cfg)?;
    let grid = matvec_grid(n.div_ceil(cfg.block_n as usize), cfg);
    let mv = ResidualNormMvInstance { block_n: cfg.block_n as i32, block_k: cfg.block_k as i32, col_scale };
    mv.launch::<A, B, G, R>(rt, grid, a.buf, b.buf, x, sa, sb, next.gamma, next.eps, next.xg, next.sum_sq, next.tickets, next.inv_rms, n as i32, b.cols as i32, b.row_stride as i32)
        .map_err(GemmError::Runtime)
}
