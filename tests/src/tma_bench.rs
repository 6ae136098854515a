//! `gpu-check tma-gemm`: GEMMs at 4096³ and 8192³ on a few `wgmma` tiles, with block pointers through TMA
//! (codegen-ptx's `lower::tma`) beside the same tiles with pointer tiles pipelined by `cp.async`, in one
//! process:
//! - bf16 `C = A · B` (B `[K, N]`): `matmul_block_ptr` with TMA, the same kernel without TMA (per-thread
//!   loads, not pipelined; 4096 only), and `matmul`;
//! - `C = (A · Bᵀ) · scale` (B `[N, K]`, bf16 out) in bf16 and e4m3: `linear_block_ptr` with TMA and
//!   `linear`.
//!
//! The block-pointer kernels with TMA run twice: tiles in groups of [`GROUP_M`] row blocks (`TMA`) and in
//! launch order (`TMA launch-order`, one group as tall as the grid), the same compiled kernel.
//! `matmul` and `linear` take the launch order.
//! Each run's output is checked against a float64 reference on sampled elements.

use codegen_ptx::runtime::{CudaBuffer, CudaError, CudaRuntime};
use dsl_core::prelude::{bf16, e4m3, Launch, Runtime};
use kernels::matmul::{linear, linear_block_ptr, matmul, matmul_block_ptr, GROUP_M};

/// One warm-up call, then the median of 5 timings.
fn median_ms(rt: &CudaRuntime, f: impl FnMut() -> Result<(), CudaError>) -> Res<f64> {
    Ok(crate::graph_timing::median_ms(rt, 1, 5, f)?)
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;


/// The worst sampled error of `c` against `(A · B) · scale` in float64, relative to `sum |a b|`; `a` and
/// `b` are the inputs as the kernel saw them, B `[K, N]` (or `[N, K]` where `b_nk`).
fn sampled_error(a: &[f64], b: &[f64], c: &[bf16], n: usize, b_nk: bool, scale: f64) -> f64 {
    let mut r = crate::checks::rng(12);
    let mut worst = 0.0f64;
    for _ in 0..16 {
        use rand::Rng;
        let (i, j) = (r.gen_range(0..n), r.gen_range(0..n));
        let (mut s, mut mag) = (0.0f64, 0.0f64);
        for k in 0..n {
            let p = a[i * n + k] * if b_nk { b[j * n + k] } else { b[k * n + j] };
            s += p;
            mag += p.abs();
        }
        worst = worst.max((c[i * n + j].to_f64() - s * scale).abs() / (mag * scale));
    }
    worst
}

/// Inputs of type `T` (values `x * input` of a normal sample), uploaded, with their f64 values.
fn inputs<T: crate::checks::TestElem>(rt: &CudaRuntime, n: usize, input: f64, seed: u64) -> Res<(CudaBuffer<T>, Vec<f64>)> {
    let mut r = crate::checks::rng(seed);
    let vals: Vec<T> = crate::checks::randn(&mut r, n * n, input).into_iter().map(|x| T::from_f64(x)).collect();
    let f = vals.iter().map(|x| x.to_f64()).collect();
    Ok((rt.upload(&vals)?, f))
}

pub fn run() -> Res<()> {
    let rt = CudaRuntime::new()?;
    println!("# device {}", rt.device_name());
    println!("# kernel | size | tile | warps | stages | loads | median ms | TFLOP/s | sampled error");
    let mut failures = vec![];
    for n in [4096usize, 8192] {
        let ni = n as i32;
        let mut c: CudaBuffer<bf16> = rt.zeros(n * n)?;
        // One timed run: prints its line, checks its output.
        let mut report = |kernel: &str, tile: &str, warps: u32, stages: u32, loads: &str, res: Res<f64>, c: &mut CudaBuffer<bf16>, check: &dyn Fn(&[bf16]) -> f64| -> Res<()> {
            match res {
                Ok(ms) => {
                    let err = check(&rt.download(c)?);
                    let tflops = 2.0 * (n as f64).powi(3) / (ms * 1e-3) / 1e12;
                    println!("TMA-GEMM {kernel} | {n} | {tile} | {warps} | {stages} | {loads} | {ms:.3} | {tflops:.1} | {err:.1e}");
                    if !(err < 1e-2) {
                        failures.push(format!("{kernel} {tile} {loads} at {n}: sampled error {err:.2e}"));
                    }
                }
                Err(e) => println!("TMA-GEMM {kernel} | {n} | {tile} | {warps} | {stages} | {loads} | failed: {e}"),
            }
            c.fill_zero()?;
            Ok(())
        };
        // bf16 matmul, B [K, N].
        let (a, af) = inputs::<bf16>(&rt, n, 1.0, 9)?;
        let (b, bf) = inputs::<bf16>(&rt, n, 1.0, 10)?;
        let check_kn = |c: &[bf16]| sampled_error(&af, &bf, c, n, false, 1.0);
        let check_nk = |c: &[bf16]| sampled_error(&af, &bf, c, n, true, 1.0);
        macro_rules! matmul_tile {
            ($bm:literal, $bn:literal, $bk:literal, $warps:literal, $stages:literal) => {{
                let launch = Launch::from(((n / $bm) as u32, (n / $bn) as u32)).num_warps($warps).num_stages($stages);
                let tile = format!("{}x{}x{}", $bm, $bn, $bk);
                for (tma, group, loads) in [(true, GROUP_M, "TMA"), (true, i32::MAX, "TMA launch-order"), (false, GROUP_M, "per-thread")] {
                    // Per-thread block-pointer loads are not pipelined: slow; timed at 4096 only.
                    if !tma && n > 4096 {
                        continue;
                    }
                    rt.set_tma(tma);
                    let res = median_ms(&rt, || {
                        matmul_block_ptr::<bf16, bf16, bf16, $bm, $bn, $bk>::launch(&rt, launch.clone(), &a, &b, &mut c, ni, ni, ni, ni, 1, ni, 1, ni, 1, group)
                    });
                    report("matmul_block_ptr<bf16>", &tile, $warps, $stages, loads, res, &mut c, &check_kn)?;
                }
                rt.set_tma(true);
                let res = median_ms(&rt, || matmul::<bf16, bf16, bf16, $bm, $bn, $bk>::launch(&rt, launch.clone(), &a, &b, &mut c, ni, ni, ni, ni, 1, ni, 1, ni, 1));
                report("matmul<bf16>", &tile, $warps, $stages, "cp.async", res, &mut c, &check_kn)?;
            }};
        }
        matmul_tile!(64, 128, 64, 4, 3);
        matmul_tile!(128, 128, 64, 8, 3);
        matmul_tile!(128, 128, 64, 8, 4);
        matmul_tile!(128, 256, 64, 8, 3);
        // linear, B [N, K]: bf16 (the same inputs, B read as [N, K]) and e4m3.
        macro_rules! linear_tile {
            ($t:ty, $name:literal, $a:expr, $b:expr, $scale:expr, $check:expr, $bm:literal, $bn:literal, $bk:literal, $warps:literal, $stages:literal) => {{
                let launch = Launch::from(((n / $bm) as u32, (n / $bn) as u32)).num_warps($warps).num_stages($stages);
                let tile = format!("{}x{}x{}", $bm, $bn, $bk);
                for (group, loads) in [(GROUP_M, "TMA"), (i32::MAX, "TMA launch-order")] {
                    let res = median_ms(&rt, || linear_block_ptr::<$t, $t, bf16, $bm, $bn, $bk>::launch(&rt, launch.clone(), $a, $b, &mut c, ni, ni, ni, ni, ni, ni, $scale, group));
                    report(concat!("linear_block_ptr<", $name, ">"), &tile, $warps, $stages, loads, res, &mut c, $check)?;
                }
                let res = median_ms(&rt, || linear::<$t, $t, bf16, $bm, $bn, $bk>::launch(&rt, launch.clone(), $a, $b, &mut c, ni, ni, ni, ni, ni, ni, $scale));
                report(concat!("linear<", $name, ">"), &tile, $warps, $stages, "cp.async", res, &mut c, $check)?;
            }};
        }
        linear_tile!(bf16, "bf16", &a, &b, 1.0, &check_nk, 128, 128, 64, 8, 3);
        linear_tile!(bf16, "bf16", &a, &b, 1.0, &check_nk, 128, 128, 64, 8, 4);
        linear_tile!(bf16, "bf16", &a, &b, 1.0, &check_nk, 128, 256, 64, 8, 3);
        drop((a, b));
        // fp8: values of a few units (e4m3 keeps ~2 significant bits), scale 1/64.
        let (a8, af8) = inputs::<e4m3>(&rt, n, 4.0, 11)?;
        let (b8, bf8) = inputs::<e4m3>(&rt, n, 4.0, 12)?;
        let check8 = |c: &[bf16]| sampled_error(&af8, &bf8, c, n, true, 1.0 / 64.0);
        linear_tile!(e4m3, "e4m3", &a8, &b8, 1.0 / 64.0, &check8, 128, 128, 128, 8, 3);
        linear_tile!(e4m3, "e4m3", &a8, &b8, 1.0 / 64.0, &check8, 128, 128, 128, 8, 4);
        linear_tile!(e4m3, "e4m3", &a8, &b8, 1.0 / 64.0, &check8, 128, 256, 128, 8, 3);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}
