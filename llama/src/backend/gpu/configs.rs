//! Which configuration each GEMM of a step launches. For FP8 weights on a GPU with committed autotune
//! winners (`bench/fp8_gemm/tuned.tsv`, keyed by the device's name and the GEMM's shape rounded to
//! powers of two), the winner, looked up and never searched for; otherwise (bf16 weights, another
//! GPU, the interpreter, or `GpuOptions::tuned_configs` off) `kernels::fp8_gemm::heuristic`. With
//! `fused` a split-K grid combines in the GEMM itself (the last program of each tile adds the
//! partials: one launch instead of two, the same bits); without it, with a second kernel, whatever
//! the winner said.

use codegen_ptx::runtime::autotune::{fingerprint_spec, parse_records, Autotuner};
use dsl_core::prelude::e4m3;
use kernels::fp8_gemm::tuning::{self, candidates, gemm_config, key, main_spec};
use kernels::fp8_gemm::{heuristic, matvec_tiles, GemmConfig};
use std::sync::atomic::{AtomicBool, Ordering};

/// The widest row (`K`, the model's width) whose RMSNorm the matrix-vector products apply themselves.
/// Each one-warp program then reads the whole f32 row and the norm's f32 weights (8 bytes a column)
/// besides its 2 to 8 rows of the weight: at Llama-3-8B's 4096 that quadrupled the bytes an FP8
/// program reads, and decode fell from 363 to 234 tokens/s (H200, 2026-12-06; bf16 weights: 229 to
/// 228); at SmolLM2's 576, where the row is a few KB in L1 and the norm kernel's launch dominates, the
/// fused norm gained 7% (fp8) and 12% (bf16). `bench/llama_gpu/NOTES.md`.
pub const NORM_IN_PRODUCT_MAX_K: usize = 1024;

/// The M buckets the fp8 GEMM is tuned in, each by one of its members.
const BUCKETS: [usize; 5] = [1, 17, 33, 65, 257];

/// The GEMM configurations of one GPU.
pub struct GemmConfigs {
    /// The device's name, where winners may be looked up.
    device: Option<String>,
    /// One tuner per M bucket with the committed winners ([`BUCKETS`] order).
    tuners: Vec<Autotuner>,
    sm_count: u32,
    /// Split-K grids combine in the GEMM (else with a second kernel).
    fused: bool,
    /// A committed winner was refused once (and said so on stderr).
    warned: AtomicBool,
    /// Every GEMM's split count, whatever was chosen (`GpuOptions::split_k`).
    split_k: Option<u32>,
    /// GEMMs of one row (a decode step at batch 1) run the matrix-vector product with this many rows
    /// of the weight per program (`GpuOptions::matvec_rows`); `None`: as configured.
    matvec_rows: Option<u32>,
    /// FP8 weights' matrix-vector products read activations quantized to e4m3 (W8A8) instead of bf16
    /// (W8A16): `GpuOptions::matvec_fp8_activations`.
    matvec_fp8_activations: bool,
    /// One-row gate-and-up projections write the SwiGLU themselves (`GpuOptions::fused_swiglu`).
    fused_swiglu: bool,
    /// One-row GEMMs after an RMSNorm apply it themselves (`GpuOptions::fused_norm`).
    fused_norm: bool,
    /// The one-row QKV projection applies RoPE and appends to the cache itself (`GpuOptions::fused_rope`).
    fused_rope: bool,
    /// One-row residual adds write the next norm's inputs (`GpuOptions::norm_in_residual`).
    norm_in_residual: bool,
}

/// A configuration and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub config: GemmConfig,
    /// A committed autotune winner (else the heuristic's choice).
    pub tuned: bool,
}

impl GemmConfigs {
    /// For the GPU named `device` (`None`: no winners apply) with `sm_count` SMs; `fused`: split-K
    /// grids combine in the GEMM's last programs (off: with a second kernel, for comparison).
    pub fn new(device: Option<&str>, sm_count: u32, fused: bool) -> GemmConfigs {
        let tuners = match device {
            Some(_) => BUCKETS
                .iter()
                .filter_map(|&m| Autotuner::new(&tuning::tuner_name("e4m3,bf16", m), candidates(m)).with_committed_text(tuning::COMMITTED_FILE, tuning::COMMITTED).ok())
                .map(|t| t.with_cache_dir(None))
                .collect(),
            None => vec![],
        };
        GemmConfigs { device: device.map(str::to_string), tuners, sm_count, fused, warned: AtomicBool::new(false), split_k: None, matvec_rows: None, matvec_fp8_activations: false, fused_swiglu: true, fused_norm: true, fused_rope: true, norm_in_residual: false }
    }

    /// Every GEMM split `split_k` times (a split-K grid of the chosen tiles); `None`: as chosen.
    pub fn with_split_k(mut self, split_k: Option<u32>) -> GemmConfigs {
        self.split_k = split_k;
        self
    }

    /// GEMMs of one row run the matrix-vector product, `rows` rows of the weight per program (a
    /// declared tile: 2 or 4 for FP8 weights, 4 or 8 for bf16 ones, see
    /// `kernels::fp8_gemm::matvec_tiles`); `None`: as configured (the split-K winners or heuristic).
    pub fn with_matvec_rows(mut self, rows: Option<u32>) -> GemmConfigs {
        self.matvec_rows = rows;
        self
    }

    /// FP8 weights' matrix-vector products read their activations quantized per token to e4m3 (`true`)
    /// or as bf16 (`false`, W8A16: no quantization kernel before them).
    pub fn with_matvec_fp8_activations(mut self, fp8: bool) -> GemmConfigs {
        self.matvec_fp8_activations = fp8;
        self
    }

    /// The gate-and-up matrix-vector products write the SwiGLU in their epilogue (`true`) or leave
    /// the SwiGLU to its own kernel.
    pub fn with_fused_swiglu(mut self, fused: bool) -> GemmConfigs {
        self.fused_swiglu = fused;
        self
    }

    pub fn fuses_swiglu(&self) -> bool {
        self.fused_swiglu
    }

    /// The matrix-vector products after an RMSNorm apply it to the residual row themselves (`true`)
    /// or read the rows a norm kernel wrote.
    pub fn with_fused_norm(mut self, fused: bool) -> GemmConfigs {
        self.fused_norm = fused;
        self
    }

    /// Whether a one-row GEMM over `k` columns applies the norm before it: asked for, and `k` at most
    /// [`NORM_IN_PRODUCT_MAX_K`].
    pub fn fuses_norm(&self, k: usize) -> bool {
        self.fused_norm && k <= NORM_IN_PRODUCT_MAX_K
    }

    /// The one-row QKV projection rotates its queries and keys and appends keys and values to the
    /// cache itself (`true`), or leaves that to the RoPE kernel.
    pub fn with_fused_rope(mut self, fused: bool) -> GemmConfigs {
        self.fused_rope = fused;
        self
    }

    pub fn fuses_rope(&self) -> bool {
        self.fused_rope
    }

    /// The one-row residual adds write the next RMSNorm's inputs (`true`) where the norm is not
    /// inside the product after it, or a norm kernel runs.
    pub fn with_norm_in_residual(mut self, on: bool) -> GemmConfigs {
        self.norm_in_residual = on;
        self
    }

    pub fn norms_in_residual(&self) -> bool {
        self.norm_in_residual
    }

    /// Whether an `m`-row GEMM with FP8 (`fp8`) weights reads bf16 activations: a matrix-vector product
    /// (one row) unless its activations are asked in e4m3. bf16 weights always do.
    pub fn reads_bf16(&self, m: usize, fp8: bool) -> bool {
        !fp8 || (m == 1 && self.matvec_rows.is_some() && !self.matvec_fp8_activations)
    }

    /// The heuristic only (fused combines), for a GPU of `sm_count` SMs.
    pub fn heuristic(sm_count: u32) -> GemmConfigs {
        GemmConfigs::new(None, sm_count, true)
    }

    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// How many committed winners this GPU has (0: every GEMM runs the heuristic).
    pub fn committed(&self) -> usize {
        let Some(device) = &self.device else { return 0 };
        let records = parse_records(tuning::COMMITTED).unwrap_or_default();
        records.iter().filter(|r| &r.device == device && self.tuners.iter().any(|t| t.kernel() == r.kernel)).count()
    }

    /// The configuration of an `m x n x k` GEMM with FP8 (`fp8`) or bf16 weights.
    pub fn choose(&self, m: usize, n: usize, k: usize, fp8: bool) -> Chosen {
        if let (1, Some(rows)) = (m, self.matvec_rows) {
            // 32 lanes of 16-byte loads: 512 one-byte or 256 two-byte elements a row per load; the
            // declared row count nearest to the one asked for.
            let block_k = if fp8 { 512 } else { 256 };
            let declared = matvec_tiles().into_iter().filter(|t| t.1 == block_k).map(|t| t.0);
            let rows = declared.min_by_key(|r| r.abs_diff(rows)).unwrap_or(rows);
            return Chosen { config: GemmConfig::matvec(rows, block_k), tuned: false };
        }
        let mut c = self.choose_any(m, n, k, fp8);
        if let Some(s) = self.split_k {
            (c.config.split_k, c.config.stream_k) = (s, 0);
        }
        if !self.fused || c.config.split_k < 2 {
            c.config.fused_combine = false;
        }
        c
    }

    fn choose_any(&self, m: usize, n: usize, k: usize, fp8: bool) -> Chosen {
        let fallback = Chosen { config: heuristic(m, n, k, self.sm_count).with_fused_combine(), tuned: false };
        let (Some(device), true) = (&self.device, fp8) else { return fallback };
        let Some(tuner) = self.tuners.iter().find(|t| t.kernel() == tuning::tuner_name("e4m3,bf16", m)) else { return fallback };
        let fingerprint = |c: &_| main_spec::<e4m3, e4m3>(c).and_then(|s| fingerprint_spec(&s)).map_err(|e| e.to_string());
        match tuner.lookup(device, &key(m, n, k), fingerprint) {
            Ok(Some(t)) => match gemm_config(&t.config) {
                Ok(config) => Chosen { config, tuned: true },
                Err(e) => self.refused(&e, fallback),
            },
            Ok(None) => fallback,
            Err(e) => self.refused(&e.to_string(), fallback),
        }
    }

    fn refused(&self, why: &str, fallback: Chosen) -> Chosen {
        if !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!("warning: a committed GEMM winner was refused, using the heuristic: {why}");
        }
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a device the heuristic runs, its split-K combined in the GEMM; a GPU named in the
    /// committed file gets its winners for the FP8 shapes tuned there (and the heuristic for bf16
    /// weights); an unknown GPU gets the heuristic.
    #[test]
    fn committed_winners_apply_to_their_gpu_only() {
        let h = GemmConfigs::heuristic(132).choose(1, 4096, 4096, true);
        assert!(!h.tuned && h.config.split_k > 1 && h.config.fused_combine, "{h:?}");
        // A prefill chunk's tile has no fused instance: its split-K combines with a second kernel.
        let p = GemmConfigs::heuristic(132).choose(128, 6144, 4096, true);
        assert!(p.config.split_k > 1 && !p.config.fused_combine, "{p:?}");
        let records = parse_records(tuning::COMMITTED).unwrap();
        let r = records.iter().find(|r| r.kernel == tuning::tuner_name("e4m3,bf16", 1) && r.key.starts_with("M=1,")).expect("an M = 1 winner");
        let dims: Vec<usize> = r.key.split(',').map(|kv| kv.split('=').nth(1).unwrap().parse().unwrap()).collect();
        let on = GemmConfigs::new(Some(&r.device), 132, true);
        assert!(on.committed() > 0);
        let got = on.choose(dims[0], dims[1], dims[2], true);
        assert_eq!(got, Chosen { config: gemm_config(&r.config).unwrap(), tuned: true });
        assert!(!on.choose(dims[0], dims[1], dims[2], false).tuned);
        // One-row GEMMs on the matrix-vector product, at the declared row count nearest the one asked.
        let mv = GemmConfigs::new(Some(&r.device), 132, true).with_matvec_rows(Some(4));
        assert_eq!(mv.choose(1, 4096, 4096, true).config, GemmConfig::matvec(4, 512));
        assert_eq!(mv.choose(1, 4096, 4096, false).config, GemmConfig::matvec(4, 256));
        assert_eq!(mv.choose(16, 4096, 4096, true), on.choose(16, 4096, 4096, true));
        let eight = GemmConfigs::heuristic(132).with_matvec_rows(Some(8));
        assert_eq!(eight.choose(1, 4096, 4096, true).config, GemmConfig::matvec(4, 512));
        assert_eq!(eight.choose(1, 4096, 4096, false).config, GemmConfig::matvec(8, 256));
        let other = GemmConfigs::new(Some("a GPU nobody tuned"), 132, false);
        assert_eq!(other.committed(), 0);
        let h = other.choose(dims[0], dims[1], dims[2], true);
        assert!(!h.tuned && !h.config.fused_combine, "{h:?}");
    }
}
