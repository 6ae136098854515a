//! What a compilation is for: the GPU architecture, the number of warps, and the facts known about the
//! arguments (Triton's specialization). All of it is part of the JIT cache key.

use std::fmt;

/// A GPU architecture we generate PTX for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Ampere (A100): no fp8 conversions in hardware.
    Sm80,
    /// Ada (L40, RTX 40xx): fp8 `cvt` and fp8 `mma`.
    Sm89,
    /// Hopper (H100) with the architecture-specific features (`wgmma`, TMA).
    Sm90a,
}

impl Target {
    /// The LLVM NVPTX cpu name.
    pub fn cpu(self) -> &'static str {
        match self {
            Target::Sm80 => "sm_80",
            Target::Sm89 => "sm_89",
            Target::Sm90a => "sm_90a",
        }
    }

    /// The target for a device of compute capability `major.minor` (the newest we support that it runs).
    pub fn for_compute_capability(major: u32, minor: u32) -> Option<Target> {
        match (major, minor) {
            (9, _) => Some(Target::Sm90a),
            (8, 9) => Some(Target::Sm89),
            (8, _) => Some(Target::Sm80),
            (m, _) if m > 9 => Some(Target::Sm89), // no sm_90a features on newer chips; PTX JITs forward
            _ => None,
        }
    }

    /// `"sm_80"`, `"sm_89"`, `"sm_90a"` (also `"sm_90"`).
    pub fn from_name(name: &str) -> Option<Target> {
        match name {
            "sm_80" => Some(Target::Sm80),
            "sm_89" => Some(Target::Sm89),
            "sm_90a" | "sm_90" => Some(Target::Sm90a),
            _ => None,
        }
    }

    /// Older targets rank lower; code for a target runs on devices of its rank and above.
    pub fn rank(self) -> u32 {
        match self {
            Target::Sm80 => 80,
            Target::Sm89 => 89,
            Target::Sm90a => 90,
        }
    }

    /// True where the hardware converts to and from fp8 (`cvt ... e4m3x2 / e5m2x2`).
    pub fn has_fp8_cvt(self) -> bool {
        !matches!(self, Target::Sm80)
    }

    /// fp8 `mma.sync` (m16n8k32 e4m3/e5m2): sm_89 and later (on sm_90a ptxas emulates it with f16 HMMA).
    pub fn has_fp8_mma(self) -> bool {
        !matches!(self, Target::Sm80)
    }

    /// Warpgroup tensor cores (`wgmma.mma_async`, SASS `HGMMA` / `QGMMA`): sm_90a only.
    pub fn has_wgmma(self) -> bool {
        matches!(self, Target::Sm90a)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cpu())
    }
}

/// Options a kernel is compiled with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompileOptions {
    pub target: Target,
    /// Warps per program (a CTA of `32 * num_warps` threads); a power of two from 1 to 32.
    pub num_warps: u32,
    /// Check every global access against the length of the buffer its pointer came from; an access out
    /// of bounds is skipped and reported (see [`crate::lower`]'s bounds-check ABI). Slower; for tests and
    /// debugging.
    pub bounds_check: bool,
    /// Shared-memory buffers in the software pipeline of loops that feed `dot` (Triton's `num_stages`):
    /// with `s >= 2`, the loads of the next `s - 1` iterations are in flight (`cp.async`) while this one
    /// computes. 1 disables pipelining. Default 3 (as Triton).
    pub num_stages: u32,
    /// On targets with warpgroup tensor cores (sm_90a), lower the `dot`s that fit them to `wgmma`
    /// (see `lower::wgmma`); off, every tensor-core `dot` uses `mma.sync`. Default on; off to compare.
    pub wgmma: bool,
    /// On sm_90a, pipeline the block-pointer loads that feed `wgmma` with TMA (`cp.async.bulk.tensor`
    /// completing on `mbarrier`s; see `lower::tma`), where their tensor can be mapped; off, block-pointer
    /// loads are per-thread loads. Default **off** until the path has run on a GPU (the runtime turns it
    /// on with `DSL_TMA=1` or `CudaRuntime::set_tma`).
    pub tma: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { target: Target::Sm90a, num_warps: 4, bounds_check: false, num_stages: 3, wgmma: true, tma: false }
    }
}

/// What is known about one launch argument (Triton's specialization). Facts let the vectorizer prove
/// 16-byte accesses; a launch whose arguments have other facts compiles (and caches) another variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgFact {
    /// Nothing known.
    None,
    /// An integer argument equal to 1 (compiled as the constant 1).
    One,
    /// An integer argument divisible by 16.
    Div16,
    /// A pointer aligned to 16 bytes.
    Aligned16,
}

impl ArgFact {
    /// The fact about an integer argument's value.
    pub fn of_int(v: i64) -> ArgFact {
        if v == 1 {
            ArgFact::One
        } else if v % 16 == 0 {
            ArgFact::Div16
        } else {
            ArgFact::None
        }
    }

    /// The fact about a scalar argument of type `d` (integers only; wrapped to `d` first).
    pub fn of_scalar(d: dsl_core::types::DType, v: dsl_core::scalar::Scalar) -> ArgFact {
        if d.is_int() {
            ArgFact::of_int(dsl_core::scalar::normalize(d, v).as_i64())
        } else {
            ArgFact::None
        }
    }

    /// The fact about a pointer argument's address.
    pub fn of_address(addr: u64) -> ArgFact {
        if addr % 16 == 0 {
            ArgFact::Aligned16
        } else {
            ArgFact::None
        }
    }
}

/// The facts about every kernel parameter, in parameter order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Specialization {
    pub facts: Vec<ArgFact>,
}

impl Specialization {
    /// No facts (every argument is generic): `n` parameters.
    pub fn generic(n: usize) -> Specialization {
        Specialization { facts: vec![ArgFact::None; n] }
    }

    /// A short stable text form for cache keys and file names: one letter a parameter.
    pub fn key(&self) -> String {
        self.facts
            .iter()
            .map(|f| match f {
                ArgFact::None => 'n',
                ArgFact::One => '1',
                ArgFact::Div16 => 'd',
                ArgFact::Aligned16 => 'a',
            })
            .collect()
    }

    pub fn fact(&self, param: usize) -> ArgFact {
        self.facts.get(param).copied().unwrap_or(ArgFact::None)
    }
}
