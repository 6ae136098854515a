//! Tiled matrix multiplication `C = A · B` with f32 accumulation: a masked version ([`matmul`]), a
//! split-K version that combines partial products with atomics ([`matmul_splitk`]), and a block-pointer
//! version ([`matmul_block_ptr`]).
//!
//! Common conventions:
//! - `A` is `[M, K]`, `B` is `[K, N]`, `C` is `[M, N]`, each addressed through two element strides
//!   (`stride_am, stride_ak` etc.): row-major is `(K, 1)`, `(N, 1)`, `(N, 1)`, but column-major or
//!   transposed views work too.
//! - Input element types: `f32 × f32`, `f16 × f16`, `bf16 × bf16`, and fp8 (`e4m3`/`e5m2`, mixed
//!   allowed): `A` and `B` are separate type parameters constrained by [`DotOperands`].
//! - The product is accumulated in f32 by [`dot`] over a runtime loop on `K` in `BLOCK_K` steps;
//!   `BLOCK_M`, `BLOCK_N`, `BLOCK_K` are powers of two (`>= 16` is what GPU backends want).
//! - Grid axis 0 walks the `cdiv(M, BLOCK_M)` row blocks, axis 1 the `cdiv(N, BLOCK_N)` column blocks;
//!   the block-pointer versions take their tile in grouped order ([`grouped_tile`], `group_m` row
//!   blocks a group, a runtime argument) so that the programs running at once share operand tiles in
//!   L2. ([`matmul`] and [`linear`] keep the launch
//!   order until it is measured: their committed autotune winners, `bench/gemm/tuned.tsv`, are
//!   fingerprinted by the kernel's code and would go stale.)

use dsl_core::lang::{DotOperands, Numeric};
use dsl_core::prelude::*;

/// The usual `group_m` of the block-pointer kernels (Triton's `GROUP_SIZE_M`): row blocks a group of
/// [`grouped_tile`] spans.
pub const GROUP_M: i32 = 8;

/// The `(row block, column block)` of this program in grouped order: programs are numbered as the
/// hardware launches them (axis 0 fastest), and consecutive numbers walk down a group of `group_m`
/// row blocks before moving one column block right. In launch order (row blocks first) the programs
/// running at once span a few columns and every row: at 8192³ they stream all of `A` (64–128 MiB, more
/// than L2 holds) from memory again for every few columns of `B`. A group instead reuses its `group_m`
/// row blocks of `A` across the columns, and each column block of `B` across the group. Every tile
/// is still taken exactly once. A group as tall as the grid (`group_m >= cdiv(M, BLOCK_M)`) is the
/// launch order; `group_m < 1` is taken as 1.
#[kernel_fn]
fn grouped_tile(group_m: Tile<i32>) -> (Tile<i32>, Tile<i32>) {
    let num_m = num_programs(0);
    // Clamped to the grid first, so that the group's program count cannot overflow.
    let group = maximum(minimum(group_m, num_m), 1);
    let pid = program_id(1) * num_m + program_id(0);
    let per_group = group * num_programs(1);
    let first_m = (pid / per_group) * group;
    let rows = minimum(num_m - first_m, group);
    let in_group = pid % per_group;
    (first_m + in_group % rows, in_group / rows)
}

/// `C = A · B`, accumulated in f32 and converted once to `O` (`f32`, `f16`, `bf16`...) on store.
///
/// - Grid: `(cdiv(M, BLOCK_M), cdiv(N, BLOCK_N))`; program `(i, j)` computes the `BLOCK_M × BLOCK_N`
///   tile of `C` at rows `i * BLOCK_M..`, columns `j * BLOCK_N..`.
/// - Ragged edges (`M`, `N`, `K` not multiples of the blocks) are masked: out-of-range `A`/`B` elements
///   load as zero and out-of-range `C` elements are not written.
#[kernel(instances((BLOCK_M, BLOCK_N, BLOCK_K) in [(128, 128, 32), (128, 128, 64), (128, 64, 32), (64, 128, 32), (128, 256, 32)]))]
pub fn matmul<A, B, O, const BLOCK_M: i32, const BLOCK_N: i32, const BLOCK_K: i32>(
    a: Ptr<A>,
    b: Ptr<B>,
    c: MutPtr<O>,
    m: i32,
    n: i32,
    k: i32,
    stride_am: i32,
    stride_ak: i32,
    stride_bk: i32,
    stride_bn: i32,
    stride_cm: i32,
    stride_cn: i32,
) where
    A: Numeric + DotOperands<B>,
    B: Numeric,
    O: Numeric,
{
    let rm = program_id(0) * BLOCK_M + arange(0, BLOCK_M);
    let rn = program_id(1) * BLOCK_N + arange(0, BLOCK_N);
    let rk = arange(0, BLOCK_K);
    let m_ok = rm.expand_dims(1) < m;
    let n_ok = rn.expand_dims(0) < n;
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_N]);
    for k0 in (0..k).step_by(BLOCK_K) {
        let kk = k0 + rk;
        let a_offs = rm.expand_dims(1) * stride_am + kk.expand_dims(0) * stride_ak;
        let b_offs = kk.expand_dims(1) * stride_bk + rn.expand_dims(0) * stride_bn;
        let a_tile = load_masked(a + a_offs, m_ok & (kk.expand_dims(0) < k), 0);
        let b_tile = load_masked(b + b_offs, (kk.expand_dims(1) < k) & n_ok, 0);
        acc = dot(a_tile, b_tile, acc);
    }
    let c_offs = rm.expand_dims(1) * stride_cm + rn.expand_dims(0) * stride_cn;
    store_masked(c + c_offs, acc.to::<O>(), m_ok & n_ok);
}

/// Split-K `C += A · B` into an f32 `C`: the `K` range is cut into `SPLIT_K = num_programs(2)` pieces and
/// each program adds its partial product to `C` with [`atomic_add`]. The caller zero-initializes `C`
/// (or pre-loads it with a bias: the result is added to what `C` holds).
///
/// - Grid: `(cdiv(M, BLOCK_M), cdiv(N, BLOCK_N), SPLIT_K)`; program `(i, j, s)` covers rows
///   `i * BLOCK_M..`, columns `j * BLOCK_N..` and `k` in `[s * chunk, min((s + 1) * chunk, K))` with
///   `chunk = cdiv(cdiv(K, SPLIT_K), BLOCK_K) * BLOCK_K` (a multiple of `BLOCK_K`; trailing programs may
///   get an empty range and then add zeros).
/// - Ragged edges are masked as in [`matmul`]. The order in which the partial sums are added is not
///   defined, so results may differ from [`matmul`] by f32 rounding.
#[kernel]
pub fn matmul_splitk<A, B, const BLOCK_M: i32, const BLOCK_N: i32, const BLOCK_K: i32>(
    a: Ptr<A>,
    b: Ptr<B>,
    c: MutPtr<f32>,
    m: i32,
    n: i32,
    k: i32,
    stride_am: i32,
    stride_ak: i32,
    stride_bk: i32,
    stride_bn: i32,
    stride_cm: i32,
    stride_cn: i32,
) where
    A: Numeric + DotOperands<B>,
    B: Numeric,
{
    let rm = program_id(0) * BLOCK_M + arange(0, BLOCK_M);
    let rn = program_id(1) * BLOCK_N + arange(0, BLOCK_N);
    let rk = arange(0, BLOCK_K);
    let chunk = cdiv(cdiv(k, num_programs(2)), BLOCK_K) * BLOCK_K;
    let k_lo = program_id(2) * chunk;
    let k_hi = minimum(k_lo + chunk, k);
    let m_ok = rm.expand_dims(1) < m;
    let n_ok = rn.expand_dims(0) < n;
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_N]);
    for k0 in (k_lo..k_hi).step_by(BLOCK_K) {
        let kk = k0 + rk;
        let a_offs = rm.expand_dims(1) * stride_am + kk.expand_dims(0) * stride_ak;
        let b_offs = kk.expand_dims(1) * stride_bk + rn.expand_dims(0) * stride_bn;
        let a_tile = load_masked(a + a_offs, m_ok & (kk.expand_dims(0) < k_hi), 0);
        let b_tile = load_masked(b + b_offs, (kk.expand_dims(1) < k_hi) & n_ok, 0);
        acc = dot(a_tile, b_tile, acc);
    }
    let c_offs = rm.expand_dims(1) * stride_cm + rn.expand_dims(0) * stride_cn;
    atomic_add(c + c_offs, acc, m_ok & n_ok);
}

/// `C = A · B` written with block pointers: [`make_block_ptr`] windows on `A`, `B` and `C`, moved along
/// `K` with `advance`, loaded with [`load_block`] (out-of-bounds elements read as zero) and stored with
/// [`store_block`] (out-of-bounds elements skipped), so no masks are needed. Same grid, layout and
/// result as [`matmul`]; tiles in [`grouped_tile`] order, `group_m` row blocks a group ([`GROUP_M`] is
/// the usual value).
#[kernel]
pub fn matmul_block_ptr<A, B, O, const BLOCK_M: i32, const BLOCK_N: i32, const BLOCK_K: i32>(
    a: Ptr<A>,
    b: Ptr<B>,
    c: MutPtr<O>,
    m: i32,
    n: i32,
    k: i32,
    stride_am: i32,
    stride_ak: i32,
    stride_bk: i32,
    stride_bn: i32,
    stride_cm: i32,
    stride_cn: i32,
    group_m: i32,
) where
    A: Numeric + DotOperands<B>,
    B: Numeric,
    O: Numeric,
{
    let (tile_m, tile_n) = grouped_tile(group_m);
    let row0 = tile_m * BLOCK_M;
    let col0 = tile_n * BLOCK_N;
    let mut a_blk = make_block_ptr(a, [m, k], [stride_am, stride_ak], (row0, 0), [BLOCK_M, BLOCK_K], [1, 0]);
    let mut b_blk = make_block_ptr(b, [k, n], [stride_bk, stride_bn], (0, col0), [BLOCK_K, BLOCK_N], [1, 0]);
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_N]);
    for _k0 in (0..k).step_by(BLOCK_K) {
        acc = dot(load_block(a_blk), load_block(b_blk), acc);
        a_blk = a_blk.advance((0, BLOCK_K));
        b_blk = b_blk.advance((BLOCK_K, 0));
    }
    let c_blk = make_block_ptr(c, [m, n], [stride_cm, stride_cn], (row0, col0), [BLOCK_M, BLOCK_N], [1, 0]);
    store_block(c_blk, acc.to::<O>());
}

/// `C = (A · Bᵀ) · scale` for `B` stored `[N, K]` (a linear layer's weight, rows contiguous), accumulated
/// in f32, scaled once (an fp8 GEMM's per-tensor `scale_a * scale_b`, or 1) and converted to `O` on
/// store. `A` is `[M, K]` and `C` is `[M, N]`, both with contiguous rows (`stride_am`, `stride_cm`: row
/// strides in elements).
///
/// - Grid: `(cdiv(M, BLOCK_M), cdiv(N, BLOCK_N))`, as [`matmul`]; ragged edges are masked.
/// - `B`'s tile is loaded as it sits (`[BLOCK_N, BLOCK_K]`, contiguous along `K`) and transposed in
///   the `dot`: on tensor cores the transpose costs nothing (the tile is staged k-major), which is what
///   fp8 operands need.
#[kernel(instances((BLOCK_M, BLOCK_N, BLOCK_K) in [(128, 128, 64), (128, 64, 64), (64, 64, 64), (128, 256, 32), (128, 128, 32), (128, 128, 128), (128, 256, 128)]))]
pub fn linear<A, B, O, const BLOCK_M: i32, const BLOCK_N: i32, const BLOCK_K: i32>(
    a: Ptr<A>,
    b: Ptr<B>,
    c: MutPtr<O>,
    m: i32,
    n: i32,
    k: i32,
    stride_am: i32,
    stride_bn: i32,
    stride_cm: i32,
    scale: f32,
) where
    A: Numeric + DotOperands<B>,
    B: Numeric,
    O: Numeric,
{
    let rm = program_id(0) * BLOCK_M + arange(0, BLOCK_M);
    let rn = program_id(1) * BLOCK_N + arange(0, BLOCK_N);
    let rk = arange(0, BLOCK_K);
    let m_ok = rm.expand_dims(1) < m;
    let n_ok = rn.expand_dims(1) < n;
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_N]);
    for k0 in (0..k).step_by(BLOCK_K) {
        let kk = (k0 + rk).expand_dims(0);
        let a_tile = load_masked(a + (rm.expand_dims(1) * stride_am + kk), m_ok & (kk < k), 0);
        let b_tile = load_masked(b + (rn.expand_dims(1) * stride_bn + kk), n_ok & (kk < k), 0);
        acc = dot(a_tile, b_tile.trans(), acc);
    }
    let c_offs = rm.expand_dims(1) * stride_cm + rn.expand_dims(0);
    store_masked(c + c_offs, (acc * scale).to::<O>(), m_ok & (rn.expand_dims(0) < n));
}

/// [`linear`] written with block pointers: `C = (A · Bᵀ) · scale` for `B` stored `[N, K]`, windows moved
/// along `K` with `advance`, out-of-bounds elements read as zero and skipped on store, so no masks. On
/// sm_90a its loads go through TMA where the strides allow (rows 16-byte aligned). Tiles in
/// [`grouped_tile`] order, `group_m` row blocks a group ([`GROUP_M`] is the usual value).
#[kernel]
pub fn linear_block_ptr<A, B, O, const BLOCK_M: i32, const BLOCK_N: i32, const BLOCK_K: i32>(
    a: Ptr<A>,
    b: Ptr<B>,
    c: MutPtr<O>,
    m: i32,
    n: i32,
    k: i32,
    stride_am: i32,
    stride_bn: i32,
    stride_cm: i32,
    scale: f32,
    group_m: i32,
) where
    A: Numeric + DotOperands<B>,
    B: Numeric,
    O: Numeric,
{
    let (tile_m, tile_n) = grouped_tile(group_m);
    let row0 = tile_m * BLOCK_M;
    let col0 = tile_n * BLOCK_N;
    let one = full::<i32>((), 1);
    let mut a_blk = make_block_ptr(a, [m, k], [stride_am, one], (row0, 0), [BLOCK_M, BLOCK_K], [1, 0]);
    let mut b_blk = make_block_ptr(b, [n, k], [stride_bn, one], (col0, 0), [BLOCK_N, BLOCK_K], [1, 0]);
    let mut acc = zeros::<f32>([BLOCK_M, BLOCK_N]);
    for _k0 in (0..k).step_by(BLOCK_K) {
        acc = dot(load_block(a_blk), load_block(b_blk).trans(), acc);
        a_blk = a_blk.advance((0, BLOCK_K));
        b_blk = b_blk.advance((0, BLOCK_K));
    }
    let c_blk = make_block_ptr(c, [m, n], [stride_cm, one], (row0, col0), [BLOCK_M, BLOCK_N], [1, 0]);
    store_block(c_blk, (acc * scale).to::<O>());
}

/// Tuning of [`matmul`] and [`linear`] as plain data (the runtime's autotuner times them): every declared
/// instance with 4 and 8 warps and 3 and 4 pipeline stages. The key is the shape, bucketed.
pub mod tuning {
    use super::{LinearInstance, MatmulInstance};
    use dsl_core::tune::{key_of, Config};

    fn with_launch_options(tiles: impl Iterator<Item = Config>) -> Vec<Config> {
        tiles.flat_map(|t| [4, 8].into_iter().flat_map(move |w| [3, 4].map(|s| t.clone().with("num_warps", w).with("num_stages", s)))).collect()
    }

    /// The candidates of [`matmul`](super::matmul).
    pub fn matmul_candidates() -> Vec<Config> {
        with_launch_options(MatmulInstance::ALL.iter().map(|i| i.config()))
    }

    /// The candidates of [`linear`](super::linear).
    pub fn linear_candidates() -> Vec<Config> {
        with_launch_options(LinearInstance::ALL.iter().map(|i| i.config()))
    }

    /// The key winners are filed under: `M=..,N=..,K=..`, each a power of two.
    pub fn key(m: usize, n: usize, k: usize) -> String {
        key_of(&[("M", m as i64), ("N", n as i64), ("K", k as i64)])
    }
}
