//! `kernels::kv_attention::prefill` (a chunk of queries over the KV cache, causal, grouped-query heads)
//! and strided appends from a fused QKV buffer, against float64; a chunked prefill continued by decode
//! steps over caches that start poisoned, so a read past the context shows.

use super::*;
use dsl_core::lang::DotOperands;
use dsl_core::prelude::{bf16, f16, Float};
use kernels::kv_attention::cache::{append_kv, append_rows, RowsAt};
use kernels::kv_attention::decode::{decode_step, tickets_len, workspace_lens, DecodeBuffers, DecodeConfig};
use kernels::kv_attention::prefill::{prefill_step, Chunk, PrefillBuffers, PrefillConfig, QueriesAt};
use kernels::kv_attention::CacheShape;

cases!(
    "prefill_attention":
    prefill_groups_f16,
    prefill_head_dims_bf16,
    prefill_tiles_f16,
    chunked_prefill_then_decode_bf16,
    prefill_fp8_cache_bf16,
    prefill_bad_shapes,
);

fn shape(batch: usize, kv_heads: usize, group: usize, head_dim: usize, max_ctx: usize) -> CacheShape {
    CacheShape { batch, kv_heads, group, head_dim, max_ctx }
}

/// Float64 attention of query `(b, t, hq)` (packed `[batch, q_len, q_heads, d]` in `qf`) over keys
/// `0..=start + t` (causal) or `0..start + q_len` of the caches `kf`, `vf`: `(want, mag)` with `mag` the
/// error scale `sum_j p_j |v_j|`, both `[batch, q_len, q_heads, d]`.
fn reference(s: &CacheShape, chunk: Chunk, scale: f32, qf: &[f64], kf: &[f64], vf: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let CacheShape { batch, kv_heads, group, head_dim: d, max_ctx } = *s;
    let qh = s.q_heads();
    let n = batch * chunk.q_len * qh * d;
    let (mut want, mut mag) = (vec![0.0; n], vec![0.0; n]);
    for b in 0..batch {
        for t in 0..chunk.q_len {
            let keys = if chunk.causal { chunk.start + t + 1 } else { chunk.start + chunk.q_len };
            for hq in 0..qh {
                let row = ((b * chunk.q_len + t) * qh + hq) * d;
                let base = (b * kv_heads + hq / group) * max_ctx * d;
                let x: Vec<f64> = (0..keys).map(|j| (0..d).map(|e| qf[row + e] * kf[base + j * d + e]).sum::<f64>() * scale as f64).collect();
                let mx = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let p: Vec<f64> = x.iter().map(|x| (x - mx).exp()).collect();
                let l: f64 = p.iter().sum();
                for e in 0..d {
                    want[row + e] = (0..keys).map(|j| p[j] * vf[base + j * d + e]).sum::<f64>() / l;
                    mag[row + e] = (0..keys).map(|j| p[j] * vf[base + j * d + e].abs()).sum::<f64>() / l;
                }
            }
        }
    }
    (want, mag)
}

/// The tolerance of flash-style attention (as `decode_attention`'s checks derive it): f32 scores and
/// softmax (1e-5 of `sum p|v|`), P rounded to T for P·V (T::U of each term), one rounding to T.
fn assert_attention<T: TestElem>(what: &str, got: &[f64], want: &[f64], mag: &[f64], written: usize) {
    assert_close_where(what, got, want, T::U, |i| (T::U + 1e-5) * mag[i] + T::TINY, |i| i < written);
    assert_poison_kept(what, got, |i| i < written);
}

/// One prefill chunk on random caches (all `max_ctx` keys random: a read past the context changes the
/// result) and packed queries; every output element against float64, the padding still poisoned.
fn check<R, T>(rt: &R, s: CacheShape, chunk: Chunk, cfg: Option<PrefillConfig>, seed: u64)
where
    R: Runtime,
    T: TestElem + Float + DotOperands<T>,
{
    // An unscaled cache reads no scales: any f32 buffer stands in.
    let no_scales = filled(rt, 1, 0.0f32);
    let mut r = rng(seed);
    let row = s.q_heads() * s.head_dim;
    let n = s.batch * chunk.q_len * row;
    let (q, qf) = rand_elems::<T>(&mut r, n, 1.0);
    let (k, kf) = rand_elems::<T>(&mut r, s.cache_len(), 1.0);
    let (v, vf) = rand_elems::<T>(&mut r, s.cache_len(), 1.0);
    let cfg = cfg.unwrap_or_else(|| PrefillConfig::for_chunk(&s, &chunk, false));
    let scale = 1.0 / (s.head_dim as f32).sqrt();
    let pad = 7;
    let (bq, bk, bv) = (upload(rt, &q), upload(rt, &k), upload(rt, &v));
    let mut out = poisoned::<R, T>(rt, n + pad);
    let what = format!("prefill_attention<{}> {s:?} {chunk:?} {cfg:?}", T::NAME);
    let bufs = PrefillBuffers { q: &bq, k_cache: &bk, v_cache: &bv, k_scales: &no_scales, v_scales: &no_scales, out: &mut out };
    launched(&what, prefill_step(rt, &s, chunk, QueriesAt { off: 0, stride: row }, cfg, scale, bufs));
    let (mut want, mut mag) = reference(&s, chunk, scale, &qf, &kf, &vf);
    want.resize(n + pad, f64::NAN);
    mag.resize(n + pad, 0.0);
    assert_attention::<T>(&what, &download_f64(rt, &out), &want, &mag, n);
}

fn causal(q_len: usize, start: usize) -> Chunk {
    Chunk { q_len, start, causal: true }
}

/// Groups 1, 3, 4 and 8 (3 does not divide the tile's rows: the last row of each tile is padding),
/// plain prefill and chunks continuing a cached prefix, ragged lengths.
pub fn prefill_groups_f16<R: Runtime>(rt: &R) {
    check::<R, f16>(rt, shape(2, 2, 1, 64, 90), causal(77, 0), None, 1);
    check::<R, f16>(rt, shape(1, 2, 3, 64, 120), causal(45, 30), None, 2);
    check::<R, f16>(rt, shape(2, 1, 4, 64, 80), causal(33, 0), None, 3);
    check::<R, f16>(rt, shape(1, 2, 8, 64, 100), causal(19, 70), None, 4);
}

/// head_dim 128, 80 (not a power of two) and 8 (under the 16-wide tile), and attention over the whole
/// context (not causal).
pub fn prefill_head_dims_bf16<R: Runtime>(rt: &R) {
    check::<R, bf16>(rt, shape(1, 2, 4, 128, 100), causal(40, 50), None, 5);
    check::<R, bf16>(rt, shape(2, 1, 2, 80, 70), causal(70, 0), None, 6);
    check::<R, bf16>(rt, shape(1, 2, 3, 128, 64), Chunk { q_len: 30, start: 20, causal: false }, None, 7);
    check::<R, bf16>(rt, shape(1, 1, 4, 8, 40), causal(13, 5), None, 8);
    // Warps along the rows only (the softmax and P stay in the tensor-core registers): 128 rows on 8
    // warps and 64 on 4, head_dim 128.
    check::<R, bf16>(rt, shape(1, 2, 4, 128, 160), causal(100, 60), Some(PrefillConfig { block_m: 128, block_n: 64, num_warps: 8 }), 9);
    check::<R, bf16>(rt, shape(1, 1, 2, 128, 130), causal(130, 0), Some(PrefillConfig { block_m: 64, block_n: 32, num_warps: 4 }), 16);
    // 128-key steps (the second one ragged).
    check::<R, bf16>(rt, shape(1, 1, 4, 128, 200), causal(60, 100), Some(PrefillConfig { block_m: 128, block_n: 128, num_warps: 8 }), 17);
}

/// Every declared tile height and both key steps, 8 warps; a one-token chunk.
pub fn prefill_tiles_f16<R: Runtime>(rt: &R) {
    let s = shape(1, 2, 4, 64, 150);
    for (i, (block_m, block_n)) in [(16, 32), (32, 64), (64, 32), (128, 64)].into_iter().enumerate() {
        check::<R, f16>(rt, s, causal(70, 60), Some(PrefillConfig { block_m, block_n, num_warps: 4 }), 10 + i as u64);
    }
    check::<R, f16>(rt, s, causal(50, 9), Some(PrefillConfig { block_m: 64, block_n: 64, num_warps: 8 }), 14);
    check::<R, f16>(rt, s, causal(1, 99), None, 15);
}

/// Prefill over an fp8 (e4m3) cache filled by `append_rows_scaled` (`decode_attention::scaled_cache`
/// checks what it stores): against float64 over the dequantized cache, with the bf16 cache's
/// tolerance; a chunk continuing a prefix and one over the whole context, not causal, on the
/// `mma.sync` and the warpgroup tiles. Keys past the context are poisoned: a read shows.
pub fn prefill_fp8_cache_bf16<R: Runtime>(rt: &R) {
    for (s, chunk, cfg, seed) in [
        (shape(1, 2, 4, 128, 120), causal(40, 60), None, 31u64),
        (shape(2, 1, 3, 64, 80), Chunk { q_len: 30, start: 20, causal: false }, None, 32),
        (shape(1, 2, 4, 128, 160), causal(100, 40), Some(PrefillConfig { block_m: 128, block_n: 64, num_warps: 8 }), 33),
    ] {
        let tokens = chunk.start + chunk.q_len;
        let c = super::decode_attention::scaled_cache(rt, &s, tokens, seed);
        let row = s.q_heads() * s.head_dim;
        let n = s.batch * chunk.q_len * row;
        let (q, qf) = rand_elems::<bf16>(&mut rng(seed + 100), n, 1.0);
        let cfg = cfg.unwrap_or_else(|| PrefillConfig::for_chunk(&s, &chunk, false));
        let scale = 1.0 / (s.head_dim as f32).sqrt();
        let bq = upload(rt, &q);
        let mut out = poisoned::<R, bf16>(rt, n);
        let what = format!("prefill_attention<bf16, e4m3> {s:?} {chunk:?} {cfg:?}");
        let bufs = PrefillBuffers { q: &bq, k_cache: &c.k, v_cache: &c.v, k_scales: &c.k_scales, v_scales: &c.v_scales, out: &mut out };
        launched(&what, prefill_step(rt, &s, chunk, QueriesAt { off: 0, stride: row }, cfg, scale, bufs));
        let (want, mag) = reference(&s, chunk, scale, &qf, &c.kf, &c.vf);
        assert_attention::<bf16>(&what, &download_f64(rt, &out), &want, &mag, n);
    }
}

/// What a model does with one sequence set: a prompt in two chunks (the warpgroup heuristic's tiles),
/// then three decode steps. Each chunk's
/// keys and values are appended from a fused QKV buffer (`[tokens, (q_heads + 2 kv_heads) * d]`, read in
/// place at offsets), its queries read from the same buffer; the caches start poisoned, so a read of a
/// position not yet written is NaN in the output. Every output against float64 over the keys so far.
pub fn chunked_prefill_then_decode_bf16<R: Runtime>(rt: &R) {
    // An unscaled cache reads no scales: any f32 buffer stands in.
    let no_scales = filled(rt, 1, 0.0f32);
    let s = shape(2, 2, 3, 64, 64);
    let (qh, kh, d) = (s.q_heads(), s.kv_heads, s.head_dim);
    let width = (qh + 2 * kh) * d;
    let at = RowsAt { k_off: qh * d, v_off: (qh + kh) * d, stride: width };
    let mut kc = poisoned::<R, bf16>(rt, s.cache_len());
    let mut vc = poisoned::<R, bf16>(rt, s.cache_len());
    // The caches as the host expects them (NaN where not yet written).
    let (mut kf, mut vf) = (vec![f64::NAN; s.cache_len()], vec![f64::NAN; s.cache_len()]);
    let scale = 0.125f32;
    let mut r = rng(20);
    let mut start = 0;
    for q_len in [37, 20] {
        let (qkv, qkvf) = rand_elems::<bf16>(&mut r, s.batch * q_len * width, 1.0);
        let bqkv = upload(rt, &qkv);
        let pos = upload(rt, &vec![start as i32; s.batch]);
        let what = format!("chunk of {q_len} at {start}");
        launched(&what, append_rows(rt, &s, q_len, &bqkv, &bqkv, at, &pos, &mut kc, &mut vc));
        let mut qf = vec![];
        for b in 0..s.batch {
            for t in 0..q_len {
                let src = (b * q_len + t) * width;
                qf.extend_from_slice(&qkvf[src..src + qh * d]);
                for h in 0..kh {
                    let dst = ((b * kh + h) * s.max_ctx + start + t) * d;
                    kf[dst..dst + d].copy_from_slice(&qkvf[src + at.k_off + h * d..][..d]);
                    vf[dst..dst + d].copy_from_slice(&qkvf[src + at.v_off + h * d..][..d]);
                }
            }
        }
        let (kg, vg) = (download_f64(rt, &kc), download_f64(rt, &vc));
        for i in 0..s.cache_len() {
            assert!(kg[i].to_bits() == kf[i].to_bits() || (kg[i].is_nan() && kf[i].is_nan()), "{what}: k cache element {i}: {} want {}", kg[i], kf[i]);
            assert!(vg[i].to_bits() == vf[i].to_bits() || (vg[i].is_nan() && vf[i].is_nan()), "{what}: v cache element {i}: {} want {}", vg[i], vf[i]);
        }
        let chunk = causal(q_len, start);
        let n = s.batch * q_len * qh * d;
        let mut out = poisoned::<R, bf16>(rt, n);
        let bufs = PrefillBuffers { q: &bqkv, k_cache: &kc, v_cache: &vc, k_scales: &no_scales, v_scales: &no_scales, out: &mut out };
        launched(&what, prefill_step(rt, &s, chunk, QueriesAt { off: 0, stride: width }, PrefillConfig::for_chunk(&s, &chunk, true), scale, bufs));
        let (want, mag) = reference(&s, chunk, scale, &qf, &kf, &vf);
        assert_attention::<bf16>(&what, &download_f64(rt, &out), &want, &mag, n);
        start += q_len;
    }
    // Decode steps: append one key and value per sequence at `start`, attend `start + 1` keys.
    let rows = s.batch * qh;
    // The combine fused: its ticket counters serve every step.
    let cfg = DecodeConfig::splits(3).with_fused_combine(true);
    let (po, pm) = workspace_lens(&s, cfg.splits);
    let mut tickets = filled(rt, tickets_len(&s), 0i32);
    for step in 0..3 {
        let (kn, knf) = rand_elems::<bf16>(&mut r, s.batch * kh * d, 1.0);
        let (vn, vnf) = rand_elems::<bf16>(&mut r, s.batch * kh * d, 1.0);
        let (q, qf) = rand_elems::<bf16>(&mut r, rows * d, 1.0);
        let what = format!("decode step {step} at {start}");
        let pos = upload(rt, &vec![start as i32; s.batch]);
        launched(&what, append_kv(rt, &s, &upload(rt, &kn), &upload(rt, &vn), &pos, &mut kc, &mut vc));
        for bh in 0..s.batch * kh {
            let dst = (bh * s.max_ctx + start) * d;
            kf[dst..dst + d].copy_from_slice(&knf[bh * d..][..d]);
            vf[dst..dst + d].copy_from_slice(&vnf[bh * d..][..d]);
        }
        let lens = upload(rt, &vec![start as i32 + 1; s.batch]);
        let (mut o, mut m, mut l) = (filled(rt, po, f32::NAN), filled(rt, pm, f32::NAN), filled(rt, pm, f32::NAN));
        let mut out = poisoned::<R, bf16>(rt, rows * d);
        let bq = upload(rt, &q);
        let bufs = DecodeBuffers { q: &bq, q_stride: s.q_heads() * d, k_cache: &kc, v_cache: &vc, k_scales: &no_scales, v_scales: &no_scales, ctx_lens: &lens, part_o: &mut o, part_m: &mut m, part_l: &mut l, tickets: &mut tickets, out: &mut out };
        launched(&what, decode_step(rt, &s, cfg, scale, bufs));
        // A decode query is a one-token chunk at `start`: the same reference.
        let (want, mag) = reference(&s, causal(1, start), scale, &qf, &kf, &vf);
        assert_attention::<bf16>(&what, &download_f64(rt, &out), &want, &mag, rows * d);
        start += 1;
    }
}

/// Chunks, configs and buffers the host API refuses, each with its reason and before any launch (after
/// one valid chunk of the same shape).
pub fn prefill_bad_shapes<R: Runtime>(rt: &R) {
    // An unscaled cache reads no scales: any f32 buffer stands in.
    let no_scales = filled(rt, 1, 0.0f32);
    let s = shape(1, 1, 4, 64, 64);
    // One valid chunk of the same shape first, checked against float64.
    check::<R, f16>(rt, s, causal(10, 0), None, 16);
    let row = s.q_heads() * s.head_dim;
    let q = filled(rt, 10 * row, f16::ZERO);
    let kv = filled(rt, s.cache_len(), f16::ZERO);
    let good = PrefillConfig { block_m: 64, block_n: 64, num_warps: 4 };
    let run = |shape: CacheShape, chunk: Chunk, at: QueriesAt, cfg: PrefillConfig, out_len: usize| -> String {
        let mut out = poisoned::<R, f16>(rt, out_len);
        let bufs = PrefillBuffers { q: &q, k_cache: &kv, v_cache: &kv, k_scales: &no_scales, v_scales: &no_scales, out: &mut out };
        match prefill_step(rt, &shape, chunk, at, cfg, 0.125, bufs) {
            Ok(()) => "launched".to_string(),
            Err(e) => {
                assert!(download_f64(rt, &out).iter().all(|v| v.is_nan()), "refused, yet something ran: {e}");
                e.to_string()
            }
        }
    };
    let packed = QueriesAt { off: 0, stride: row };
    assert!(run(s, causal(10, 55), packed, good, 10 * row).contains("end within max_ctx (64)"));
    assert!(run(s, causal(0, 0), packed, good, row).contains("non-empty"));
    assert!(run(s, causal(10, 0), QueriesAt { off: 0, stride: row - 1 }, good, 10 * row).contains("stride 255 is less than"));
    assert!(run(s, causal(10, 0), QueriesAt { off: 1, stride: row }, good, 10 * row).contains(&format!("q needs at least {} elements", 10 * row + 1)));
    assert!(run(s, causal(10, 0), packed, good, 10 * row - 1).contains("out needs at least"));
    assert!(run(shape(1, 1, 32, 64, 64), causal(1, 0), QueriesAt { off: 0, stride: 32 * 64 }, good, 32 * 64).contains("group 32"));
    assert!(run(shape(1, 1, 8, 64, 64), causal(1, 0), QueriesAt { off: 0, stride: 8 * 64 }, PrefillConfig { block_m: 4, ..good }, 8 * 64).contains("block_m 4 is less than the group"));
    let e = run(s, causal(10, 0), packed, PrefillConfig { block_n: 48, ..good }, 10 * row);
    assert!(e.contains("no declared instance") && e.contains("BLOCK_N=64"), "{e}");
    // A valid call of the same shape runs.
    assert_eq!(run(s, causal(10, 0), packed, good, 10 * row), "launched");
}
