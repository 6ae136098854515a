//! `kernels::decode_attention`: split-KV decode attention with grouped-query heads over a KV cache, and
//! the KV-cache append, against float64.

use super::*;
use dsl_core::lang::DotOperands;
use dsl_core::prelude::{bf16, e4m3, f16, Float};
use kernels::kv_attention::cache::{append_kv, append_rows_scaled, RowsAt, ScaledCachesMut};
use kernels::kv_attention::decode::{decode_splits, decode_step, tickets_len, workspace_lens, DecodeBuffers, DecodeConfig, MAX_FUSED_SPLITS};
use kernels::kv_attention::CacheShape;

cases!(
    "decode_attention":
    decode_gqa_ragged_f16,
    decode_groups_bf16,
    decode_empty_splits_f16,
    append_then_decode_bf16,
    decode_fp8_cache,
    decode_bad_shapes,
);

/// One decode step on random caches and queries, contexts `ctx` per sequence; checks every output
/// element against float64 and that the output's padding stays poisoned. Up to [`MAX_FUSED_SPLITS`]
/// splits, the same with the combine fused.
fn check<R, T>(rt: &R, shape: CacheShape, ctx: &[usize], splits: usize, seed: u64)
where
    R: Runtime,
    T: TestElem + Float + DotOperands<T>,
{
    check_with::<R, T>(rt, shape, ctx, DecodeConfig::splits(splits), seed);
    if splits <= MAX_FUSED_SPLITS {
        check_with::<R, T>(rt, shape, ctx, DecodeConfig::splits(splits).with_fused_combine(true), seed);
    }
}

/// [`check`] with the whole config. A fused combine runs twice: the ticket counters must be left
/// zero, and the second output must equal the first bit for bit (whichever split came last).
fn check_with<R, T>(rt: &R, shape: CacheShape, ctx: &[usize], cfg: DecodeConfig, seed: u64)
where
    R: Runtime,
    T: TestElem + Float + DotOperands<T>,
{
    // An unscaled cache reads no scales: any f32 buffer stands in.
    let no_scales = filled(rt, 1, 0.0f32);
    let CacheShape { batch, kv_heads, group, head_dim: d, max_ctx } = shape;
    assert_eq!(ctx.len(), batch);
    let mut r = rng(seed);
    let rows = batch * kv_heads * group;
    let cache = batch * kv_heads * max_ctx * d;
    // Each sequence's queries one head apart from the next's (as in a fused QKV row), the gap random:
    // read by mistake, it shows.
    let q_stride = (kv_heads * group + 1) * d;
    let (q, qf) = rand_elems::<T>(&mut r, batch * q_stride, 1.0);
    let (k, kf) = rand_elems::<T>(&mut r, cache, 1.0);
    let (v, vf) = rand_elems::<T>(&mut r, cache, 1.0);
    let lens: Vec<i32> = ctx.iter().map(|&c| c as i32).collect();
    let scale = 1.0 / (d as f32).sqrt();
    let splits = cfg.splits;
    let (po, pm) = workspace_lens(&shape, splits);
    let pad = 5; // output padding that must stay poisoned
    let (bq, bk, bv, bl) = (upload(rt, &q), upload(rt, &k), upload(rt, &v), upload(rt, &lens));
    let (mut part_o, mut part_m, mut part_l) = (filled(rt, po, f32::NAN), filled(rt, pm, f32::NAN), filled(rt, pm, f32::NAN));
    let mut tickets = filled(rt, tickets_len(&shape), 0i32);
    let mut out = poisoned::<R, T>(rt, rows * d + pad);
    let what = format!("decode_attention<{}> {shape:?} ctx {ctx:?} {cfg:?}", T::NAME);
    let bufs = DecodeBuffers { q: &bq, q_stride, k_cache: &bk, v_cache: &bv, k_scales: &no_scales, v_scales: &no_scales, ctx_lens: &bl, part_o: &mut part_o, part_m: &mut part_m, part_l: &mut part_l, tickets: &mut tickets, out: &mut out };
    launched(&what, decode_step(rt, &shape, cfg, scale, bufs));
    let got = download_f64(rt, &out);
    if cfg.fused_combine {
        assert!(download(rt, &tickets).iter().all(|&t| t == 0), "{what}: ticket counters left {:?}", download(rt, &tickets));
        let mut again = poisoned::<R, T>(rt, rows * d + pad);
        let bufs = DecodeBuffers { q: &bq, q_stride, k_cache: &bk, v_cache: &bv, k_scales: &no_scales, v_scales: &no_scales, ctx_lens: &bl, part_o: &mut part_o, part_m: &mut part_m, part_l: &mut part_l, tickets: &mut tickets, out: &mut again };
        launched(&what, decode_step(rt, &shape, cfg, scale, bufs));
        let twice = download_f64(rt, &again);
        let same = got.iter().zip(&twice).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{what}: a second step gave another output");
    }

    let (mut want, mut mag) = reference(&shape, ctx, scale, (&qf, q_stride), &kf, &vf);
    want.resize(rows * d + pad, f64::NAN);
    mag.resize(rows * d + pad, 0.0);
    // As flash attention: f32 scores and softmax (1e-5 of sum p|v|), P rounded to T for P·V (T::U of
    // each term), the split combine in f32, one rounding of the output to T.
    let written = |i: usize| i < rows * d;
    assert_close_where(&what, &got, &want, T::U, |i| (T::U + 1e-5) * mag[i] + T::TINY, written);
    assert_poison_kept(&what, &got, written);
}

/// The float64 attention of every query head row over its sequence's first `ctx[b]` keys, and the error
/// scale `sum_j p_j |v_j|` of each output element: `(want, mag)`, `rows * head_dim` each. Sequence `b`'s
/// queries start at `b * q_stride` of `qf`.
fn reference(shape: &CacheShape, ctx: &[usize], scale: f32, (qf, q_stride): (&[f64], usize), kf: &[f64], vf: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let CacheShape { batch, kv_heads, group, head_dim: d, max_ctx } = *shape;
    let rows = batch * kv_heads * group;
    let (mut want, mut mag) = (vec![0.0; rows * d], vec![0.0; rows * d]);
    for row in 0..rows {
        let (b, h) = (row / (kv_heads * group), row / group % kv_heads);
        let base = (b * kv_heads + h) * max_ctx * d;
        let q = &qf[b * q_stride + (row % (kv_heads * group)) * d..][..d];
        let x: Vec<f64> = (0..ctx[b]).map(|j| (0..d).map(|e| q[e] * kf[base + j * d + e]).sum::<f64>() * scale as f64).collect();
        let mx = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let p: Vec<f64> = x.iter().map(|x| (x - mx).exp()).collect();
        let l: f64 = p.iter().sum();
        for e in 0..d {
            want[row * d + e] = (0..ctx[b]).map(|j| p[j] * vf[base + j * d + e]).sum::<f64>() / l;
            mag[row * d + e] = (0..ctx[b]).map(|j| p[j] * vf[base + j * d + e].abs()).sum::<f64>() / l;
        }
    }
    (want, mag)
}

fn shape(batch: usize, kv_heads: usize, group: usize, head_dim: usize, max_ctx: usize) -> CacheShape {
    CacheShape { batch, kv_heads, group, head_dim, max_ctx }
}

/// Contexts of 1 key, a ragged count, and the whole cache; 4 query heads per KV head; a split that ends
/// inside a sequence's context and one past it.
pub fn decode_gqa_ragged_f16<R: Runtime>(rt: &R) {
    check::<R, f16>(rt, shape(3, 2, 4, 64, 300), &[1, 77, 300], 3, 1);
    check::<R, f16>(rt, shape(1, 1, 4, 64, 70), &[70], 1, 2);
    // 64-key steps: a split of 128 keys ending inside the context.
    // On 4 warps, and on one (the softmax in the tensor-core registers: row reductions by shuffles, P
    // from registers); each with the combine as a second kernel and fused.
    for (num_warps, fused_combine, seed) in [(4, false, 11), (4, true, 16), (1, false, 13), (1, true, 17)] {
        let cfg = DecodeConfig { splits: 3, block_n: 64, num_warps, num_stages: 3, fused_combine };
        check_with::<R, f16>(rt, shape(2, 2, 4, 64, 300), &[300, 130], cfg, seed);
    }
    // Four 32-key steps per split, loaded 3 steps ahead (4 stages).
    check_with::<R, bf16>(rt, shape(1, 2, 8, 128, 200), &[200], DecodeConfig { splits: 2, block_n: 32, num_warps: 1, num_stages: 4, fused_combine: true }, 14);
}

/// Groups 1, 3 and 8, head_dim 128, a head_dim that is not a power of two and one of 8.
pub fn decode_groups_bf16<R: Runtime>(rt: &R) {
    check::<R, bf16>(rt, shape(2, 3, 1, 128, 100), &[100, 33], 2, 3);
    check::<R, bf16>(rt, shape(2, 1, 3, 128, 90), &[45, 90], 4, 4);
    check::<R, bf16>(rt, shape(1, 2, 8, 80, 129), &[129], 5, 5);
    // A head smaller than the 16-wide tile (the tiny test models' 8).
    check::<R, bf16>(rt, shape(1, 1, 4, 8, 40), &[40], 2, 12);
}

/// More splits than a short context fills: the empty splits must weigh nothing.
pub fn decode_empty_splits_f16<R: Runtime>(rt: &R) {
    check::<R, f16>(rt, shape(2, 2, 2, 64, 256), &[3, 200], 8, 6);
    // The split count a 132-SM GPU gets for this capacity, with a one-key context.
    let s = shape(1, 8, 4, 64, 1024);
    let cfg = DecodeConfig::for_shape(&s, 132);
    assert!((2..=128).contains(&cfg.splits) && cfg.splits == decode_splits(&s, 132), "{cfg:?}");
    check_with::<R, f16>(rt, s, &[1], cfg, 7);
    // More than 64 splits (the combine's wide instance), one step each on 2 stages, the last one empty
    // and the one before it partial.
    let cfg = DecodeConfig { splits: 70, block_n: 32, num_warps: 1, num_stages: 2, fused_combine: false };
    check_with::<R, bf16>(rt, shape(1, 2, 4, 128, 2200), &[2190], cfg, 15);
}

/// The step's keys and values appended at positions read from a device buffer, then attended with the
/// context including them: the appended rows are in the cache, every other cache element unchanged,
/// and the attention equals float64 over the updated cache.
pub fn append_then_decode_bf16<R: Runtime>(rt: &R) {
    // An unscaled cache reads no scales: any f32 buffer stands in.
    let no_scales = filled(rt, 1, 0.0f32);
    let s = shape(2, 2, 4, 64, 96);
    let (batch, kv_heads, d, max_ctx) = (s.batch, s.kv_heads, s.head_dim, s.max_ctx);
    let mut r = rng(8);
    let cache = batch * kv_heads * max_ctx * d;
    let (k0, k0f) = rand_elems::<bf16>(&mut r, cache, 1.0);
    let (v0, v0f) = rand_elems::<bf16>(&mut r, cache, 1.0);
    let (kn, knf) = rand_elems::<bf16>(&mut r, batch * kv_heads * d, 1.0);
    let (vn, vnf) = rand_elems::<bf16>(&mut r, batch * kv_heads * d, 1.0);
    let pos = [41i32, 95];
    let (mut kc, mut vc) = (upload(rt, &k0), upload(rt, &v0));
    launched("kv_append", append_kv(rt, &s, &upload(rt, &kn), &upload(rt, &vn), &upload(rt, &pos), &mut kc, &mut vc));
    let (kg, vg) = (download_f64(rt, &kc), download_f64(rt, &vc));
    for b in 0..batch {
        for h in 0..kv_heads {
            for j in 0..max_ctx {
                for e in 0..d {
                    let i = ((b * kv_heads + h) * max_ctx + j) * d + e;
                    let new = j == pos[b] as usize;
                    let (wk, wv) = if new { (knf[(b * kv_heads + h) * d + e], vnf[(b * kv_heads + h) * d + e]) } else { (k0f[i], v0f[i]) };
                    assert_eq!((kg[i], vg[i]), (wk, wv), "cache element {i} (b {b}, h {h}, key {j}, dim {e})");
                }
            }
        }
    }
    // Attend the updated cache (its values as just checked) with contexts pos + 1.
    let ctx: Vec<usize> = pos.iter().map(|&p| p as usize + 1).collect();
    let (kb, vb) = (kc, vc);
    let mut r = rng(9);
    let rows = batch * kv_heads * s.group;
    let (q, qf) = rand_elems::<bf16>(&mut r, rows * d, 1.0);
    let lens: Vec<i32> = ctx.iter().map(|&c| c as i32).collect();
    let splits = 3;
    let (po, pm) = workspace_lens(&s, splits);
    let (mut part_o, mut part_m, mut part_l) = (filled(rt, po, f32::NAN), filled(rt, pm, f32::NAN), filled(rt, pm, f32::NAN));
    let mut out = poisoned::<R, bf16>(rt, rows * d);
    let mut tickets = filled(rt, tickets_len(&s), 0i32);
    let (bq, bl) = (upload(rt, &q), upload(rt, &lens));
    let bufs = DecodeBuffers { q: &bq, q_stride: s.q_heads() * d, k_cache: &kb, v_cache: &vb, k_scales: &no_scales, v_scales: &no_scales, ctx_lens: &bl, part_o: &mut part_o, part_m: &mut part_m, part_l: &mut part_l, tickets: &mut tickets, out: &mut out };
    let scale = 0.125f32;
    let cfg = DecodeConfig::splits(splits).with_fused_combine(true);
    launched("decode after append", decode_step(rt, &s, cfg, scale, bufs));
    let got = download_f64(rt, &out);
    let (want, mag) = reference(&s, &ctx, scale, (&qf, s.q_heads() * d), &kg, &vg);
    let u = <bf16 as TestElem>::U;
    assert_close_where("decode after append", &got, &want, u, |i| (u + 1e-5) * mag[i] + <bf16 as TestElem>::TINY, |_| true);
}

/// An fp8 (e4m3) cache as the runtime fills it, and its values in float64.
pub(super) struct ScaledCache<R: Runtime> {
    pub k: R::Buffer<e4m3>,
    pub v: R::Buffer<e4m3>,
    pub k_scales: R::Buffer<f32>,
    pub v_scales: R::Buffer<f32>,
    /// `k[i] · k_scales[i / head_dim]` (and for `v`) in float64, NaN where nothing was appended.
    pub kf: Vec<f64>,
    pub vf: Vec<f64>,
}

/// Appends `tokens` random bf16 rows per (sequence, KV head) at positions `0..tokens` of poisoned fp8
/// caches with `append_rows_scaled`, and checks what it stored: every scale is its row's largest
/// magnitude over 448 (the rows' magnitudes spread over 2^-8..2^8, so a shared scale would not do),
/// every element within e4m3's rounding of the row's value (half an ulp: 2^-4 relative, or 2^-10 of
/// the scale among the subnormals), and the positions past `tokens` still poisoned.
pub(super) fn scaled_cache<R: Runtime>(rt: &R, s: &CacheShape, tokens: usize, seed: u64) -> ScaledCache<R> {
    use rand::Rng;
    let (kh, d) = (s.kv_heads, s.head_dim);
    let mut r = rng(seed);
    let n = s.batch * tokens * kh * d;
    // Row magnitudes 2^-8..2^8: each (token, head) row gets its own factor.
    let factors: Vec<f64> = (0..n / d).map(|_| 2f64.powf(r.gen_range(-8.0..8.0))).collect();
    let raw = randn(&mut r, n, 1.0);
    let (new, newf) = round_to::<bf16>(&raw.iter().enumerate().map(|(i, x)| x * factors[i / d]).collect::<Vec<_>>());
    let vraw = randn(&mut r, n, 1.0);
    let (vnew, vnewf) = round_to::<bf16>(&vraw.iter().enumerate().map(|(i, x)| x * factors[(i / d + 7) % (n / d)]).collect::<Vec<_>>());
    let (mut k, mut v) = (poisoned::<R, e4m3>(rt, s.cache_len()), poisoned::<R, e4m3>(rt, s.cache_len()));
    let scales = s.batch * kh * s.max_ctx;
    let (mut k_scales, mut v_scales) = (filled(rt, scales, f32::NAN), filled(rt, scales, f32::NAN));
    let at = RowsAt { k_off: 0, v_off: 0, stride: kh * d };
    let cache = ScaledCachesMut { k: &mut k, v: &mut v, k_scales: &mut k_scales, v_scales: &mut v_scales };
    let what = format!("kv_append_scaled<bf16, e4m3> {s:?} {tokens} tokens");
    launched(&what, append_rows_scaled(rt, s, tokens, &upload(rt, &new), &upload(rt, &vnew), at, &filled(rt, s.batch, 0i32), cache));
    let mut out = vec![];
    for (cache, scale, src) in [(&k, &k_scales, &newf), (&v, &v_scales, &vnewf)] {
        let (q, sc) = (download_f64(rt, cache), download(rt, scale));
        let mut deq = vec![f64::NAN; s.cache_len()];
        for b in 0..s.batch {
            for h in 0..kh {
                for j in 0..s.max_ctx {
                    let key = (b * kh + h) * s.max_ctx + j;
                    let row = &q[key * d..][..d];
                    if j >= tokens {
                        assert!(sc[key].is_nan() && row.iter().all(|x| x.is_nan()), "{what}: position {j} of (b {b}, h {h}) written");
                        continue;
                    }
                    let x = &src[((b * tokens + j) * kh + h) * d..][..d];
                    let amax = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    let want = (amax / 448.0) as f32;
                    assert!((sc[key] - want).abs() <= 1e-6 * want, "{what}: scale of (b {b}, h {h}, key {j}) {} want {want}", sc[key]);
                    let s_k = sc[key] as f64;
                    for e in 0..d {
                        let got = row[e] * s_k;
                        let tol = (x[e].abs() / 16.0).max(s_k / 1024.0) * (1.0 + 1e-6);
                        assert!((got - x[e]).abs() <= tol, "{what}: (b {b}, h {h}, key {j}, dim {e}) reads {got}, was {}", x[e]);
                        deq[key * d + e] = got;
                    }
                }
            }
        }
        out.push(deq);
    }
    let vf = out.pop().expect("v");
    let kf = out.pop().expect("k");
    ScaledCache { k, v, k_scales, v_scales, kf, vf }
}

/// Decode over an fp8 cache filled by `append_rows_scaled` (see [`scaled_cache`]) with queries of `T`:
/// the attention against float64 over the dequantized cache, with the 16-bit cache's tolerance (each
/// score's and each probability's scale is one f32 product).
fn check_fp8_decode<R, T>(rt: &R, s: CacheShape, tokens: usize, ctx: &[usize], cfg: DecodeConfig, seed: u64)
where
    R: Runtime,
    T: TestElem + Float + DotOperands<T>,
{
    let c = scaled_cache(rt, &s, tokens, seed);
    let d = s.head_dim;
    let rows = s.batch * s.q_heads();
    let (q, qf) = rand_elems::<T>(&mut rng(seed + 100), rows * d, 1.0);
    let lens: Vec<i32> = ctx.iter().map(|&c| c as i32).collect();
    let (po, pm) = workspace_lens(&s, cfg.splits);
    let (mut o, mut m, mut l) = (filled(rt, po, f32::NAN), filled(rt, pm, f32::NAN), filled(rt, pm, f32::NAN));
    let mut tickets = filled(rt, tickets_len(&s), 0i32);
    let mut out = poisoned::<R, T>(rt, rows * d);
    let (bq, bl) = (upload(rt, &q), upload(rt, &lens));
    let what = format!("decode_attention<{}, e4m3> {s:?} ctx {ctx:?} {cfg:?}", T::NAME);
    let bufs = DecodeBuffers { q: &bq, q_stride: s.q_heads() * d, k_cache: &c.k, v_cache: &c.v, k_scales: &c.k_scales, v_scales: &c.v_scales, ctx_lens: &bl, part_o: &mut o, part_m: &mut m, part_l: &mut l, tickets: &mut tickets, out: &mut out };
    let scale = 1.0 / (d as f32).sqrt();
    launched(&what, decode_step(rt, &s, cfg, scale, bufs));
    let (want, mag) = reference(&s, ctx, scale, (&qf, s.q_heads() * d), &c.kf, &c.vf);
    let got = download_f64(rt, &out);
    assert_close_where(&what, &got, &want, T::U, |i| (T::U + 1e-5) * mag[i] + T::TINY, |_| true);
}

/// [`check_fp8_decode`] on 4 warps and on one, the combine separate and fused, contexts short of the
/// appended positions (whose rows must not be read) and of a split; bf16 and f16 queries (rows as
/// small as 2^-8, whose value scales, about 2^-17, f16 could not hold).
pub fn decode_fp8_cache<R: Runtime>(rt: &R) {
    check_fp8_decode::<R, bf16>(rt, shape(2, 2, 4, 64, 90), 80, &[80, 37], DecodeConfig::splits(3), 21);
    let one_warp = DecodeConfig { splits: 2, block_n: 32, num_warps: 1, num_stages: 3, fused_combine: true };
    check_fp8_decode::<R, bf16>(rt, shape(1, 2, 8, 128, 70), 70, &[70], one_warp, 22);
    let steps64 = DecodeConfig { splits: 2, block_n: 64, num_warps: 1, num_stages: 2, fused_combine: false };
    check_fp8_decode::<R, bf16>(rt, shape(2, 1, 3, 80, 40), 33, &[33, 1], steps64, 23);
    check_fp8_decode::<R, f16>(rt, shape(2, 2, 4, 64, 90), 80, &[80, 37], DecodeConfig::splits(3), 25);
    // Refused before any launch: scales too short, and a scaled cache of a type that is not fp8.
    let s = shape(1, 1, 4, 64, 64);
    let c = scaled_cache(rt, &s, 3, 24);
    let (po, pm) = workspace_lens(&s, 2);
    let (mut o, mut m, mut l) = (filled(rt, po, 0.0f32), filled(rt, pm, 0.0f32), filled(rt, pm, 0.0f32));
    let (q, lens, short) = (filled(rt, 4 * 64, bf16::ZERO), upload(rt, &[3i32]), filled(rt, 63, 1.0f32));
    let mut t = filled(rt, 1, 0i32);
    let mut out = poisoned::<R, bf16>(rt, 4 * 64);
    let bufs = DecodeBuffers { q: &q, q_stride: 4 * 64, k_cache: &c.k, v_cache: &c.v, k_scales: &c.k_scales, v_scales: &short, ctx_lens: &lens, part_o: &mut o, part_m: &mut m, part_l: &mut l, tickets: &mut t, out: &mut out };
    let e = decode_step(rt, &s, DecodeConfig::splits(2), 0.125, bufs).unwrap_err().to_string();
    assert!(e.contains("v_scales needs at least 64 elements, its buffer has 63"), "{e}");
    let f16_cache = filled(rt, s.cache_len(), f16::ONE);
    let bufs = DecodeBuffers { q: &q, q_stride: 4 * 64, k_cache: &f16_cache, v_cache: &f16_cache, k_scales: &c.k_scales, v_scales: &c.v_scales, ctx_lens: &lens, part_o: &mut o, part_m: &mut m, part_l: &mut l, tickets: &mut t, out: &mut out };
    let e = decode_step(rt, &s, DecodeConfig::splits(2), 0.125, bufs).unwrap_err().to_string();
    assert!(e.contains("a scaled cache holds e4m3 or e5m2"), "{e}");
    assert!(download_f64(rt, &out).iter().all(|v| v.is_nan()), "nothing ran");
    // The append refuses a scaled cache that is not fp8, and scales too short.
    let rows = filled(rt, 64, bf16::ONE);
    let at = RowsAt { k_off: 0, v_off: 0, stride: 64 };
    let (mut kf16, mut vf16) = (filled(rt, s.cache_len(), f16::ZERO), filled(rt, s.cache_len(), f16::ZERO));
    let (mut ks, mut vs) = (filled(rt, 64, f32::NAN), filled(rt, 63, f32::NAN));
    let cache = ScaledCachesMut { k: &mut kf16, v: &mut vf16, k_scales: &mut ks, v_scales: &mut vs };
    let e = append_rows_scaled(rt, &s, 1, &rows, &rows, at, &lens, cache).unwrap_err().to_string();
    assert!(e.contains("a scaled cache holds e4m3 or e5m2, not f16"), "{e}");
    let (mut k8, mut v8) = (poisoned::<R, e4m3>(rt, s.cache_len()), poisoned::<R, e4m3>(rt, s.cache_len()));
    let cache = ScaledCachesMut { k: &mut k8, v: &mut v8, k_scales: &mut ks, v_scales: &mut vs };
    let e = append_rows_scaled(rt, &s, 1, &rows, &rows, at, &lens, cache).unwrap_err().to_string();
    assert!(e.contains("v_scales needs at least 64 elements, its buffer has 63"), "{e}");
    assert!(download(rt, &ks).iter().all(|v| v.is_nan()), "nothing ran");
}

/// Shapes and buffers the host API refuses, each with its reason and before any launch (after one
/// valid step of the same shape).
pub fn decode_bad_shapes<R: Runtime>(rt: &R) {
    // An unscaled cache reads no scales: any f32 buffer stands in.
    let no_scales = filled(rt, 1, 0.0f32);
    let s = shape(1, 1, 4, 64, 64);
    check::<R, f16>(rt, s, &[37], 2, 10);
    let (po, pm) = workspace_lens(&s, 2);
    let q = filled(rt, 4 * 64, f16::ZERO);
    let kv = filled(rt, 64 * 64, f16::ZERO);
    let lens = upload(rt, &[1i32]);
    let run_with = |shape: CacheShape, cfg: DecodeConfig, po: usize, tickets: usize| -> String {
        let (mut o, mut m, mut l) = (filled(rt, po, 0.0f32), filled(rt, pm, 0.0f32), filled(rt, pm, 0.0f32));
        let mut t = filled(rt, tickets, 0i32);
        let mut out = poisoned::<R, f16>(rt, 4 * 64);
        let bufs = DecodeBuffers { q: &q, q_stride: 4 * 64, k_cache: &kv, v_cache: &kv, k_scales: &no_scales, v_scales: &no_scales, ctx_lens: &lens, part_o: &mut o, part_m: &mut m, part_l: &mut l, tickets: &mut t, out: &mut out };
        let e = decode_step(rt, &shape, cfg, 0.125, bufs).map(|_| "launched".to_string()).unwrap_or_else(|e| e.to_string());
        assert!(download_f64(rt, &out).iter().all(|v| v.is_nan()), "nothing ran");
        e
    };
    let run = |shape: CacheShape, splits: usize, po: usize| run_with(shape, DecodeConfig::splits(splits), po, 1);
    assert!(run(shape(1, 1, 17, 64, 64), 2, po).contains("group 17"));
    assert!(run(shape(1, 1, 4, 300, 64), 2, po).contains("head_dim 300"));
    assert!(run(shape(1, 1, 4, 63, 64), 2, po).contains("head_dim 63 must be even"));
    assert!(run(s, 257, po).contains("splits 257 must be 1 to 256"));
    assert!(run(s, 2, po - 1).contains(&format!("part_o needs at least {po} elements, its buffer has {}", po - 1)));
    assert!(run(shape(1, 1, 4, 64, 65), 2, po).contains("k_cache needs at least"));
    // A fused combine: no ticket counters, or more splits than it takes.
    let fused = DecodeConfig::splits(2).with_fused_combine(true);
    assert!(run_with(s, fused, po, 0).contains("tickets needs at least 1 elements, its buffer has 0"));
    let (po9, _) = workspace_lens(&s, 9);
    let e = run_with(s, DecodeConfig::splits(9).with_fused_combine(true), po9, 1);
    assert!(e.contains("a fused combine takes at most 8 splits, not 9"), "{e}");
    // A step size the kernel does not declare: the declared list, nothing launched.
    let (mut o, mut m, mut l) = (filled(rt, po, 0.0f32), filled(rt, pm, 0.0f32), filled(rt, pm, 0.0f32));
    let mut out = poisoned::<R, f16>(rt, 4 * 64);
    let mut t = filled(rt, 1, 0i32);
    let bufs = DecodeBuffers { q: &q, q_stride: 4 * 64, k_cache: &kv, v_cache: &kv, k_scales: &no_scales, v_scales: &no_scales, ctx_lens: &lens, part_o: &mut o, part_m: &mut m, part_l: &mut l, tickets: &mut t, out: &mut out };
    let e = decode_step(rt, &s, DecodeConfig { splits: 2, block_n: 48, num_warps: 4, num_stages: 3, fused_combine: false }, 0.125, bufs).unwrap_err().to_string();
    assert!(e.contains("no declared instance") && e.contains("BLOCK_N=64"), "{e}");
    let bufs = DecodeBuffers { q: &q, q_stride: 4 * 64, k_cache: &kv, v_cache: &kv, k_scales: &no_scales, v_scales: &no_scales, ctx_lens: &lens, part_o: &mut o, part_m: &mut m, part_l: &mut l, tickets: &mut t, out: &mut out };
    let e = decode_step(rt, &s, DecodeConfig { splits: 2, block_n: 32, num_warps: 1, num_stages: 5, fused_combine: false }, 0.125, bufs).unwrap_err().to_string();
    assert!(e.contains("num_stages 5 must be 2, 3 or 4"), "{e}");
    // Queries closer than a sequence's heads, and a buffer too short for a second sequence's queries.
    let bufs = DecodeBuffers { q: &q, q_stride: 4 * 64 - 2, k_cache: &kv, v_cache: &kv, k_scales: &no_scales, v_scales: &no_scales, ctx_lens: &lens, part_o: &mut o, part_m: &mut m, part_l: &mut l, tickets: &mut t, out: &mut out };
    let e = decode_step(rt, &s, DecodeConfig::splits(2), 0.125, bufs).unwrap_err().to_string();
    assert!(e.contains("q_stride 254 must be at least 256"), "{e}");
    let (two, lens2, kv2) = (shape(2, 1, 4, 64, 64), upload(rt, &[1i32, 1]), filled(rt, 2 * 64 * 64, f16::ZERO));
    let (po2, pm2) = workspace_lens(&two, 2);
    let (mut o2, mut m2, mut l2) = (filled(rt, po2, 0.0f32), filled(rt, pm2, 0.0f32), filled(rt, pm2, 0.0f32));
    let mut out2 = poisoned::<R, f16>(rt, 2 * 4 * 64);
    let bufs = DecodeBuffers { q: &q, q_stride: 4 * 64 + 8, k_cache: &kv2, v_cache: &kv2, k_scales: &no_scales, v_scales: &no_scales, ctx_lens: &lens2, part_o: &mut o2, part_m: &mut m2, part_l: &mut l2, tickets: &mut t, out: &mut out2 };
    let e = decode_step(rt, &two, DecodeConfig::splits(2), 0.125, bufs).unwrap_err().to_string();
    assert!(e.contains(&format!("q needs at least {} elements, its buffer has 256", 4 * 64 + 8 + 4 * 64)), "{e}");
    assert!(download_f64(rt, &out2).iter().all(|v| v.is_nan()), "nothing ran");
    assert!(download_f64(rt, &out).iter().all(|v| v.is_nan()), "nothing ran");
}
