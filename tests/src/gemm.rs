//! The benchmarked GEMMs with their autotuning: candidate configs (tile, `num_warps`, `num_stages`),
//! how a config builds its kernel (for the fingerprint) and launches it, and the committed winners,
//! `bench/gemm/tuned.tsv` (written by `gpu-check gemm` on the GPU; CI checks that every committed winner
//! still matches its kernel).

use codegen_ptx::runtime::autotune::{fingerprint, Autotuner, Config};
use codegen_ptx::runtime::{CudaBuffer, CudaRuntime};
use dsl_core::prelude::{bf16, e4m3, f16};

/// The committed winners.
pub const TUNED_FILE: &str = "bench/gemm/tuned.tsv";
pub const TUNED: &str = include_str!("../../bench/gemm/tuned.tsv");
/// What a stale-winner error tells the user to run.
pub const RETUNE: &str = "bash bench/gpu/build.sh, then on the GPU: gpu-check gemm --write bench/gemm/tuned.tsv (see bench/gemm/NOTES.md)";

/// Runs `$body` with the config's tile as the constants `$bm`, `$bn`, `$bk` (`None` for a tile not in
/// the list: kernels are instantiated at compile time).
macro_rules! with_tile {
    ($cfg:expr, |$bm:ident, $bn:ident, $bk:ident| $body:expr) => {
        with_tile!(@arms $cfg, $bm, $bn, $bk, $body;
            (128, 128, 32) (128, 128, 64) (128, 64, 32) (64, 128, 32) (128, 256, 32) (64, 64, 64) (64, 64, 32) (128, 64, 64))
    };
    (@arms $cfg:expr, $bm:ident, $bn:ident, $bk:ident, $body:expr; $(($m:literal, $n:literal, $k:literal))*) => {
        match ($cfg.get("BLOCK_M"), $cfg.get("BLOCK_N"), $cfg.get("BLOCK_K")) {
            $((Some($m), Some($n), Some($k)) => {
                const $bm: i32 = $m;
                const $bn: i32 = $n;
                const $bk: i32 = $k;
                Some($body)
            })*
            _ => None,
        }
    };
}

/// One benchmarked GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gemm {
    /// `matmul` f16 x f16 -> f16, row-major.
    F16,
    /// `matmul` bf16 x bf16 -> bf16, row-major.
    Bf16,
    /// `linear` e4m3 x e4m3ᵀ -> bf16 with a scale (B stored `[N, K]`: `torch._scaled_mm`'s problem).
    Fp8,
}

impl Gemm {
    pub const ALL: [Gemm; 3] = [Gemm::F16, Gemm::Bf16, Gemm::Fp8];

    /// The kernel's name in the autotune files.
    pub fn name(self) -> &'static str {
        match self {
            Gemm::F16 => "matmul<f16>",
            Gemm::Bf16 => "matmul<bf16>",
            Gemm::Fp8 => "linear<e4m3,bf16>",
        }
    }

    /// The candidates: tiles x warps x stages.
    pub fn configs(self) -> Vec<Config> {
        let tiles: &[(i64, i64, i64)] = match self {
            Gemm::F16 | Gemm::Bf16 => &[(128, 128, 32), (128, 128, 64), (128, 64, 32), (64, 128, 32), (128, 256, 32)],
            Gemm::Fp8 => &[(128, 128, 64), (128, 64, 64), (64, 64, 64), (128, 256, 32), (128, 128, 32)],
        };
        let mut v = vec![];
        for &(bm, bn, bk) in tiles {
            for warps in [4, 8] {
                for stages in [3, 4] {
                    v.push(Config::new(&[
                        ("BLOCK_M", bm),
                        ("BLOCK_N", bn),
                        ("BLOCK_K", bk),
                        ("num_warps", warps),
                        ("num_stages", stages),
                    ]));
                }
            }
        }
        v
    }

    /// The autotuner of this GEMM, with the committed winners.
    pub fn autotuner(self) -> Autotuner {
        Autotuner::new(self.name(), self.configs())
            .with_committed_text(TUNED_FILE, TUNED)
            .expect("bench/gemm/tuned.tsv parses (checked in CI)")
            .retune_command(RETUNE)
    }

    /// The fingerprint of the kernel `cfg` builds.
    pub fn fingerprint(self, cfg: &Config) -> Result<String, String> {
        let built = match self {
            Gemm::F16 => with_tile!(cfg, |BM, BN, BK| kernels::matmul::matmul::<f16, f16, f16, BM, BN, BK>::build()),
            Gemm::Bf16 => with_tile!(cfg, |BM, BN, BK| kernels::matmul::matmul::<bf16, bf16, bf16, BM, BN, BK>::build()),
            Gemm::Fp8 => with_tile!(cfg, |BM, BN, BK| kernels::matmul::linear::<e4m3, e4m3, bf16, BM, BN, BK>::build()),
        };
        let k = built.ok_or_else(|| format!("no instance of {} for {cfg}", self.name()))?.map_err(|e| e.to_string())?;
        Ok(fingerprint(&k))
    }
}

fn grid(cfg: &Config, m: usize, n: usize) -> (u32, u32) {
    let (bm, bn) = (cfg.get("BLOCK_M").unwrap_or(1) as usize, cfg.get("BLOCK_N").unwrap_or(1) as usize);
    (m.div_ceil(bm) as u32, n.div_ceil(bn) as u32)
}

/// `C[m, n] = A[m, k] · B[k, n]` (row-major) with config `cfg` (its warps and stages set on `rt`).
pub fn launch_matmul<T: MatmulElem>(
    rt: &CudaRuntime,
    cfg: &Config,
    a: &CudaBuffer<T>,
    b: &CudaBuffer<T>,
    c: &mut CudaBuffer<T>,
    (m, n, k): (usize, usize, usize),
) -> Result<(), String> {
    cfg.apply_to(rt);
    let g = grid(cfg, m, n);
    let (mi, ni, ki) = (m as i32, n as i32, k as i32);
    T::launch(rt, cfg, g, a, b, c, (mi, ni, ki)).ok_or_else(|| format!("no instance for {cfg}"))?.map_err(|e| e.to_string())
}

/// `C[m, n] = (A[m, k] · B[n, k]ᵀ) · scale` in e4m3 with a bf16 result.
pub fn launch_linear_fp8(
    rt: &CudaRuntime,
    cfg: &Config,
    a: &CudaBuffer<e4m3>,
    b: &CudaBuffer<e4m3>,
    c: &mut CudaBuffer<bf16>,
    (m, n, k): (usize, usize, usize),
    scale: f32,
) -> Result<(), String> {
    cfg.apply_to(rt);
    let g = grid(cfg, m, n);
    let (mi, ni, ki) = (m as i32, n as i32, k as i32);
    with_tile!(cfg, |BM, BN, BK| kernels::matmul::linear::<e4m3, e4m3, bf16, BM, BN, BK>::launch(
        rt, g, a, b, c, mi, ni, ki, ki, ki, ni, scale
    ))
    .ok_or_else(|| format!("no instance for {cfg}"))?
    .map_err(|e| e.to_string())
}

/// The 16-bit element types of [`launch_matmul`].
pub trait MatmulElem: dsl_core::types::Elem + Sized {
    #[allow(clippy::type_complexity)]
    fn launch(
        rt: &CudaRuntime,
        cfg: &Config,
        grid: (u32, u32),
        a: &CudaBuffer<Self>,
        b: &CudaBuffer<Self>,
        c: &mut CudaBuffer<Self>,
        mnk: (i32, i32, i32),
    ) -> Option<Result<(), codegen_ptx::runtime::CudaError>>;
}

macro_rules! matmul_elem {
    ($t:ty) => {
        impl MatmulElem for $t {
            fn launch(
                rt: &CudaRuntime,
                cfg: &Config,
                grid: (u32, u32),
                a: &CudaBuffer<$t>,
                b: &CudaBuffer<$t>,
                c: &mut CudaBuffer<$t>,
                (m, n, k): (i32, i32, i32),
            ) -> Option<Result<(), codegen_ptx::runtime::CudaError>> {
                with_tile!(cfg, |BM, BN, BK| kernels::matmul::matmul::<$t, $t, $t, BM, BN, BK>::launch(
                    rt, grid, a, b, c, m, n, k, k, 1, n, 1, n, 1
                ))
            }
        }
    };
}
matmul_elem!(f16);
matmul_elem!(bf16);
