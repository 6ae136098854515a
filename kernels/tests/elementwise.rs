mod common;

use common::*;
use dsl_core::prelude::*;
use kernels::elementwise::{add, silu_mul};

#[test]
fn add_ragged() {
    let rt = Interpreter::new();
    let mut r = rng(1);
    for n in [1usize, 7, 1000, 1337] {
        let (x, xf) = rand_elems::<f32>(&mut r, n, 1.0);
        let (y, yf) = rand_elems::<f32>(&mut r, n, 1.0);
        // One spare element past n must keep its poison.
        let mut out = HostBuffer::filled(n + 1, f32::NAN);
        add::<256>::launch(&rt, blocks(n, 256), &HostBuffer::from_slice(&x), &HostBuffer::from_slice(&y), &mut out, n as i32)
            .unwrap();
        let got = to_f64(&out);
        // f32 add: one rounding.
        let want: Vec<f64> = (0..n).map(|i| ((xf[i] + yf[i]) as f32) as f64).collect();
        assert_close(&format!("add n={n}"), &got[..n], &want, 0.0, 0.0);
        assert_poison_kept("add", &got, |i| i < n);
    }
}

fn silu_ref(g: f64, u: f64) -> f64 {
    g / (1.0 + (-g).exp()) * u
}

fn check_silu_mul<T: TestElem + Float>(seed: u64) {
    let rt = Interpreter::new();
    let mut r = rng(seed);
    for n in [1usize, 7, 1000, 1337] {
        let (g, gf) = rand_elems::<T>(&mut r, n, 2.0);
        let (u, uf) = rand_elems::<T>(&mut r, n, 1.0);
        let mut out = HostBuffer::filled(n + 3, T::poison());
        silu_mul::<T, 128>::launch(
            &rt,
            blocks(n, 128),
            &HostBuffer::from_slice(&g),
            &HostBuffer::from_slice(&u),
            &mut out,
            n as i32,
        )
        .unwrap();
        let got = to_f64(&out);
        let want: Vec<f64> = (0..n).map(|i| silu_ref(gf[i], uf[i])).collect();
        // f32 math (a few f32 roundings), then one rounding to T.
        let rtol = T::U + 8.0 * f32::EPSILON as f64;
        assert_close(&format!("silu_mul<{}> n={n}", T::NAME), &got[..n], &want, rtol, T::TINY);
        assert_poison_kept("silu_mul", &got, |i| i < n);
    }
}

#[test]
fn silu_mul_f32() {
    check_silu_mul::<f32>(2);
}

#[test]
fn silu_mul_f16() {
    check_silu_mul::<f16>(3);
}

#[test]
fn silu_mul_bf16() {
    check_silu_mul::<bf16>(4);
}
