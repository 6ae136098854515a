//! The PTX backend, checked without a GPU. Every kernel check of `tests::checks` is launched through
//! `PtxCheckRuntime`: each launch's specialization is lowered to PTX for sm_80 and sm_90a, assembled by
//! `ptxas` and disassembled by `nvdisasm`, then run by the interpreter (so the check's assertions hold
//! too). On top: no local-memory spills in the memory-bound kernels, and 128-bit global accesses where
//! the argument facts prove them (and not where they don't).
//!
//! Needs `ptxas` and `nvdisasm` (`pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvdisasm`, or set
//! `PTXAS` / `NVDISASM`); `.ci/run` installs them.

use codegen_ptx::check::PtxCheckRuntime;
use codegen_ptx::ptxas::{assemble, find_nvdisasm, find_ptxas};
use codegen_ptx::{compile, ArgFact, CompileOptions, Specialization, Target};
use dsl_core::ir::Kernel;
use dsl_core::prelude::*;
use dsl_core::types::ElemTy;
use std::collections::BTreeSet;
use tests::checks;

const INSTALL: &str = "pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvdisasm (or set PTXAS / NVDISASM)";

#[test]
fn every_kernel_check_lowers_assembles_and_passes() {
    let rt = PtxCheckRuntime::new().unwrap_or_else(|| panic!("ptxas not found: {INSTALL}"));
    assert!(find_nvdisasm().is_some(), "nvdisasm not found: {INSTALL}");
    // Cases run on all cores (LLVM, ptxas and the interpreter are the cost).
    let cases = checks::all_cases::<PtxCheckRuntime>();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(vec![]);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((name, case)) = cases.get(i) else { break };
                if let Err(e) = checks::run_case(&rt, *case) {
                    failed.lock().unwrap().push(format!("{name}: {e}"));
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap();
    assert!(failed.is_empty(), "{} cases failed:\n{}", failed.len(), failed.join("\n"));

    let reports = rt.reports();
    let kernels: BTreeSet<&str> = reports.iter().map(|r| r.kernel.split('<').next().unwrap_or("")).collect();
    for k in ["add", "copy", "silu_mul", "softmax", "rmsnorm", "rope", "matmul", "matmul_splitk", "matmul_block_ptr", "flash_attention"] {
        assert!(kernels.contains(k), "kernel {k} was never assembled (assembled: {kernels:?})");
    }
    for r in &reports {
        assert!(r.assembled.registers > 0 && r.assembled.sass.contains("EXIT"), "{} {}: no machine code", r.kernel, r.target);
    }
    // The memory-bound kernels must not spill to local memory.
    let memory_bound = ["add<", "copy<", "silu_mul<", "softmax<", "rmsnorm<", "rope"];
    for r in reports.iter().filter(|r| memory_bound.iter().any(|p| r.kernel.starts_with(p))) {
        let a = &r.assembled;
        assert_eq!(a.spill_stores + a.spill_loads, 0, "{} ({}, facts {}) spills: {a:?}", r.kernel, r.target, r.facts);
    }
    let mut ms: Vec<f64> = reports.iter().map(|r| r.compile_ms).collect();
    ms.sort_by(f64::total_cmp);
    eprintln!(
        "{} specializations assembled ({} kernels); LLVM compile time median {:.1} ms, max {:.1} ms",
        reports.len(),
        kernels.len(),
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}

/// The SASS of `k` for `target`, with pointers 16-byte aligned and integers carrying `int_fact`.
fn sass(k: &Kernel, int_fact: ArgFact, target: Target) -> String {
    assembled(k, int_fact, &CompileOptions { target, num_warps: 4, ..CompileOptions::default() }).sass
}

/// `k` compiled with `opts` and assembled (pointers 16-byte aligned, integers carrying `int_fact`).
fn assembled(k: &Kernel, int_fact: ArgFact, opts: &CompileOptions) -> codegen_ptx::ptxas::Assembled {
    let facts = k
        .params
        .iter()
        .map(|p| match k.ty(p.value).elem {
            ElemTy::Ptr { .. } => ArgFact::Aligned16,
            _ if k.ty(p.value).dtype().is_some_and(|d| d.is_int()) => int_fact,
            _ => ArgFact::None,
        })
        .collect();
    assembled_with(k, Specialization { facts }, opts)
}

fn assembled_with(k: &Kernel, spec: Specialization, opts: &CompileOptions) -> codegen_ptx::ptxas::Assembled {
    let c = compile(k, &spec, opts).expect("compiles");
    let ptxas = find_ptxas().unwrap_or_else(|| panic!("ptxas not found: {INSTALL}"));
    let nvdisasm = find_nvdisasm().unwrap_or_else(|| panic!("nvdisasm not found: {INSTALL}"));
    assemble(&ptxas, Some(&nvdisasm), &c.ptx, opts.target).expect("assembles")
}

/// The GEMM configurations the benchmarks use: pipelined with `cp.async` (LDGSTS), fragments through
/// `ldmatrix` (LDSM), tensor cores (HMMA), and no local-memory spills.
#[test]
fn pipelined_gemm_uses_cp_async_and_does_not_spill() {
    let kernels = [
        (kernels::matmul::matmul::<f16, f16, f16, 128, 128, 32>::build(), 8),
        (kernels::matmul::matmul::<bf16, bf16, bf16, 128, 64, 32>::build(), 4),
        (kernels::matmul::matmul::<f16, f16, f16, 64, 64, 64>::build(), 4),
    ];
    // Row-major operands: pointers aligned, sizes and leading strides divisible by 16, unit strides 1.
    use ArgFact::*;
    let facts = vec![Aligned16, Aligned16, Aligned16, Div16, Div16, Div16, Div16, One, Div16, One, Div16, One];
    for (k, num_warps) in kernels {
        let k = k.expect("traces");
        for target in [Target::Sm80, Target::Sm90a] {
            let opts = CompileOptions { target, num_warps, num_stages: 3, ..CompileOptions::default() };
            let a = assembled_with(&k, Specialization { facts: facts.clone() }, &opts);
            let name = k.display_name();
            // sm_90a, tiles of 16 rows per warp: wgmma, B (`[k][n]` rows) read n-major by the tensor
            // cores themselves; otherwise mma.sync with B through transposing ldmatrix.
            let wgmma = target == Target::Sm90a && name.contains(&format!("BLOCK_M={}", 16 * num_warps));
            let ops: &[&str] = if wgmma {
                &["LDGSTS.E.BYPASS.128", "HGMMA.64x", "tnspB", "LDGDEPBAR", "DEPBAR"]
            } else {
                &["LDGSTS.E.BYPASS.128", "LDSM.16.M88.4", "LDSM.16.MT88.4", "HMMA.16816.F32", "LDGDEPBAR", "DEPBAR"]
            };
            for op in ops {
                assert!(a.sass.contains(op), "{name} ({target}, {num_warps} warps): no {op}");
            }
            if wgmma {
                assert!(!a.sass.contains("HMMA") && !a.sass.contains("LDSM"), "{name}: still on mma.sync");
                assert!(!a.log.contains("wgmma"), "{name}: ptxas says\n{}", a.log);
            }
            assert_eq!((a.spill_stores, a.spill_loads), (0, 0), "{name} ({target}): spills, {} registers", a.registers);
            eprintln!("{name} ({target}, {num_warps} warps, 3 stages): {} registers", a.registers);
        }
    }
}

#[test]
fn aligned_contiguous_accesses_are_128_bit() {
    let kernels = [
        kernels::elementwise::add::<1024>::build(),
        kernels::elementwise::copy::<f16, 2048>::build(),
        kernels::softmax::softmax::<f32, 1024>::build(),
        kernels::rmsnorm::rmsnorm::<bf16, 2048>::build(),
    ];
    for k in kernels {
        let k = k.expect("traces");
        for target in [Target::Sm80, Target::Sm90a] {
            let s = sass(&k, ArgFact::Div16, target);
            assert!(s.contains("LDG.E.128"), "{} ({target}): no 128-bit loads:\n{s}", k.display_name());
            assert!(s.contains("STG.E.128"), "{} ({target}): no 128-bit stores:\n{s}", k.display_name());
            // Without the facts, a mask or a row may start anywhere: the vectorizer must not assume it.
            let s = sass(&k, ArgFact::None, target);
            assert!(!s.contains(".128"), "{} ({target}): 128-bit access without the facts that allow it", k.display_name());
        }
    }
}

#[test]
fn bounds_checked_kernels_assemble() {
    let kernels = [
        kernels::elementwise::add::<1024>::build(),
        kernels::softmax::softmax::<f16, 1024>::build(),
        kernels::matmul::matmul_block_ptr::<f16, f16, f32, 32, 32, 32>::build(),
        kernels::matmul::matmul_splitk::<f32, f32, 32, 32, 32>::build(),
        kernels::attention::flash_attention::<f16, true, 16, 16, 32>::build(),
    ];
    let ptxas = find_ptxas().unwrap_or_else(|| panic!("ptxas not found: {INSTALL}"));
    for k in kernels {
        let k = k.expect("traces");
        let facts = Specialization::generic(k.params.len());
        for target in [Target::Sm80, Target::Sm90a] {
            let c = compile(&k, &facts, &CompileOptions { target, num_warps: 4, bounds_check: true, ..CompileOptions::default() }).expect("compiles");
            // One hidden length per pointer parameter, and the error record.
            let pointers = k.params.iter().filter(|p| matches!(k.ty(p.value).elem, ElemTy::Ptr { .. })).count();
            let params = c.ptx.matches(".param .").count();
            assert_eq!(params, k.params.len() + pointers + 1, "{}: {params} PTX parameters", k.display_name());
            assemble(&ptxas, None, &c.ptx, target).unwrap_or_else(|e| panic!("{}: {e}", k.display_name()));
        }
    }
}

/// `device_print` (vprintf) and `device_assert` (`__assertfail`) lower and assemble.
#[kernel]
fn debug_ops<const B: i32>(x: Ptr<f32>, n: i32) {
    let offs = arange(0, B);
    let v = load_masked(x + offs, offs < n, 0.0);
    device_print("v", v);
    device_print("n", n);
    device_assert(v == v, "no NaN in x");
}

#[test]
fn print_and_assert_assemble() {
    let k = debug_ops::<64>::build().expect("traces");
    let ptxas = find_ptxas().unwrap_or_else(|| panic!("ptxas not found: {INSTALL}"));
    for target in [Target::Sm80, Target::Sm90a] {
        let c = compile(&k, &Specialization::generic(2), &CompileOptions { target, num_warps: 4, bounds_check: false, ..CompileOptions::default() })
            .expect("compiles");
        assert!(c.ptx.contains("vprintf") && c.ptx.contains("__assertfail"), "{}", c.ptx);
        assemble(&ptxas, None, &c.ptx, target).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Half-precision `atomic_add`s whose old values are unused go two at a time (bf16 pairs need sm_90).
#[test]
fn half_atomic_adds_are_packed() {
    let k = tests::checks::ops::atomic_ops::<256>::build().expect("traces");
    let facts = Specialization { facts: vec![ArgFact::Aligned16; k.params.len()] };
    let ptxas = find_ptxas().unwrap_or_else(|| panic!("ptxas not found: {INSTALL}"));
    for (target, bf16_packed) in [(Target::Sm80, false), (Target::Sm90a, true)] {
        // 256 elements over 128 threads: two consecutive ones per thread.
        let c = compile(&k, &facts, &CompileOptions { target, num_warps: 4, bounds_check: false, ..CompileOptions::default() }).expect("compiles");
        assert!(c.ptx.contains("red.global.add.noftz.f16x2"), "{target}: no packed f16 adds");
        assert_eq!(c.ptx.contains("red.global.add.noftz.bf16x2"), bf16_packed, "{target}: packed bf16 adds");
        assemble(&ptxas, None, &c.ptx, target).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A tile whose size the CTA cannot split evenly is a clear compile error, not a crash.
#[kernel]
fn odd_tile<const N: i32>(out: MutPtr<f32>) {
    let z = zeros::<f32>([N]);
    store(out + program_id(0), sum(z, 0));
}

#[test]
fn a_tile_the_threads_cannot_split_is_an_error() {
    let k = odd_tile::<192>::build().expect("traces");
    let err = compile(&k, &Specialization::generic(1), &CompileOptions::default()).expect_err("192 over 128 threads");
    let msg = err.to_string();
    assert!(msg.contains("192 elements") && msg.contains("128 threads") && msg.contains("odd_tile"), "{msg}");
    // With one warp (32 threads) it divides evenly and compiles.
    compile(&k, &Specialization::generic(1), &CompileOptions { num_warps: 1, ..CompileOptions::default() }).expect("compiles");
}

/// f16 and bf16 `dot` on tensor cores: `HMMA` in the machine code, for both targets.
#[test]
fn half_precision_dot_uses_tensor_cores() {
    let kernels = [
        kernels::matmul::matmul::<f16, f16, f32, 32, 32, 32>::build(),
        kernels::matmul::matmul::<bf16, bf16, f32, 64, 64, 32>::build(),
        kernels::attention::flash_attention::<f16, true, 16, 16, 64>::build(),
    ];
    for k in kernels {
        let k = k.expect("traces");
        for target in [Target::Sm80, Target::Sm90a] {
            let s = sass(&k, ArgFact::Div16, target);
            // sm_90a: the 64-row tile on 4 warps fits warpgroups (B read n-major from shared memory).
            if target == Target::Sm90a && s.contains("HGMMA") {
                assert!(s.contains("tnspB") && !s.contains("HMMA"), "{} ({target}): B n-major on wgmma", k.display_name());
                continue;
            }
            assert!(s.contains("HMMA.16816.F32"), "{} ({target}): no HMMA", k.display_name());
            if !k.display_name().contains("attention") {
                // Fragments come from swizzled shared memory through ldmatrix.
                assert!(s.contains("LDSM.16.M88.4"), "{} ({target}): no LDSM", k.display_name());
                assert!(s.contains("LDSM.16.MT88.4"), "{} ({target}): no transposed LDSM", k.display_name());
            }
        }
    }
}

/// `linear` (B stored [N, K], transposed in the dot) pipelined: the transpose costs no exchange, and fp8
/// runs on fp8 tensor cores where they exist (QMMA on sm_89; on sm_90a QGMMA where the tile fits
/// warpgroups, else ptxas emulates mma.sync fp8 with conversions and HMMA), on CUDA cores on sm_80.
#[test]
fn linear_runs_on_tensor_cores_for_16_bit_and_fp8() {
    use ArgFact::*;
    let facts = vec![Aligned16, Aligned16, Aligned16, Div16, Div16, Div16, Div16, Div16, Div16, None];
    let f16k = kernels::matmul::linear::<f16, f16, f16, 128, 128, 32>::build().expect("traces");
    let fp8k = kernels::matmul::linear::<e4m3, e4m3, bf16, 128, 128, 64>::build().expect("traces");
    let mixed = kernels::matmul::linear::<e4m3, e5m2, f32, 64, 64, 64>::build().expect("traces");
    let opts = |target| CompileOptions { target, num_warps: 4, num_stages: 3, ..CompileOptions::default() };
    for target in [Target::Sm80, Target::Sm90a] {
        let a = assembled_with(&f16k, Specialization { facts: facts.clone() }, &opts(target));
        for op in ["LDGSTS.E.BYPASS.128", "LDSM.16.M88.4", "HMMA.16816.F32"] {
            assert!(a.sass.contains(op), "linear f16 ({target}): no {op}");
        }
        assert!(!a.sass.contains("LDSM.16.MT88"), "linear f16 ({target}): B is k-major, no transposed ldmatrix");
        assert_eq!((a.spill_stores, a.spill_loads), (0, 0), "linear f16 ({target}) spills");
    }
    for k in [&fp8k, &mixed] {
        let name = k.display_name();
        let a = assembled_with(k, Specialization { facts: facts.clone() }, &opts(Target::Sm89));
        for op in ["QMMA.16832.F32.E4M3", "LDSM.16.M88.4", "LDGSTS"] {
            assert!(a.sass.contains(op), "{name} (sm_89): no {op}");
        }
        assert_eq!((a.spill_stores, a.spill_loads), (0, 0), "{name} (sm_89) spills");
        // sm_90a: the 64-row tile on 4 warps fits wgmma (QGMMA); the 128-row one runs the emulated
        // mma.sync.
        let a = assembled_with(k, Specialization { facts: facts.clone() }, &opts(Target::Sm90a));
        let want = if k.display_name().contains("BLOCK_M=64") { "QGMMA" } else { "HMMA.16816.F32" };
        assert!(a.sass.contains(want) && a.sass.contains("LDGSTS"), "{name} (sm_90a): no {want}");
        let a = assembled_with(k, Specialization { facts: facts.clone() }, &opts(Target::Sm80));
        assert!(!a.sass.contains("MMA"), "{name} (sm_80): fp8 has no tensor cores there");
    }
}

/// Every committed GEMM winner (`bench/gemm/tuned.tsv`) is applied without measuring, because its
/// fingerprint matches the kernel as it is now; a winner recorded for another version of the kernel is
/// refused, not applied.
#[test]
fn committed_gemm_winners_match_their_kernels() {
    use codegen_ptx::runtime::autotune::{parse_records, AutotuneError, Source};
    use tests::gemm::{Gemm, TUNED};
    let records = parse_records(TUNED).expect("bench/gemm/tuned.tsv parses");
    assert!(!records.is_empty(), "no committed winners");
    let no_search = |_: &codegen_ptx::runtime::autotune::Config| -> Result<f64, String> { Err("measured: the winner was not committed".into()) };
    for r in &records {
        let g = Gemm::ALL.into_iter().find(|g| g.name() == r.kernel).unwrap_or_else(|| panic!("unknown kernel {}", r.kernel));
        let t = g.autotuner().with_cache_dir(None).best(&r.device, &r.key, |c| g.fingerprint(c), no_search).unwrap_or_else(|e| {
            panic!("{e}\n(the kernel changed since it was tuned: re-tune and commit bench/gemm/tuned.tsv)")
        });
        assert!(matches!(t.source, Source::Committed { .. }), "{} {}: not from the committed file", r.kernel, r.key);
        assert_eq!(t.config, r.config);
    }
    // The same record against another kernel's fingerprint: refused loudly.
    let r = &records[0];
    let g = Gemm::ALL.into_iter().find(|g| g.name() == r.kernel).expect("known");
    let other = if g == Gemm::F16 { Gemm::Bf16 } else { Gemm::F16 };
    let err = g.autotuner().with_cache_dir(None).best(&r.device, &r.key, |c| other.fingerprint(c), no_search).expect_err("stale");
    assert!(matches!(err, AutotuneError::StaleWinner { .. }), "{err}");
}

/// The committed fp8 split-K winners (`bench/fp8_gemm/tuned.tsv`) still match their kernels and are
/// applied without measuring.
#[test]
fn committed_fp8_winners_match_their_kernels() {
    use codegen_ptx::runtime::autotune::{parse_records, Source};
    use tests::fp8_bench::{autotuner, fingerprint_of, TUNED};
    let records = parse_records(TUNED).expect("bench/fp8_gemm/tuned.tsv parses");
    assert!(records.len() >= 80, "winners for the issue's shapes are committed ({} records)", records.len());
    for r in &records {
        let m: usize = r.key.split(',').find_map(|kv| kv.strip_prefix("M=")).and_then(|v| v.parse().ok()).expect("M in key");
        let t = autotuner(m)
            .with_cache_dir(None)
            .best(&r.device, &r.key, fingerprint_of, |_| -> Result<f64, String> { Err("measured".into()) })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(t.source, Source::Committed { .. }) && t.config == r.config, "{}: {}", r.key, r.config);
    }
}

/// Grid dependency control on sm_90a: the kernel releases the next one, prefetches its weight and waits,
/// in that order, before its first global load; older targets keep the prefetch (one per element a
/// thread holds) but have no grid dependency control. Plain and bounds-checked builds assemble.
#[test]
fn grid_dependency_control_orders_prefetch_and_wait_before_the_loads() {
    let k = checks::grid_dep::overlapped_add::<1024>::build().expect("traces");
    let spec = Specialization { facts: vec![ArgFact::None; k.params.len()] };
    for target in [Target::Sm80, Target::Sm89, Target::Sm90a] {
        for bounds_check in [false, true] {
            let opts = CompileOptions { target, num_warps: 4, bounds_check, ..CompileOptions::default() };
            let ptx = compile(&k, &spec, &opts).expect("compiles").ptx;
            let at = |s: &str| ptx.find(s);
            // 1024 elements over 128 threads: 8 each.
            assert_eq!(ptx.matches("prefetch.global.L2").count(), 8, "{target}: one prefetch per element\n{ptx}");
            if target == Target::Sm90a {
                let launch = at("griddepcontrol.launch_dependents").expect("launch_dependents");
                let wait = at("griddepcontrol.wait").expect("wait");
                let (prefetch, load) = (at("prefetch.global.L2").expect("prefetch"), at("ld.global").expect("loads"));
                assert!(launch < prefetch && prefetch < wait && wait < load, "{target}: release, prefetch, wait, then load\n{ptx}");
            } else {
                assert!(at("griddepcontrol").is_none(), "{target} has no grid dependency control");
            }
            assembled_with(&k, spec.clone(), &opts);
        }
    }
}

/// The fused split-K combine orders its partial stores before its ticket and the other splits' partials
/// before its loads: barrier, `fence.acq_rel.gpu`, barrier around the one atomic ticket (`atom...add`),
/// again before the combine's loads, then the reset (`atom...exch`); on every target, assembled.
#[test]
fn fused_combine_fences_around_its_ticket() {
    use kernels::fp8_gemm::ScaledMmFusedCombineInstance;
    let inst = ScaledMmFusedCombineInstance { block_m: 16, block_n: 32, block_k: 256, row_scale: true, col_scale: true, bias: false, accumulate: true };
    let k = (inst.spec::<e4m3, e4m3, f32>().expect("declared").build)().expect("traces");
    let spec = Specialization { facts: vec![ArgFact::None; k.params.len()] };
    for target in [Target::Sm80, Target::Sm90a] {
        let opts = CompileOptions { target, num_warps: 4, num_stages: 3, ..CompileOptions::default() };
        let ptx = compile(&k, &spec, &opts).expect("compiles").ptx;
        let fences: Vec<usize> = ptx.match_indices("fence.acq_rel.gpu").map(|(i, _)| i).collect();
        assert_eq!(fences.len(), 2, "{target}: a release and an acquire fence\n{ptx}");
        // The first atomic whose instruction line names `op` (`atom[.sem][.scope].global.add.u32`...).
        let atom = |op: &str| {
            ptx.match_indices("atom.").map(|(i, _)| i).find(|&i| ptx[i..].lines().next().is_some_and(|l| l.split_whitespace().next().is_some_and(|w| w.contains(op))))
        };
        let ticket = atom(".add").expect("the ticket's atomic add");
        let reset = atom(".exch").expect("the ticket's reset");
        assert!(fences[0] < ticket && ticket < fences[1] && fences[1] < reset, "{target}: fence, ticket, fence, reset\n{ptx}");
        // Right before the release fence, with no memory access between: a barrier of every thread.
        let bar_before = ptx[..fences[0]].rfind("bar.sync").expect("a barrier before the release fence");
        let between = &ptx[bar_before..fences[0]];
        assert!(!between.contains("st.") && !between.contains("ld.") && !between.contains("atom."), "{target}: the barrier right before the fence\n{between}");
        assembled_with(&k, spec.clone(), &opts);
    }
}

/// Per-launch options reach the compiler: one tensor-core GEMM launched with two (warps, stages) pairs
/// through the checking runtime is compiled once for each, with the launch's thread count, pipelined
/// (`LDGSTS`) only where it asked for stages, and the disk-cache keys of the two differ; the results
/// are the interpreter's either way.
#[test]
fn launch_options_reach_the_compiler() {
    use codegen_ptx::runtime::disk_cache::{cache_key, KeyParts};
    let rt = PtxCheckRuntime::new().unwrap_or_else(|| panic!("ptxas not found: {INSTALL}"));
    let (m, n, k) = (64usize, 64usize, 64usize);
    let a = HostBuffer::from_slice(&(0..m * k).map(|i| f16::from_f32((i % 7) as f32 - 3.0)).collect::<Vec<_>>());
    let b = HostBuffer::from_slice(&(0..k * n).map(|i| f16::from_f32((i % 5) as f32 - 2.0)).collect::<Vec<_>>());
    let mut outs = vec![];
    for (w, s) in [(8u32, 1u32), (4, 3)] {
        let mut c = HostBuffer::filled(m * n, f32::NAN);
        let (mi, ni, ki) = (m as i32, n as i32, k as i32);
        kernels::matmul::matmul::<f16, f16, f32, 64, 64, 32>::launch(&rt, Launch::from((1, 1)).num_warps(w).num_stages(s), &a, &b, &mut c, mi, ni, ki, ki, 1, ni, 1, ni, 1)
            .expect("launches");
        outs.push(c.to_vec());
    }
    assert_eq!(outs[0], outs[1], "launch options changed the results");
    assert!(outs[0].iter().all(|v| v.is_finite()));
    let reports: Vec<_> = rt.reports().into_iter().filter(|r| r.kernel.starts_with("matmul<")).collect();
    for target in [Target::Sm80, Target::Sm90a] {
        let mut got: Vec<(u32, u32, u32, bool)> = reports
            .iter()
            .filter(|r| r.target == target)
            .map(|r| (r.num_warps, r.num_stages, r.num_threads, r.assembled.sass.contains("LDGSTS")))
            .collect();
        got.sort_unstable();
        assert_eq!(got, vec![(4, 3, 128, true), (8, 1, 256, false)], "{target}");
    }
    let ir = dsl_core::ir::print::print(&kernels::matmul::matmul::<f16, f16, f32, 64, 64, 32>::build().expect("traces"), true);
    let key = |num_warps, num_stages| {
        cache_key(&KeyParts { ir: &ir, specialization: "", target: Target::Sm90a, num_warps, num_stages, bounds_check: false, wgmma: true, tma: true, llvm_version: "", crate_version: "" })
    };
    assert_ne!(key(8, 1), key(4, 3));
    assert_ne!(key(4, 1), key(4, 3));
    assert_ne!(key(8, 3), key(4, 3));
}

/// The SASS of the loop around the first HMMA or HGMMA, from that instruction to the loop's back edge (the first branch
/// after it to a label above it): the key loop of an attention kernel, past its top barrier.
fn first_mma_loop(sass: &str) -> Option<String> {
    let lines: Vec<&str> = sass.lines().collect();
    let first = lines.iter().position(|l| l.contains("MMA."))?;
    let labels: std::collections::HashMap<&str, usize> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.trim().strip_suffix(':').filter(|n| n.starts_with(".L")).map(|n| (n, i)))
        .collect();
    let target = |l: &str| l.split("`(").nth(1).and_then(|t| t.split(')').next()).and_then(|t| labels.get(t).copied());
    let back = (first..lines.len()).find(|&j| lines[j].contains("BRA") && target(lines[j]).is_some_and(|p| p < first))?;
    Some(lines[first..=back].join("\n"))
}

/// The attention configurations the inference kernels launch (bf16 and f16, head_dim 64 and 128): on
/// tensor cores, K and V pipelined with `cp.async` (LDGSTS). Where the warps split only the rows (64 rows
/// on 4 warps, 128 on 8, decode's 16 on one), the key loop runs in registers: from its first `mma` to its
/// back edge no barrier and no shared store (the row max and sum are quad shuffles, P is the A operand from
/// registers, Q is read from shared memory where it was written once), and no local-memory spills.
/// The 64-row tile on 8 warps (rows split over 2 warps) still converts through shared memory: printed.
#[test]
fn inference_attention_configs_use_tensor_cores_and_what_spills() {
    use kernels::kv_attention::decode::decode_attention;
    use kernels::kv_attention::prefill::prefill_attention;
    // (kernel, warps, the loop in registers, no spills, both dots on wgmma). The prefill heuristic at
    // head_dim 128 (128 rows on 4 warps) is the fastest measured on mma.sync but sits at the register
    // limit: its spills are printed. Tiles of 16 rows per warp run Q·Kᵀ and P·V on wgmma: P from
    // registers, V read n-major (`tnspB`).
    let kernels = [
        (prefill_attention::<bf16, bf16, true, 64, 64, 128>::build(), 8, false, false, false),
        (prefill_attention::<bf16, bf16, true, 128, 32, 128>::build(), 4, true, false, false),
        (prefill_attention::<bf16, bf16, true, 128, 32, 128>::build(), 8, true, true, true),
        (prefill_attention::<bf16, bf16, true, 64, 32, 128>::build(), 4, true, true, true),
        (prefill_attention::<bf16, bf16, true, 64, 64, 128>::build(), 4, true, true, true),
        (prefill_attention::<bf16, bf16, true, 128, 128, 128>::build(), 8, true, true, true),
        (prefill_attention::<f16, f16, true, 64, 64, 64>::build(), 4, true, true, true),
        (prefill_attention::<f16, f16, true, 128, 64, 64>::build(), 8, true, true, true),
        (decode_attention::<bf16, bf16, 16, 64, 128, true, false>::build(), 4, false, true, false),
        (decode_attention::<bf16, bf16, 16, 32, 128, true, false>::build(), 1, true, true, false),
        (decode_attention::<bf16, bf16, 16, 64, 64, true, false>::build(), 1, true, true, false),
        // The combine in the last split (short contexts): the Llama 3 step's 4-warp config at batch 1.
        (decode_attention::<bf16, bf16, 16, 64, 128, true, true>::build(), 4, false, true, false),
    ];
    for (k, num_warps, in_registers, no_spills, wgmma) in kernels {
        let k = k.expect("traces");
        let name = k.display_name();
        let opts = CompileOptions { target: Target::Sm90a, num_warps, num_stages: 3, ..CompileOptions::default() };
        // Sizes and strides divisible by 16, as the runtime's specialization finds them at these shapes.
        let a = assembled(&k, ArgFact::Div16, &opts);
        let body = first_mma_loop(&a.sass).unwrap_or_else(|| panic!("{name}: no tensor-core loop"));
        let count = |text: &str, op: &str| text.matches(op).count();
        // DUMP_SASS=DIR keeps each config's SASS for reading (`{name} w{warps}.sass`).
        if let Ok(dir) = std::env::var("DUMP_SASS") {
            std::fs::write(format!("{dir}/{name} w{num_warps}.sass"), &a.sass).expect("writes the SASS");
        }
        eprintln!(
            "{name} (sm_90a, {num_warps} warps): {} registers, spills {} / {} bytes; in the loop: BAR {} STS {} SHFL {} LDSM {}",
            a.registers, a.spill_stores, a.spill_loads, count(&body, "BAR.SYNC"), count(&body, " STS"), count(&body, "SHFL"), count(&body, "LDSM")
        );
        if wgmma {
            assert!(a.sass.contains("HGMMA") && a.sass.contains("tnspB") && !a.sass.contains("HMMA"), "{name}: not both dots on wgmma");
            assert!(!a.log.contains("wgmma"), "{name}: ptxas says\n{}", a.log);
        } else {
            assert!(!a.sass.contains("GMMA"), "{name}: on wgmma");
        }
        assert!(count(&a.sass, "LDGSTS") > 0, "{name}: K and V are not pipelined");
        if no_spills {
            assert_eq!((a.spill_stores, a.spill_loads), (0, 0), "{name}: spills, {} registers", a.registers);
        }
        if in_registers {
            // (" STS": a store to shared memory, not the copies' LDGSTS.)
            assert_eq!(count(&body, "BAR.SYNC") + count(&body, " STS"), 0, "{name}: the key loop goes through shared memory");
            assert!(count(&body, "SHFL.BFLY") > 0, "{name}: row reductions are not quad shuffles");
        }
        if name.starts_with("decode_attention") && num_warps == 1 {
            // A one-warp program's time is its instruction count: the copies of a step share a few
            // address registers and differ by immediates (`[R38.64+0x400]`), not one 64-bit add each.
            let copies: Vec<&str> = a.sass.lines().filter(|l| l.contains("LDGSTS")).collect();
            let offset = copies.iter().filter(|l| l.contains(".64+")).count();
            eprintln!("{name}: {offset} of {} copies at a register plus an immediate", copies.len());
            assert!(!copies.is_empty() && 2 * offset >= copies.len(), "{name}: {offset} of {} copies at a register plus an immediate", copies.len());
        }
    }
}

/// Attention over an fp8 (e4m3) KV cache: K and V widened to bf16 in registers, each key's scale on its
/// scores and each value's on its probabilities. The decode configs of the Llama step (one warp,
/// 32-key steps at head_dim 128, 64-key at 64) and the warpgroup prefill tile assemble on sm_90a and
/// sm_80 with tensor cores, with K and V pipelined by `cp.async` (LDGSTS: copied ahead as e4m3 and read
/// back into registers before the widening); their registers, spills and copies are printed.
#[test]
fn fp8_cache_attention_assembles() {
    use kernels::kv_attention::decode::decode_attention;
    use kernels::kv_attention::prefill::prefill_attention;
    let kernels = [
        (decode_attention::<bf16, e4m3, 16, 32, 128, true, false>::build(), 1),
        (decode_attention::<bf16, e4m3, 16, 64, 64, true, false>::build(), 1),
        (decode_attention::<bf16, e4m3, 16, 64, 128, true, false>::build(), 4),
        (prefill_attention::<bf16, e4m3, true, 128, 64, 128>::build(), 8),
    ];
    for (k, num_warps) in kernels {
        let k = k.expect("traces");
        let name = k.display_name();
        for target in [Target::Sm90a, Target::Sm80] {
            let opts = CompileOptions { target, num_warps, num_stages: 3, ..CompileOptions::default() };
            let a = assembled(&k, ArgFact::Div16, &opts);
            let count = |op: &str| a.sass.matches(op).count();
            eprintln!(
                "{name} ({target:?}, {num_warps} warps): {} registers, spills {} / {} bytes; HMMA {} HGMMA {} LDGSTS {} LDG {}",
                a.registers, a.spill_stores, a.spill_loads, count("HMMA"), count("HGMMA"), count("LDGSTS"), count("LDG.")
            );
            assert!(count("HMMA") + count("HGMMA") > 0, "{name} {target:?}: no tensor cores");
            assert!(count("LDGSTS") > 0, "{name} {target:?}: K and V not pipelined");
            let facts = k.params.iter().map(|p| if matches!(k.ty(p.value).elem, ElemTy::Ptr { .. }) { ArgFact::Aligned16 } else { ArgFact::Div16 }).collect();
            let plan = codegen_ptx::lower::explain(&k, &Specialization { facts }, &opts);
            assert!(plan.matches("(pipelined with cp.async, read back into registers)").count() == 2, "{name} {target:?}: K and V not read back:\n{plan}");
        }
    }
}

/// Shared memory by lifetime: after a kernel's last loop its exchanges reuse the pipeline's stage
/// buffers and the resident operands' bytes (dead there). A one-warp decode program keeps its softmax in
/// registers, so its only exchange is the epilogue's (the `16 x BLOCK_D` f32 partial output): it needs
/// nothing beyond the 3 stages of K and V and the resident query tile but the loop's own small scratch
/// (it took 8 KB more before).
/// With `COMBINE` the combine's loop comes last, so the epilogue's exchange stays after the stages.
#[test]
fn decode_epilogue_reuses_the_stage_buffers() {
    use kernels::kv_attention::decode::decode_attention;
    let cases = [
        (decode_attention::<bf16, bf16, 16, 32, 128, true, false>::build(), 32, 128, false),
        (decode_attention::<bf16, bf16, 16, 64, 64, true, false>::build(), 64, 64, false),
        (decode_attention::<bf16, bf16, 16, 32, 128, true, true>::build(), 32, 128, true),
    ];
    for (k, block_n, block_d, combine) in cases {
        let k = k.expect("traces");
        let facts = k.params.iter().map(|p| if matches!(k.ty(p.value).elem, ElemTy::Ptr { .. }) { ArgFact::Aligned16 } else { ArgFact::None }).collect();
        let opts = CompileOptions { target: Target::Sm90a, num_warps: 1, num_stages: 3, ..CompileOptions::default() };
        let c = compile(&k, &Specialization { facts }, &opts).expect("compiles");
        let (stages, q) = (3 * 2 * block_n * block_d * 2, 16 * block_d * 2);
        eprintln!("{} (1 warp, 3 stages): {} bytes of shared memory; stages {stages}, query {q}", k.display_name(), c.shared_bytes);
        // The epilogue's exchange of the f32 partial output: after the stages, or inside them. (The
        // loop's own scratch, 128 bytes, stays after them.)
        let epilogue = 16 * block_d * 4;
        let beyond = (c.shared_bytes as usize).checked_sub(stages + q).unwrap_or_else(|| panic!("{}: {} bytes, under the stages and the query tile", k.display_name(), c.shared_bytes));
        if combine {
            assert!(beyond >= epilogue, "{}: {beyond} bytes past the stages, before the combine's loop", k.display_name());
        } else {
            assert!(beyond < epilogue / 8, "{}: {beyond} bytes past the stages", k.display_name());
        }
    }
}

/// On sm_90a the GEMM tiles that fit warpgroups (16 rows per warp, B k-major) run on `wgmma`: HGMMA for
/// 16-bit operands, QGMMA for fp8, for each shared-memory row width the operands can have (32, 64 and
/// 128 bytes, and 128-byte slabs of longer rows), pipelined by `cp.async` and with no spills. With
/// `wgmma: false` the same kernels run on `mma.sync`; sm_80 and sm_89 never see `wgmma`.
#[test]
fn sm90a_gemm_tiles_run_on_wgmma() {
    use kernels::matmul::linear;
    use ArgFact::*;
    let facts = vec![Aligned16, Aligned16, Aligned16, Div16, Div16, Div16, Div16, Div16, Div16, None];
    let cases = [
        (linear::<bf16, bf16, bf16, 64, 128, 64>::build(), 4, "HGMMA.64x128x16.F32.BF16"),
        (linear::<f16, f16, f16, 128, 64, 32>::build(), 8, "HGMMA.64x64x16.F32"),
        (linear::<bf16, bf16, bf16, 64, 64, 16>::build(), 4, "HGMMA.64x64x16.F32.BF16"),
        (linear::<e4m3, e4m3, bf16, 128, 128, 128>::build(), 8, "QGMMA.64x128x32.F32.E4M3.E4M3"),
        (linear::<e4m3, e5m2, f32, 64, 128, 128>::build(), 4, "QGMMA.64x128x32.F32.E4M3.E5M2"),
        (linear::<bf16, bf16, f32, 64, 128, 128>::build(), 4, "HGMMA.64x128x16.F32.BF16"),
    ];
    for (k, num_warps, op) in cases {
        let k = k.expect("traces");
        let name = k.display_name();
        let opts = CompileOptions { target: Target::Sm90a, num_warps, num_stages: 3, ..CompileOptions::default() };
        let a = assembled_with(&k, Specialization { facts: facts.clone() }, &opts);
        for want in [op, "LDGSTS", "WARPGROUP.ARRIVE"] {
            assert!(a.sass.contains(want), "{name} ({num_warps} warps): no {want}");
        }
        assert!(!a.sass.contains("HMMA.16816"), "{name}: still on mma.sync");
        assert_eq!((a.spill_stores, a.spill_loads), (0, 0), "{name} spills, {} registers", a.registers);
        eprintln!("{name} (sm_90a, {num_warps} warps, wgmma): {} registers", a.registers);
        // The loop leaves its wgmma group in flight into the next iteration: after the last GMMA, the
        // branch back comes with no wait for all groups (16-bit loops wait for all but one; fp8 ones
        // wait for the previous group at the top, before promoting its sum). ptxas keeps the wgmmas
        // asynchronous (it serializes them, with a warning, where something else touches their
        // registers while they run).
        let tail = &a.sass[a.sass.rfind("GMMA.").expect("a GMMA")..];
        let to_branch = &tail[..tail.find("BRA").expect("the loop's branch")];
        assert!(!to_branch.contains("gsb0, 0x0"), "{name}: the loop waits for its last group:\n{to_branch}");
        assert_eq!(to_branch.contains("gsb0, 0x1"), !op.starts_with("QGMMA"), "{name}: wait_group 1");
        assert!(!a.log.contains("wgmma"), "{name}: ptxas says\n{}", a.log);
        let off = CompileOptions { wgmma: false, ..opts };
        let a = assembled_with(&k, Specialization { facts: facts.clone() }, &off);
        assert!(a.sass.contains("HMMA.16816") && !a.sass.contains("GMMA"), "{name}: wgmma off still uses it");
        for target in [Target::Sm80, Target::Sm89] {
            let o = CompileOptions { target, ..opts };
            assert!(!assembled_with(&k, Specialization { facts: facts.clone() }, &o).sass.contains("GMMA"), "{name} ({target})");
        }
    }
}

/// The lowering's plan, printed before code is emitted (`codegen_ptx::lower::explain`, `DSL_DUMP_PLAN=1`):
/// which instructions each `dot` runs on, where its operands come from and how they sit in shared
/// memory, the pipelines. The same kernel on sm_90a (wgmma, 128-byte slabs) and sm_80 (mma.sync).
#[test]
fn the_plan_names_each_dots_instructions_and_operands() {
    use ArgFact::*;
    let facts = vec![Aligned16, Aligned16, Aligned16, Div16, Div16, Div16, Div16, Div16, Div16, None];
    let k = kernels::matmul::linear::<bf16, bf16, bf16, 64, 128, 128>::build().expect("traces");
    let opts = CompileOptions { target: Target::Sm90a, num_warps: 4, num_stages: 3, ..CompileOptions::default() };
    let plan = codegen_ptx::lower::explain(&k, &Specialization { facts: facts.clone() }, &opts);
    eprintln!("{plan}");
    for want in [
        "for sm_90a: 4 warps, 3 stages",
        "[64x128] bf16 x [128x128] bf16, wgmma m64n128k16 (8 per warpgroup per dot, group left in flight into the next iteration)",
        "result in mma accumulator layout 64x128 (warps 4x1)",
        "pipelined with cp.async; 64 rows in 128-byte slabs, 128-byte swizzle",
        "pipelined with cp.async; 128 rows in 128-byte slabs",
        "pipeline: 3 stages x 49152 B, prefetch distance 1",
    ] {
        assert!(plan.contains(want), "no `{want}` in the plan:\n{plan}");
    }
    let sm80 = codegen_ptx::lower::explain(&k, &Specialization { facts }, &CompileOptions { target: Target::Sm80, ..opts });
    assert!(sm80.contains("mma.sync m16n8k16") && sm80.contains("64 rows of 256 B, swizzled") && !sm80.contains("wgmma"), "{sm80}");
}

/// The decode step's row kernels at the widths the runtime launches them (one program per token, the
/// row's first block kept in registers: 16 values a thread), assembled for sm_90a with no spills.
#[test]
fn decode_row_kernels_fit_registers_at_their_widths() {
    use kernels::fp8_gemm::quantize_rows;
    use kernels::llama_ops::{rmsnorm_quant, rmsnorm_to};
    let kernels = [
        (rmsnorm_quant::<e4m3, 4096>::build(), 8),
        (rmsnorm_to::<bf16, 4096>::build(), 8),
        (quantize_rows::<bf16, e4m3, 4096>::build(), 8),
    ];
    for (k, num_warps) in kernels {
        let k = k.expect("traces");
        let name = k.display_name();
        let opts = CompileOptions { target: Target::Sm90a, num_warps, ..CompileOptions::default() };
        let a = assembled(&k, ArgFact::Div16, &opts);
        eprintln!("{name} ({num_warps} warps): {} registers, spills {} / {} bytes", a.registers, a.spill_stores, a.spill_loads);
        assert_eq!((a.spill_stores, a.spill_loads), (0, 0), "{name}: spills, {} registers", a.registers);
    }
}

/// The M = 1 GEMM (`scaled_mv`, one warp) reads its rows with 16-byte loads straight into registers:
/// the broadcast of `A` over the rows is a register copy (no shared memory in the loop), the row
/// reduction is lane shuffles, and nothing spills; for fp8 and bf16 weights, bf16 activations against
/// fp8 weights (W8A16), an RMSNorm of an f32 row in front, and the gate-and-up product with its SwiGLU
/// (`swiglu_mv`, rows = weight rows), and the QKV product with RoPE and the cache append
/// (`qkv_rope_mv`).
#[test]
fn matvec_reads_rows_into_registers_with_128_bit_loads() {
    use kernels::fp8_gemm::{residual_norm_mv, scaled_mv, swiglu_mv};
    use kernels::kv_attention::qkv_matvec::qkv_rope_mv;
    let kernels = [
        (scaled_mv::<e4m3, e4m3, bf16, 4, 512, false, true, false, false>::build(), 4),
        (scaled_mv::<e4m3, e4m3, bf16, 2, 512, false, true, false, false>::build(), 2),
        (scaled_mv::<e4m3, e4m3, f32, 4, 512, false, true, true, true>::build(), 4),
        (scaled_mv::<bf16, bf16, bf16, 8, 256, false, false, false, false>::build(), 8),
        (scaled_mv::<bf16, e4m3, f32, 2, 512, false, true, false, true>::build(), 2),
        (scaled_mv::<f32, e4m3, bf16, 2, 512, true, true, false, false>::build(), 2),
        (swiglu_mv::<bf16, e4m3, bf16, 1, 512, false, true>::build(), 2),
        (swiglu_mv::<f32, e4m3, bf16, 1, 512, true, true>::build(), 2),
        (swiglu_mv::<f32, bf16, bf16, 2, 256, true, false>::build(), 4),
        (qkv_rope_mv::<bf16, e4m3, bf16, 1, 512, false, true>::build(), 2),
        (qkv_rope_mv::<f32, e4m3, bf16, 1, 512, true, true>::build(), 2),
        (qkv_rope_mv::<f32, bf16, bf16, 2, 256, true, false>::build(), 4),
        (residual_norm_mv::<bf16, e4m3, bf16, 2, 512, true>::build(), 2),
        (residual_norm_mv::<bf16, bf16, bf16, 4, 256, false>::build(), 4),
    ];
    for (k, rows) in kernels {
        let k = k.expect("traces");
        let name = k.display_name();
        let opts = CompileOptions { target: Target::Sm90a, num_warps: 1, ..CompileOptions::default() };
        let a = assembled(&k, ArgFact::Div16, &opts);
        if let Ok(dir) = std::env::var("DUMP_SASS") {
            std::fs::write(format!("{dir}/{name}.sass"), &a.sass).unwrap();
        }
        let count = |op: &str| a.sass.matches(op).count();
        eprintln!(
            "{name}: {} registers, {} LDG.E.128, {} STS, {} LDS, {} SHFL",
            a.registers,
            count("LDG.E.128"),
            count("STS"),
            count("LDS"),
            count("SHFL")
        );
        // Two blocks of K per step: each row twice, and A twice.
        assert!(count("LDG.E.128") >= 2 * rows + 2, "{name}: {} 128-bit loads", count("LDG.E.128"));
        assert!(count("SHFL.BFLY") >= 5, "{name}: the row sums are not lane shuffles");
        // Only the final row sums go through shared memory (to the threads that store them; the residual
        // add's norm also shares its sum of squares and its ticket).
        let exchanged = if name.starts_with("residual_norm_mv") { rows + 2 } else { rows };
        assert!(count("STS") <= exchanged && count("LDS") <= exchanged, "{name}: shared memory beyond the final exchange");
        assert_eq!((a.spill_stores, a.spill_loads), (0, 0), "{name}: spills, {} registers", a.registers);
        // The residual add's norm costs its product few registers: the programs' sums meet in one
        // integer, not in a tile the last program adds (that took 163 where the product takes 103).
        if name.starts_with("residual_norm_mv<A=bf16, B=F8E4M3, G=bf16, BLOCK_N=2") {
            assert!(a.registers <= 112, "{name}: {} registers (the plain product's: 102-105)", a.registers);
        }
    }
}

/// Block-pointer loads that feed `wgmma` are pipelined through TMA on sm_90a (`lower::tma`): two tensor
/// maps (A and B) passed by value in the parameter space (never copied to local memory), the copies as
/// `UTMALDG` completing on `mbarrier`s, no per-thread copies, no spills (16-bit tiles). Where the map cannot be known
/// from the facts (a row stride not proven a multiple of 16 bytes), on sm_80, with bounds checks or with
/// the option off, the loads stay per-thread.
#[test]
fn block_pointer_loads_feeding_wgmma_use_tma() {
    use kernels::matmul::matmul_block_ptr;
    // (m, n, k, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn, group_m): unit column
    // strides.
    let facts = |k: &Kernel, am: ArgFact| {
        let ints = [ArgFact::None, ArgFact::Div16, ArgFact::Div16, am, ArgFact::One, ArgFact::Div16, ArgFact::One, ArgFact::Div16, ArgFact::One, ArgFact::None];
        let mut f = vec![];
        for p in &k.params {
            f.push(match k.ty(p.value).elem {
                ElemTy::Ptr { .. } => ArgFact::Aligned16,
                _ => ints[f.len() - 3],
            });
        }
        Specialization { facts: f }
    };
    let kernels = [
        // 128-byte rows: one box a tile (A [64][64] bf16, B [64][64] bf16 read n-major).
        (matmul_block_ptr::<bf16, bf16, f32, 64, 64, 64>::build(), 4, 1, 1),
        // 256-byte rows of B: two 128-byte slabs, two boxes.
        (matmul_block_ptr::<f16, f16, f32, 128, 128, 64>::build(), 8, 1, 2),
        // 64-byte rows of A (64-byte swizzle), 256-byte rows of B.
        (matmul_block_ptr::<bf16, bf16, f32, 64, 128, 32>::build(), 4, 1, 2),
    ];
    for (k, num_warps, a_boxes, b_boxes) in kernels {
        let k = k.expect("traces");
        let name = k.display_name();
        let opts = CompileOptions { target: Target::Sm90a, num_warps, num_stages: 3, tma: true, ..CompileOptions::default() };
        let spec = facts(&k, ArgFact::Div16);
        let c = compile(&k, &spec, &opts).expect("compiles");
        assert_eq!(c.tensor_maps.len(), 2, "{name}: {:?}\n{}\n{}", c.tensor_maps, dsl_core::ir::print::print(&k, false), codegen_ptx::lower::explain(&k, &spec, &opts));
        assert_eq!(codegen_ptx::lower::tensor_maps(&k, &spec, &opts), c.tensor_maps, "{name}: the plan alone gives the maps");
        let (a, b) = (&c.tensor_maps[0], &c.tensor_maps[1]);
        assert_eq!((a.base, b.base), (0, 1), "{name}");
        assert_eq!((a.row_stride, b.row_stride), (codegen_ptx::abi::Extent::Param(6), codegen_ptx::abi::Extent::Param(8)), "{name}");
        assert!(c.ptx.matches(".param .align 64 .b8").count() >= 2, "{name}: tensor maps not by value\n{}", c.ptx);
        assert!(!c.ptx.contains("__local_depot"), "{name}: a tensor map copied to local memory");
        let copies = c.ptx.matches("cp.async.bulk.tensor.2d").count();
        // One copy per box in the loop and in each prologue iteration.
        assert!(copies > 0 && copies % (a_boxes + b_boxes) == 0, "{name}: {copies} copies for {a_boxes} + {b_boxes} boxes");
        assert!(c.ptx.contains("mbarrier.try_wait.parity") && c.ptx.contains("mbarrier.arrive.expect_tx"), "{name}");
        let ptxas = find_ptxas().unwrap_or_else(|| panic!("ptxas not found: {INSTALL}"));
        let nvdisasm = find_nvdisasm().unwrap_or_else(|| panic!("nvdisasm not found: {INSTALL}"));
        let s = assemble(&ptxas, Some(&nvdisasm), &c.ptx, opts.target).expect("assembles");
        if let Ok(dir) = std::env::var("DUMP_SASS") {
            std::fs::write(format!("{dir}/{name} w{num_warps} tma.sass"), &s.sass).expect("writes the SASS");
        }
        eprintln!("{name} (sm_90a, {num_warps} warps, TMA): {} registers, spills {} / {}", s.registers, s.spill_stores, s.spill_loads);
        assert!(s.sass.contains("UTMALDG"), "{name}: no TMA load in the SASS");
        assert!(s.sass.contains("HGMMA"), "{name}: not on wgmma");
        // The TMA issue in thread 0 between a wgmma commit and its wait must not serialize the wgmmas.
        assert!(!s.log.contains("wgmma"), "{name}: ptxas says\n{}", s.log);
        assert!(!s.sass.contains("LDGSTS") && !s.sass.contains("LDG.E"), "{name}: per-thread loads left");
        assert_eq!((s.spill_stores, s.spill_loads), (0, 0), "{name}: spills");
    }
    // `linear_block_ptr` (B [N, K], k-major) in e4m3 on QGMMA, its fp8 group lagged: both operands by TMA.
    let k = kernels::matmul::linear_block_ptr::<e4m3, e4m3, bf16, 128, 128, 128>::build().expect("traces");
    let ints = [ArgFact::None, ArgFact::Div16, ArgFact::Div16, ArgFact::Div16, ArgFact::Div16, ArgFact::Div16];
    let mut f = vec![];
    for p in &k.params {
        f.push(match k.ty(p.value).elem {
            ElemTy::Ptr { .. } => ArgFact::Aligned16,
            _ if f.len() < 9 => ints[f.len() - 3],
            _ => ArgFact::None,
        });
    }
    let opts = CompileOptions { target: Target::Sm90a, num_warps: 8, num_stages: 3, tma: true, ..CompileOptions::default() };
    let c = compile(&k, &Specialization { facts: f }, &opts).expect("compiles");
    assert_eq!(c.tensor_maps.len(), 2, "linear_block_ptr e4m3: {:?}", c.tensor_maps);
    let ptxas = find_ptxas().unwrap_or_else(|| panic!("ptxas not found: {INSTALL}"));
    let s = assemble(&ptxas, find_nvdisasm().as_deref(), &c.ptx, opts.target).expect("assembles");
    eprintln!("linear_block_ptr e4m3 128x128x128 (sm_90a, 8 warps, TMA): {} registers, spills {} / {}", s.registers, s.spill_stores, s.spill_loads);
    assert!(s.sass.contains("UTMALDG") && s.sass.contains("QGMMA"), "linear_block_ptr e4m3: no TMA or no QGMMA");
    assert!(!s.sass.contains("LDGSTS") && !s.sass.contains("LDG.E"), "linear_block_ptr e4m3: per-thread loads left");
    // (Its per-element `store_block` epilogue beside the 64 accumulators and the 64 of the running fp8
    // sum spills a few registers: bench/wgmma/NOTES.md, 2026-12-07 session 7. Not asserted.)
    // Where TMA does not apply.
    let k = matmul_block_ptr::<bf16, bf16, f32, 64, 64, 64>::build().expect("traces");
    let opts = CompileOptions { target: Target::Sm90a, num_warps: 4, num_stages: 3, tma: true, ..CompileOptions::default() };
    let maps = |spec: &Specialization, opts: &CompileOptions| compile(&k, spec, opts).expect("compiles").tensor_maps.len();
    assert_eq!(maps(&facts(&k, ArgFact::None), &opts), 1, "A's row stride is unproven: B alone");
    assert_eq!(maps(&facts(&k, ArgFact::Div16), &CompileOptions { tma: false, ..opts }), 0);
    assert_eq!(maps(&facts(&k, ArgFact::Div16), &CompileOptions { bounds_check: true, ..opts }), 0);
    assert_eq!(maps(&facts(&k, ArgFact::Div16), &CompileOptions { target: Target::Sm80, ..opts }), 0);
    assert_eq!(maps(&facts(&k, ArgFact::Div16), &CompileOptions { num_stages: 1, ..opts }), 0);
}
