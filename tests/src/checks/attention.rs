//! `kernels::attention`: flash attention, causal and not.

use super::*;
use dsl_core::lang::DotOperands;
use dsl_core::prelude::{bf16, f16, Float, Runtime};
use kernels::attention::flash_attention;

cases!("attention": attention_f32, attention_f32_causal, attention_f16, attention_bf16, attention_tensor_core_tiles);

struct Case {
    bh: usize,
    seq: usize,
    d: usize,
}

/// Runs `flash_attention` on random `[bh, seq, d]` Q, K, V (padded strides, each tensor different) and
/// checks against an f64 reference; the output's padding stays poisoned.
fn check<R, T, const CAUSAL: bool, const BM: i32, const BN: i32, const BD: i32>(rt: &R, c: Case, seed: u64)
where
    R: Runtime,
    T: TestElem + Float + DotOperands<T>,
{
    let Case { bh, seq, d } = c;
    let mut r = rng(seed);
    // (row stride, slice stride) per tensor: rows padded by 1..4 elements, slices by a few more.
    let lay = |pad: usize| (d + pad, seq * (d + pad) + 2 * pad + 1);
    let (qs, qb) = lay(1);
    let (ks, kb) = lay(2);
    let (vs, vb) = lay(3);
    let (os, ob) = lay(4);
    let (q, qf) = rand_elems::<T>(&mut r, bh * qb, 1.0);
    let (k, kf) = rand_elems::<T>(&mut r, bh * kb, 1.0);
    let (v, vf) = rand_elems::<T>(&mut r, bh * vb, 1.0);
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = poisoned::<R, T>(rt, bh * ob);
    let grid = (blocks(seq, BM as usize), bh as u32);
    let what = format!("flash_attention<{}, causal={CAUSAL}, {BM}x{BN}x{BD}> bh={bh} seq={seq} d={d}", T::NAME);
    launched(
        &what,
        flash_attention::<T, CAUSAL, BM, BN, BD>::launch(
            rt,
            grid,
            &upload(rt, &q),
            &upload(rt, &k),
            &upload(rt, &v),
            &mut out,
            seq as i32,
            d as i32,
            qb as i32,
            qs as i32,
            kb as i32,
            ks as i32,
            vb as i32,
            vs as i32,
            ob as i32,
            os as i32,
            scale,
        ),
    );
    let got = download_f64(rt, &out);

    // f64 reference, and the error scale sum_j p_j |v_j| of each output element.
    let mut want = vec![f64::NAN; bh * ob];
    let mut mag = vec![0.0; bh * ob];
    for b in 0..bh {
        for i in 0..seq {
            let keys = if CAUSAL { i + 1 } else { seq };
            let s: Vec<f64> = (0..keys)
                .map(|j| (0..d).map(|e| qf[b * qb + i * qs + e] * kf[b * kb + j * ks + e]).sum::<f64>() * scale as f64)
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let p: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
            let l: f64 = p.iter().sum();
            for e in 0..d {
                let o = b * ob + i * os + e;
                want[o] = (0..keys).map(|j| p[j] * vf[b * vb + j * vs + e]).sum::<f64>() / l;
                mag[o] = (0..keys).map(|j| p[j] * vf[b * vb + j * vs + e].abs()).sum::<f64>() / l;
            }
        }
    }
    let written = |i: usize| {
        let (b, rest) = (i / ob, i % ob);
        b < bh && rest < seq * os && rest % os < d
    };
    // f32 scores and softmax (~1e-5 relative, scaled by sum p|v|), P rounded to T for the PV product
    // (T::U relative to each term), and one rounding of the output to T. A GPU's exp (ex2.approx, a few
    // units of 2^-24, well under 1e-6) and its tree-ordered sums fit well inside the 1e-5.
    assert_close_where(&what, &got, &want, T::U, |i| (T::U + 1e-5) * mag[i] + T::TINY, written);
    assert_poison_kept(&what, &got, written);
}

pub fn attention_f32<R: Runtime>(rt: &R) {
    check::<R, f32, false, 16, 16, 16>(rt, Case { bh: 1, seq: 1, d: 16 }, 1);
    check::<R, f32, false, 16, 16, 32>(rt, Case { bh: 2, seq: 7, d: 24 }, 2);
    check::<R, f32, false, 16, 16, 32>(rt, Case { bh: 3, seq: 33, d: 32 }, 3);
    check::<R, f32, false, 16, 32, 64>(rt, Case { bh: 2, seq: 64, d: 64 }, 4);
}

pub fn attention_f32_causal<R: Runtime>(rt: &R) {
    check::<R, f32, true, 16, 16, 16>(rt, Case { bh: 1, seq: 1, d: 16 }, 5);
    check::<R, f32, true, 16, 16, 32>(rt, Case { bh: 2, seq: 7, d: 24 }, 6);
    check::<R, f32, true, 16, 16, 32>(rt, Case { bh: 3, seq: 33, d: 32 }, 7);
    check::<R, f32, true, 16, 32, 64>(rt, Case { bh: 2, seq: 64, d: 64 }, 8);
    // BLOCK_M > BLOCK_N: the diagonal block is not the first.
    check::<R, f32, true, 32, 16, 16>(rt, Case { bh: 2, seq: 50, d: 16 }, 9);
}

pub fn attention_f16<R: Runtime>(rt: &R) {
    check::<R, f16, false, 16, 16, 32>(rt, Case { bh: 2, seq: 33, d: 32 }, 10);
    check::<R, f16, true, 16, 16, 64>(rt, Case { bh: 2, seq: 40, d: 48 }, 11);
}

pub fn attention_bf16<R: Runtime>(rt: &R) {
    check::<R, bf16, false, 16, 16, 32>(rt, Case { bh: 2, seq: 33, d: 32 }, 12);
    check::<R, bf16, true, 32, 16, 64>(rt, Case { bh: 2, seq: 47, d: 64 }, 13);
}

/// Tiles whose `dot` results live in the tensor-core accumulator layout: `q · kᵀ` with `kᵀ` staged
/// k-major, row max/sum and rescaling of the mma-layout scores and accumulator, `p` cast and fed back as
/// the A operand.
pub fn attention_tensor_core_tiles<R: Runtime>(rt: &R) {
    check::<R, f16, false, 64, 64, 64>(rt, Case { bh: 2, seq: 150, d: 64 }, 14);
    check::<R, f16, true, 64, 32, 64>(rt, Case { bh: 2, seq: 97, d: 40 }, 15);
    check::<R, bf16, true, 64, 64, 128>(rt, Case { bh: 1, seq: 130, d: 128 }, 16);
}
