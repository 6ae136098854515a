//! `kernels::kv_attention::qkv_matvec`: a decode token's QKV projection with RoPE and the cache append
//! in the matrix-vector product's epilogue.

use super::rope::{rope_ref, tables};
use super::*;
use dsl_core::lang::Numeric;
use dsl_core::prelude::{bf16, e4m3, Runtime};
use kernels::fp8_gemm::{scaled_matvec, GemmConfig, Operand, RmsNorm, Scale};
use kernels::kv_attention::cache::{rope_append_rows, RopeTables, RowsAt};
use kernels::kv_attention::qkv_matvec::{qkv_rope_matvec, qkv_rope_tiles};
use kernels::kv_attention::CacheShape;

cases!("qkv_rope": rope_kv_append_from_matvec);

/// One token, its weight and scales, and the float64 rows the product should give.
struct Qkv<A, B> {
    shape: CacheShape,
    k: usize,
    a: Vec<A>,
    b: Vec<B>,
    sa: f32,
    sb: Vec<f32>,
    gamma: Option<Vec<f32>>,
    /// The projection's row in float64 (scales and the norm applied), and `Σ |terms|` of each.
    want: Vec<f64>,
    mag: Vec<f64>,
}

impl<A: TestElem, B: TestElem> Qkv<A, B> {
    /// Random data for `shape` (batch 1) and `K = k`; `col`: a scale per weight row; `norm`: the
    /// product of the row's RMSNorm.
    fn new(shape: CacheShape, k: usize, col: bool, norm: bool, seed: u64) -> Self {
        let mut r = rng(seed);
        let n = (shape.q_heads() + 2 * shape.kv_heads) * shape.head_dim;
        let (a, af) = rand_elems::<A>(&mut r, k, 2.0);
        let (b, bf) = rand_elems::<B>(&mut r, n * k, 2.0);
        let sa = r.gen_range(0.25f32..2.0);
        let sb: Vec<f32> = (0..if col { n } else { 1 }).map(|_| r.gen_range(0.02f32..0.2)).collect();
        let gamma: Option<Vec<f32>> = norm.then(|| (0..k).map(|_| r.gen_range(0.5f32..1.5)).collect());
        let x: Vec<f64> = match &gamma {
            Some(g) => {
                let inv = 1.0 / (af.iter().map(|v| v * v).sum::<f64>() / k as f64 + 1e-5).sqrt();
                af.iter().zip(g).map(|(v, &g)| v * inv * g as f64).collect()
            }
            None => af,
        };
        let (mut want, mut mag) = (vec![0.0; n], vec![0.0; n]);
        for j in 0..n {
            let sc = sa as f64 * sb[if col { j } else { 0 }] as f64;
            let row = &bf[j * k..][..k];
            want[j] = x.iter().zip(row).map(|(x, w)| x * w).sum::<f64>() * sc;
            mag[j] = x.iter().zip(row).map(|(x, w)| (x * w).abs()).sum::<f64>() * sc;
        }
        Qkv { shape, k, a, b, sa, sb, gamma, want, mag }
    }
}

/// [`qkv_rope_matvec`] on one case and tile: bit for bit against `scaled_matvec` into a QKV row then
/// `rope_append_rows` (caches poisoned, so only the step's position may change), and the rotated
/// queries, keys and copied values against float64.
fn run<R: Runtime, A: TestElem + Numeric, B: TestElem + Numeric>(rt: &R, p: &Qkv<A, B>, pos: usize, cfg: &GemmConfig) {
    let s = p.shape;
    let (d, qh, kh, k) = (s.head_dim, s.q_heads(), s.kv_heads, p.k);
    let n = (qh + 2 * kh) * d;
    let at = RowsAt { k_off: qh * d, v_off: (qh + kh) * d, stride: n };
    let (c, sn, cf, sf) = tables(s.max_ctx, d);
    let (bc, bs, bpos) = (upload(rt, &c), upload(rt, &sn), upload(rt, &[pos as i32]));
    let (ba, bb, bsa, bsb) = (upload(rt, &p.a), upload(rt, &p.b), upload(rt, &[p.sa]), upload(rt, &p.sb));
    let gamma = upload(rt, p.gamma.as_deref().unwrap_or(&[0f32]));
    let norm = p.gamma.as_ref().map(|_| RmsNorm { gamma: &gamma, eps: 1e-5 });
    let a = Operand { buf: &ba, rows: 1, cols: k, row_stride: k };
    let b = Operand { buf: &bb, rows: n, cols: k, row_stride: k };
    let scale_b = if p.sb.len() > 1 { Scale::PerColumn(&bsb) } else { Scale::PerTensor(&bsb) };
    let tables_at = || RopeTables { cos: &bc, sin: &bs, rope_dim: d };
    let what = format!("qkv_rope_matvec {}x{} head_dim {d} K {k} col_scale={} norm={} pos {pos} {cfg:?}", A::NAME, B::NAME, p.sb.len() > 1, norm.is_some());
    // Fused.
    let mut q = poisoned::<R, bf16>(rt, n);
    let (mut kc, mut vc) = (poisoned::<R, bf16>(rt, s.cache_len()), poisoned::<R, bf16>(rt, s.cache_len()));
    launched(&what, qkv_rope_matvec(rt, &s, a, b, Scale::PerTensor(&bsa), scale_b, norm, tables_at(), &bpos, &mut q, &mut kc, &mut vc, cfg));
    // The unfused path.
    let mut qkv = poisoned::<R, bf16>(rt, n);
    let (mut kc2, mut vc2) = (poisoned::<R, bf16>(rt, s.cache_len()), poisoned::<R, bf16>(rt, s.cache_len()));
    launched(&what, scaled_matvec(rt, a, b, Scale::PerTensor(&bsa), scale_b, None, &mut qkv, n, norm, cfg, false));
    launched(&what, rope_append_rows(rt, &s, 1, &mut qkv, at, tables_at(), &bpos, &mut kc2, &mut vc2));
    let (got_q, want_q) = (download_f64(rt, &q), download_f64(rt, &qkv));
    let is_query = |i: usize| i < qh * d;
    assert_same_bits(&format!("{what}: queries"), &got_q[..qh * d], &want_q[..qh * d]);
    assert_poison_kept(&format!("{what}: q past the queries"), &got_q, is_query);
    let (got_k, got_v) = (download_f64(rt, &kc), download_f64(rt, &vc));
    assert_same_bits(&format!("{what}: k_cache"), &got_k, &download_f64(rt, &kc2));
    assert_same_bits(&format!("{what}: v_cache"), &got_v, &download_f64(rt, &vc2));
    // Float64: rotate (queries, keys) or copy (values) each head of the exact row.
    let half = d / 2;
    let (cp, sp) = (&cf[pos * half..][..half], &sf[pos * half..][..half]);
    let cache_at = |h: usize, e: usize| (h * s.max_ctx + pos) * d + e;
    for h in 0..qh + 2 * kh {
        let head = &p.want[h * d..][..d];
        let want = if h < qh + kh { rope_ref(head, cp, sp) } else { head.to_vec() };
        for e in 0..d {
            let got = match h {
                h if h < qh => got_q[h * d + e],
                h if h < qh + kh => got_k[cache_at(h - qh, e)],
                h => got_v[cache_at(h - qh - kh, e)],
            };
            let (i1, i2) = (h * d + e % half, h * d + e % half + half);
            // Each product rounded to bf16 before the rotation, the result once more; f32 sums.
            let tol = 2.0 * bf16::U * (p.want[i1].abs() + p.want[i2].abs()) + 3e-5 * (p.mag[i1] + p.mag[i2]) + 1e-6;
            assert!((got - want[e]).abs() <= tol, "{what}: head {h} element {e}: {got} vs {} (tol {tol:e})", want[e]);
        }
    }
    let written = |i: usize| i % (s.max_ctx * d) / d == pos;
    assert_poison_kept(&format!("{what}: k_cache off the position"), &got_k, written);
    assert_poison_kept(&format!("{what}: v_cache off the position"), &got_v, written);
}

/// [`qkv_rope_matvec`] against the unfused product then `rope_append_rows` (bit for bit) and against
/// float64, for every declared tile: bf16 activations on e4m3 weights (scales per weight row or per
/// tensor) and on bf16 weights, with and without the RMSNorm of an f32 row in front; grouped-query
/// heads, head_dim 64 and 80 (half a head not a power of two), `K` ragged. Then the refusals: a batch of
/// two, partial rotary embeddings, a weight of the wrong height, an odd tile.
pub fn rope_kv_append_from_matvec<R: Runtime>(rt: &R) {
    let tiles = qkv_rope_tiles();
    assert!(tiles.len() >= 4, "qkv_rope_mv declares {} tiles", tiles.len());
    let shape = |head_dim| CacheShape { batch: 1, kv_heads: 2, group: 2, head_dim, max_ctx: 12 };
    let fp8 = Qkv::<bf16, e4m3>::new(shape(64), 700, true, false, 1001);
    let fp8_normed = Qkv::<f32, e4m3>::new(shape(80), 1100, false, true, 1002);
    let half = Qkv::<bf16, bf16>::new(shape(80), 528, false, false, 1003);
    let half_normed = Qkv::<f32, bf16>::new(shape(64), 576, true, true, 1004);
    for (i, &(pairs, bk)) in tiles.iter().enumerate() {
        let cfg = GemmConfig::matvec(2 * pairs, bk);
        run(rt, &fp8, 7 + i, &cfg);
        run(rt, &fp8_normed, 3 + i, &cfg);
        run(rt, &half, 11 - i, &cfg);
        run(rt, &half_normed, i, &cfg);
    }
    // Refused before any launch.
    let p = &fp8;
    let s = p.shape;
    let n = (s.q_heads() + 2 * s.kv_heads) * s.head_dim;
    let (c, sn, _, _) = tables(s.max_ctx, s.head_dim);
    let (bc, bs, bpos) = (upload(rt, &c), upload(rt, &sn), upload(rt, &[3i32, 4]));
    let (ba, bb, bsa, bsb) = (upload(rt, &p.a), upload(rt, &p.b), upload(rt, &[p.sa]), upload(rt, &p.sb));
    let a = Operand { buf: &ba, rows: 1, cols: p.k, row_stride: p.k };
    let b = Operand { buf: &bb, rows: n, cols: p.k, row_stride: p.k };
    let mut q = poisoned::<R, bf16>(rt, n);
    let two = CacheShape { batch: 2, ..s };
    let (mut kc, mut vc) = (poisoned::<R, bf16>(rt, two.cache_len()), poisoned::<R, bf16>(rt, two.cache_len()));
    let (pairs, bk) = tiles[0];
    let good = GemmConfig::matvec(2 * pairs, bk);
    let short = Operand { rows: n - 2, ..b };
    for (shape, b, rope_dim, cfg, want) in [
        (two, b, s.head_dim, good, "one sequence"),
        (s, b, s.head_dim - 16, good, "whole heads"),
        (s, short, s.head_dim, good, "rows"),
        (s, b, s.head_dim, GemmConfig::matvec(3, bk), "no qkv_rope_mv kernel"),
    ] {
        let rope = RopeTables { cos: &bc, sin: &bs, rope_dim };
        let e = qkv_rope_matvec(rt, &shape, a, b, Scale::PerTensor(&bsa), Scale::PerColumn(&bsb), None, rope, &bpos, &mut q, &mut kc, &mut vc, &cfg).err().expect("refused");
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
    assert_poison_kept("qkv_rope_matvec after refused calls", &download_f64(rt, &kc), |_| false);
    assert_poison_kept("qkv_rope_matvec after refused calls", &download_f64(rt, &q), |_| false);
}
