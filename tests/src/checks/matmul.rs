//! `kernels::matmul`: masked, block-pointer and split-K matrix multiplication over every input type.

use super::*;
use dsl_core::lang::{DotOperands, Numeric};
use dsl_core::prelude::{bf16, e4m3, e5m2, f16, Interpreter, Launch, Runtime};
use kernels::matmul::{linear, linear_block_ptr, matmul, matmul_block_ptr, matmul_splitk, GROUP_M};

cases!(
    "matmul": matmul_f32,
    matmul_f16,
    matmul_f16_out_f16,
    matmul_bf16,
    matmul_bf16_out_bf16,
    matmul_e4m3,
    matmul_e5m2,
    matmul_e4m3_x_e5m2,
    matmul_block_shapes_and_layouts,
    matmul_tensor_core_tiles,
    linear_16_bit,
    linear_fp8,
    linear_wgmma_tiles,
    matmul_block_ptr_wgmma_tiles,
    matmul_splitk_f32,
    matmul_splitk_low_precision,
    matmul_splitk_accumulates,
);

/// One `C[M, N] = A[M, K] · B[K, N]` problem: inputs rounded to their types, with their f64 values,
/// the strides, and the f64 reference and per-element error scale `sum_k |a||b|`.
struct Problem<A, B> {
    m: usize,
    n: usize,
    k: usize,
    a: Vec<A>,
    b: Vec<B>,
    /// (stride_am, stride_ak, stride_bk, stride_bn, stride_cm); stride_cn is 1.
    strides: [usize; 5],
    /// C buffer length (rows of `stride_cm`).
    c_len: usize,
    want: Vec<f64>,
    mag: Vec<f64>,
}

impl<A: TestElem, B: TestElem> Problem<A, B> {
    /// A row-major (row stride K + 1: a gap column) unless `a_col_major`; B column-major (a transposed
    /// view, column stride K + 2) when `b_col_major`, else row-major; C row stride N + 3 (gaps poisoned).
    fn new(m: usize, n: usize, k: usize, a_col_major: bool, b_col_major: bool, seed: u64) -> Self {
        let a = if a_col_major { (1, m + 2, (m + 2) * k) } else { (k + 1, 1, m * (k + 1)) };
        let b = if b_col_major { (1, k + 2, (k + 2) * n) } else { (n, 1, k * n) };
        Self::with_strides(m, n, k, a, b, n + 3, seed)
    }

    /// Row-major A, B and C without gaps: with sizes divisible by 8, every row starts 16-byte aligned (what
    /// the `cp.async` pipeline needs).
    fn dense(m: usize, n: usize, k: usize, seed: u64) -> Self {
        Self::with_strides(m, n, k, (k, 1, m * k), (n, 1, k * n), n, seed)
    }

    /// `a` and `b` are `(row stride, column stride, buffer length)`; `scm` is C's row stride.
    fn with_strides(
        m: usize,
        n: usize,
        k: usize,
        (sam, sak, a_len): (usize, usize, usize),
        (sbk, sbn, b_len): (usize, usize, usize),
        scm: usize,
        seed: u64,
    ) -> Self {
        let mut r = rng(seed);
        let (a, af) = rand_elems::<A>(&mut r, a_len, 1.0);
        let (b, bf) = rand_elems::<B>(&mut r, b_len, 1.0);
        let mut want = vec![f64::NAN; m * scm];
        let mut mag = vec![0.0; m * scm];
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut g) = (0.0, 0.0);
                for kk in 0..k {
                    let p = af[i * sam + kk * sak] * bf[kk * sbk + j * sbn];
                    s += p;
                    g += p.abs();
                }
                want[i * scm + j] = s;
                mag[i * scm + j] = g;
            }
        }
        Problem { m, n, k, a, b, strides: [sam, sak, sbk, sbn, scm], c_len: m * scm, want, mag }
    }

    fn written(&self) -> impl Fn(usize) -> bool {
        let (scm, n) = (self.strides[4], self.n);
        move |i| i % scm < n
    }

    fn describe<O: TestElem>(&self, what: &str) -> String {
        format!("{what} {}x{}x{} ({}x{}->{})", self.m, self.n, self.k, A::NAME, B::NAME, O::NAME)
    }

    /// Checks `got` (poisoned outside the written region): f32 accumulation error ~1e-5 relative to
    /// `sum |a||b|`, plus one rounding to the output type `O`. (K <= 100 here: correctly rounded f32
    /// additions in any order, sequential or a tree, err by at most ~K * 2^-24 < 6e-6 of `sum |a||b|`.)
    fn check<O: TestElem>(&self, what: &str, got: &[f64]) {
        let what = self.describe::<O>(what);
        let mag = &self.mag;
        let rel = 1e-5 + fp8_dot_err::<A, B>();
        assert_close_where(&what, got, &self.want, O::U, |i| rel * mag[i] + O::TINY, self.written());
        assert_poison_kept(&what, got, self.written());
    }

    fn args(&self) -> [i32; 9] {
        let [sam, sak, sbk, sbn, scm] = self.strides;
        [self.m, self.n, self.k, sam, sak, sbk, sbn, scm, 1].map(|x| x as i32)
    }
}

fn run_plain<R, A, B, O, const BM: i32, const BN: i32, const BK: i32>(rt: &R, p: &Problem<A, B>, block_ptr: bool)
where
    R: Runtime,
    A: TestElem + Numeric + DotOperands<B>,
    B: TestElem + Numeric,
    O: TestElem + Numeric,
{
    run_plain_on::<R, A, B, O, BM, BN, BK>(rt, p, block_ptr.then_some(GROUP_M), None, None)
}

/// The launch of a `BM x BN` tile over `p`'s output on `warps` warps with `stages` pipeline stages (each
/// the runtime's default where `None`).
fn launch_on<A, B>(p: &Problem<A, B>, bm: i32, bn: i32, warps: Option<u32>, stages: Option<u32>) -> Launch {
    let mut launch = Launch::from((blocks(p.m, bm as usize), blocks(p.n, bn as usize)));
    if let Some(w) = warps {
        launch = launch.num_warps(w);
    }
    if let Some(s) = stages {
        launch = launch.num_stages(s);
    }
    launch
}

/// [`run_plain`] on `warps` warps with `stages` pipeline stages (else the runtime's defaults); on
/// `matmul_block_ptr` with groups of that many row blocks where `group` is given, else on `matmul`.
fn run_plain_on<R, A, B, O, const BM: i32, const BN: i32, const BK: i32>(rt: &R, p: &Problem<A, B>, group: Option<i32>, warps: Option<u32>, stages: Option<u32>)
where
    R: Runtime,
    A: TestElem + Numeric + DotOperands<B>,
    B: TestElem + Numeric,
    O: TestElem + Numeric,
{
    let (ba, bb) = (upload(rt, &p.a), upload(rt, &p.b));
    let mut c = poisoned::<R, O>(rt, p.c_len);
    let launch = launch_on(p, BM, BN, warps, stages);
    let [m, n, k, sam, sak, sbk, sbn, scm, scn] = p.args();
    let (name, res) = match group {
        Some(g) => (
            format!("matmul_block_ptr<{BM},{BN},{BK}> group_m={g} warps={warps:?} stages={stages:?}"),
            matmul_block_ptr::<A, B, O, BM, BN, BK>::launch(rt, launch, &ba, &bb, &mut c, m, n, k, sam, sak, sbk, sbn, scm, scn, g),
        ),
        None => (
            format!("matmul<{BM},{BN},{BK}> warps={warps:?} stages={stages:?}"),
            matmul::<A, B, O, BM, BN, BK>::launch(rt, launch, &ba, &bb, &mut c, m, n, k, sam, sak, sbk, sbn, scm, scn),
        ),
    };
    launched(&p.describe::<O>(&name), res);
    p.check::<O>(&name, &download_f64(rt, &c));
}

/// Ragged shapes (none a multiple of the blocks except the last), with 16×16×16 blocks.
const SHAPES: [(usize, usize, usize); 5] = [(1, 1, 1), (3, 17, 33), (17, 5, 20), (33, 40, 47), (64, 96, 80)];

fn sweep<R, A, B, O>(rt: &R, seed: u64)
where
    R: Runtime,
    A: TestElem + Numeric + DotOperands<B>,
    B: TestElem + Numeric,
    O: TestElem + Numeric,
{
    for (i, &(m, n, k)) in SHAPES.iter().enumerate() {
        let p = Problem::<A, B>::new(m, n, k, false, i % 2 == 1, seed + i as u64);
        run_plain::<R, A, B, O, 16, 16, 16>(rt, &p, false);
        run_plain::<R, A, B, O, 16, 16, 16>(rt, &p, true);
    }
}

pub fn matmul_f32<R: Runtime>(rt: &R) {
    sweep::<R, f32, f32, f32>(rt, 100);
}

pub fn matmul_f16<R: Runtime>(rt: &R) {
    sweep::<R, f16, f16, f32>(rt, 200);
}

pub fn matmul_f16_out_f16<R: Runtime>(rt: &R) {
    sweep::<R, f16, f16, f16>(rt, 250);
}

pub fn matmul_bf16<R: Runtime>(rt: &R) {
    sweep::<R, bf16, bf16, f32>(rt, 300);
}

pub fn matmul_bf16_out_bf16<R: Runtime>(rt: &R) {
    sweep::<R, bf16, bf16, bf16>(rt, 350);
}

pub fn matmul_e4m3<R: Runtime>(rt: &R) {
    sweep::<R, e4m3, e4m3, f32>(rt, 400);
}

pub fn matmul_e5m2<R: Runtime>(rt: &R) {
    sweep::<R, e5m2, e5m2, f32>(rt, 500);
}

pub fn matmul_e4m3_x_e5m2<R: Runtime>(rt: &R) {
    sweep::<R, e4m3, e5m2, f32>(rt, 600);
    sweep::<R, e5m2, e4m3, f32>(rt, 700);
}

/// Other block shapes, non-square blocks, column-major A, a grid of uneven tile groups.
pub fn matmul_block_shapes_and_layouts<R: Runtime>(rt: &R) {
    let p = Problem::<f32, f32>::new(33, 40, 47, true, false, 800);
    run_plain::<R, f32, f32, f32, 32, 16, 32>(rt, &p, false);
    run_plain::<R, f32, f32, f32, 32, 16, 32>(rt, &p, true);
    run_plain::<R, f32, f32, f32, 16, 64, 16>(rt, &p, false);
    run_plain::<R, f32, f32, f32, 16, 64, 16>(rt, &p, true);
    let p = Problem::<f16, f16>::new(17, 33, 40, true, true, 801);
    run_plain::<R, f16, f16, f32, 16, 32, 32>(rt, &p, false);
    run_plain::<R, f16, f16, f32, 16, 32, 32>(rt, &p, true);
    // 20 row blocks and 4 column blocks in the block-pointer kernels' grouped tile order, each tile
    // taken once (the output starts poisoned): groups of 8 (two full and a last of 4 rows), of 3 (a last
    // of 2), of 1 and of 0 (taken as 1), and taller than the grid (the launch order).
    let p = Problem::<f32, f32>::new(16 * 19 + 5, 50, 24, false, false, 802);
    for group in [GROUP_M, 3, 1, 0, i32::MAX] {
        run_plain_on::<R, f32, f32, f32, 16, 16, 16>(rt, &p, Some(group), None, None);
    }
}

/// Tiles large enough for the tensor-core accumulator layout (the result stays in `mma` registers across
/// the k loop): several warp grids, ragged edges on every dimension, column-major `A`, f16/bf16 outputs
/// (cast in that layout), block pointers and split-K (atomic adds from it).
pub fn matmul_tensor_core_tiles<R: Runtime>(rt: &R) {
    let p = Problem::<f16, f16>::new(150, 200, 90, false, false, 820);
    run_plain::<R, f16, f16, f32, 64, 64, 32>(rt, &p, false);
    run_plain::<R, f16, f16, f16, 128, 128, 32>(rt, &p, false);
    run_plain::<R, f16, f16, f32, 32, 64, 64>(rt, &p, true);
    run_plain::<R, f16, f16, f32, 64, 32, 16>(rt, &p, false);
    let p = Problem::<f16, f16>::new(70, 65, 130, true, true, 821);
    run_plain::<R, f16, f16, f32, 64, 128, 64>(rt, &p, false);
    run_plain::<R, f16, f16, f32, 128, 16, 32>(rt, &p, true);
    let p = Problem::<bf16, bf16>::new(97, 131, 77, false, true, 822);
    run_plain::<R, bf16, bf16, bf16, 64, 64, 32>(rt, &p, false);
    run_plain::<R, bf16, bf16, f32, 128, 64, 16>(rt, &p, true);
    for split_k in [1, 3] {
        run_splitk::<R, f16, f16, 64, 64, 32>(rt, &p_f16(823), split_k);
    }
    // Aligned rows (both operands can be pipelined with cp.async when num_stages >= 2), ragged M and N.
    let p = Problem::<f16, f16>::dense(136, 88, 256, 824);
    run_plain::<R, f16, f16, f16, 64, 64, 32>(rt, &p, false);
    run_plain::<R, f16, f16, f32, 128, 128, 32>(rt, &p, false);
    let p = Problem::<bf16, bf16>::dense(72, 200, 96, 825);
    run_plain::<R, bf16, bf16, bf16, 64, 64, 64>(rt, &p, false);
    run_plain::<R, bf16, bf16, f32, 32, 64, 16>(rt, &p, false);
}

/// `linear`: `C = (A · Bᵀ) · scale` with `B` stored `[N, K]` (the problem's column-major `B`). With
/// `scale = 0.25` the result is scaled back by 4 (exact) before the check.
fn run_linear<R, A, B, O, const BM: i32, const BN: i32, const BK: i32>(rt: &R, p: &Problem<A, B>, scale: f32)
where
    R: Runtime,
    A: TestElem + Numeric + DotOperands<B>,
    B: TestElem + Numeric,
    O: TestElem + Numeric,
{
    run_linear_on::<R, A, B, O, BM, BN, BK>(rt, p, scale, None)
}

/// [`run_linear`] on `warps` warps (else the runtime's default).
fn run_linear_on<R, A, B, O, const BM: i32, const BN: i32, const BK: i32>(rt: &R, p: &Problem<A, B>, scale: f32, warps: Option<u32>)
where
    R: Runtime,
    A: TestElem + Numeric + DotOperands<B>,
    B: TestElem + Numeric,
    O: TestElem + Numeric,
{
    run_linear_staged::<R, A, B, O, BM, BN, BK>(rt, p, scale, warps, None)
}

/// [`run_linear_on`] with `stages` pipeline stages (else the runtime's default).
fn run_linear_staged<R, A, B, O, const BM: i32, const BN: i32, const BK: i32>(
    rt: &R,
    p: &Problem<A, B>,
    scale: f32,
    warps: Option<u32>,
    stages: Option<u32>,
)
where
    R: Runtime,
    A: TestElem + Numeric + DotOperands<B>,
    B: TestElem + Numeric,
    O: TestElem + Numeric,
{
    run_linear_with::<R, A, B, O, BM, BN, BK>(rt, p, scale, warps, stages, false)
}

/// [`run_linear_staged`] on `linear`, or on `linear_block_ptr` where `block_ptr`.
fn run_linear_with<R, A, B, O, const BM: i32, const BN: i32, const BK: i32>(
    rt: &R,
    p: &Problem<A, B>,
    scale: f32,
    warps: Option<u32>,
    stages: Option<u32>,
    block_ptr: bool,
)
where
    R: Runtime,
    A: TestElem + Numeric + DotOperands<B>,
    B: TestElem + Numeric,
    O: TestElem + Numeric,
{
    let [sam, sak, sbk, sbn, scm] = p.strides;
    assert!(sak == 1 && sbk == 1, "linear needs contiguous rows of A and of B ([N, K])");
    let (ba, bb) = (upload(rt, &p.a), upload(rt, &p.b));
    let mut c = poisoned::<R, O>(rt, p.c_len);
    let launch = launch_on(p, BM, BN, warps, stages);
    let [m, n, k] = [p.m, p.n, p.k].map(|x| x as i32);
    let kernel = if block_ptr { "linear_block_ptr" } else { "linear" };
    let name = format!("{kernel}<{BM},{BN},{BK}> scale={scale} warps={warps:?} stages={stages:?}");
    let (sam, sbn, scm) = (sam as i32, sbn as i32, scm as i32);
    let res = if block_ptr {
        linear_block_ptr::<A, B, O, BM, BN, BK>::launch(rt, launch, &ba, &bb, &mut c, m, n, k, sam, sbn, scm, scale, GROUP_M)
    } else {
        linear::<A, B, O, BM, BN, BK>::launch(rt, launch, &ba, &bb, &mut c, m, n, k, sam, sbn, scm, scale)
    };
    launched(&p.describe::<O>(&name), res);
    let got: Vec<f64> = download_f64(rt, &c).into_iter().map(|x| x / scale as f64).collect();
    p.check::<O>(&name, &got);
}

/// A problem for [`linear`] whose rows all start 16-byte aligned (pipelined with `cp.async`).
fn dense_nt<A: TestElem, B: TestElem>(m: usize, n: usize, k: usize, seed: u64) -> Problem<A, B> {
    Problem::with_strides(m, n, k, (k, 1, m * k), (1, k, n * k), n, seed)
}

pub fn linear_16_bit<R: Runtime>(rt: &R) {
    let p = Problem::<f16, f16>::new(70, 90, 100, false, true, 830);
    run_linear::<R, f16, f16, f32, 16, 16, 16>(rt, &p, 1.0);
    run_linear::<R, f16, f16, f32, 64, 64, 32>(rt, &p, 0.25);
    run_linear::<R, f16, f16, f16, 32, 64, 64>(rt, &p, 1.0);
    let p = dense_nt::<f16, f16>(72, 136, 96, 831);
    run_linear::<R, f16, f16, f16, 64, 64, 32>(rt, &p, 1.0);
    run_linear::<R, f16, f16, f32, 128, 64, 32>(rt, &p, 0.25);
    let p = dense_nt::<bf16, bf16>(40, 72, 64, 832);
    run_linear::<R, bf16, bf16, bf16, 32, 32, 32>(rt, &p, 1.0);
    run_linear::<R, bf16, bf16, f32, 64, 32, 16>(rt, &p, 1.0);
}

/// Tiles that run on `wgmma` on sm_90a (16 rows per warp, B k-major; see codegen-ptx's `lower::wgmma`):
/// 4 and 8 warps, operand rows of 32, 64, 128 and 256 bytes (the last in 128-byte slabs), 16-bit and fp8
/// (mixed too), up to 256 columns; aligned rows (pipelined with `cp.async`) and unaligned ones (staged
/// from registers), ragged M, N and K. Elsewhere the same tiles run on `mma.sync`.
pub fn linear_wgmma_tiles<R: Runtime>(rt: &R) {
    let p = dense_nt::<bf16, bf16>(136, 200, 288, 850);
    run_linear_on::<R, bf16, bf16, f32, 128, 128, 64>(rt, &p, 1.0, Some(8));
    run_linear_on::<R, bf16, bf16, bf16, 64, 128, 128>(rt, &p, 0.25, Some(4));
    run_linear_on::<R, bf16, bf16, f32, 64, 256, 64>(rt, &p, 1.0, Some(4));
    run_linear_on::<R, bf16, bf16, f32, 64, 64, 32>(rt, &p, 1.0, Some(4));
    // 16-bit dots of a pipelined loop leave their wgmma group in flight with 3 or more stages: copies 1
    // (3 stages, the default) or 2 (4 stages) iterations ahead; with 2 stages they wait at once.
    run_linear_staged::<R, bf16, bf16, f32, 64, 64, 32>(rt, &p, 1.0, Some(4), Some(4));
    run_linear_staged::<R, bf16, bf16, bf16, 128, 128, 64>(rt, &p, 1.0, Some(8), Some(2));
    let p = Problem::<f16, f16>::new(70, 90, 100, false, true, 851);
    run_linear_on::<R, f16, f16, f32, 64, 64, 64>(rt, &p, 1.0, Some(4));
    run_linear_on::<R, f16, f16, f16, 128, 32, 16>(rt, &p, 1.0, Some(8));
    let p = dense_nt::<e4m3, e4m3>(136, 200, 352, 852);
    run_linear_on::<R, e4m3, e4m3, bf16, 128, 128, 128>(rt, &p, 1.0, Some(8));
    run_linear_on::<R, e4m3, e4m3, f32, 64, 128, 256>(rt, &p, 0.25, Some(4));
    // One promotion group per dot: its running sum is carried into the next iteration (copies 2 ahead).
    run_linear_staged::<R, e4m3, e4m3, f32, 64, 64, 128>(rt, &p, 1.0, Some(4), Some(4));
    let p = dense_nt::<e4m3, e5m2>(72, 136, 96, 853);
    run_linear_on::<R, e4m3, e5m2, f32, 64, 64, 64>(rt, &p, 1.0, Some(4));
    let p = Problem::<e4m3, e4m3>::new(70, 90, 100, false, true, 854);
    run_linear_on::<R, e4m3, e4m3, f32, 64, 32, 32>(rt, &p, 1.0, Some(4));
}

/// Block-pointer tiles on `wgmma` (16 rows per warp), whose loads go through TMA on sm_90a (codegen-ptx's
/// `lower::tma`: row strides of whole 16-byte units, unit column strides): operand rows of 64, 128 and
/// 256 bytes (two boxes), 2 to 4 stages, ragged M, N and K (K past the tensor reads zeros), a loop shorter
/// than the prefetch distance, fp8 A through TMA with B staged from registers, a tensor TMA cannot map
/// (K = 0 columns: the launch falls back to per-thread loads), and `linear_block_ptr` (B `[N, K]`, both
/// operands k-major) in bf16 and fp8. Elsewhere the same tiles use per-thread loads.
pub fn matmul_block_ptr_wgmma_tiles<R: Runtime>(rt: &R) {
    let p = Problem::<bf16, bf16>::dense(136, 208, 304, 860);
    for stages in [2, 3, 4] {
        run_plain_on::<R, bf16, bf16, f32, 64, 64, 64>(rt, &p, Some(GROUP_M), Some(4), Some(stages));
    }
    run_plain_on::<R, bf16, bf16, f32, 64, 128, 32>(rt, &p, Some(GROUP_M), Some(4), Some(3));
    run_plain_on::<R, bf16, bf16, bf16, 128, 256, 64>(rt, &p, Some(GROUP_M), Some(8), Some(2));
    let p = Problem::<f16, f16>::dense(72, 144, 160, 861);
    run_plain_on::<R, f16, f16, f32, 128, 128, 64>(rt, &p, Some(GROUP_M), Some(8), Some(3));
    // One iteration, with copies up to 2 ahead (4 stages).
    let p = Problem::<f16, f16>::dense(64, 64, 16, 862);
    run_plain_on::<R, f16, f16, f32, 64, 64, 32>(rt, &p, Some(GROUP_M), Some(4), Some(4));
    let p = Problem::<e4m3, e4m3>::dense(80, 96, 192, 863);
    run_plain_on::<R, e4m3, e4m3, f32, 64, 64, 64>(rt, &p, Some(GROUP_M), Some(4), Some(3));
    let p = Problem::<bf16, bf16>::with_strides(64, 64, 0, (16, 1, 64 * 16), (64, 1, 64 * 16), 64, 864);
    run_plain_on::<R, bf16, bf16, f32, 64, 64, 64>(rt, &p, Some(GROUP_M), Some(4), Some(3));
    // `linear_block_ptr`: B stored [N, K], both operands k-major through TMA; fp8 with its lagged
    // promotion (one group a dot) and with two groups (BLOCK_K 256, not lagged).
    let p = dense_nt::<bf16, bf16>(136, 208, 304, 865);
    run_linear_with::<R, bf16, bf16, bf16, 128, 128, 64>(rt, &p, 1.0, Some(8), Some(3), true);
    run_linear_with::<R, bf16, bf16, f32, 64, 256, 64>(rt, &p, 0.5, Some(4), Some(4), true);
    let p = dense_nt::<e4m3, e4m3>(136, 208, 352, 866);
    run_linear_with::<R, e4m3, e4m3, bf16, 128, 128, 128>(rt, &p, 1.0, Some(8), Some(3), true);
    run_linear_with::<R, e4m3, e4m3, f32, 64, 64, 256>(rt, &p, 0.25, Some(4), Some(3), true);
}

/// fp8 operands (e4m3, e5m2, mixed) on `mma.sync.m16n8k32` where the target has it: ragged and aligned
/// (pipelined) problems, several tiles.
pub fn linear_fp8<R: Runtime>(rt: &R) {
    let p = Problem::<e4m3, e4m3>::new(70, 90, 100, false, true, 840);
    run_linear::<R, e4m3, e4m3, f32, 64, 64, 32>(rt, &p, 0.25);
    run_linear::<R, e4m3, e4m3, bf16, 32, 64, 64>(rt, &p, 1.0);
    run_linear::<R, e4m3, e4m3, f32, 16, 16, 16>(rt, &p, 1.0);
    let p = dense_nt::<e4m3, e4m3>(72, 136, 96, 841);
    run_linear::<R, e4m3, e4m3, f32, 64, 64, 32>(rt, &p, 1.0);
    run_linear::<R, e4m3, e4m3, f16, 128, 64, 64>(rt, &p, 0.25);
    let p = dense_nt::<e5m2, e5m2>(40, 72, 64, 842);
    run_linear::<R, e5m2, e5m2, f32, 32, 32, 32>(rt, &p, 1.0);
    let p = dense_nt::<e4m3, e5m2>(48, 40, 128, 843);
    run_linear::<R, e4m3, e5m2, f32, 16, 32, 64>(rt, &p, 1.0);
    let p = dense_nt::<e5m2, e4m3>(48, 40, 128, 844);
    run_linear::<R, e5m2, e4m3, f32, 32, 16, 32>(rt, &p, 1.0);
    // fp8 B stored [K, N] (not transposed): staged transposed from registers.
    let p = Problem::<e4m3, e4m3>::new(50, 70, 96, false, false, 845);
    run_plain::<R, e4m3, e4m3, f32, 32, 64, 32>(rt, &p, false);
    let p = Problem::<e5m2, e4m3>::dense(64, 64, 64, 846);
    run_plain::<R, e5m2, e4m3, f32, 64, 64, 64>(rt, &p, false);
}

fn p_f16(seed: u64) -> Problem<f16, f16> {
    Problem::<f16, f16>::new(100, 90, 200, false, false, seed)
}

fn run_splitk<R, A, B, const BM: i32, const BN: i32, const BK: i32>(rt: &R, p: &Problem<A, B>, split_k: u32)
where
    R: Runtime,
    A: TestElem + Numeric + DotOperands<B>,
    B: TestElem + Numeric,
{
    let (ba, bb) = (upload(rt, &p.a), upload(rt, &p.b));
    // The written region starts at zero (the kernel adds into it); the gaps are poisoned.
    let written = p.written();
    let init: Vec<f32> = (0..p.c_len).map(|i| if written(i) { 0.0 } else { f32::NAN }).collect();
    let mut c = upload(rt, &init);
    let grid = (blocks(p.m, BM as usize), blocks(p.n, BN as usize), split_k);
    let [m, n, k, sam, sak, sbk, sbn, scm, scn] = p.args();
    let name = format!("matmul_splitk<{BM},{BN},{BK}> split_k={split_k}");
    launched(
        &p.describe::<f32>(&name),
        matmul_splitk::<A, B, BM, BN, BK>::launch(rt, grid, &ba, &bb, &mut c, m, n, k, sam, sak, sbk, sbn, scm, scn),
    );
    p.check::<f32>(&name, &download_f64(rt, &c));
}

pub fn matmul_splitk_f32<R: Runtime>(rt: &R) {
    for (i, &(m, n, k)) in SHAPES.iter().enumerate() {
        let p = Problem::<f32, f32>::new(m, n, k, false, i % 2 == 0, 900 + i as u64);
        for split_k in [1, 2, 4, 8] {
            run_splitk::<R, f32, f32, 16, 16, 16>(rt, &p, split_k);
        }
    }
}

pub fn matmul_splitk_low_precision<R: Runtime>(rt: &R) {
    let p = Problem::<f16, f16>::new(33, 40, 100, false, false, 1000);
    for split_k in [1, 2, 4, 8] {
        run_splitk::<R, f16, f16, 16, 16, 16>(rt, &p, split_k);
    }
    let p = Problem::<bf16, bf16>::new(17, 20, 70, false, true, 1001);
    for split_k in [1, 2, 4, 8] {
        run_splitk::<R, bf16, bf16, 16, 16, 16>(rt, &p, split_k);
    }
    let p = Problem::<e4m3, e5m2>::new(17, 33, 64, false, false, 1002);
    for split_k in [1, 2, 4, 8] {
        run_splitk::<R, e4m3, e5m2, 16, 16, 16>(rt, &p, split_k);
    }
}

/// Split-K adds into what C holds: a second launch doubles the result.
pub fn matmul_splitk_accumulates<R: Runtime>(rt: &R) {
    let p = Problem::<f32, f32>::new(17, 20, 45, false, false, 1100);
    let (ba, bb) = (upload(rt, &p.a), upload(rt, &p.b));
    let mut c = filled(rt, p.c_len, 0.0f32);
    let [m, n, k, sam, sak, sbk, sbn, scm, scn] = p.args();
    for _ in 0..2 {
        launched(
            "splitk twice",
            matmul_splitk::<f32, f32, 16, 16, 16>::launch(rt, (2, 2, 4), &ba, &bb, &mut c, m, n, k, sam, sak, sbk, sbn, scm, scn),
        );
    }
    let got = download_f64(rt, &c);
    let written = p.written();
    let want: Vec<f64> = p.want.iter().map(|w| 2.0 * w).collect();
    assert_close_where("splitk twice", &got, &want, 0.0, |i| 2e-5 * p.mag[i], &written);
}

/// Interpreter only: a launch whose A buffer is too small for the shape fails with an out-of-bounds
/// error naming `a`, not a panic. (A GPU need not fault on it.)
pub fn matmul_buffer_too_small_is_an_error(rt: &Interpreter) {
    let (m, n, k) = (20usize, 16usize, 16usize);
    let a = upload(rt, &vec![1.0f32; (m - 1) * k]);
    let b = upload(rt, &vec![1.0f32; k * n]);
    let mut c = filled(rt, m * n, f32::NAN);
    let res = matmul::<f32, f32, f32, 16, 16, 16>::launch(
        rt,
        (2, 1),
        &a,
        &b,
        &mut c,
        m as i32,
        n as i32,
        k as i32,
        k as i32,
        1,
        n as i32,
        1,
        n as i32,
        1,
    );
    let msg = res.expect_err("A is one row short").to_string();
    assert!(msg.contains("out-of-bounds") && msg.contains("`a`"), "unexpected error: {msg}");
}
