//! `kernels::elementwise`: vector add and the SiLU-gated product.

use super::*;
use dsl_core::prelude::{bf16, f16, Float, Interpreter, Runtime};
use kernels::elementwise::{add, copy, silu_mul};

cases!("elementwise": add_ragged, add_exact, copy_bits, silu_mul_f32, silu_mul_f16, silu_mul_bf16);

/// `add` on ragged lengths (not multiples of the block); one spare element past `n` keeps its poison.
pub fn add_ragged<R: Runtime>(rt: &R) {
    let mut r = rng(1);
    for n in [1usize, 7, 1000, 1337] {
        let (x, xf) = rand_elems::<f32>(&mut r, n, 1.0);
        let (y, yf) = rand_elems::<f32>(&mut r, n, 1.0);
        // One spare element past n must keep its poison.
        let mut out = poisoned::<R, f32>(rt, n + 1);
        let what = format!("add n={n}");
        launched(&what, add::<256>::launch(rt, blocks(n, 256), &upload(rt, &x), &upload(rt, &y), &mut out, n as i32));
        let got = download_f64(rt, &out);
        // f32 add: one rounding (exact on every backend).
        let want: Vec<f64> = (0..n).map(|i| ((xf[i] + yf[i]) as f32) as f64).collect();
        assert_close(&what, &got[..n], &want, 0.0, 0.0);
        assert_poison_kept("add", &got, |i| i < n);
    }
}

/// `add` on deterministic data over exactly `4 * BLOCK >= n` elements: bit-equal to the host's f32 sum.
pub fn add_exact<R: Runtime>(rt: &R) {
    let n = 1000usize;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let y: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
    let (bx, by) = (upload(rt, &x), upload(rt, &y));
    let mut out = filled(rt, n, f32::NAN);
    launched("add", add::<256>::launch(rt, 4, &bx, &by, &mut out, n as i32));
    let o = download(rt, &out);
    for i in 0..n {
        assert_eq!(o[i], x[i] + y[i], "add at {i}");
    }
}

/// `copy` of f32, f16, e4m3 and u8 (4-, 2- and 1-byte elements: every access width) on ragged lengths:
/// bit-equal, one spare element past `n` keeps its poison.
pub fn copy_bits<R: Runtime>(rt: &R) {
    fn check<R: Runtime, T: dsl_core::lang::Numeric>(rt: &R, vals: Vec<T>, poison: T) {
        let n = vals.len();
        let mut out = filled(rt, n + 1, poison);
        let what = format!("copy<{:?}> n={n}", T::DTYPE);
        launched(&what, copy::<T, 512>::launch(rt, blocks(n, 512), &upload(rt, &vals), &mut out, n as i32));
        let bits = |v: &[T]| -> Vec<u8> {
            let size = T::DTYPE.size_bytes();
            let mut b = vec![0u8; v.len() * size];
            v.iter().zip(b.chunks_exact_mut(size)).for_each(|(x, c)| x.write_le(c));
            b
        };
        let got = bits(&download(rt, &out));
        assert!(got[..got.len() - T::DTYPE.size_bytes()] == bits(&vals)[..], "{what}: copied values differ");
        assert!(got[got.len() - T::DTYPE.size_bytes()..] == bits(&[poison])[..], "{what}: element past n was overwritten");
    }
    let mut r = rng(40);
    for n in [1usize, 5, 512, 1000, 4099] {
        let f = randn(&mut r, n, 3.0);
        check(rt, f.iter().map(|&x| x as f32).collect(), f32::from_bits(0x7fc0_dead));
        check(rt, f.iter().map(|&x| f16::from_f64(x)).collect(), f16::from_bits(0x7e01));
        check(rt, f.iter().map(|&x| dsl_core::types::e4m3::from_f64(x)).collect(), dsl_core::types::e4m3::from_bits(0x7f));
        check(rt, f.iter().map(|&x| (x * 40.0) as i64 as u8).collect(), 0xAAu8);
    }
}

fn silu_ref(g: f64, u: f64) -> f64 {
    g / (1.0 + (-g).exp()) * u
}

fn check_silu_mul<R: Runtime, T: TestElem + Float>(rt: &R, seed: u64) {
    let mut r = rng(seed);
    for n in [1usize, 7, 1000, 1337] {
        let (g, gf) = rand_elems::<T>(&mut r, n, 2.0);
        let (u, uf) = rand_elems::<T>(&mut r, n, 1.0);
        let mut out = poisoned::<R, T>(rt, n + 3);
        let what = format!("silu_mul<{}> n={n}", T::NAME);
        launched(&what, silu_mul::<T, 128>::launch(rt, blocks(n, 128), &upload(rt, &g), &upload(rt, &u), &mut out, n as i32));
        let got = download_f64(rt, &out);
        let want: Vec<f64> = (0..n).map(|i| silu_ref(gf[i], uf[i])).collect();
        // f32 math (a few f32 roundings), then one rounding to T. This covers a GPU too: codegen-ptx's exp
        // is ex2.approx with the rounding of x * log2 e corrected by an fma (~2 ulp), its division is IEEE,
        // so sigmoid is within a few ulp and the product within ~10 units of 2^-24; 8 eps is 16 units.
        // (Without the fma correction the rounded product would cost up to |g| * 2^-24 more, |g| ~7 here,
        // and this bound would need doubling.)
        let rtol = T::U + 8.0 * f32::EPSILON as f64;
        assert_close(&what, &got[..n], &want, rtol, T::TINY);
        assert_poison_kept("silu_mul", &got, |i| i < n);
    }
}

pub fn silu_mul_f32<R: Runtime>(rt: &R) {
    check_silu_mul::<R, f32>(rt, 2);
}

pub fn silu_mul_f16<R: Runtime>(rt: &R) {
    check_silu_mul::<R, f16>(rt, 3);
}

pub fn silu_mul_bf16<R: Runtime>(rt: &R) {
    check_silu_mul::<R, bf16>(rt, 4);
}

/// Interpreter only: the traced IR of `add` prints, with source lines.
pub fn add_ir_prints(_rt: &Interpreter) {
    let k = ok("build add::<256>", add::<256>::build());
    let text = dsl_core::ir::print::print(&k, true);
    println!("{text}");
    assert!(text.contains("add"), "IR of add::<256> does not name the kernel:\n{text}");
}
