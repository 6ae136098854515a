//! The benchmarked GEMMs with their autotuning: the candidates (declared beside the kernels, in
//! `kernels::matmul::tuning`), how a config builds its kernel (for the fingerprint) and launches it
//! (through the kernels' declared instances), and the committed winners,
//! `bench/gemm/tuned.tsv` (written by `gpu-check gemm` on the GPU; CI checks that every committed winner
//! still matches its kernel).

use codegen_ptx::runtime::autotune::{fingerprint, Autotuner, Config};
use codegen_ptx::runtime::{CudaBuffer, CudaRuntime};
use dsl_core::prelude::{bf16, e4m3, f16, Grid, LaunchOptions};
use kernels::matmul::{tuning, LinearInstance, MatmulInstance};

/// The committed winners.
pub const TUNED_FILE: &str = "bench/gemm/tuned.tsv";
pub const TUNED: &str = include_str!("../../bench/gemm/tuned.tsv");
/// What a stale-winner error tells the user to run.
pub const RETUNE: &str = "bash bench/gpu/build.sh, then on the GPU: gpu-check gemm --write bench/gemm/tuned.tsv (see bench/gemm/NOTES.md)";

/// One benchmarked GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gemm {
    /// `matmul` f16 x f16 -> f16, row-major.
    F16,
    /// `matmul` bf16 x bf16 -> bf16, row-major.
    Bf16,
    /// `linear` e4m3 x e4m3ᵀ -> bf16 with a scale (B stored `[N, K]`: `torch._scaled_mm`'s problem).
    Fp8,
    /// `linear` bf16 x bf16ᵀ -> bf16 (B stored `[N, K]`: `torch.nn.functional.linear`'s problem, the
    /// layout `wgmma` reads without a transpose).
    Bf16Linear,
}

impl Gemm {
    pub const ALL: [Gemm; 4] = [Gemm::F16, Gemm::Bf16, Gemm::Fp8, Gemm::Bf16Linear];

    /// The kernel's name in the autotune files.
    pub fn name(self) -> &'static str {
        match self {
            Gemm::F16 => "matmul<f16>",
            Gemm::Bf16 => "matmul<bf16>",
            Gemm::Fp8 => "linear<e4m3,bf16>",
            Gemm::Bf16Linear => "linear<bf16>",
        }
    }

    /// The candidates: the kernel's declared tiles x warps x stages.
    pub fn configs(self) -> Vec<Config> {
        match self {
            Gemm::F16 | Gemm::Bf16 => tuning::matmul_candidates(),
            Gemm::Fp8 | Gemm::Bf16Linear => tuning::linear_candidates(),
        }
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
        let spec = match self {
            Gemm::F16 => MatmulInstance::from_config(cfg).and_then(|i| i.spec::<f16, f16, f16>()),
            Gemm::Bf16 => MatmulInstance::from_config(cfg).and_then(|i| i.spec::<bf16, bf16, bf16>()),
            Gemm::Fp8 => LinearInstance::from_config(cfg).and_then(|i| i.spec::<e4m3, e4m3, bf16>()),
            Gemm::Bf16Linear => LinearInstance::from_config(cfg).and_then(|i| i.spec::<bf16, bf16, bf16>()),
        };
        let k = spec.and_then(|s| (s.build)()).map_err(|e| e.to_string())?;
        Ok(fingerprint(&k))
    }
}

/// The grid of `cfg`'s tile over an `m x n` output, with `cfg`'s warps and stages.
fn launch_of(cfg: &Config, m: usize, n: usize) -> Result<dsl_core::runtime::Launch, String> {
    let (bm, bn) = (cfg.get("BLOCK_M").unwrap_or(1) as usize, cfg.get("BLOCK_N").unwrap_or(1) as usize);
    Ok(Grid::from((m.div_ceil(bm) as u32, n.div_ceil(bn) as u32)).with(LaunchOptions::from_config(cfg)?))
}

/// `C[m, n] = A[m, k] · B[k, n]` (row-major) with config `cfg` (its tile, warps and stages).
pub fn launch_matmul<T: MatmulElem>(
    rt: &CudaRuntime,
    cfg: &Config,
    a: &CudaBuffer<T>,
    b: &CudaBuffer<T>,
    c: &mut CudaBuffer<T>,
    (m, n, k): (usize, usize, usize),
) -> Result<(), String> {
    let inst = MatmulInstance::from_config(cfg).map_err(|e| e.to_string())?;
    let (mi, ni, ki) = (m as i32, n as i32, k as i32);
    inst.launch::<T, T, T, _>(rt, launch_of(cfg, m, n)?, a, b, c, mi, ni, ki, ki, 1, ni, 1, ni, 1).map_err(|e| e.to_string())
}

/// `C[m, n] = (A[m, k] · B[n, k]ᵀ) · scale` (`linear`, operands of type `T`) with a bf16 result and
/// config `cfg`.
pub fn launch_linear<T>(
    rt: &CudaRuntime,
    cfg: &Config,
    a: &CudaBuffer<T>,
    b: &CudaBuffer<T>,
    c: &mut CudaBuffer<bf16>,
    (m, n, k): (usize, usize, usize),
    scale: f32,
) -> Result<(), String>
where
    T: dsl_core::types::Elem + dsl_core::lang::Numeric + dsl_core::lang::DotOperands<T>,
{
    let inst = LinearInstance::from_config(cfg).map_err(|e| e.to_string())?;
    let (mi, ni, ki) = (m as i32, n as i32, k as i32);
    inst.launch::<T, T, bf16, _>(rt, launch_of(cfg, m, n)?, a, b, c, mi, ni, ki, ki, ki, ni, scale).map_err(|e| e.to_string())
}

/// The 16-bit element types of [`launch_matmul`].
pub trait MatmulElem: dsl_core::types::Elem + dsl_core::lang::Numeric + dsl_core::lang::DotOperands<Self> + Sized {}
impl MatmulElem for f16 {}
impl MatmulElem for bf16 {}
