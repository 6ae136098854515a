//! `gpu-check tma-gemm`: bf16 `C = A · B` (row-major A `[M, K]`, B `[K, N]`, f32 accumulation, bf16 out)
//! at 4096³ and 8192³ on a few `wgmma` tiles, three ways in one process: `matmul_block_ptr` with its
//! block-pointer loads through TMA (codegen-ptx's `lower::tma`), the same kernel without TMA (per-thread
//! loads, not pipelined), and `matmul` (pointer tiles pipelined with `cp.async`). Each winner's output is
//! checked against a float64 reference on sampled elements.

use codegen_ptx::runtime::{CudaBuffer, CudaRuntime};
use dsl_core::prelude::{bf16, Launch, Runtime};
use kernels::matmul::{matmul, matmul_block_ptr};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn median_ms(rt: &CudaRuntime, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    f()?;
    rt.synchronize()?;
    let mut t = vec![];
    for _ in 0..5 {
        let mut err = None;
        let ms = rt.time(|| {
            if let Err(e) = f() {
                err = Some(e.to_string());
            }
            Ok::<(), codegen_ptx::runtime::CudaError>(())
        })?;
        if let Some(e) = err {
            return Err(e.into());
        }
        t.push(ms);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[2])
}

/// The worst sampled error of `c` against `A · B` in float64, relative to `sum |a b|`.
fn sampled_error(a: &[f32], b: &[f32], c: &[bf16], n: usize) -> f64 {
    let mut r = crate::checks::rng(12);
    let mut worst = 0.0f64;
    for _ in 0..16 {
        use rand::Rng;
        let (i, j) = (r.gen_range(0..n), r.gen_range(0..n));
        let (mut s, mut mag) = (0.0f64, 0.0f64);
        for k in 0..n {
            let p = bf16::from_f32(a[i * n + k]).to_f64() * bf16::from_f32(b[k * n + j]).to_f64();
            s += p;
            mag += p.abs();
        }
        worst = worst.max((c[i * n + j].to_f64() - s).abs() / mag);
    }
    worst
}

pub fn run() -> Res<()> {
    let rt = CudaRuntime::new()?;
    println!("# device {}", rt.device_name());
    println!("# kernel | size | tile | warps | stages | loads | median ms | TFLOP/s | sampled error");
    for n in [4096usize, 8192] {
        let mut r = crate::checks::rng(9);
        let a32: Vec<f32> = crate::checks::randn(&mut r, n * n, 1.0).into_iter().map(|v| v as f32).collect();
        let b32: Vec<f32> = crate::checks::randn(&mut r, n * n, 1.0).into_iter().map(|v| v as f32).collect();
        let a = rt.upload(&a32.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>())?;
        let b = rt.upload(&b32.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>())?;
        let mut c: CudaBuffer<bf16> = rt.zeros(n * n)?;
        let ni = n as i32;
        macro_rules! tile {
            ($bm:literal, $bn:literal, $bk:literal, $warps:literal, $stages:literal) => {{
                let launch = Launch::from(((n / $bm) as u32, (n / $bn) as u32)).num_warps($warps).num_stages($stages);
                let tile = format!("{}x{}x{}", $bm, $bn, $bk);
                for (kernel, loads, tma) in [("matmul_block_ptr", "TMA", true), ("matmul_block_ptr", "per-thread", false), ("matmul", "cp.async", true)] {
                    // Per-thread block-pointer loads are not pipelined: slow; timed at 4096 only.
                    if !tma && n > 4096 {
                        continue;
                    }
                    rt.set_tma(tma);
                    let block_ptr = kernel == "matmul_block_ptr";
                    let res = median_ms(&rt, || {
                        if block_ptr {
                            matmul_block_ptr::<bf16, bf16, bf16, $bm, $bn, $bk>::launch(&rt, launch.clone(), &a, &b, &mut c, ni, ni, ni, ni, 1, ni, 1, ni, 1)?;
                        } else {
                            matmul::<bf16, bf16, bf16, $bm, $bn, $bk>::launch(&rt, launch.clone(), &a, &b, &mut c, ni, ni, ni, ni, 1, ni, 1, ni, 1)?;
                        }
                        Ok(())
                    });
                    match res {
                        Ok(ms) => {
                            let err = sampled_error(&a32, &b32, &rt.download(&c)?, n);
                            let tflops = 2.0 * (n as f64).powi(3) / (ms * 1e-3) / 1e12;
                            println!("TMA-GEMM {kernel} | {n} | {tile} | {} | {} | {loads} | {ms:.3} | {tflops:.1} | {err:.1e}", $warps, $stages);
                            if err > 1e-2 {
                                return Err(format!("{kernel} {tile} {loads} at {n}: sampled error {err:.2e}").into());
                            }
                        }
                        Err(e) => println!("TMA-GEMM {kernel} | {n} | {tile} | {} | {} | {loads} | failed: {e}", $warps, $stages),
                    }
                    c.fill_zero()?;
                }
                rt.set_tma(true);
            }};
        }
        tile!(64, 128, 64, 4, 3);
        tile!(64, 128, 64, 4, 4);
        tile!(128, 128, 64, 8, 3);
        tile!(128, 128, 64, 8, 4);
        tile!(128, 256, 64, 8, 3);
    }
    Ok(())
}
