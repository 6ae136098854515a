//! `kernels::rope`: rotary position embedding (out of place, in place, fused q+k).

use super::*;
use dsl_core::prelude::{bf16, f16, Float, Interpreter, Runtime};
use kernels::rope::{rope, rope_inplace, rope_qk_inplace};

cases!("rope": rope_f32, rope_f16, rope_bf16, rope_qk_fused);

/// Llama's cos/sin tables `[positions, d/2]` (f32) for `theta = 10000`, and their exact f64 values.
fn tables(positions: usize, d: usize) -> (Vec<f32>, Vec<f32>, Vec<f64>, Vec<f64>) {
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
fn rope_ref(x: &[f64], c: &[f64], s: &[f64]) -> Vec<f64> {
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
