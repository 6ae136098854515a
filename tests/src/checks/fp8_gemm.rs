//! `kernels::fp8_gemm`: the split-K fp8 GEMM through its host API (every scale mode, bias, split-K in both
//! combine modes, both fp8 formats and bf16, several tiles), its argument checks, and the activation
//! quantization.

use super::*;
use dsl_core::lang::{DotOperands, Numeric};
use dsl_core::prelude::{bf16, e4m3, e5m2, f16, LaunchOptions, Runtime};
use kernels::fp8_gemm::{
    fp8_gemm, matvec_tiles, quantize_rows, scaled_matvec, swiglu_matvec, swiglu_tiles, RmsNorm, tickets_len, workspace_len, GemmConfig, GemmError, GemmOptions, Operand, Scale, SplitKMode, Workspace,
};

cases!(
    "fp8_gemm": fp8_gemm_scales_and_splits,
    fp8_gemm_formats,
    fp8_gemm_tiles,
    fp8_gemm_stream_k,
    fp8_gemm_fused_combine,
    fp8_gemm_is_deterministic,
    fp8_gemm_rejects_bad_arguments,
    fp8_gemm_accumulates_into_out,
    fp8_gemm_matvec,
    swiglu_matvec_epilogue,
    quantize_rows_e4m3,
    fp8_layer_chain,
);

/// One problem: A `[m, k]` (rows `k + 1` apart), B `[n, k]` (rows `sbn` apart: `k + 3`, or `k` for an
/// aligned problem), C rows `n + 2` apart (gaps poisoned); random scales (positive, per tensor / row /
/// column) and bias.
struct Problem<A, B> {
    m: usize,
    n: usize,
    k: usize,
    sbn: usize,
    a: Vec<A>,
    b: Vec<B>,
    af: Vec<f64>,
    bf: Vec<f64>,
    sa: Vec<f32>,
    sb: Vec<f32>,
    bias: Vec<f32>,
}

const SCM_PAD: usize = 2;

impl<A: TestElem, B: TestElem> Problem<A, B> {
    fn new(m: usize, n: usize, k: usize, seed: u64) -> Self {
        Self::with_row_stride(m, n, k, k + 3, seed)
    }

    /// B's rows `k` apart: with `k` a multiple of 16, every row starts 16-byte aligned.
    fn aligned(m: usize, n: usize, k: usize, seed: u64) -> Self {
        Self::with_row_stride(m, n, k, k, seed)
    }

    fn with_row_stride(m: usize, n: usize, k: usize, sbn: usize, seed: u64) -> Self {
        let mut r = rng(seed);
        let (a, af) = rand_elems::<A>(&mut r, m * (k + 1), 2.0);
        let (b, bf) = rand_elems::<B>(&mut r, n * sbn, 2.0);
        let pos = |r: &mut StdRng, len: usize| (0..len).map(|_| r.gen_range(0.25f32..2.0)).collect::<Vec<_>>();
        let sa = pos(&mut r, m);
        let sb = pos(&mut r, n);
        let bias = randn(&mut r, n, 4.0).into_iter().map(|x| x as f32).collect();
        Problem { m, n, k, sbn, a, b, af, bf, sa, sb, bias }
    }

    /// The float64 result and per-element error scale for the scale modes and bias chosen.
    fn reference(&self, row: bool, col: bool, bias: bool) -> (Vec<f64>, Vec<f64>) {
        let scm = self.n + SCM_PAD;
        let (mut want, mut mag) = (vec![f64::NAN; self.m * scm], vec![0.0; self.m * scm]);
        for i in 0..self.m {
            for j in 0..self.n {
                let (s, g) = dot_f64(&self.af[i * (self.k + 1)..][..self.k], &self.bf[j * self.sbn..][..self.k]);
                let sc = (if row { self.sa[i] } else { self.sa[0] }) as f64 * (if col { self.sb[j] } else { self.sb[0] }) as f64;
                let bv = if bias { self.bias[j] as f64 } else { 0.0 };
                want[i * scm + j] = s * sc + bv;
                mag[i * scm + j] = g * sc + bv.abs();
            }
        }
        (want, mag)
    }
}

/// `(Σ a·b, Σ |a·b|)` over two equally long rows, in float64.
fn dot_f64(a: &[f64], b: &[f64]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0, 0.0), |(s, g), (x, y)| (s + x * y, g + (x * y).abs()))
}

/// Runs `fp8_gemm` with the scale modes, bias, config and split mode given and checks it.
#[allow(clippy::too_many_arguments)]
fn run<R, A, B, O>(rt: &R, p: &Problem<A, B>, row: bool, col: bool, bias: bool, cfg: Option<GemmConfig>, mode: SplitKMode) -> Vec<f64>
where
    R: Runtime,
    A: TestElem + Numeric + DotOperands<B>,
    B: TestElem + Numeric,
    O: TestElem + Numeric,
{
    let scm = p.n + SCM_PAD;
    let (ba, bb) = (upload(rt, &p.a), upload(rt, &p.b));
    let (sa, sb, bbias) = (upload(rt, &p.sa), upload(rt, &p.sb), upload(rt, &p.bias));
    let mut c = poisoned::<R, O>(rt, p.m * scm);
    let ws_len = cfg.map_or(16 * p.m * p.n, |c| workspace_len(p.m, p.n, p.k, &c)).max(1);
    let mut ws = filled::<R, f32>(rt, ws_len, f32::NAN);
    let tickets_n = cfg.map_or(0, |c| tickets_len(p.m, p.n, &c)).max(1);
    let mut tickets = upload(rt, &vec![0i32; tickets_n]);
    let opts = GemmOptions { config: cfg, mode, sm_count: 132, accumulate: false };
    let a = Operand { buf: &ba, rows: p.m, cols: p.k, row_stride: p.k + 1 };
    let b = Operand { buf: &bb, rows: p.n, cols: p.k, row_stride: p.sbn };
    let scale_a = if row { Scale::PerRow(&sa) } else { Scale::PerTensor(&sa) };
    let scale_b = if col { Scale::PerColumn(&sb) } else { Scale::PerTensor(&sb) };
    let ws = Workspace { partials: &mut ws, tickets: Some(&mut tickets) };
    let res = fp8_gemm(rt, a, b, scale_a, scale_b, bias.then_some(&bbias), &mut c, scm, Some(ws), &opts);
    let what = format!(
        "fp8_gemm {}x{}x{} {}x{}->{} row_scale={row} col_scale={col} bias={bias} {cfg:?} {mode:?}",
        p.m,
        p.n,
        p.k,
        A::NAME,
        B::NAME,
        O::NAME
    );
    let used = ok(&what, res);
    let got = download_f64(rt, &c);
    let (want, mag) = p.reference(row, col, bias);
    // f32 accumulation (K <= 512: ~K * 2^-24 of sum|ab|), one rounding to O; atomic adds into a 16-bit C
    // round each split's partial too.
    let partial_roundings = if mode == SplitKMode::Atomic && used.split_k > 1 { used.split_k as f64 * O::U } else { 0.0 };
    let written = |i: usize| i % scm < p.n;
    let rel = 3e-5 + partial_roundings + fp8_dot_err::<A, B>();
    assert_close_where(&what, &got, &want, O::U, |i| rel * mag[i] + O::TINY, written);
    assert_poison_kept(&what, &got, written);
    let left = download(rt, &tickets);
    assert!(left.iter().all(|&t| t == 0), "{what}: the ticket counters were left at {left:?}");
    got
}

fn cfg(block_m: u32, block_n: u32, block_k: u32, split_k: u32) -> Option<GemmConfig> {
    Some(GemmConfig::split(block_m, block_n, block_k, split_k))
}

fn fused(block_m: u32, block_n: u32, block_k: u32, split_k: u32) -> Option<GemmConfig> {
    Some(GemmConfig::split(block_m, block_n, block_k, split_k).with_fused_combine())
}

fn stream(block_m: u32, block_n: u32, block_k: u32, programs: u32) -> Option<GemmConfig> {
    Some(GemmConfig::stream(block_m, block_n, block_k, programs))
}

pub fn fp8_gemm_scales_and_splits<R: Runtime>(rt: &R) {
    for (i, m) in [1, 3, 17].into_iter().enumerate() {
        let p = Problem::<e4m3, e4m3>::new(m, 70, 200, 900 + i as u64);
        for split in [1, 2, 4, 8, 16] {
            run::<R, _, _, bf16>(rt, &p, false, false, false, cfg(16, 64, 256, split), SplitKMode::Deterministic);
            run::<R, _, _, bf16>(rt, &p, true, true, true, cfg(16, 64, 256, split), SplitKMode::Deterministic);
        }
        for split in [2, 4] {
            run::<R, _, _, f32>(rt, &p, true, false, true, cfg(16, 64, 256, split), SplitKMode::Atomic);
            run::<R, _, _, bf16>(rt, &p, false, true, false, cfg(16, 64, 256, split), SplitKMode::Atomic);
        }
        // The heuristic's own choice.
        run::<R, _, _, bf16>(rt, &p, true, true, false, None, SplitKMode::Deterministic);
    }
}

/// `GemmOptions::accumulate` (the residual add fused into a layer's last GEMM): `out += A·Bᵀ * scales +
/// bias` into an f32 `out` holding random values, through every way the partials combine (one split:
/// atomic, one add per element; split-K through the workspace; atomic split-K; stream-K). Pad columns
/// hold poison and must keep it.
pub fn fp8_gemm_accumulates_into_out<R: Runtime>(rt: &R) {
    let p = Problem::<e4m3, e4m3>::new(3, 70, 600, 930);
    let scm = p.n + SCM_PAD;
    let written = |i: usize| i % scm < p.n;
    let mut r = rng(931);
    let init: Vec<f32> = (0..p.m * scm).map(|i| if written(i) { (4.0 * normal(&mut r)) as f32 } else { f32::NAN }).collect();
    let (want, mag) = p.reference(true, true, true);
    let (ba, bb) = (upload(rt, &p.a), upload(rt, &p.b));
    let (sa, sb, bbias) = (upload(rt, &p.sa), upload(rt, &p.sb), upload(rt, &p.bias));
    for (cfg, mode) in [
        (cfg(16, 64, 256, 1), SplitKMode::Deterministic),
        (cfg(16, 64, 256, 2), SplitKMode::Deterministic),
        (fused(16, 64, 256, 3), SplitKMode::Deterministic),
        (cfg(16, 32, 256, 3), SplitKMode::Atomic),
        (stream(16, 32, 256, 5), SplitKMode::Deterministic),
    ] {
        let mut c = upload(rt, &init);
        let mut ws = filled::<R, f32>(rt, workspace_len(p.m, p.n, p.k, &cfg.unwrap()).max(1), f32::NAN);
        let opts = GemmOptions { config: cfg, mode, sm_count: 132, accumulate: true };
        let a = Operand { buf: &ba, rows: p.m, cols: p.k, row_stride: p.k + 1 };
        let b = Operand { buf: &bb, rows: p.n, cols: p.k, row_stride: p.sbn };
        let what = format!("fp8_gemm accumulating {cfg:?} {mode:?}");
        let mut tickets = upload(rt, &vec![0i32; tickets_len(p.m, p.n, &cfg.unwrap()).max(1)]);
        let ws = Workspace { partials: &mut ws, tickets: Some(&mut tickets) };
        ok(&what, fp8_gemm(rt, a, b, Scale::PerRow(&sa), Scale::PerColumn(&sb), Some(&bbias), &mut c, scm, Some(ws), &opts));
        let got = download_f64(rt, &c);
        let want: Vec<f64> = want.iter().zip(&init).map(|(w, &x)| w + x as f64).collect();
        // f32 accumulation, the add into `out`, and atomic splits each rounding once in f32.
        assert_close_where(&what, &got, &want, 4.0 * f32::EPSILON as f64, |i| (3e-5 + FP8_TENSOR_CORE_ERR) * mag[i] + 1e-6, written);
        assert_poison_kept(&what, &got, written);
    }
}

/// An RMSNorm for a matrix-vector product over `p`'s row of `A`: random positive weights.
struct Norm {
    gamma: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn new<A: TestElem, B: TestElem>(p: &Problem<A, B>, seed: u64) -> Norm {
        let mut r = rng(seed);
        Norm { gamma: (0..p.k).map(|_| r.gen_range(0.5f32..1.5)).collect(), eps: 1e-5 }
    }

    /// [`Problem::reference`] (`scale_a` per tensor, no bias) of the normed row `A ⊙ gamma / rms(A)`.
    fn reference<A: TestElem, B: TestElem>(&self, p: &Problem<A, B>, col: bool) -> (Vec<f64>, Vec<f64>) {
        let x = &p.af[..p.k];
        let inv = 1.0 / (x.iter().map(|v| v * v).sum::<f64>() / p.k as f64 + self.eps as f64).sqrt();
        let h: Vec<f64> = x.iter().zip(&self.gamma).map(|(v, &g)| v * inv * g as f64).collect();
        let scm = p.n + SCM_PAD;
        let (mut want, mut mag) = (vec![f64::NAN; scm], vec![0.0; scm]);
        for j in 0..p.n {
            let (s, g) = dot_f64(&h, &p.bf[j * p.sbn..][..p.k]);
            let sc = p.sa[0] as f64 * (if col { p.sb[j] } else { p.sb[0] }) as f64;
            (want[j], mag[j]) = (s * sc, g * sc);
        }
        (want, mag)
    }
}

/// [`scaled_matvec`] with an RMSNorm of an f32 row (the residual stream) in front, into bf16.
fn run_normed<R: Runtime, B: TestElem + Numeric>(rt: &R, p: &Problem<f32, B>, col: bool, rows: u32, bk: u32, seed: u64) {
    let norm = Norm::new(p, seed);
    let scm = p.n + SCM_PAD;
    let (ba, bb, sa, sb, gamma) = (upload(rt, &p.a), upload(rt, &p.b), upload(rt, &p.sa), upload(rt, &p.sb), upload(rt, &norm.gamma));
    let mut c = poisoned::<R, bf16>(rt, scm);
    let a = Operand { buf: &ba, rows: 1, cols: p.k, row_stride: p.k + 1 };
    let b = Operand { buf: &bb, rows: p.n, cols: p.k, row_stride: p.sbn };
    let scale_b = if col { Scale::PerColumn(&sb) } else { Scale::PerTensor(&sb) };
    let what = format!("scaled_matvec with RMSNorm 1x{}x{} f32 x {} col_scale={col} rows {rows} block_k {bk}", p.n, p.k, B::NAME);
    let rms = Some(RmsNorm { gamma: &gamma, eps: norm.eps });
    ok(&what, scaled_matvec(rt, a, b, Scale::PerTensor(&sa), scale_b, None, &mut c, scm, rms, &GemmConfig::matvec(rows, bk), false));
    let got = download_f64(rt, &c);
    let (want, mag) = norm.reference(p, col);
    let written = |i: usize| i % scm < p.n;
    // The products in f32 as without the norm; the norm's factor in f32 (a sum of K squares).
    assert_close_where(&what, &got, &want, bf16::U, |i| 3e-5 * mag[i] + bf16::TINY, written);
    assert_poison_kept(&what, &got, written);
}

/// [`scaled_matvec`] with bf16 activations against e4m3 weights (no `dot` takes the pair), into bf16:
/// `scale_a` per tensor (W8A16 has none: the decode step passes 1), `scale_b` per column or not.
fn run_w8a16<R: Runtime>(rt: &R, p: &Problem<bf16, e4m3>, col: bool, bias: bool, rows: u32, bk: u32) {
    let scm = p.n + SCM_PAD;
    let (ba, bb) = (upload(rt, &p.a), upload(rt, &p.b));
    let (sa, sb, bbias) = (upload(rt, &p.sa), upload(rt, &p.sb), upload(rt, &p.bias));
    let mut c = poisoned::<R, bf16>(rt, scm);
    let a = Operand { buf: &ba, rows: 1, cols: p.k, row_stride: p.k + 1 };
    let b = Operand { buf: &bb, rows: p.n, cols: p.k, row_stride: p.sbn };
    let scale_b = if col { Scale::PerColumn(&sb) } else { Scale::PerTensor(&sb) };
    let what = format!("scaled_matvec 1x{}x{} bf16 x e4m3 col_scale={col} bias={bias} rows {rows} block_k {bk}", p.n, p.k);
    let res = scaled_matvec(rt, a, b, Scale::PerTensor(&sa), scale_b, bias.then_some(&bbias), &mut c, scm, None, &GemmConfig::matvec(rows, bk), false);
    ok(&what, res);
    let got = download_f64(rt, &c);
    let (want, mag) = p.reference(false, col, bias);
    let written = |i: usize| i % scm < p.n;
    assert_close_where(&what, &got, &want, bf16::U, |i| 3e-5 * mag[i] + bf16::TINY, written);
    assert_poison_kept(&what, &got, written);
}

/// The matrix-vector product of `M = 1` (`GemmConfig::matvec`): every declared tile with fp8 and bf16
/// operands, rows of `B` unaligned (scalar loads) and aligned (16-byte loads), `N` not a multiple of
/// the rows per program and `K` not a multiple of the two blocks a step reads, every scale mode, bias,
/// accumulation into `out`, bf16 activations against e4m3 weights and an RMSNorm of an f32 row in front
/// ([`scaled_matvec`]); refused for more
/// than one row of `A`, and a split-K config refused by [`scaled_matvec`].
pub fn fp8_gemm_matvec<R: Runtime>(rt: &R) {
    let tiles = matvec_tiles();
    assert!(tiles.len() >= 4, "the kernel declares {} tiles", tiles.len());
    let ragged = Problem::<e4m3, e4m3>::new(1, 70, 1100, 960);
    let aligned = Problem::<e4m3, e4m3>::aligned(1, 66, 2080, 961);
    let mixed = Problem::<e5m2, e4m3>::aligned(1, 40, 528, 962);
    let half = Problem::<bf16, bf16>::aligned(1, 37, 784, 963);
    let half_ragged = Problem::<bf16, bf16>::new(1, 9, 300, 964);
    let w8a16 = Problem::<bf16, e4m3>::aligned(1, 50, 1056, 966);
    let w8a16_ragged = Problem::<bf16, e4m3>::new(1, 13, 700, 967);
    let normed_fp8 = Problem::<f32, e4m3>::new(1, 23, 1100, 977);
    let normed_half = Problem::<f32, bf16>::aligned(1, 11, 4096 + 256, 978);
    for (i, &(rows, bk)) in tiles.iter().enumerate() {
        let c = Some(GemmConfig::matvec(rows, bk));
        let (row, col, bias) = (i % 2 == 0, i % 3 != 1, i % 2 == 1);
        run::<R, _, _, bf16>(rt, &ragged, row, col, bias, c, SplitKMode::Deterministic);
        run::<R, _, _, bf16>(rt, &aligned, !row, true, !bias, c, SplitKMode::Deterministic);
        run::<R, _, _, f32>(rt, &mixed, row, col, true, c, SplitKMode::Deterministic);
        run::<R, _, _, bf16>(rt, &half, false, false, bias, c, SplitKMode::Deterministic);
        run::<R, _, _, f16>(rt, &half_ragged, true, col, false, c, SplitKMode::Deterministic);
        run_w8a16(rt, &w8a16, col, bias, rows, bk);
        run_w8a16(rt, &w8a16_ragged, !col, !bias, rows, bk);
        if bk == 512 {
            run_normed(rt, &normed_fp8, col, rows, bk, 968 + i as u64);
        } else {
            run_normed(rt, &normed_half, !col, rows, bk, 968 + i as u64);
        }
    }
    // `out += ...` into random f32 values (pad columns poisoned).
    let p = &aligned;
    let scm = p.n + SCM_PAD;
    let written = |i: usize| i % scm < p.n;
    let mut r = rng(965);
    let init: Vec<f32> = (0..scm).map(|i| if written(i) { (4.0 * normal(&mut r)) as f32 } else { f32::NAN }).collect();
    let (want, mag) = p.reference(true, true, true);
    let want: Vec<f64> = want.iter().zip(&init).map(|(w, &x)| w + x as f64).collect();
    let (ba, bb, sa, sb, bbias) = (upload(rt, &p.a), upload(rt, &p.b), upload(rt, &p.sa), upload(rt, &p.sb), upload(rt, &p.bias));
    let a = Operand { buf: &ba, rows: 1, cols: p.k, row_stride: p.k };
    let b = Operand { buf: &bb, rows: p.n, cols: p.k, row_stride: p.sbn };
    let &(rows, bk) = &tiles[1];
    let opts = GemmOptions { config: Some(GemmConfig::matvec(rows, bk)), accumulate: true, ..GemmOptions::default() };
    let mut c = upload(rt, &init);
    ok("matvec accumulating", fp8_gemm(rt, a, b, Scale::PerRow(&sa), Scale::PerColumn(&sb), Some(&bbias), &mut c, scm, None, &opts));
    let got = download_f64(rt, &c);
    assert_close_where("matvec accumulating", &got, &want, 4.0 * f32::EPSILON as f64, |i| 3e-5 * mag[i] + 1e-6, written);
    assert_poison_kept("matvec accumulating", &got, written);
    // More than one row of A, a split, or an undeclared tile: refused, nothing written.
    let a2 = Operand { buf: &ba, rows: 1, cols: p.k / 2, row_stride: p.k / 2 };
    let b2 = Operand { buf: &bb, rows: p.n, cols: p.k / 2, row_stride: p.sbn };
    let mut c = poisoned::<R, bf16>(rt, 2 * scm);
    let two = Operand { rows: 2, ..a2 };
    for (a, cfg, what) in [
        (two, GemmConfig::matvec(rows, bk), "two rows"),
        (a2, GemmConfig { split_k: 2, ..GemmConfig::matvec(rows, bk) }, "split"),
        (a2, GemmConfig::matvec(3, bk), "undeclared rows"),
    ] {
        let opts = GemmOptions { config: Some(cfg), ..GemmOptions::default() };
        match fp8_gemm(rt, a, b2, Scale::PerTensor(&sa), Scale::PerTensor(&sb), None, &mut c, scm, None, &opts) {
            Err(GemmError::Matvec(..)) if what != "undeclared rows" => {}
            Err(GemmError::Blocks { schedule: "matrix-vector", .. }) if what == "undeclared rows" => {}
            other => panic!("matvec with {what}: {:?}", other.map_err(|e| e.to_string())),
        }
    }
    let split = GemmConfig::split(16, 64, 256, 1);
    match scaled_matvec(rt, a2, b2, Scale::PerTensor(&sa), Scale::PerTensor(&sb), None, &mut c, scm, None, &split, false) {
        Err(GemmError::NotMatvec(..)) => {}
        other => panic!("scaled_matvec with a split-K config: {:?}", other.map_err(|e| e.to_string())),
    }
    assert_poison_kept("matvec after refused calls", &download_f64(rt, &c), |_| false);
}

/// [`swiglu_matvec`]: the gate-and-up product of one row with its SwiGLU in the epilogue, `out[j] =
/// silu(g_j) * u_j` over a `[2f, K]` weight, for every declared tile: bf16 activations against e4m3
/// weights (scales per row of the weight, or per tensor) and bf16 against bf16, with and without an
/// RMSNorm of an f32 row in front, `f` not a multiple of the outputs per program, `K` ragged; poisoned
/// outputs. Refused: an odd row count, an undeclared tile.
pub fn swiglu_matvec_epilogue<R: Runtime>(rt: &R) {
    let tiles = swiglu_tiles();
    assert!(tiles.len() >= 4, "swiglu_mv declares {} tiles", tiles.len());
    let fp8 = Problem::<bf16, e4m3>::aligned(1, 2 * 21, 1056, 980);
    // (Seeds where the first output is far from 0: a flipped sign must show, see every_case_fails_on_a_wrong_backend.)
    let fp8_ragged = Problem::<bf16, e4m3>::new(1, 2 * 7, 700, 971);
    let half = Problem::<bf16, bf16>::aligned(1, 2 * 19, 528, 972);
    let normed = Problem::<f32, e4m3>::new(1, 2 * 9, 1100, 975);
    let normed_half = Problem::<f32, bf16>::aligned(1, 2 * 5, 576, 976);
    for (i, &(outs, bk)) in tiles.iter().enumerate() {
        let cfg = GemmConfig::matvec(2 * outs, bk);
        let col = i % 2 == 0;
        run_swiglu(rt, &fp8, col, None, &cfg);
        run_swiglu(rt, &fp8_ragged, !col, None, &cfg);
        run_swiglu(rt, &half, col, None, &cfg);
        run_swiglu(rt, &normed, !col, Some(&Norm::new(&normed, 973)), &cfg);
        run_swiglu(rt, &normed_half, col, Some(&Norm::new(&normed_half, 974)), &cfg);
    }
    let p = &fp8;
    let (ba, bb, sa, sb) = (upload(rt, &p.a), upload(rt, &p.b), upload(rt, &p.sa), upload(rt, &p.sb));
    let a = Operand { buf: &ba, rows: 1, cols: p.k, row_stride: p.k };
    let mut c = poisoned::<R, bf16>(rt, p.n);
    let odd = Operand { buf: &bb, rows: p.n - 1, cols: p.k, row_stride: p.sbn };
    let b = Operand { buf: &bb, rows: p.n, cols: p.k, row_stride: p.sbn };
    let (outs, bk) = tiles[0];
    match swiglu_matvec(rt, a, odd, Scale::PerTensor(&sa), Scale::PerTensor(&sb), None, &mut c, &GemmConfig::matvec(2 * outs, bk)) {
        Err(GemmError::Gated(_)) => {}
        other => panic!("swiglu_matvec with an odd row count: {:?}", other.map_err(|e| e.to_string())),
    }
    match swiglu_matvec(rt, a, b, Scale::PerTensor(&sa), Scale::PerTensor(&sb), None, &mut c, &GemmConfig::matvec(2 * outs + 1, bk)) {
        Err(GemmError::GatedTile(_)) => {}
        other => panic!("swiglu_matvec with an odd tile: {:?}", other.map_err(|e| e.to_string())),
    }
    assert_poison_kept("swiglu_matvec after refused calls", &download_f64(rt, &c), |_| false);
}

/// One [`swiglu_matvec`] against the float64 SwiGLU of `p`'s gate rows `0..f` and up rows `f..2f`.
fn run_swiglu<R: Runtime, A: TestElem + Numeric, B: TestElem + Numeric>(rt: &R, p: &Problem<A, B>, col: bool, norm: Option<&Norm>, cfg: &GemmConfig) {
    let f = p.n / 2;
    let (ba, bb, sa, sb) = (upload(rt, &p.a), upload(rt, &p.b), upload(rt, &p.sa), upload(rt, &p.sb));
    let gamma = upload(rt, norm.map_or(&[0f32][..], |n| &n.gamma));
    let mut c = poisoned::<R, bf16>(rt, f + SCM_PAD);
    let a = Operand { buf: &ba, rows: 1, cols: p.k, row_stride: p.k + 1 };
    let b = Operand { buf: &bb, rows: p.n, cols: p.k, row_stride: p.sbn };
    let scale_b = if col { Scale::PerColumn(&sb) } else { Scale::PerTensor(&sb) };
    let what = format!("swiglu_matvec 1x{}x{} {}x{} col_scale={col} norm={} {:?}", p.n, p.k, A::NAME, B::NAME, norm.is_some(), cfg);
    let rms = norm.map(|n| RmsNorm { gamma: &gamma, eps: n.eps });
    ok(&what, swiglu_matvec(rt, a, b, Scale::PerTensor(&sa), scale_b, rms, &mut c, cfg));
    let got = download_f64(rt, &c);
    // The GEMM's reference (scale_a per tensor): g_j at column j, u_j at column f + j.
    let (gu, mag) = match norm {
        Some(n) => n.reference(p, col),
        None => p.reference(false, col, false),
    };
    let silu = |x: f64| x / (1.0 + (-x).exp());
    let want: Vec<f64> = (0..f + SCM_PAD).map(|j| if j < f { silu(gu[j]) * gu[f + j] } else { f64::NAN }).collect();
    // d(silu(g) u) = u (σ + g σ (1 - σ)) dg + silu(g) du, with |σ + g σ (1 - σ)| < 1.1; f32 products
    // (3e-5 of sum |a b|), then one rounding to bf16.
    let tol = |j: usize| 3e-5 * (1.1 * gu[f + j].abs() * mag[j] + silu(gu[j]).abs() * mag[f + j]) + 1e-6;
    assert_close_where(&what, &got, &want, bf16::U, tol, |j| j < f);
    assert_poison_kept(&what, &got, |j| j < f);
}

pub fn fp8_gemm_formats<R: Runtime>(rt: &R) {
    let p = Problem::<e5m2, e4m3>::new(5, 90, 160, 910);
    run::<R, _, _, f32>(rt, &p, true, false, false, cfg(16, 128, 128, 2), SplitKMode::Deterministic);
    let p = Problem::<e4m3, e5m2>::new(9, 40, 96, 911);
    run::<R, _, _, f16>(rt, &p, false, true, true, cfg(32, 64, 256, 1), SplitKMode::Deterministic);
    let p = Problem::<e5m2, e5m2>::new(2, 64, 256, 912);
    run::<R, _, _, bf16>(rt, &p, false, false, true, cfg(16, 64, 256, 4), SplitKMode::Atomic);
    // The bf16 x bf16 variant of the same kernel.
    let p = Problem::<bf16, bf16>::new(7, 50, 136, 913);
    run::<R, _, _, bf16>(rt, &p, true, true, true, cfg(16, 64, 256, 3), SplitKMode::Deterministic);
    run::<R, _, _, f32>(rt, &p, false, false, false, cfg(64, 64, 128, 1), SplitKMode::Deterministic);
}

/// Every declared split-K tile (`split_k_tiles()`, from the kernel's instances: a tile added there is
/// checked here with no second list), ragged in M, N and K, with the scale flags, bias, split-K factor,
/// combine mode and output type varied from tile to tile.
pub fn fp8_gemm_tiles<R: Runtime>(rt: &R) {
    let wide = Problem::<e4m3, e4m3>::new(130, 150, 136, 920);
    let long = Problem::<e4m3, e4m3>::new(40, 70, 1100, 921);
    let tiles = kernels::fp8_gemm::split_k_tiles();
    assert!(tiles.len() >= 8, "the kernel declares {} tiles", tiles.len());
    for (i, (bm, bn, bk)) in tiles.into_iter().enumerate() {
        let p = if bm >= 64 { &wide } else { &long };
        let (row, col, bias) = (i % 2 == 0, i % 3 == 0, i % 4 == 1);
        let split = 1 + i as u32 % 3;
        let mode = if i % 4 == 2 { SplitKMode::Atomic } else { SplitKMode::Deterministic };
        if i % 3 == 1 {
            run::<R, _, _, f32>(rt, p, row, col, bias, cfg(bm, bn, bk, split), mode);
        } else {
            run::<R, _, _, bf16>(rt, p, row, col, bias, cfg(bm, bn, bk, split), mode);
        }
    }
    // Beyond 256 rows the heuristic's tile is 128x128x64 on 8 warps (wgmma on sm_90a): as chosen, and
    // split in 2 with scales and bias.
    let tall = Problem::<e4m3, e4m3>::new(260, 136, 200, 922);
    assert_eq!(kernels::fp8_gemm::heuristic(260, 136, 200, 132).options.num_warps, Some(8));
    run::<R, _, _, bf16>(rt, &tall, true, true, false, None, SplitKMode::Deterministic);
    let eight = GemmConfig { options: LaunchOptions { num_warps: Some(8), ..LaunchOptions::default() }, ..GemmConfig::split(128, 128, 64, 2) };
    run::<R, _, _, f32>(rt, &tall, false, true, true, Some(eight), SplitKMode::Deterministic);
}

/// Stream-K: shares that start and end inside tiles (programs not dividing the iterations), one program
/// for everything, more programs than iterations (empty shares), tiles of several rows and columns.
pub fn fp8_gemm_stream_k<R: Runtime>(rt: &R) {
    for (i, m) in [1, 3, 17].into_iter().enumerate() {
        // 2 x 5 K blocks of 128 (the last one ragged) per 16 x 128 tile column; 2 tiles across N.
        let p = Problem::<e4m3, e4m3>::new(m, 150, 600, 950 + i as u64);
        for programs in [1, 2, 3, 7, 64] {
            run::<R, _, _, bf16>(rt, &p, false, false, false, stream(16, 128, 128, programs), SplitKMode::Deterministic);
        }
        run::<R, _, _, f32>(rt, &p, true, true, true, stream(16, 64, 256, 5), SplitKMode::Deterministic);
        run::<R, _, _, f16>(rt, &p, false, true, true, stream(32, 64, 256, 4), SplitKMode::Deterministic);
        run::<R, _, _, bf16>(rt, &p, true, false, false, stream(16, 32, 256, 9), SplitKMode::Deterministic);
    }
    let p = Problem::<e5m2, e4m3>::new(130, 90, 300, 955);
    run::<R, _, _, bf16>(rt, &p, true, false, true, stream(64, 64, 128, 6), SplitKMode::Deterministic);
    let p = Problem::<bf16, bf16>::new(7, 50, 400, 956);
    run::<R, _, _, bf16>(rt, &p, true, true, false, stream(16, 64, 256, 3), SplitKMode::Deterministic);
}

/// Split-K combined by the last program of each tile (`GemmConfig::fused_combine`), for every tile the
/// fused kernel declares: against float64, bit for bit the same as the two-kernel combine, and the ticket
/// counters left at zero (`run` checks it); ragged M, N and K, 2 to 8 splits (some of them empty), the
/// scale flags, bias and output type varied.
pub fn fp8_gemm_fused_combine<R: Runtime>(rt: &R) {
    let tiles = kernels::fp8_gemm::fused_combine_tiles();
    assert!(!tiles.is_empty(), "the fused kernel declares no tile");
    // Four cases at least, so that every M, N, K and flag variation below is met, each tile at least once.
    for i in 0..tiles.len().max(4) {
        let (bm, bn, bk) = tiles[i % tiles.len()];
        let p = Problem::<e4m3, e4m3>::new([1, 3, 17, 33][i % 4], [70, 150][i % 2], [600, 1100][i / 2 % 2], 970 + i as u64);
        let (row, col, bias) = (i % 2 == 0, i % 3 != 1, i % 4 == 1);
        for split in [2, 3, 8] {
            let (f, two) = (fused(bm, bn, bk, split), cfg(bm, bn, bk, split));
            let (a, b) = if i % 3 == 2 {
                (run::<R, _, _, f32>(rt, &p, row, col, bias, f, SplitKMode::Deterministic), run::<R, _, _, f32>(rt, &p, row, col, bias, two, SplitKMode::Deterministic))
            } else {
                (run::<R, _, _, bf16>(rt, &p, row, col, bias, f, SplitKMode::Deterministic), run::<R, _, _, bf16>(rt, &p, row, col, bias, two, SplitKMode::Deterministic))
            };
            let differ = a.iter().zip(&b).position(|(x, y)| x.to_bits() != y.to_bits());
            assert!(differ.is_none(), "{bm}x{bn}x{bk} split {split}: the fused combine differs from the two-kernel one at {differ:?}");
        }
    }
    let p = Problem::<bf16, bf16>::new(5, 90, 400, 979);
    run::<R, _, _, bf16>(rt, &p, true, true, true, fused(16, 32, 256, 2), SplitKMode::Deterministic);
}

/// Deterministic split-K gives identical bits run after run.
pub fn fp8_gemm_is_deterministic<R: Runtime>(rt: &R) {
    let p = Problem::<e4m3, e4m3>::new(16, 96, 512, 930);
    let first = run::<R, _, _, f32>(rt, &p, true, true, false, cfg(16, 64, 256, 16), SplitKMode::Deterministic);
    for _ in 0..3 {
        let again = run::<R, _, _, f32>(rt, &p, true, true, false, cfg(16, 64, 256, 16), SplitKMode::Deterministic);
        let same = first.iter().zip(&again).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "deterministic split-K changed bits between runs");
    }
}

/// Every argument error is reported, naming what is wrong, before anything is launched.
pub fn fp8_gemm_rejects_bad_arguments<R: Runtime>(rt: &R) {
    let (m, n, k) = (4, 32, 64);
    let a = upload(rt, &vec![e4m3::from_f32(1.0); m * k]);
    let b = upload(rt, &vec![e4m3::from_f32(1.0); n * k]);
    let s = upload(rt, &vec![1.0f32; n]);
    let mut c = poisoned::<R, bf16>(rt, m * n);
    let opts = GemmOptions::default();
    let op = |buf, rows, cols, row_stride| Operand { buf, rows, cols, row_stride };
    // The valid call these variations break: all ones, so every output is k.
    let res = fp8_gemm(rt, op(&a, m, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), None, &mut c, n, None, &opts);
    ok("fp8_gemm of ones", res);
    let got = download_f64(rt, &c);
    assert!(got.iter().all(|&x| x == k as f64), "fp8_gemm of ones: {:?}", &got[..4]);
    let mut c = poisoned::<R, bf16>(rt, m * n);
    macro_rules! err {
        ($a:expr, $b:expr, $sa:expr, $sb:expr, $c:expr, $ws:expr, $opts:expr) => {
            match fp8_gemm(rt, $a, $b, $sa, $sb, None, $c, n, $ws, $opts) {
                Err(e) => e,
                Ok(_) => panic!("fp8_gemm accepted a bad argument"),
            }
        };
    }
    let e = err!(op(&a, m, k, k), op(&b, n, k - 16, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, None, &opts);
    assert!(matches!(e, GemmError::KMismatch { .. }), "{e}");
    assert!(e.to_string().contains("K dimensions differ"), "{e}");
    let e = err!(op(&a, m, k, k - 1), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, None, &opts);
    assert!(matches!(e, GemmError::Stride { what: "A", .. }), "{e}");
    let e = err!(op(&a, m + 1, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, None, &opts);
    assert!(matches!(e, GemmError::TooSmall { what: "A", .. }), "{e}");
    let e = err!(op(&a, m, k, k), op(&b, n, k, k), Scale::PerColumn(&s), Scale::PerTensor(&s), &mut c, None, &opts);
    assert!(matches!(e, GemmError::ScaleMode { what: "scale_a", .. }), "{e}");
    let short = upload(rt, &[1.0f32; 3]);
    let e = err!(op(&a, m, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerColumn(&short), &mut c, None, &opts);
    assert!(matches!(e, GemmError::TooSmall { .. }), "{e}");
    let split = GemmOptions { config: cfg(16, 64, 256, 4), ..opts };
    let e = err!(op(&a, m, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, None, &split);
    assert!(matches!(e, GemmError::Workspace { .. }), "{e}");
    let odd = GemmOptions { config: cfg(48, 64, 256, 1), ..opts };
    let e = err!(op(&a, m, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, None, &odd);
    assert!(matches!(e, GemmError::Blocks { .. }), "{e}");
    let e = err!(op(&a, m, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, None, &GemmOptions { config: stream(16, 64, 256, 3), ..opts });
    assert!(matches!(e, GemmError::Workspace { .. }), "{e}");
    let atomic = GemmOptions { config: stream(16, 64, 256, 3), mode: SplitKMode::Atomic, ..opts };
    let e = err!(op(&a, m, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, None, &atomic);
    assert!(matches!(e, GemmError::StreamKAtomic), "{e}");
    let (mut ws, mut few) = (filled::<R, f32>(rt, 4 * m * n, 0.0), upload(rt, &[0i32; 1]));
    let tickets = GemmOptions { config: fused(16, 32, 256, 4), ..opts };
    let e = err!(op(&a, m, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, Some(Workspace::partials(&mut ws)), &tickets);
    assert!(matches!(e, GemmError::Tickets { need: 1, .. }), "{e}");
    let ws_t = Workspace { partials: &mut ws, tickets: Some(&mut few) };
    let e = err!(op(&a, m, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, Some(ws_t), &GemmOptions { config: Some(GemmConfig { fused_combine: true, ..GemmConfig::split(16, 32, 256, 1) }), ..opts });
    assert!(matches!(e, GemmError::FusedCombine(_)), "{e}");
    let atomic_fused = GemmOptions { config: fused(16, 32, 256, 4), mode: SplitKMode::Atomic, ..opts };
    let e = err!(op(&a, m, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, None, &atomic_fused);
    assert!(matches!(e, GemmError::FusedCombine(_)), "{e}");
    let zero = GemmOptions { config: cfg(16, 64, 256, 0), ..opts };
    let e = err!(op(&a, m, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, None, &zero);
    assert!(matches!(e, GemmError::SplitK(0)), "{e}");
    let e = err!(op(&a, 0, k, k), op(&b, n, k, k), Scale::PerTensor(&s), Scale::PerTensor(&s), &mut c, None, &opts);
    assert!(matches!(e, GemmError::Empty { .. }), "{e}");
    // Nothing was written.
    let got = download_f64(rt, &c);
    assert_poison_kept("fp8_gemm after refused calls", &got, |_| false);
}

/// `quantize_rows`: per-row scale `amax / 448` (1 for a zero row) and `q = e4m3(x / scale)`.
pub fn quantize_rows_e4m3<R: Runtime>(rt: &R) {
    let (rows, cols, stride) = (5, 300, 310);
    let mut r = rng(940);
    let (mut x, mut xf) = rand_elems::<bf16>(&mut r, rows * stride, 3.0);
    for c in 0..cols {
        x[2 * stride + c] = bf16::from_f32(0.0);
        xf[2 * stride + c] = 0.0;
    }
    let bx = upload(rt, &x);
    let mut q = poisoned::<R, e4m3>(rt, rows * cols);
    let mut scale = filled::<R, f32>(rt, rows, f32::NAN);
    launched("quantize_rows", quantize_rows::<bf16, e4m3, 128>::launch(rt, rows as u32, &bx, &mut q, &mut scale, cols as i32, stride as i32, cols as i32));
    let (q, scale) = (download_f64(rt, &q), download(rt, &scale));
    // A block wider than the row (read once, kept in registers) gives the bits of the walk above.
    let mut q1 = poisoned::<R, e4m3>(rt, rows * cols);
    let mut scale1 = filled::<R, f32>(rt, rows, f32::NAN);
    launched("quantize_rows (one block)", quantize_rows::<bf16, e4m3, 512>::launch(rt, rows as u32, &bx, &mut q1, &mut scale1, cols as i32, stride as i32, cols as i32));
    assert_same_bits("quantize_rows with one block against three", &download_f64(rt, &q1), &q);
    assert_same_bits("quantize_rows' scales with one block against three", &download_f64(rt, &scale1), &scale.iter().map(|&v| v as f64).collect::<Vec<_>>());
    for row in 0..rows {
        let amax = (0..cols).map(|c| xf[row * stride + c].abs()).fold(0.0, f64::max);
        let want = if amax > 0.0 { amax / 448.0 } else { 1.0 };
        assert!((scale[row] as f64 - want).abs() <= 1e-6 * want, "row {row}: scale {} want {want}", scale[row]);
        for c in 0..cols {
            let exact = xf[row * stride + c] / scale[row] as f64;
            let got = q[row * cols + c];
            // e4m3 keeps 3 mantissa bits: half an ulp is 2^-4 relative (2^-10 absolute near zero).
            assert!((got - exact).abs() <= exact.abs() / 16.0 + 1.0 / 1024.0, "row {row} col {c}: {got} for {exact}");
            assert!(got.abs() <= 448.0);
        }
    }
}

/// Two fp8 layers of a decode step, `x [m, k0] -> quantize_rows -> fp8_gemm with W1 [n1, k0] (split-K 4,
/// combined by its last programs) -> y1 -> quantize_rows -> fp8_gemm with W2 [n2, n1] (split-K 2) -> y2`, every kernel
/// reading what the one before it wrote. [`LayerChain::run`] launches the four steps back to back with
/// no wait between them (what a graph or programmatic launch overlaps); [`LayerChain::stepped`] runs the
/// same steps one at a time, each on fresh uploads of the step before's downloaded result.
pub struct LayerChain<R: Runtime> {
    pub dims: (usize, usize, usize, usize),
    /// The weights as float64 (for references) and on the device.
    pub w_host: [Vec<f64>; 2],
    w: [R::Buffer<e4m3>; 2],
    sb: R::Buffer<f32>,
    q: [R::Buffer<e4m3>; 2],
    s: [R::Buffer<f32>; 2],
    y1: R::Buffer<bf16>,
    /// The chain's output, `[m, n2]`.
    pub y2: R::Buffer<bf16>,
    ws: R::Buffer<f32>,
    tickets: R::Buffer<i32>,
}

/// The intermediates and output of [`LayerChain::stepped`].
pub struct Stepped {
    pub q: [Vec<e4m3>; 2],
    pub s: [Vec<f32>; 2],
    pub y: [Vec<bf16>; 2],
}

const CHAIN_SCALE_B: f32 = 0.25;

impl<R: Runtime> LayerChain<R> {
    /// Random weights; the intermediate buffers and `y2` poisoned.
    pub fn new(rt: &R, (m, k0, n1, n2): (usize, usize, usize, usize), seed: u64) -> Self {
        let mut r = rng(seed);
        let (w1, w1f) = rand_elems::<e4m3>(&mut r, n1 * k0, 2.0);
        let (w2, w2f) = rand_elems::<e4m3>(&mut r, n2 * n1, 2.0);
        LayerChain {
            dims: (m, k0, n1, n2),
            w_host: [w1f, w2f],
            w: [upload(rt, &w1), upload(rt, &w2)],
            sb: upload(rt, &[CHAIN_SCALE_B]),
            q: [poisoned(rt, m * k0), poisoned(rt, m * n1)],
            s: [filled(rt, m, f32::NAN), filled(rt, m, f32::NAN)],
            y1: poisoned(rt, m * n1),
            y2: poisoned(rt, m * n2),
            ws: filled(rt, Self::ws_len((m, k0, n1, n2)), f32::NAN),
            tickets: upload(rt, &vec![0i32; m.div_ceil(16) * n1.div_ceil(32)]),
        }
    }

    fn ws_len((m, _, n1, n2): (usize, usize, usize, usize)) -> usize {
        4 * m * n1.max(n2)
    }

    fn opts(split: u32, fused: bool) -> GemmOptions {
        let config = cfg(16, 32, 256, split).map(|c| if fused { c.with_fused_combine() } else { c });
        GemmOptions { config, mode: SplitKMode::Deterministic, sm_count: 132, accumulate: false }
    }

    fn quantize(rt: &R, x: &R::Buffer<bf16>, q: &mut R::Buffer<e4m3>, s: &mut R::Buffer<f32>, rows: usize, cols: usize) -> Result<(), String> {
        let c = cols as i32;
        quantize_rows::<bf16, e4m3, 128>::launch(rt, rows as u32, x, q, s, c, c, c).map_err(|e| format!("quantize_rows: {e}"))
    }

    #[allow(clippy::too_many_arguments)]
    fn gemm(rt: &R, (m, k, n): (usize, usize, usize), q: &R::Buffer<e4m3>, s: &R::Buffer<f32>, w: &R::Buffer<e4m3>, sb: &R::Buffer<f32>, y: &mut R::Buffer<bf16>, ws: Workspace<'_, R::Buffer<f32>, R::Buffer<i32>>, split: u32) -> Result<(), String> {
        let a = Operand { buf: q, rows: m, cols: k, row_stride: k };
        let b = Operand { buf: w, rows: n, cols: k, row_stride: k };
        let opts = Self::opts(split, ws.tickets.is_some());
        fp8_gemm(rt, a, b, Scale::PerRow(s), Scale::PerTensor(sb), None, y, n, Some(ws), &opts).map(|_| ()).map_err(|e| format!("fp8_gemm: {e}"))
    }

    /// The four steps back to back on `x` (`[m, k0]`), into this chain's buffers; `y2` holds the result.
    pub fn run(&mut self, rt: &R, x: &R::Buffer<bf16>) -> Result<(), String> {
        let (m, k0, n1, n2) = self.dims;
        let ([q1, q2], [s1, s2]) = (&mut self.q, &mut self.s);
        Self::quantize(rt, x, q1, s1, m, k0)?;
        let ws = Workspace { partials: &mut self.ws, tickets: Some(&mut self.tickets) };
        Self::gemm(rt, (m, k0, n1), q1, s1, &self.w[0], &self.sb, &mut self.y1, ws, 4)?;
        Self::quantize(rt, &self.y1, q2, s2, m, n1)?;
        Self::gemm(rt, (m, n1, n2), q2, s2, &self.w[1], &self.sb, &mut self.y2, Workspace::partials(&mut self.ws), 2)
    }

    /// The same steps one at a time: each step's inputs are fresh uploads of the previous step's
    /// downloaded results, its outputs fresh poisoned buffers.
    pub fn stepped(&self, rt: &R, x: &[bf16]) -> Stepped {
        let (m, k0, n1, n2) = self.dims;
        let (mut q1, mut s1) = (poisoned::<R, e4m3>(rt, m * k0), filled::<R, f32>(rt, m, f32::NAN));
        ok("chain step 1", Self::quantize(rt, &upload(rt, x), &mut q1, &mut s1, m, k0));
        let (q1, s1) = (download(rt, &q1), download(rt, &s1));
        let (mut y1, mut ws) = (poisoned::<R, bf16>(rt, m * n1), filled::<R, f32>(rt, Self::ws_len(self.dims), f32::NAN));
        let mut tickets = upload(rt, &download(rt, &self.tickets).iter().map(|_| 0i32).collect::<Vec<_>>());
        let fused = Workspace { partials: &mut ws, tickets: Some(&mut tickets) };
        ok("chain step 2", Self::gemm(rt, (m, k0, n1), &upload(rt, &q1), &upload(rt, &s1), &self.w[0], &self.sb, &mut y1, fused, 4));
        let y1 = download(rt, &y1);
        let (mut q2, mut s2) = (poisoned::<R, e4m3>(rt, m * n1), filled::<R, f32>(rt, m, f32::NAN));
        ok("chain step 3", Self::quantize(rt, &upload(rt, &y1), &mut q2, &mut s2, m, n1));
        let (q2, s2) = (download(rt, &q2), download(rt, &s2));
        let mut y2 = poisoned::<R, bf16>(rt, m * n2);
        ok("chain step 4", Self::gemm(rt, (m, n1, n2), &upload(rt, &q2), &upload(rt, &s2), &self.w[1], &self.sb, &mut y2, Workspace::partials(&mut ws), 2));
        Stepped { q: [q1, q2], s: [s1, s2], y: [y1, download(rt, &y2)] }
    }

    /// Checks each GEMM of `st` against float64 from its own (quantized) inputs.
    pub fn check_gemms(&self, what: &str, st: &Stepped) {
        let (m, k0, n1, n2) = self.dims;
        for (layer, k, n) in [(0, k0, n1), (1, n1, n2)] {
            let q: Vec<f64> = st.q[layer].iter().map(|v| v.to_f64()).collect();
            let (mut want, mut mag) = (vec![0.0; m * n], vec![0.0; m * n]);
            for i in 0..m {
                let sc = st.s[layer][i] as f64 * CHAIN_SCALE_B as f64;
                for j in 0..n {
                    let (d, g) = dot_f64(&q[i * k..][..k], &self.w_host[layer][j * k..][..k]);
                    (want[i * n + j], mag[i * n + j]) = (d * sc, g * sc);
                }
            }
            let got: Vec<f64> = st.y[layer].iter().map(|v| v.to_f64()).collect();
            // f32 accumulation over K <= 4096 in any order (fp8 tensor cores: see FP8_TENSOR_CORE_ERR),
            // one rounding to bf16.
            let rel = 3e-4 + FP8_TENSOR_CORE_ERR;
            assert_close_where(&format!("{what}, layer {}", layer + 1), &got, &want, bf16::U, |i| rel * mag[i] + bf16::TINY, |_| true);
        }
    }
}

/// Two fp8 layers back to back ([`LayerChain`]) for several inputs that reuse the chain's buffers, so a
/// kernel that read before the one ahead of it finished (a misplaced `gdc_wait` under programmatic
/// launch) would see the last round's values or the poison: bit for bit the one-at-a-time chain, whose
/// GEMMs are checked against float64.
pub fn fp8_layer_chain<R: Runtime>(rt: &R) {
    // Ragged splits: K = 600 in chunks of 256, 256, 88 and an empty fourth; K = 520 as 512 + 8.
    fp8_layer_chain_sized(rt, (3, 600, 520, 96), 3);
}

/// [`fp8_layer_chain`] with `dims = (m, k0, n1, n2)` for `rounds` inputs.
pub fn fp8_layer_chain_sized<R: Runtime>(rt: &R, dims: (usize, usize, usize, usize), rounds: u64) {
    let mut chain = LayerChain::new(rt, dims, 960);
    let mut r = rng(961);
    for round in 0..rounds {
        let (x, _) = rand_elems::<bf16>(&mut r, dims.0 * dims.1, 3.0 + round as f64);
        ok("the chain", chain.run(rt, &upload(rt, &x)));
        let chained = download(rt, &chain.y2);
        let stepped = chain.stepped(rt, &x);
        let differ = chained.iter().zip(&stepped.y[1]).position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(differ.is_none(), "round {round}: the back-to-back chain differs from one-at-a-time at element {differ:?}");
        chain.check_gemms(&format!("chain round {round}"), &stepped);
    }
}
