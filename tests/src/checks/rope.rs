//! `kernels::rope`: rotary position embedding (out of place, in place, fused q+k).

use super::*;
use dsl_core::prelude::{bf16, f16, Float, Interpreter, Runtime};
use kernels::rope::{rope, rope_inplace, rope_qk_inplace};

cases!("rope": rope_f32, rope_f16, rope_bf16, rope_qk_fused, rope_kv_append_bf16, rope_kv_append_from_partials);

/// Llama's cos/sin tables `[positions, d/2]` (f32) for `theta = 10000`, and their exact f64 values.
pub(super) fn tables(positions: usize, d: usize) -> (Vec<f32>, Vec<f32>, Vec<f64>, Vec<f64>) {
    let half = d / 2;
    let (mut c, mut s) = (vec![], vec![]);
    for p in 0..positions {
        for i in 0..half {
            let inv_freq = 1.0 / 10000f64.powf(2.0 * i as f64 / d as f64);
            let a = p as f64 * inv_freq;
            c.push(a.cos() as f32);
            s.push(a.sin() as f32);
        }
    }
    let cf = c.iter().map(|&v| v as f64).collect();
    let sf = s.iter().map(|&v| v as f64).collect();
    (c, s, cf, sf)
}

/// The f64 reference on one head vector (half-split layout).
pub(super) fn rope_ref(x: &[f64], c: &[f64], s: &[f64]) -> Vec<f64> {
    let h = x.len() / 2;
    let mut out = vec![0.0; x.len()];
    for i in 0..h {
        out[i] = x[i] * c[i] - x[i + h] * s[i];
        out[i + h] = x[i + h] * c[i] + x[i] * s[i];
    }
    out
}

struct Case {
    tokens: usize,
    heads: usize,
    d: usize,
    positions: usize,
}

/// `rope` on input `[tokens, heads, d]` with padded strides against the f64 reference, then
/// `rope_inplace` on a copy of the input against `rope`'s result.
fn check<R: Runtime, T: TestElem + Float, const HALF_BLOCK: i32>(rt: &R, cs: Case, seed: u64) {
    let Case { tokens, heads, d, positions } = cs;
    let mut r = rng(seed);
    let half = d / 2;
    // Input strides: head stride d + 1, token stride heads * (d + 1) + 2. Output: contiguous but for a
    // gap of 3 per token (poisoned).
    let (xh, xt) = (d + 1, heads * (d + 1) + 2);
    let (oh, ot) = (d, heads * d + 3);
    let (x, xf) = rand_elems::<T>(&mut r, tokens * xt, 1.0);
    let (c, s, cf, sf) = tables(positions, d);
    let pos: Vec<i32> = (0..tokens).map(|t| ((t * 7 + 3) % positions) as i32).collect();
    let mut out = poisoned::<R, T>(rt, tokens * ot);
    let (bc, bs, bp) = (upload(rt, &c), upload(rt, &s), upload(rt, &pos));
    let what = format!("rope<{}> tokens={tokens} heads={heads} d={d}", T::NAME);
    launched(
        &what,
        rope::<T, HALF_BLOCK>::launch(
            rt,
            (tokens as u32, heads as u32),
            &upload(rt, &x),
            &mut out,
            &bc,
            &bs,
            &bp,
            d as i32,
            xt as i32,
            xh as i32,
            ot as i32,
            oh as i32,
            half as i32,
        ),
    );
    let oo = download(rt, &out);
    let got: Vec<f64> = oo.iter().map(|&v| v.to_f64()).collect();
    let mut want = vec![f64::NAN; tokens * ot];
    for t in 0..tokens {
        let p = pos[t] as usize;
        for h in 0..heads {
            let xv = &xf[t * xt + h * xh..t * xt + h * xh + d];
            let y = rope_ref(xv, &cf[p * half..(p + 1) * half], &sf[p * half..(p + 1) * half]);
            want[t * ot + h * oh..t * ot + h * oh + d].copy_from_slice(&y);
        }
    }
    let written = |i: usize| i % ot < heads * oh;
    // Two f32 products and a sum (|x1 c| + |x2 s| bounds the error), then one rounding to T. (A GPU may
    // contract a product and the sum into an fma: one rounding fewer.)
    let rtol = T::U;
    let atol = |i: usize| {
        let (t, j) = (i / ot, i % ot);
        let (h, e) = (j / oh, j % oh);
        let x = &xf[t * xt + h * xh..];
        4.0 * f32::EPSILON as f64 * (x[e % half].abs() + x[e % half + half].abs()) + T::TINY
    };
    assert_close_where(&what, &got, &want, rtol, atol, written);
    assert_poison_kept(&what, &got, written);

    // In place on a copy of the input: the rotated vectors match the out-of-place result exactly, and
    // the gaps between vectors are untouched.
    let mut xb = upload(rt, &x);
    launched(
        &format!("rope_inplace<{}> tokens={tokens} heads={heads} d={d}", T::NAME),
        rope_inplace::<T, HALF_BLOCK>::launch(
            rt,
            (tokens as u32, heads as u32),
            &mut xb,
            &bc,
            &bs,
            &bp,
            d as i32,
            xt as i32,
            xh as i32,
            half as i32,
        ),
    );
    let xin = download(rt, &xb);
    for t in 0..tokens {
        for h in 0..heads {
            for e in 0..d {
                assert_eq!(xin[t * xt + h * xh + e], oo[t * ot + h * oh + e], "rope_inplace at t={t} h={h} e={e}");
            }
            if xh > d {
                assert_eq!(xin[t * xt + h * xh + d], x[t * xt + h * xh + d], "gap overwritten");
            }
        }
    }
}

pub fn rope_f32<R: Runtime>(rt: &R) {
    check::<R, f32, 1>(rt, Case { tokens: 1, heads: 1, d: 2, positions: 1 }, 1);
    check::<R, f32, 4>(rt, Case { tokens: 7, heads: 3, d: 6, positions: 20 }, 2);
    check::<R, f32, 64>(rt, Case { tokens: 5, heads: 4, d: 128, positions: 64 }, 3);
    // HALF_BLOCK larger than d/2: masked tail.
    check::<R, f32, 64>(rt, Case { tokens: 3, heads: 2, d: 80, positions: 9 }, 4);
}

pub fn rope_f16<R: Runtime>(rt: &R) {
    check::<R, f16, 32>(rt, Case { tokens: 9, heads: 3, d: 64, positions: 33 }, 5);
    check::<R, f16, 4>(rt, Case { tokens: 2, heads: 5, d: 6, positions: 3 }, 6);
}

pub fn rope_bf16<R: Runtime>(rt: &R) {
    check::<R, bf16, 32>(rt, Case { tokens: 9, heads: 3, d: 64, positions: 33 }, 7);
    check::<R, bf16, 64>(rt, Case { tokens: 4, heads: 2, d: 96, positions: 100 }, 8);
}

/// Interpreter only: a position past the end of the tables is an out-of-bounds read, and the launch
/// returns an error (it does not panic or read garbage). A GPU need not fault on it.
pub fn rope_position_out_of_table_is_an_error(rt: &Interpreter) {
    let (tokens, heads, d, positions) = (3usize, 2usize, 8usize, 4usize);
    let x = vec![1.0f32; tokens * heads * d];
    let (c, s, _, _) = tables(positions, d);
    let pos = vec![0i32, 1, positions as i32];
    let mut out = filled(rt, x.len(), f32::NAN);
    let res = rope::<f32, 4>::launch(
        rt,
        (tokens as u32, heads as u32),
        &upload(rt, &x),
        &mut out,
        &upload(rt, &c),
        &upload(rt, &s),
        &upload(rt, &pos),
        d as i32,
        (heads * d) as i32,
        d as i32,
        (heads * d) as i32,
        d as i32,
        (d / 2) as i32,
    );
    let err = res.expect_err("an out-of-table position must fail the launch");
    let msg = err.to_string();
    assert!(msg.contains("bounds") || msg.contains("out of"), "unexpected error: {msg}");
    println!("{msg}");
}

/// The fused q+k kernel (runtime branch on the head index) matches `rope_inplace` on q and on k, bit for
/// bit, with fewer k heads than q heads and different strides; padding between vectors is untouched.
fn check_qk<R: Runtime, T: TestElem + Float, const HALF_BLOCK: i32>(
    rt: &R,
    tokens: usize,
    qh: usize,
    kh: usize,
    d: usize,
    seed: u64,
) {
    let mut r = rng(seed);
    let positions = 2 * tokens + 1;
    let (c, s, _, _) = tables(positions, d);
    let pos: Vec<i32> = (0..tokens).map(|t| ((t * 5 + 1) % positions) as i32).collect();
    let (bc, bs, bp) = (upload(rt, &c), upload(rt, &s), upload(rt, &pos));
    let (q_hs, q_ts) = (d + 2, qh * (d + 2) + 1);
    let (k_hs, k_ts) = (d, kh * d + 3);
    let (q, _) = rand_elems::<T>(&mut r, tokens * q_ts, 1.0);
    let (k, _) = rand_elems::<T>(&mut r, tokens * k_ts, 1.0);
    let (mut bq, mut bk) = (upload(rt, &q), upload(rt, &k));
    let what = format!("rope_qk_inplace<{}> tokens={tokens} q_heads={qh} k_heads={kh} d={d}", T::NAME);
    launched(
        &what,
        rope_qk_inplace::<T, HALF_BLOCK>::launch(
            rt,
            (tokens as u32, (qh + kh) as u32),
            &mut bq,
            &mut bk,
            &bc,
            &bs,
            &bp,
            qh as i32,
            d as i32,
            q_ts as i32,
            q_hs as i32,
            k_ts as i32,
            k_hs as i32,
            (d / 2) as i32,
        ),
    );
    let mut want_q = upload(rt, &q);
    let mut want_k = upload(rt, &k);
    for (buf, heads, ts, hs) in [(&mut want_q, qh, q_ts, q_hs), (&mut want_k, kh, k_ts, k_hs)] {
        launched(
            &format!("{what}: rope_inplace reference"),
            rope_inplace::<T, HALF_BLOCK>::launch(
                rt,
                (tokens as u32, heads as u32),
                buf,
                &bc,
                &bs,
                &bp,
                d as i32,
                ts as i32,
                hs as i32,
                (d / 2) as i32,
            ),
        );
    }
    let (got_q, got_k) = (download(rt, &bq), download(rt, &bk));
    assert!(got_q == download(rt, &want_q), "{what}: q differs from rope_inplace");
    assert!(got_k == download(rt, &want_k), "{what}: k differs from rope_inplace");
    // Something was rotated (positions are not all zero).
    assert!(got_q != q && got_k != k, "{what}: nothing changed");
}

pub fn rope_qk_fused<R: Runtime>(rt: &R) {
    check_qk::<R, f32, 4>(rt, 5, 4, 2, 8, 20);
    check_qk::<R, f32, 64>(rt, 3, 3, 1, 96, 21);
    check_qk::<R, f16, 32>(rt, 7, 8, 2, 64, 22);
    check_qk::<R, bf16, 32>(rt, 4, 2, 2, 64, 23);
}

/// `kv_attention::cache::rope_append_rows` (RoPE of the queries in place, the rotated keys and the
/// values appended to the cache, one launch) bit for bit against `rope_inplace` on the query and key
/// heads followed by `append_rows`, on caches that start poisoned (rows not appended keep the poison)
/// and a padded QKV row; the rotated keys also against the float64 reference. Two sequences of three
/// tokens at different positions, grouped-query heads, a head_dim that is not a power of two, full and
/// partial rotary embeddings; then the refused arguments.
pub fn rope_kv_append_bf16<R: Runtime>(rt: &R) {
    use kernels::kv_attention::cache::{append_rows, rope_append_rows, RopeTables, RowsAt};
    use kernels::kv_attention::CacheShape;
    let s = CacheShape { batch: 2, kv_heads: 2, group: 3, head_dim: 80, max_ctx: 16 };
    let (tokens, d, qh, kh) = (3, s.head_dim, s.q_heads(), s.kv_heads);
    let stride = (qh + 2 * kh) * d + 8;
    let at = RowsAt { k_off: qh * d, v_off: (qh + kh) * d, stride };
    let starts = [5i32, 9];
    let row_pos: Vec<i32> = (0..s.batch * tokens).map(|r| starts[r / tokens] + (r % tokens) as i32).collect();
    for (case, rope_dim) in [80usize, 64].into_iter().enumerate() {
        let mut r = rng(990 + case as u64);
        let (x, xf) = rand_elems::<bf16>(&mut r, s.batch * tokens * stride, 1.0);
        let (c, sn, cf, sf) = tables(s.max_ctx, rope_dim);
        let (bc, bs, bstart) = (upload(rt, &c), upload(rt, &sn), upload(rt, &starts));
        let what = format!("rope_append_rows rope_dim={rope_dim}");
        // Fused.
        let mut qkv = upload(rt, &x);
        let (mut kc, mut vc) = (poisoned::<R, bf16>(rt, s.cache_len()), poisoned::<R, bf16>(rt, s.cache_len()));
        let tables_at = RopeTables { cos: &bc, sin: &bs, rope_dim };
        launched(&what, rope_append_rows(rt, &s, tokens, &mut qkv, at, tables_at, &bstart, &mut kc, &mut vc));
        // Reference: RoPE of the query and key heads in place, then the append.
        let mut qkv2 = upload(rt, &x);
        let (mut kc2, mut vc2) = (poisoned::<R, bf16>(rt, s.cache_len()), poisoned::<R, bf16>(rt, s.cache_len()));
        let grid = ((s.batch * tokens) as u32, (qh + kh) as u32);
        let (rd, half) = (rope_dim as i32, (rope_dim / 2) as i32);
        launched("rope_inplace", rope_inplace::<bf16, 64>::launch(rt, grid, &mut qkv2, &bc, &bs, &upload(rt, &row_pos), rd, stride as i32, d as i32, half));
        launched("append_rows", append_rows(rt, &s, tokens, &qkv2, &qkv2, at, &bstart, &mut kc2, &mut vc2));
        let (got, want) = (download(rt, &qkv), download(rt, &qkv2));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // The fused kernel leaves the keys in the QKV buffer as they were.
            let is_key = (i % stride) >= at.k_off && (i % stride) < at.v_off;
            let expect = if is_key { x[i] } else { *w };
            assert_eq!(g.to_bits(), expect.to_bits(), "{what}: qkv element {i} (row {}, column {})", i / stride, i % stride);
        }
        for (name, a, b) in [("k_cache", download(rt, &kc), download(rt, &kc2)), ("v_cache", download(rt, &vc), download(rt, &vc2))] {
            let differ = a.iter().zip(&b).position(|(x, y)| x.to_bits() != y.to_bits());
            assert!(differ.is_none(), "{what}: {name} differs from rope_inplace + append_rows at {differ:?}");
        }
        // The appended keys against float64: rotated over rope_dim, copied past it.
        let kcache = download(rt, &kc);
        let h = rope_dim / 2;
        for rr in 0..s.batch * tokens {
            let (b, p) = (rr / tokens, row_pos[rr] as usize);
            for j in 0..kh {
                let key = &xf[rr * stride + at.k_off + j * d..][..d];
                let mut want = rope_ref(&key[..rope_dim], &cf[p * h..(p + 1) * h], &sf[p * h..(p + 1) * h]);
                want.extend_from_slice(&key[rope_dim..]);
                let base = ((b * kh + j) * s.max_ctx + p) * d;
                for e in 0..d {
                    let g = kcache[base + e].to_f64();
                    let tol = bf16::U * want[e].abs() + 4.0 * f32::EPSILON as f64 * (key[e % h].abs() + key[e % h + h].abs()) + bf16::TINY;
                    assert!((g - want[e]).abs() <= tol, "{what}: key b={b} p={p} j={j} e={e}: {g} vs {}", want[e]);
                }
            }
        }
    }
    // Refused before any launch: keys overlapping the queries, an odd or too long rope_dim, short tables.
    let (bc, bs, bstart) = (upload(rt, &vec![0f32; 16 * 40]), upload(rt, &vec![0f32; 16 * 40]), upload(rt, &starts));
    let mut qkv = poisoned::<R, bf16>(rt, s.batch * tokens * stride);
    let (mut kc, mut vc) = (poisoned::<R, bf16>(rt, s.cache_len()), poisoned::<R, bf16>(rt, s.cache_len()));
    for (at, rope_dim, want) in [
        (RowsAt { k_off: qh * d - 8, ..at }, 80, "apart"),
        (at, 81, "rope_dim 81"),
        (at, 96, "rope_dim 96"),
        (at, 80, "cos"),
    ] {
        let short = upload(rt, &[0f32; 8]);
        let cos = if want == "cos" { &short } else { &bc };
        let e = rope_append_rows(rt, &s, tokens, &mut qkv, at, RopeTables { cos, sin: &bs, rope_dim }, &bstart, &mut kc, &mut vc).err().expect("refused");
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
    assert_poison_kept("rope_append_rows after refused calls", &download_f64(rt, &kc), |_| false);
}

/// One case of [`rope_kv_append_from_partials`]: `x [rows, k] · w [n, k]ᵀ` (`n` = the QKV row's
/// stride) as a split-K GEMM whose partials `combine_rope_append_rows` finishes, against `fp8_gemm`
/// (its own combine) then `rope_append_rows`, bit for bit.
#[allow(clippy::too_many_arguments)]
fn partials_case<R, A, B>(rt: &R, what: &str, x: &[A], w: &[B], fp8: bool, k: usize, rope_dim: usize, seed: u64)
where
    R: Runtime,
    A: TestElem + dsl_core::lang::Numeric + dsl_core::lang::DotOperands<B>,
    B: TestElem + dsl_core::lang::Numeric,
{
    use kernels::fp8_gemm::{fp8_gemm, fp8_gemm_partials, GemmConfig, GemmOptions, Operand, Scale, Workspace};
    use kernels::kv_attention::cache::{rope_append_rows, RopeTables, RowsAt};
    use kernels::kv_attention::qkv_combine::combine_rope_append_rows;
    use kernels::kv_attention::CacheShape;
    let s = CacheShape { batch: 2, kv_heads: 2, group: 3, head_dim: 80, max_ctx: 16 };
    let (tokens, d, qh, kh) = (3, s.head_dim, s.q_heads(), s.kv_heads);
    let (rows, n) = (s.batch * tokens, (qh + 2 * kh) * d + 8);
    let at = RowsAt { k_off: qh * d, v_off: (qh + kh) * d, stride: n };
    let mut r = rng(seed);
    let (sa, sb) = if fp8 {
        (rand_elems::<f32>(&mut r, rows, 1.0).0.iter().map(|v| v.abs() + 0.1).collect(), rand_elems::<f32>(&mut r, n, 1.0).0.iter().map(|v| v.abs() / 64.0 + 1e-3).collect())
    } else {
        (vec![1.0f32], vec![1.0f32])
    };
    let (bx, bw, bsa, bsb) = (upload(rt, x), upload(rt, w), upload(rt, &sa), upload(rt, &sb));
    let (scale_a, scale_b) = if fp8 { (Scale::PerRow(&bsa), Scale::PerColumn(&bsb)) } else { (Scale::PerTensor(&bsa), Scale::PerTensor(&bsb)) };
    let (c, sn, _, _) = tables(s.max_ctx, rope_dim);
    let (bc, bs, bstart) = (upload(rt, &c), upload(rt, &sn), upload(rt, &[5i32, 9]));
    let cfg = GemmConfig::split(16, 32, 256, 3);
    let a = Operand { buf: &bx, rows, cols: k, row_stride: k };
    let b = Operand { buf: &bw, rows: n, cols: k, row_stride: k };
    // Reference: the GEMM with its combine, then RoPE and the append.
    let mut qkv_ref = poisoned::<R, bf16>(rt, rows * n);
    let mut ws = poisoned::<R, f32>(rt, 3 * rows * n);
    let opts = GemmOptions { config: Some(cfg), ..GemmOptions::default() };
    launched(what, fp8_gemm(rt, a, b, scale_a, scale_b, None, &mut qkv_ref, n, Some(Workspace::partials(&mut ws)), &opts).map(|_| ()));
    let (mut kc_ref, mut vc_ref) = (poisoned::<R, bf16>(rt, s.cache_len()), poisoned::<R, bf16>(rt, s.cache_len()));
    launched(what, rope_append_rows(rt, &s, tokens, &mut qkv_ref, at, RopeTables { cos: &bc, sin: &bs, rope_dim }, &bstart, &mut kc_ref, &mut vc_ref));
    // Fused: the partials, then the combine inside RoPE.
    let mut parts = poisoned::<R, f32>(rt, 3 * rows * n);
    let mut q = poisoned::<R, bf16>(rt, rows * n);
    let (mut kc, mut vc) = (poisoned::<R, bf16>(rt, s.cache_len()), poisoned::<R, bf16>(rt, s.cache_len()));
    let p = fp8_gemm_partials(rt, a, b, scale_a, scale_b, &mut parts, &cfg);
    let p = ok(&format!("{what}: fp8_gemm_partials"), p);
    assert_eq!(p.splits, 3, "{what}");
    launched(what, combine_rope_append_rows(rt, &s, tokens, p, &mut q, at, RopeTables { cos: &bc, sin: &bs, rope_dim }, &bstart, &mut kc, &mut vc));
    let (got, want) = (download_f64(rt, &q), download_f64(rt, &qkv_ref));
    let is_query = |i: usize| i % n < qh * d;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if is_query(i) {
            assert!(g.to_bits() == w.to_bits(), "{what}: query element {i} (row {}, column {}): {g} vs {w}", i / n, i % n);
        }
    }
    assert_poison_kept(&format!("{what}: q past the queries"), &got, is_query);
    assert!(want.iter().any(|v| *v != 0.0 && !v.is_nan()), "{what}: an all-zero product tests nothing");
    assert_same_bits(&format!("{what}: k_cache"), &download_f64(rt, &kc), &download_f64(rt, &kc_ref));
    assert_same_bits(&format!("{what}: v_cache"), &download_f64(rt, &vc), &download_f64(rt, &vc_ref));
    // Refused: a GEMM that does not split (nothing to combine), and partials too short for the rows.
    let e = fp8_gemm_partials(rt, a, b, scale_a, scale_b, &mut parts, &GemmConfig::split(16, 32, 256, 1)).err().expect("refused");
    assert!(e.to_string().contains("split_k 2 to 64"), "{what}: {e}");
    let short = upload(rt, &vec![0f32; rows * n]);
    let p = kernels::fp8_gemm::Partials { buf: &short, splits: 3, scale_a, scale_b };
    let e = combine_rope_append_rows(rt, &s, tokens, p, &mut q, at, RopeTables { cos: &bc, sin: &bs, rope_dim }, &bstart, &mut kc, &mut vc).err().expect("refused");
    assert!(e.to_string().contains("partials"), "{what}: {e}");
}

/// The QKV projection's split-K combine done inside RoPE and the cache append
/// (`kv_attention::qkv_combine`), bit for bit against the GEMM's own combine then
/// `rope_append_rows`: FP8 operands with per-token and per-channel scales and full rotary embeddings,
/// and bf16 operands (no scales) with partial ones; two sequences of three tokens, grouped-query heads,
/// a head_dim that is not a power of two, a padded row, three splits of K.
pub fn rope_kv_append_from_partials<R: Runtime>(rt: &R) {
    use dsl_core::prelude::e4m3;
    let (rows, n, k) = (6, (6 + 2 * 2) * 80 + 8, 768);
    let mut r = rng(995);
    let (x, _) = rand_elems::<e4m3>(&mut r, rows * k, 8.0);
    let (w, _) = rand_elems::<e4m3>(&mut r, n * k, 8.0);
    partials_case::<R, e4m3, e4m3>(rt, "combine_rope_append_rows (fp8)", &x, &w, true, k, 80, 996);
    let (x, _) = rand_elems::<bf16>(&mut r, rows * k, 0.1);
    let (w, _) = rand_elems::<bf16>(&mut r, n * k, 0.1);
    partials_case::<R, bf16, bf16>(rt, "combine_rope_append_rows (bf16)", &x, &w, false, k, 64, 997);
}
