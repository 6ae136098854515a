//! `kernels::fp8_gemm::residual_norm_matvec`: a decode step's residual add (`x += A · Bᵀ`, one row)
//! with the next RMSNorm's inputs in its epilogue (`x ⊙ gamma` and, from the last program, `1 / rms(x)`).

use super::*;
use dsl_core::lang::Numeric;
use dsl_core::prelude::{bf16, e4m3, Runtime};
use kernels::fp8_gemm::{matvec_tiles, residual_norm_matvec, scaled_matvec, GemmConfig, GemmError, NextNorm, Operand, Scale};

cases!("residual_norm": residual_norm_matvec_epilogue);

/// Values past the outputs, poisoned in every output buffer.
const PAD: usize = 3;

/// One row of `A`, the weight `[n, k]` (rows `k + 3` apart unless aligned), the scales, the residual
/// row before the add and the next norm's weights.
struct Case<A, B> {
    n: usize,
    k: usize,
    sbn: usize,
    a: Vec<A>,
    b: Vec<B>,
    af: Vec<f64>,
    bf: Vec<f64>,
    sa: f32,
    sb: Vec<f32>,
    x0: Vec<f32>,
    gamma: Vec<f32>,
}

impl<A: TestElem, B: TestElem> Case<A, B> {
    fn new(n: usize, k: usize, aligned: bool, seed: u64) -> Self {
        let mut r = rng(seed);
        let sbn = if aligned { k } else { k + 3 };
        let (a, af) = rand_elems::<A>(&mut r, k, 2.0);
        let (b, bf) = rand_elems::<B>(&mut r, n * sbn, 2.0);
        let sa = r.gen_range(0.25f32..2.0);
        let sb = (0..n).map(|_| r.gen_range(0.02f32..0.2)).collect();
        let x0 = randn(&mut r, n, 3.0).into_iter().map(|v| v as f32).collect();
        let gamma = (0..n).map(|_| r.gen_range(0.5f32..1.5)).collect();
        Case { n, k, sbn, a, b, af, bf, sa, sb, x0, gamma }
    }

    /// The new residual row in float64 and `Σ |terms|` of each element.
    fn reference(&self, col: bool) -> (Vec<f64>, Vec<f64>) {
        let (mut x, mut mag) = (vec![0.0; self.n], vec![0.0; self.n]);
        for j in 0..self.n {
            let sc = self.sa as f64 * self.sb[if col { j } else { 0 }] as f64;
            let row = &self.bf[j * self.sbn..][..self.k];
            let (s, g) = self.af.iter().zip(row).fold((0.0, 0.0), |(s, g), (a, w)| (s + a * w, g + (a * w).abs()));
            x[j] = s * sc + self.x0[j] as f64;
            mag[j] = g * sc + (self.x0[j] as f64).abs();
        }
        (x, mag)
    }
}

/// For every declared tile, bf16 activations against e4m3 weights (the decode step's W8A16, scales per
/// row or per tensor) and bf16 against bf16, `N` not a multiple of the rows per program, `K` ragged:
/// the residual row bit for bit against [`scaled_matvec`] accumulating into it, `x ⊙ gamma` and the
/// norm's factor against float64, every output poisoned past its end, the ticket left at zero (so the
/// same buffers serve a second launch, checked too). Refused: buffers too small.
pub fn residual_norm_matvec_epilogue<R: Runtime>(rt: &R) {
    let fp8 = Case::<bf16, e4m3>::new(70, 1056, true, 990);
    let fp8_ragged = Case::<bf16, e4m3>::new(13, 700, false, 991);
    let half = Case::<bf16, bf16>::new(37, 528, true, 992);
    for (i, &(rows, bk)) in matvec_tiles().iter().enumerate() {
        let cfg = GemmConfig::matvec(rows, bk);
        let col = i % 2 == 0;
        run(rt, &fp8, col, &cfg);
        run(rt, &fp8_ragged, !col, &cfg);
        run(rt, &half, col, &cfg);
    }
    // Refusals, before any launch.
    let p = &fp8;
    let cfg = GemmConfig::matvec(2, 512);
    let (ba, bb, sa, sb, gamma) = (upload(rt, &p.a), upload(rt, &p.b), upload(rt, &[p.sa]), upload(rt, &p.sb), upload(rt, &p.gamma));
    let mut x = upload(rt, &p.x0);
    // `x ⊙ gamma` one value short.
    let mut short = poisoned::<R, bf16>(rt, p.n - 1);
    let mut inv = poisoned::<R, f32>(rt, 1);
    let mut sum_sq = upload(rt, &[0i64]);
    let mut tickets = upload(rt, &[0i32]);
    let a = Operand { buf: &ba, rows: 1, cols: p.k, row_stride: p.k };
    let b = Operand { buf: &bb, rows: p.n, cols: p.k, row_stride: p.sbn };
    let next = NextNorm { gamma: &gamma, eps: 1e-5, xg: &mut short, inv_rms: &mut inv, sum_sq: &mut sum_sq, tickets: &mut tickets };
    match residual_norm_matvec(rt, a, b, Scale::PerTensor(&sa), Scale::PerColumn(&sb), &mut x, next, &cfg) {
        Err(GemmError::TooSmall { .. }) => {}
        other => panic!("residual_norm_matvec with a short x ⊙ gamma: {:?}", other.map_err(|e| e.to_string())),
    }
    assert_eq!(download(rt, &x), p.x0, "residual_norm_matvec wrote the residual row before refusing");
}

/// One case and tile, launched twice on the same buffers (the second launch adds again).
fn run<R: Runtime, A: TestElem + Numeric, B: TestElem + Numeric>(rt: &R, p: &Case<A, B>, col: bool, cfg: &GemmConfig) {
    let what = format!("residual_norm_matvec 1x{}x{} {}x{} col_scale={col} {cfg:?}", p.n, p.k, A::NAME, B::NAME);
    let (ba, bb, sa, sb, gamma) = (upload(rt, &p.a), upload(rt, &p.b), upload(rt, &[p.sa]), upload(rt, &p.sb), upload(rt, &p.gamma));
    let a = Operand { buf: &ba, rows: 1, cols: p.k, row_stride: p.k };
    let b = Operand { buf: &bb, rows: p.n, cols: p.k, row_stride: p.sbn };
    let scale_b = || if col { Scale::PerColumn(&sb) } else { Scale::PerTensor(&sb) };
    let padded = |v: &[f32]| v.iter().copied().chain(std::iter::repeat_n(f32::NAN, PAD)).collect::<Vec<_>>();
    let mut x = upload(rt, &padded(&p.x0));
    let mut x_unfused = upload(rt, &padded(&p.x0));
    let mut xg = poisoned::<R, bf16>(rt, p.n + PAD);
    let mut inv = poisoned::<R, f32>(rt, 1 + PAD);
    let mut sum_sq = upload(rt, &[0i64]);
    let mut tickets = upload(rt, &[0i32]);
    let (mut want, mut mag) = p.reference(col);
    for launch in 0..2 {
        let next = NextNorm { gamma: &gamma, eps: 1e-5, xg: &mut xg, inv_rms: &mut inv, sum_sq: &mut sum_sq, tickets: &mut tickets };
        ok(&what, residual_norm_matvec(rt, a, b, Scale::PerTensor(&sa), scale_b(), &mut x, next, cfg));
        ok(&what, scaled_matvec(rt, a, b, Scale::PerTensor(&sa), scale_b(), None, &mut x_unfused, p.n, None, cfg, true));
        let what = format!("{what}, launch {launch}");
        let (got, unfused) = (download(rt, &x), download(rt, &x_unfused));
        let same = got.iter().zip(&unfused).all(|(g, u)| g.to_bits() == u.to_bits() || (g.is_nan() && u.is_nan()));
        assert!(same, "{what}: the residual row differs from scaled_matvec's residual add");
        let got64: Vec<f64> = got.iter().map(|&v| v as f64).collect();
        let want_x: Vec<f64> = want.iter().copied().chain(std::iter::repeat_n(f64::NAN, PAD)).collect();
        // f32 products (3e-5 of Σ|terms|), one f32 add of the old value.
        assert_close_where(&what, &got64, &want_x, f32::U, |j| 3e-5 * mag[j] + f32::TINY, |j| j < p.n);
        assert_poison_kept(&what, &got64, |j| j < p.n);
        // x ⊙ gamma of the row just written, rounded to bf16.
        let want_xg: Vec<f64> = (0..p.n + PAD).map(|j| if j < p.n { got[j] as f64 * p.gamma[j] as f64 } else { f64::NAN }).collect();
        let got_xg = download_f64(rt, &xg);
        assert_close_where(&format!("{what}: x ⊙ gamma"), &got_xg, &want_xg, bf16::U, |_| bf16::TINY, |j| j < p.n);
        assert_poison_kept(&format!("{what}: x ⊙ gamma"), &got_xg, |j| j < p.n);
        // 1 / rms of the row just written: a sum of N squares in f32.
        let ms = got[..p.n].iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / p.n as f64;
        let want_inv: Vec<f64> = (0..1 + PAD).map(|j| if j == 0 { 1.0 / (ms + 1e-5).sqrt() } else { f64::NAN }).collect();
        let got_inv = download_f64(rt, &inv);
        assert_close_where(&format!("{what}: 1 / rms"), &got_inv, &want_inv, 1e-5, |_| 0.0, |j| j == 0);
        assert_poison_kept(&format!("{what}: 1 / rms"), &got_inv, |j| j == 0);
        assert_eq!(download(rt, &tickets), vec![0], "{what}: the ticket was not left at zero");
        assert_eq!(download(rt, &sum_sq), vec![0], "{what}: the sum of squares was not left at zero");
        // The second launch adds the same product again.
        for j in 0..p.n {
            let (d, m) = (want[j] - p.x0[j] as f64, mag[j] - (p.x0[j] as f64).abs());
            want[j] += d;
            mag[j] += m + d.abs();
        }
    }
}
