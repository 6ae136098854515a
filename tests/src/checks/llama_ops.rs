//! `kernels::llama_ops`: the embedding lookup, RMSNorm from f32 rows to bf16/f16, the residual add and
//! the SwiGLU of a fused gate/up buffer, against float64 on ragged sizes with poisoned outputs; and the
//! other kernels of the Llama runtime: greedy argmax (`kernels::greedy`) and the device's random
//! weights (`kernels::random`).

use super::*;
use dsl_core::prelude::{bf16, f16};
use dsl_core::prelude::e4m3;
use kernels::greedy::{argmax_rows, partials_len, CHUNK};
use kernels::llama_ops::{embed_rows, quantize_blocks, rmsnorm_quant, rmsnorm_to, silu_mul_block_max, silu_mul_halves};
use kernels::random::{fill_uniform, uniform_value};

cases!(
    "llama_ops":
    embed_rows_bf16,
    rmsnorm_to_bf16_and_f16,
    silu_mul_halves_bf16,
    rmsnorm_quant_e4m3,
    silu_mul_then_quantize_blocks_e4m3,
    argmax_rows_first_of_ties,
    fill_uniform_matches_the_host,
);

/// Rows of a bf16 table picked by ids (repeats, the last row), exact in f32; nothing past `tokens * d`.
pub fn embed_rows_bf16<R: Runtime>(rt: &R) {
    let (vocab, d) = (37, 300);
    let (table, tf) = rand_elems::<bf16>(&mut rng(1), vocab * d, 1.0);
    let ids = [5i32, 36, 0, 5];
    let mut out = poisoned::<R, f32>(rt, ids.len() * d + 3);
    launched("embed_rows", embed_rows::<bf16, 128>::launch(rt, (ids.len() as u32, blocks(d, 128)), &upload(rt, &table), &upload(rt, &ids), &mut out, d as i32));
    let got = download_f64(rt, &out);
    for (t, &id) in ids.iter().enumerate() {
        for c in 0..d {
            assert_eq!(got[t * d + c], tf[id as usize * d + c], "token {t} (id {id}) column {c}");
        }
    }
    assert_poison_kept("embed_rows", &got, |i| i < ids.len() * d);
}

/// `rows` rows of an f32 matrix, the first at element `offset`, `stride` apart (`stride >= cols`),
/// normalized into a packed 16-bit output; f32 math (sum of squares to about cols * 2^-24 relative),
/// one rounding to the output type.
fn rmsnorm_case<R: Runtime, O: TestElem + dsl_core::prelude::Float>(rt: &R, rows: usize, cols: usize, stride: usize, offset: usize, seed: u64) {
    let mut r = rng(seed);
    let (x, xf) = rand_elems::<f32>(&mut r, offset + rows * stride, 2.0);
    let (w, wf) = rand_elems::<f32>(&mut r, cols, 1.0);
    let eps = 1e-5f32;
    let mut out = poisoned::<R, O>(rt, rows * cols + 4);
    let what = format!("rmsnorm_to<{}> rows {rows} cols {cols} stride {stride} offset {offset}", O::NAME);
    let (bx, bw) = (upload(rt, &x), upload(rt, &w));
    launched(&what, rmsnorm_to::<O, 128>::launch(rt, rows as u32, &bx, &bw, &mut out, cols as i32, stride as i32, offset as i32, eps));
    let got = download_f64(rt, &out);
    // A block wider than the row (read once, kept in registers): the bits of the walk.
    let mut one = poisoned::<R, O>(rt, rows * cols + 4);
    launched(&what, rmsnorm_to::<O, 512>::launch(rt, rows as u32, &bx, &bw, &mut one, cols as i32, stride as i32, offset as i32, eps));
    assert_same_bits(&format!("{what}: one block against a walk"), &download_f64(rt, &one), &got);
    let mut want = vec![f64::NAN; rows * cols + 4];
    for rr in 0..rows {
        let xr = &xf[offset + rr * stride..][..cols];
        let ms = xr.iter().map(|v| v * v).sum::<f64>() / cols as f64;
        let inv = 1.0 / (ms + eps as f64).sqrt();
        for c in 0..cols {
            want[rr * cols + c] = xr[c] * inv * wf[c];
        }
    }
    assert_close_where(&what, &got, &want, O::U + cols as f64 * 1e-7, |_| O::TINY, |i| i < rows * cols);
    assert_poison_kept(&what, &got, |i| i < rows * cols);
}

pub fn rmsnorm_to_bf16_and_f16<R: Runtime>(rt: &R) {
    rmsnorm_case::<R, bf16>(rt, 3, 300, 305, 0, 2);
    rmsnorm_case::<R, f16>(rt, 1, 77, 82, 4 * 82, 3);
    // The last of each sequence's 4 rows (a batched prefill's rows before the LM head).
    rmsnorm_case::<R, bf16>(rt, 3, 96, 4 * 96, 3 * 96, 4);
}

/// SwiGLU of `[tokens, 2 f]` gate/up rows: f32 math (sigmoid through the GPU's exp: a few ulp), one
/// rounding to bf16.
pub fn silu_mul_halves_bf16<R: Runtime>(rt: &R) {
    let (tokens, f) = (3, 200);
    let (gu, guf) = rand_elems::<bf16>(&mut rng(5), tokens * 2 * f, 2.0);
    let mut out = poisoned::<R, bf16>(rt, tokens * f + 2);
    launched("silu_mul_halves", silu_mul_halves::<bf16, 128>::launch(rt, (tokens as u32, blocks(f, 128)), &upload(rt, &gu), &mut out, f as i32));
    let got = download_f64(rt, &out);
    let mut want = vec![f64::NAN; tokens * f + 2];
    for t in 0..tokens {
        for j in 0..f {
            let (g, u) = (guf[t * 2 * f + j], guf[t * 2 * f + f + j]);
            want[t * f + j] = g / (1.0 + (-g).exp()) * u;
        }
    }
    let u = <bf16 as TestElem>::U;
    assert_close_where("silu_mul_halves", &got, &want, u + 1e-6, |_| <bf16 as TestElem>::TINY, |i| i < tokens * f);
    assert_poison_kept("silu_mul_halves", &got, |i| i < tokens * f);
}

/// A fused per-row fp8 quantization against float64 rows `want` (`rows x cols`): `scale[r] =
/// max|want[r, :]| / 448` (1 for a zero row) to f32 math's error, `q = e4m3(want / scale)` to half an
/// e4m3 ulp (2^-4 relative, 2^-10 absolute near zero); `q` poisoned past `rows * cols`.
fn assert_quantized(what: &str, q: &[f64], scale: &[f32], want: &[f64], rows: usize, cols: usize) {
    for r in 0..rows {
        let amax = want[r * cols..][..cols].iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let s_want = if amax > 0.0 { amax / 448.0 } else { 1.0 };
        let s = scale[r] as f64;
        assert!((s - s_want).abs() <= 2e-5 * s_want, "{what}: row {r} scale {s}, want {s_want}");
        for c in 0..cols {
            let exact = want[r * cols + c] / s;
            let got = q[r * cols + c];
            assert!((got - exact).abs() <= exact.abs() * (1.0 / 16.0 + 1e-4) + 1.0 / 1024.0, "{what}: row {r} col {c}: {got} for {exact}");
            assert!(got.abs() <= 448.0, "{what}: row {r} col {c}: {got} past e4m3's range");
        }
    }
    assert_poison_kept(what, q, |i| i < rows * cols);
}

/// RMSNorm fused with per-row fp8 quantization, on ragged rows (3 steps of 128, the last partial) and
/// an all-zero row, against float64 RMSNorm then quantization.
pub fn rmsnorm_quant_e4m3<R: Runtime>(rt: &R) {
    let (rows, cols) = (4, 300);
    let mut r = rng(21);
    let (mut x, mut xf) = rand_elems::<f32>(&mut r, rows * cols, 2.0);
    let (w, wf) = rand_elems::<f32>(&mut r, cols, 1.0);
    for c in 0..cols {
        (x[2 * cols + c], xf[2 * cols + c]) = (0.0, 0.0);
    }
    let eps = 1e-5f32;
    let mut q = poisoned::<R, e4m3>(rt, rows * cols + 3);
    let mut scale = filled::<R, f32>(rt, rows, f32::NAN);
    let (bx, bw) = (upload(rt, &x), upload(rt, &w));
    launched("rmsnorm_quant", rmsnorm_quant::<e4m3, 128>::launch(rt, rows as u32, &bx, &bw, &mut q, &mut scale, cols as i32, eps));
    // A block wider than the row (read once, kept in registers): the bits of the three-pass walk.
    let mut q1 = poisoned::<R, e4m3>(rt, rows * cols + 3);
    let mut scale1 = filled::<R, f32>(rt, rows, f32::NAN);
    launched("rmsnorm_quant (one block)", rmsnorm_quant::<e4m3, 512>::launch(rt, rows as u32, &bx, &bw, &mut q1, &mut scale1, cols as i32, eps));
    assert_same_bits("rmsnorm_quant with one block against a walk", &download_f64(rt, &q1), &download_f64(rt, &q));
    assert_same_bits("rmsnorm_quant's scales with one block against a walk", &download_f64(rt, &scale1), &download_f64(rt, &scale));
    let mut want = vec![0.0; rows * cols];
    for rr in 0..rows {
        let xr = &xf[rr * cols..][..cols];
        let inv = 1.0 / (xr.iter().map(|v| v * v).sum::<f64>() / cols as f64 + eps as f64).sqrt();
        for c in 0..cols {
            want[rr * cols + c] = xr[c] * inv * wf[c];
        }
    }
    assert_quantized("rmsnorm_quant", &download_f64(rt, &q), &download(rt, &scale), &want, rows, cols);
}

/// SwiGLU then per-row fp8 quantization over many programs (`silu_mul_block_max`, `quantize_blocks`):
/// ragged `f` (4 blocks of 64, the last partial), the block maxima read 2 at a time (two steps), an
/// all-zero token. The SwiGLU against float64 within its bf16 rounding; each block maximum exactly that
/// of what its block stored; the quantization against float64 of the stored values.
pub fn silu_mul_then_quantize_blocks_e4m3<R: Runtime>(rt: &R) {
    let (tokens, f, block) = (3usize, 200usize, 64usize);
    let blocks = f.div_ceil(block);
    let (mut gu, mut guf) = rand_elems::<bf16>(&mut rng(22), tokens * 2 * f, 2.0);
    for j in 0..2 * f {
        (gu[2 * f + j], guf[2 * f + j]) = (bf16::from_f32(0.0), 0.0);
    }
    let mut act = poisoned::<R, bf16>(rt, tokens * f + 2);
    let mut part = filled::<R, f32>(rt, tokens * blocks + 2, f32::NAN);
    let grid = (tokens as u32, blocks as u32);
    launched("silu_mul_block_max", silu_mul_block_max::<bf16, 64>::launch(rt, grid, &upload(rt, &gu), &mut act, &mut part, f as i32));
    let y = download_f64(rt, &act);
    let mut want = vec![0.0; tokens * f];
    for t in 0..tokens {
        for j in 0..f {
            let (g, u) = (guf[t * 2 * f + j], guf[t * 2 * f + f + j]);
            want[t * f + j] = g / (1.0 + (-g).exp()) * u;
        }
    }
    want.resize(y.len(), f64::NAN);
    let u = <bf16 as TestElem>::U;
    assert_close_where("silu_mul_block_max", &y, &want, u + 1e-6, |_| <bf16 as TestElem>::TINY, |i| i < tokens * f);
    assert_poison_kept("silu_mul_block_max", &y, |i| i < tokens * f);
    let got_part = download(rt, &part);
    for t in 0..tokens {
        for b in 0..blocks {
            let m = y[t * f + b * block..t * f + ((b + 1) * block).min(f)].iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert_eq!(got_part[t * blocks + b] as f64, m, "silu_mul_block_max: token {t} block {b}'s maximum");
        }
    }
    assert!(got_part[tokens * blocks..].iter().all(|v| v.is_nan()), "silu_mul_block_max wrote past its maxima");
    let mut q = poisoned::<R, e4m3>(rt, tokens * f + 2);
    let mut scale = filled::<R, f32>(rt, tokens, f32::NAN);
    launched("quantize_blocks", quantize_blocks::<bf16, e4m3, 64, 2>::launch(rt, grid, &act, &part, &mut q, &mut scale, f as i32));
    assert_quantized("quantize_blocks", &download_f64(rt, &q), &download(rt, &scale), &y[..tokens * f], tokens, f);
}

/// Greedy argmax over ragged rows (not a multiple of the chunk): equal maxima in two chunks and twice in
/// one chunk (the first index wins), a maximum in the last element, an all-negative row; the output is
/// poisoned past `rows`.
pub fn argmax_rows_first_of_ties<R: Runtime>(rt: &R) {
    let (rows, n) = (4, 2 * CHUNK + 333);
    let (mut x, _) = rand_elems::<f32>(&mut rng(6), rows * n, 1.0);
    let big = 9.5f32;
    x[n + CHUNK + 7] = big; // row 1: chunk 1, then chunk 2 and again in chunk 1
    x[n + 2 * CHUNK + 1] = big;
    x[n + CHUNK + 900] = big;
    x[2 * n + n - 1] = big; // row 2: the last element
    for v in &mut x[3 * n..4 * n] {
        *v = -v.abs() - 1.0; // row 3: every value negative
    }
    let want: Vec<i32> = (0..rows)
        .map(|r| {
            let row = &x[r * n..(r + 1) * n];
            (0..n).fold(0, |b, i| if row[i] > row[b] { i } else { b }) as i32
        })
        .collect();
    assert_eq!(&want[1..3], &[(CHUNK + 7) as i32, (n - 1) as i32]);
    let mut pv = filled::<R, f32>(rt, partials_len(rows, n), f32::NAN);
    let mut pi = filled::<R, i32>(rt, partials_len(rows, n), -7);
    let mut out = filled::<R, i32>(rt, rows + 2, -7);
    launched("argmax_rows", argmax_rows(rt, &upload(rt, &x), rows, n, &mut pv, &mut pi, &mut out));
    let got = download(rt, &out);
    assert_eq!(&got[..rows], &want[..], "argmax per row");
    assert_eq!(&got[rows..], &[-7, -7], "past the rows");
}

/// The device's random values equal the host twin's (rounded once to the buffer's type), cover
/// `[-scale, scale)` and change with the seed; nothing past `n` is written.
pub fn fill_uniform_matches_the_host<R: Runtime>(rt: &R) {
    let n = 3000;
    let mut a = poisoned::<R, bf16>(rt, n + 5);
    launched("fill_uniform bf16", fill_uniform::<bf16, 256>::launch(rt, blocks(n, 256), &mut a, n as i32, 7u32, 0.5f32));
    let got = download_f64(rt, &a);
    for i in 0..n {
        let want = bf16::from_f32(uniform_value(7, i as u32, 0.5)).to_f64();
        assert_eq!(got[i], want, "bf16 element {i}");
    }
    assert_poison_kept("fill_uniform", &got, |i| i < n);
    let (lo, hi) = got[..n].iter().fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(lo < -0.49 && hi > 0.49 && lo >= -0.5 && hi <= 0.5, "range [{lo}, {hi}]");
    let mut b = poisoned::<R, e4m3>(rt, n);
    launched("fill_uniform e4m3", fill_uniform::<e4m3, 256>::launch(rt, blocks(n, 256), &mut b, n as i32, 8u32, 448.0f32));
    let got8 = download_f64(rt, &b);
    let same = (0..n).filter(|&i| got8[i] == e4m3::from_f32(uniform_value(7, i as u32, 448.0)).to_f64()).count();
    for i in 0..n {
        assert_eq!(got8[i], e4m3::from_f32(uniform_value(8, i as u32, 448.0)).to_f64(), "e4m3 element {i}");
    }
    assert!(same < n / 4, "another seed gives other values ({same} of {n} equal)");
}
