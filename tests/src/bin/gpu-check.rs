//! The GPU check and benchmark binary, run on a machine with an NVIDIA GPU (see bench/gpu/run.sh).
//!
//! - `gpu-check test [FILTER]`: every kernel check of `tests::checks` on the CUDA runtime (random ragged
//!   shapes, float64 references, poisoned outputs), plus a CUDA graph capture/replay check. Exit 1 on any
//!   failure. Run it under `compute-sanitizer` for memcheck and racecheck.
//! - `gpu-check compile`: cold compile time of kernels (trace, LLVM, driver load) and the cost of a hit
//!   (in memory, and from the disk cache in a fresh runtime).
//! - `gpu-check bench`: copy, vector add, softmax and RMSNorm timings (medians of CUDA-event times after
//!   warm-up, random data), one line each, for bench/gpu/compare.py to set beside torch's.
//! - `gpu-check gemm [--write FILE]`: the tuned GEMMs of [`tests::gemm`] (f16, bf16, fp8) at 4096³ and
//!   8192³: every candidate config timed, the winner checked on sampled elements against float64, the
//!   winners merged into FILE (`bench/gemm/tuned.tsv` is the committed copy).
//! - `gpu-check tma-gemm`: bf16 GEMM 4096³/8192³ with block pointers through TMA, without, and with
//!   pointer tiles (`cp.async`), side by side ([`tests::tma_bench`]).
//! - `gpu-check decode`: split-KV decode attention (`kernels::kv_attention::decode`) at the issue-13 shapes,
//!   as CUDA-graph replays over cache copies larger than L2, beside the KV-read floor at `$COPY_TBPS`;
//!   `DECODE_CACHE=fp8` over an e4m3 cache with its row scales.
//! - `gpu-check prefill`: prefill attention over the cache (`kernels::kv_attention::prefill`), TFLOP/s at
//!   the issue-13 shapes for a sweep of tiles beside the heuristic's.
//! - `gpu-check smollm2 MODEL.gguf GOLDENS_DIR`: the Llama runtime's GPU backend against its CPU backend
//!   and the transformers goldens ([`tests::llama_gpu`]).
//! - `gpu-check fp8-study MODEL.gguf`: on the CPU, which linears lose most to FP8 weights
//!   ([`tests::fp8_study`]).
//! - `gpu-check graph-eager ARCH WEIGHTS STEPS`: the Llama decode graph against eager launches on an
//!   architecture with random weights ([`tests::llama_gpu::graph_against_eager_random`]).
//! - `gpu-check batch ARCH WEIGHTS SEQUENCES STEPS`: sequences side by side against each alone, on an
//!   architecture with random weights ([`tests::llama_gpu::batch_against_alone_random`]).
//! - `gpu-check fp8 [--write FILE] [--only SHAPE]`: the split-K fp8 GEMM on the Llama 3 shapes
//!   ([`tests::fp8_bench`]); with `--write`, every candidate is searched afresh (committed winners are
//!   not consulted) and the winners are merged into FILE.

use codegen_ptx::runtime::{CudaBuffer, CudaError, CudaRuntime, DiskCache};
use dsl_core::prelude::*;
use kernels::elementwise::{add, copy};
use kernels::rmsnorm::rmsnorm;
use kernels::softmax::softmax;
use std::time::Instant;
use tests::checks::{self, rng, randn, run_case};
use tests::graph_timing::median_ms;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("");
    let result = match cmd {
        "test" => test(args.get(1).map(String::as_str).unwrap_or("")),
        "compile" => compile_times(),
        "bench" => bench(),
        "gemm" => gemm(match (args.get(1).map(String::as_str), args.get(2)) {
            (Some("--write"), Some(f)) => Some(f.as_str()),
            _ => None,
        }),
        "decode" => decode_bench(),
        "tma-gemm" => tests::tma_bench::run(),
        "prefill" => prefill_bench(),
        "smollm2" => match (args.get(1), args.get(2)) {
            (Some(m), Some(g)) => tests::llama_gpu::run(std::path::Path::new(m), std::path::Path::new(g)),
            _ => Err("usage: gpu-check smollm2 MODEL.gguf GOLDENS_DIR".into()),
        },
        "fp8-study" => match args.get(1) {
            Some(m) => tests::fp8_study::run(std::path::Path::new(m)),
            None => Err("usage: gpu-check fp8-study MODEL.gguf".into()),
        },
        "graph-eager" => match (args.get(1), args.get(2), args.get(3).and_then(|s| s.parse().ok())) {
            (Some(a), Some(w), Some(n)) => tests::llama_gpu::graph_against_eager_random(a, w, n, args.get(4).is_some_and(|o| o == "norm-in-residual")),
            _ => Err("usage: gpu-check graph-eager ARCH bf16|fp8 STEPS [norm-in-residual]".into()),
        },
        "batch" => match (args.get(1), args.get(2), args.get(3).and_then(|s| s.parse().ok()), args.get(4).and_then(|s| s.parse().ok())) {
            (Some(a), Some(w), Some(b), Some(n)) => tests::llama_gpu::batch_against_alone_random(a, w, b, n, args.get(5).is_some_and(|o| o == "heuristic")),
            _ => Err("usage: gpu-check batch ARCH bf16|fp8 SEQUENCES STEPS [heuristic]".into()),
        },
        "fp8" => tests::fp8_bench::run(
            args.iter().position(|a| a == "--write").and_then(|i| args.get(i + 1)).map(String::as_str),
            args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).map(String::as_str),
        ),
        _ => {
            eprintln!("usage: gpu-check test [FILTER] | compile | bench | decode | prefill | smollm2 MODEL GOLDENS | fp8-study MODEL | graph-eager ARCH WEIGHTS STEPS | batch ARCH WEIGHTS SEQUENCES STEPS [heuristic] | gemm [--write TUNED_FILE] | tma-gemm | fp8 [--write TUNED_FILE] [--only SHAPE]");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn runtime() -> Res<CudaRuntime> {
    let rt = CudaRuntime::new()?;
    println!("device: {} ({})", rt.device_name(), rt.target());
    Ok(rt)
}

/// Passed and failed checks, printed as they come.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("ok   {name}");
            }
            Err(e) => {
                println!("FAIL {name}: {e}");
                self.failed.push(name.to_string());
            }
        }
    }
}

fn test(filter: &str) -> Res<()> {
    let rt = runtime()?;
    rt.set_sync_launches(true);
    let mut tally = Tally::default();
    let t0 = Instant::now();
    // Every case plain, then again with bounds checks on (no false alarms, same results).
    for (checked, suffix) in [(false, ""), (true, " (bounds-checked)")] {
        rt.set_bounds_check(checked);
        for (name, case) in checks::all_cases::<CudaRuntime>() {
            if name.contains(filter) {
                tally.record(&format!("{name}{suffix}"), run_case(&rt, case));
            }
        }
    }
    if filter.is_empty() || "bounds".contains(filter) {
        let r = too_small_buffer_is_reported(&rt).map_err(|e| e.to_string());
        tally.record("bounds::too_small_buffer_is_reported", r);
    }
    rt.set_bounds_check(false);
    if filter.is_empty() || "graph".contains(filter) {
        tally.record("graph::capture_replay", graph_check(&rt).map_err(|e| e.to_string()));
    }
    if filter.is_empty() || "graph::mixed_launch_options".contains(filter) {
        tally.record("graph::mixed_launch_options", mixed_options_graph_check(&rt).map_err(|e| e.to_string()));
    }
    // Without a wait after each launch, and with programmatic dependent launch, so that kernels that
    // call gdc_wait overlap the one ahead.
    rt.set_sync_launches(false);
    rt.set_programmatic_launch(true);
    if "grid_dep::chained_adds_overlapped".contains(filter) {
        tally.record("grid_dep::chained_adds_overlapped", overlapped_chain_check(&rt).map_err(|e| e.to_string()));
    }
    if "fp8_gemm::fp8_layer_chain_overlapped".contains(filter) {
        let chain: fn(&CudaRuntime) = |rt| checks::fp8_gemm::fp8_layer_chain_sized(rt, (16, 4096, 2048, 1024), 4);
        tally.record("fp8_gemm::fp8_layer_chain_overlapped", run_case(&rt, chain));
        let graph: fn(&CudaRuntime) = |rt| layer_chain_graph_check(rt).unwrap_or_else(|e| panic!("{e}"));
        tally.record("fp8_gemm::fp8_layer_chain_overlapped_in_a_graph", run_case(&rt, graph));
    }
    rt.set_programmatic_launch(false);
    rt.set_sync_launches(true);
    let s = rt.cache_stats();
    println!(
        "{} passed, {} failed in {:.1} s ({} compiles, {} memory hits)",
        tally.passed,
        tally.failed.len(),
        t0.elapsed().as_secs_f64(),
        s.compiles,
        s.memory_hits
    );
    if tally.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", tally.failed.join(", ")).into())
    }
}

/// A launch whose output buffer is too small: with bounds checks, an `OutOfBounds` error naming the
/// buffer and the first element past its end, and nothing written past it.
fn too_small_buffer_is_reported(rt: &CudaRuntime) -> Res<()> {
    let n = 1000usize;
    let x = rt.upload(&vec![1.0f32; n])?;
    let mut out = rt.upload(&vec![f32::NAN; 900])?;
    match add::<256>::launch(rt, n.div_ceil(256) as u32, &x, &x, &mut out, n as i32) {
        Err(e @ CudaError::OutOfBounds { .. }) => match &e {
            CudaError::OutOfBounds { buffer, index, len, .. } if buffer == "out" && *len == 900 && *index >= 900 => {
                println!("     (reported: {e})")
            }
            _ => return Err(format!("OutOfBounds names the wrong access: {e}").into()),
        },
        other => return Err(format!("expected OutOfBounds on `out`, got {other:?}").into()),
    }
    let got = rt.download(&out)?;
    if got.iter().any(|v| *v != 2.0) {
        return Err("elements inside the buffer were not written".into());
    }
    Ok(())
}

/// Captures `out = x + y; out2 = copy(out)` into a graph, replays it on new inputs, checks both outputs.
fn graph_check(rt: &CudaRuntime) -> Res<()> {
    let n = 10_000usize;
    let mut r = rng(7);
    let (x0, y0) = (randn(&mut r, n, 1.0), randn(&mut r, n, 1.0));
    let xs: Vec<f32> = x0.iter().map(|&v| v as f32).collect();
    let ys: Vec<f32> = y0.iter().map(|&v| v as f32).collect();
    let mut x = rt.upload(&xs)?;
    let y = rt.upload(&ys)?;
    let mut out = rt.upload(&vec![f32::NAN; n])?;
    let mut out2 = rt.upload(&vec![f32::NAN; n])?;
    // Compile outside the capture (the first launch of a kernel compiles and loads it).
    add::<1024>::launch(rt, n.div_ceil(1024) as u32, &x, &y, &mut out, n as i32)?;
    copy::<f32, 1024>::launch(rt, n.div_ceil(1024) as u32, &out, &mut out2, n as i32)?;
    let graph = rt.capture(|rt| -> Result<(), CudaError> {
        add::<1024>::launch(rt, n.div_ceil(1024) as u32, &x, &y, &mut out, n as i32)?;
        copy::<f32, 1024>::launch(rt, n.div_ceil(1024) as u32, &out, &mut out2, n as i32)?;
        Ok(())
    })?;
    for round in 0..3 {
        let xs2: Vec<f32> = xs.iter().map(|v| v * (round as f32 + 2.0)).collect();
        x.copy_from(&xs2)?;
        graph.replay()?;
        let got = rt.download(&out2)?;
        for i in 0..n {
            let want = xs2[i] + ys[i];
            if got[i] != want {
                return Err(format!("round {round}: element {i} is {} after replay, want {want}", got[i]).into());
            }
        }
    }
    Ok(())
}

/// One tensor-core GEMM launched with five different (warps, stages) per-launch options, each its own
/// compiled kernel: captured in one graph and replayed, every output is bit for bit what the same
/// launch gave eagerly, and each is within f32 rounding of a float64 reference; the runtime-wide
/// defaults are untouched.
fn mixed_options_graph_check(rt: &CudaRuntime) -> Res<()> {
    use kernels::matmul::matmul;
    let (m, n, k) = (96usize, 80usize, 200usize);
    let mut r = rng(21);
    let a: Vec<f16> = randn(&mut r, m * k, 1.0).into_iter().map(|v| f16::from_f64(v)).collect();
    let b: Vec<f16> = randn(&mut r, k * n, 1.0).into_iter().map(|v| f16::from_f64(v)).collect();
    let (da, db) = (rt.upload(&a)?, rt.upload(&b)?);
    let options = [(4u32, 1u32), (4, 3), (8, 2), (8, 4), (2, 3)];
    let defaults = (rt.num_warps(), rt.num_stages());
    let grid = Grid::from((m.div_ceil(64) as u32, n.div_ceil(64) as u32));
    let run_all = |rt: &CudaRuntime, outs: &mut [CudaBuffer<f32>]| -> Result<(), CudaError> {
        for (o, &(w, s)) in outs.iter_mut().zip(&options) {
            let (mi, ni, ki) = (m as i32, n as i32, k as i32);
            matmul::<f16, f16, f32, 64, 64, 32>::launch(rt, Launch::from(grid).num_warps(w).num_stages(s), &da, &db, o, mi, ni, ki, ki, 1, ni, 1, ni, 1)?;
        }
        Ok(())
    };
    let poisoned = || -> Result<Vec<CudaBuffer<f32>>, CudaError> { options.iter().map(|_| rt.upload(&vec![f32::NAN; m * n])).collect() };
    let mut eager = poisoned()?;
    let compiles = rt.cache_stats().compiles;
    run_all(rt, &mut eager)?;
    let keys: std::collections::HashSet<String> = options
        .iter()
        .map(|&(w, s)| {
            let o = LaunchOptions { num_warps: Some(w), num_stages: Some(s), ..LaunchOptions::default() };
            rt.disk_cache_key(&matmul::<f16, f16, f32, 64, 64, 32>::spec(), &[], &o)
        })
        .collect::<Result<_, _>>()?;
    if keys.len() != options.len() {
        return Err(format!("{} launch options gave {} cache keys", options.len(), keys.len()).into());
    }
    let mut graphed = poisoned()?;
    let graph = rt.capture(|rt| run_all(rt, &mut graphed))?;
    graph.replay()?;
    for (i, (e, g)) in eager.iter().zip(&graphed).enumerate() {
        let (e, g) = (rt.download(e)?, rt.download(g)?);
        let (w, s) = options[i];
        if let Some(j) = (0..m * n).find(|&j| e[j].to_bits() != g[j].to_bits()) {
            return Err(format!("warps {w} stages {s}: element {j} is {} replayed, {} eager", g[j], e[j]).into());
        }
        for (j, &got) in e.iter().enumerate() {
            let (row, col) = (j / n, j % n);
            let (mut want, mut mag) = (0.0f64, 0.0f64);
            for kk in 0..k {
                let p = a[row * k + kk].to_f64() * b[kk * n + col].to_f64();
                want += p;
                mag += p.abs();
            }
            if (got as f64 - want).abs() > 1e-5 * mag + 1e-6 || !got.is_finite() {
                return Err(format!("warps {w} stages {s}: element ({row}, {col}) is {got}, float64 says {want}").into());
            }
        }
    }
    if (rt.num_warps(), rt.num_stages()) != defaults {
        return Err("per-launch options changed the runtime's defaults".into());
    }
    println!("#   mixed launch options: {} kernels compiled for {} option sets", rt.cache_stats().compiles - compiles, options.len());
    Ok(())
}

/// [`checks::grid_dep::launch_chain`] with programmatic launch on (the caller's setting) and no wait
/// between launches, eagerly and captured in a graph replayed on new inputs: exact results, and every
/// launch went through programmatic stream serialization (on sm_90a; elsewhere none may).
fn overlapped_chain_check(rt: &CudaRuntime) -> Res<()> {
    use checks::grid_dep::{chain_inputs, check_chain, launch_chain, CHAIN};
    let (x0, w0) = chain_inputs(990);
    let (mut x, mut w) = (rt.upload(&x0)?, rt.upload(&w0)?);
    let (mut a, mut b) = (rt.upload(&vec![f32::NAN; x0.len()])?, rt.upload(&vec![f32::NAN; x0.len()])?);
    let before = rt.programmatic_launch_count();
    launch_chain(rt, &x, &w, &mut a, &mut b)?;
    let made = rt.programmatic_launch_count() - before;
    let want = if rt.programmatic_launch() { CHAIN as u64 } else { 0 };
    if made != want {
        return Err(format!("{made} of {CHAIN} launches used programmatic serialization, want {want}").into());
    }
    let run = |what: &str, a: &CudaBuffer<f32>, x: &[f32], w: &[f32]| -> Res<()> {
        let got = rt.download(a)?;
        std::panic::catch_unwind(|| check_chain(what, &got, x, w)).map_err(|_| format!("{what}: wrong results (see above)").into())
    };
    run("eager", &a, &x0, &w0)?;
    let graph = rt.capture(|rt| launch_chain(rt, &x, &w, &mut a, &mut b))?;
    for round in 0..3 {
        let (x1, w1) = chain_inputs(991 + round);
        x.copy_from(&x1)?;
        w.copy_from(&w1)?;
        graph.replay()?;
        run(&format!("graph replay {round}"), &a, &x1, &w1)?;
    }
    Ok(())
}

/// Two fp8 layers ([`checks::fp8_gemm::LayerChain`]) captured in one graph, replayed on new inputs
/// written into the same input buffer: each replay must give the bits of the chain run one kernel at a
/// time (a kernel that started reading before the one ahead finished would not).
fn layer_chain_graph_check(rt: &CudaRuntime) -> Res<()> {
    let (m, k0) = (8, 4096);
    let mut chain = checks::fp8_gemm::LayerChain::new(rt, (m, k0, 4096, 1024), 970);
    let mut x = rt.alloc::<bf16>(m * k0)?;
    let mut r = rng(971);
    x.copy_from(&vec![bf16::from_f32(1.0); m * k0])?;
    chain.run(rt, &x)?; // compiles outside the capture
    let graph = rt.capture(|rt| chain.run(rt, &x).map_err(Box::<dyn std::error::Error>::from))?;
    for round in 0..4 {
        let xs: Vec<bf16> = randn(&mut r, m * k0, 1.0 + round as f64).into_iter().map(bf16::from_f64).collect();
        x.copy_from(&xs)?;
        graph.replay()?;
        let replayed = rt.download(&chain.y2)?;
        let stepped = chain.stepped(rt, &xs);
        if let Some(i) = replayed.iter().zip(&stepped.y[1]).position(|(a, b)| a.to_bits() != b.to_bits()) {
            return Err(format!("round {round}: element {i} is {} after replay, {} one kernel at a time", replayed[i], stepped.y[1][i]).into());
        }
        chain.check_gemms(&format!("graph round {round}"), &stepped);
    }
    Ok(())
}

/// Median of `reps` GPU timings (ms) of `f`, after `warm` untimed runs.

fn rand_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    randn(&mut r, n, 1.0).into_iter().map(|v| v as f32).collect()
}

/// Decode attention: µs per step (one graph of 10 steps, each on the next of several cache copies so
/// that reads come from HBM), against the floor of reading K and V once.
fn decode_bench() -> Res<()> {
    // DECODE_CACHE=fp8: an e4m3 cache with its f32 row scales (bf16 by default).
    match std::env::var("DECODE_CACHE").as_deref() {
        Err(_) | Ok("bf16") => decode_bench_on::<bf16>(),
        Ok("fp8") => decode_bench_on::<e4m3>(),
        Ok(other) => Err(format!("DECODE_CACHE={other}: bf16 or fp8").into()),
    }
}

/// [`decode_bench`] over a cache of `C` (bf16 queries): for an fp8 cache the floor counts its row scales.
fn decode_bench_on<C: Float + Elem>() -> Res<()> {
    use kernels::kv_attention::decode::{decode_step, tickets_len, workspace_lens, DecodeBuffers, DecodeConfig, MAX_FUSED_SPLITS};
    use kernels::kv_attention::CacheShape;
    let rt = runtime()?;
    let sms = rt.device_info().multiprocessors;
    let tbps: f64 = std::env::var("COPY_TBPS").ok().and_then(|v| v.parse().ok()).unwrap_or(4.2);
    let scaled = C::DTYPE != dsl_core::types::DType::BF16;
    println!("# DECODE | model | batch | ctx | q heads / kv heads | head_dim | splits (heuristic) | us | floor us | floor / us | best variant   (cache {:?})", C::DTYPE);
    for (model, kv_heads, group, d) in [("llama3", 8usize, 4usize, 128usize), ("smollm2", 3, 3, 64)] {
        // (16, 131072) for llama3 is 2^31 cache elements: over what the host API's 32-bit check allows.
        for (batch, ctx) in [(1usize, 512usize), (1, 4096), (1, 32768), (1, 131072), (16, 512), (16, 4096), (16, 32768), (16, 131072)] {
            if batch * kv_heads * ctx * d > i32::MAX as usize {
                println!("DECODE | {model} | {batch} | {ctx} | {} / {kv_heads} | {d} | - | not run: cache over 2^31 elements | | ", kv_heads * group);
                continue;
            }
            // DECODE_ONLY=model/batch/ctx[,...] keeps only those points (for a profiler run).
            if let Ok(only) = std::env::var("DECODE_ONLY") {
                if !only.split(',').any(|p| p == format!("{model}/{batch}/{ctx}")) {
                    continue;
                }
            }
            let shape = CacheShape { batch, kv_heads, group, head_dim: d, max_ctx: ctx };
            let cache = batch * kv_heads * ctx * d;
            let scale_len = if scaled { batch * kv_heads * ctx } else { 1 };
            let bytes = 2 * cache * C::DTYPE.size_bytes() + if scaled { 2 * scale_len * 4 } else { 0 };
            let copies = (768usize << 20).div_ceil(bytes).clamp(1, 10);
            // The timing does not depend on the values: zero caches and scales (one upload-free fill each;
            // a bf16 cache reads no scales).
            type Copy<C> = (CudaBuffer<C>, CudaBuffer<C>, CudaBuffer<f32>, CudaBuffer<f32>);
            let caches: Vec<Copy<C>> =
                (0..copies).map(|_| Ok((rt.zeros(cache)?, rt.zeros(cache)?, rt.zeros(scale_len)?, rt.zeros(scale_len)?))).collect::<Res<_>>()?;
            let rows = batch * kv_heads * group;
            let q = rt.upload(&rand_f32(rows * d, 5).into_iter().map(bf16::from_f32).collect::<Vec<_>>())?;
            let lens = rt.upload(&vec![ctx as i32; batch])?;
            let heuristic = DecodeConfig::for_shape(&shape, sms);
            let heur = heuristic.splits;
            // The heuristic's config, then fewer and more splits and both step sizes: which way the kernel gains.
            // Up to 256 splits (no fewer than 32 keys each), and 2 to 4 pipeline stages on one warp.
            let mut variants = vec![heuristic];
            // DECODE_SWEEP=0 times the heuristic's config alone.
            let sweep = std::env::var("DECODE_SWEEP").map_or(true, |v| v != "0");
            let most_splits = ctx.div_ceil(32).min(kernels::kv_attention::decode::MAX_SPLITS);
            for num_warps in [4, 1] {
                for block_n in [32, 64] {
                    for splits in [1, heur.div_ceil(2), heur, 2 * heur, 4 * heur, 64, 128, 256] {
                        let stages: &[u32] = if num_warps == 1 { &[2, 3, 4] } else { &[3] };
                        for &num_stages in stages {
                            let c = DecodeConfig { splits: splits.min(most_splits), block_n, num_warps, num_stages, fused_combine: false };
                            for c in [c, c.with_fused_combine(true)] {
                                if sweep && !variants.contains(&c) && (!c.fused_combine || c.splits <= MAX_FUSED_SPLITS) {
                                    variants.push(c);
                                }
                            }
                        }
                    }
                }
            }
            let most = variants.iter().map(|c| c.splits).max().unwrap_or(1);
            let (po, pm) = workspace_lens(&shape, most);
            let (mut o, mut m, mut l) = (rt.alloc::<f32>(po)?, rt.alloc::<f32>(pm)?, rt.alloc::<f32>(pm)?);
            let mut tickets = rt.upload(&vec![0i32; tickets_len(&shape)])?;
            let mut out = rt.alloc::<bf16>(rows * d)?;
            let scale = 1.0 / (d as f32).sqrt();
            let floor = bytes as f64 / (tbps * 1e12) * 1e6;
            let mut timed = vec![];
            for cfg in variants {
                let step = |rt: &CudaRuntime, i: usize| -> Result<(), String> {
                    let (k, v, ks, vs) = &caches[i % copies];
                    let bufs = DecodeBuffers { q: &q, q_stride: shape.q_heads() * d, k_cache: k, v_cache: v, k_scales: ks, v_scales: vs, ctx_lens: &lens, part_o: &mut o, part_m: &mut m, part_l: &mut l, tickets: &mut tickets, out: &mut out };
                    decode_step(rt, &shape, cfg, scale, bufs).map_err(|e| e.to_string())
                };
                let us = tests::graph_timing::graph_us(&rt, 10 * copies.max(1), 5, step)?;
                timed.push((cfg, us));
            }
            let (hc, hus) = timed[0];
            let &(bc, bus) = timed.iter().min_by(|a, b| a.1.total_cmp(&b.1)).expect("timed");
            println!(
                "DECODE | {model} | {batch} | {ctx} | {} / {kv_heads} | {d} | {} | {hus:.2} | {floor:.2} | {:.2} | best: splits {} block_n {} warps {} stages {} fused combine {} {bus:.2} us ({:.2} of floor)",
                kv_heads * group,
                hc.splits,
                floor / hus,
                bc.splits,
                bc.block_n,
                bc.num_warps,
                bc.num_stages,
                bc.fused_combine,
                floor / bus
            );
            println!("#   {}", timed.iter().map(|(c, us)| format!("s{} n{} w{} st{}{} {us:.2}", c.splits, c.block_n, c.num_warps, c.num_stages, if c.fused_combine { " fused" } else { "" })).collect::<Vec<_>>().join("; "));
        }
    }
    Ok(())
}

/// Prefill attention: TFLOP/s of one whole-prompt chunk (start 0) over a cache holding it, for each
/// config of a small sweep beside the heuristic's (medians of CUDA-event times).
fn prefill_bench() -> Res<()> {
    use kernels::kv_attention::prefill::{prefill_step, Chunk, PrefillBuffers, PrefillConfig, QueriesAt};
    use kernels::kv_attention::CacheShape;
    let rt = runtime()?;
    println!("# PREFILL | model | q heads / kv heads | head_dim | seq | causal | heuristic config | TFLOP/s | best config | TFLOP/s");
    for (model, kv_heads, group, d) in [("llama3-mha", 32usize, 1usize, 128usize), ("llama3", 8, 4, 128), ("smollm2", 3, 3, 64)] {
        for seq in [1024usize, 4096, 16384] {
            let shape = CacheShape { batch: 1, kv_heads, group, head_dim: d, max_ctx: seq };
            let row = shape.q_heads() * d;
            let q = rt.upload(&rand_f32(seq * row, 1).into_iter().map(bf16::from_f32).collect::<Vec<_>>())?;
            let k = rt.upload(&rand_f32(shape.cache_len(), 2).into_iter().map(bf16::from_f32).collect::<Vec<_>>())?;
            let v = rt.upload(&rand_f32(shape.cache_len(), 3).into_iter().map(bf16::from_f32).collect::<Vec<_>>())?;
            let mut out = rt.alloc::<bf16>(seq * row)?;
            let no_scales = rt.alloc::<f32>(1)?; // a bf16 cache reads no scales
            let scale = 1.0 / (d as f32).sqrt();
            for causal in [true, false] {
                let chunk = Chunk { q_len: seq, start: 0, causal };
                let flops = 4.0 * (seq * seq * d * shape.q_heads()) as f64 / if causal { 2.0 } else { 1.0 };
                let heuristic = PrefillConfig::for_chunk(&shape, &chunk, rt.warpgroup_mma());
                let mut configs = vec![heuristic];
                for block_m in [64, 128] {
                    for block_n in [32, 64] {
                        for num_warps in [4, 8] {
                            let c = PrefillConfig { block_m, block_n, num_warps };
                            if !configs.contains(&c) {
                                configs.push(c);
                            }
                        }
                    }
                }
                // 128-key steps: declared for 128 rows (on 8 warps, 16 rows a warp: wgmma on sm_90a).
                let wide = PrefillConfig { block_m: 128, block_n: 128, num_warps: 8 };
                if !configs.contains(&wide) {
                    configs.push(wide);
                }
                let mut timed = vec![];
                for cfg in configs {
                    let ms = median_ms(&rt, 2, 5, || {
                        let bufs = PrefillBuffers { q: &q, k_cache: &k, v_cache: &v, k_scales: &no_scales, v_scales: &no_scales, out: &mut out };
                        prefill_step(&rt, &shape, chunk, QueriesAt { off: 0, stride: row }, cfg, scale, bufs).map_err(|e| match e {
                            kernels::kv_attention::AttnError::Runtime(e) => e,
                            other => panic!("prefill bench: {other}"),
                        })
                    })?;
                    timed.push((cfg, flops / (ms * 1e-3) / 1e12));
                }
                let (hc, ht) = timed[0];
                let &(bc, bt) = timed.iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("timed");
                let name = |c: PrefillConfig| format!("m{} n{} w{}", c.block_m, c.block_n, c.num_warps);
                println!("PREFILL | {model} | {} / {kv_heads} | {d} | {seq} | {causal} | {} | {ht:.1} | {} | {bt:.1}", shape.q_heads(), name(hc), name(bc));
                println!("#   {}", timed.iter().map(|&(c, t)| format!("{} {t:.1}", name(c))).collect::<Vec<_>>().join("; "));
            }
        }
    }
    Ok(())
}

fn bench() -> Res<()> {
    let rt = runtime()?;
    println!("# name | shape | dtype | config | median ms | GB/s (bytes moved / time)");
    // Copy and add at 256 MiB per operand.
    let n = 64 << 20;
    let xs = rand_f32(n, 1);
    let x = rt.upload(&xs)?;
    let y = rt.upload(&rand_f32(n, 2))?;
    let mut out: CudaBuffer<f32> = rt.zeros(n)?;
    let gb = |bytes: usize, ms: f64| bytes as f64 / (ms * 1e-3) / 1e9;
    for warps in [4u32, 8] {
        macro_rules! copy_block {
            ($($b:literal),*) => {$(
                let l = Launch::from((n / $b) as u32).num_warps(warps);
                let ms = median_ms(&rt, 5, 30, || copy::<f32, $b>::launch(&rt, l, &x, &mut out, n as i32))?;
                println!("BENCH copy | {n} | f32 | BLOCK={} warps={warps} | {ms:.4} | {:.1}", $b, gb(2 * 4 * n, ms));
                let ms = median_ms(&rt, 5, 30, || add::<$b>::launch(&rt, l, &x, &y, &mut out, n as i32))?;
                println!("BENCH add | {n} | f32 | BLOCK={} warps={warps} | {ms:.4} | {:.1}", $b, gb(3 * 4 * n, ms));
            )*};
        }
        copy_block!(1024, 2048, 4096);
    }
    let got = rt.download(&out)?;
    let ys = rt.download(&y)?;
    if (0..n).step_by(9973).any(|i| got[i] != xs[i] + ys[i]) {
        return Err("bench: add result is wrong".into());
    }
    drop((x, y, out));

    // Softmax and RMSNorm, one program per row.
    macro_rules! rows {
        ($t:ty, $name:literal, $rows:expr, $cols:literal, $warps:expr) => {{
            let (rows, cols) = ($rows, $cols as usize);
            let host: Vec<$t> = rand_f32(rows * cols, 3).into_iter().map(|v| <$t as checks::TestElem>::from_f64(v as f64 * 2.0)).collect();
            let x = rt.upload(&host)?;
            let w = rt.upload(&host[..cols])?;
            let mut o: CudaBuffer<$t> = rt.zeros(rows * cols)?;
            for warps in $warps {
                let l = Launch::from(rows as u32).num_warps(warps);
                let ms = median_ms(&rt, 5, 30, || softmax::<$t, $cols>::launch(&rt, l, &x, &mut o, cols as i32, cols as i32, cols as i32))?;
                let bytes = 2 * rows * cols * std::mem::size_of::<$t>();
                println!("BENCH softmax | {rows}x{cols} | {} | BLOCK={} warps={warps} | {ms:.4} | {:.1}", $name, $cols, gb(bytes, ms));
                let ms = median_ms(&rt, 5, 30, || rmsnorm::<$t, $cols>::launch(&rt, l, &x, &w, &mut o, cols as i32, cols as i32, cols as i32, 1e-6))?;
                println!("BENCH rmsnorm | {rows}x{cols} | {} | BLOCK={} warps={warps} | {ms:.4} | {:.1}", $name, $cols, gb(bytes, ms));
            }
        }};
    }
    rows!(f32, "f32", 4096, 4096, [4u32, 8, 16]);
    rows!(f16, "f16", 4096, 4096, [4u32, 8, 16]);
    rows!(bf16, "bf16", 16384, 4096, [4u32, 8, 16]);
    rows!(f32, "f32", 32768, 1024, [4u32, 8]);
    rows!(f16, "f16", 32768, 1024, [4u32, 8]);
    Ok(())
}

/// f16 GEMM `C = A · B` (row-major, f32 accumulation, f16 out) at 4096³ and 8192³ over a few block
/// configs: the starting point of issue 4 (tensor cores through shared memory, no pipelining yet).
/// The tuned GEMMs ([`tests::gemm`]) at 4096³ and 8192³: every candidate config timed by the autotuner
/// (fresh: no disk cache, no committed winners), the winner checked against a float64 reference on
/// sampled elements, and the winners merged into `--write FILE` (the committed-winners format).
fn gemm(write: Option<&str>) -> Res<()> {
    use codegen_ptx::runtime::autotune::{Autotuner, Source};
    use tests::gemm::{launch_linear, launch_matmul, Gemm};
    let rt = runtime()?;
    let device = rt.device_name().to_string();
    println!("# name | M=N=K | config | median ms | TFLOP/s");
    for g in Gemm::ALL {
        let tuner = Autotuner::new(g.name(), g.configs()).with_cache_dir(None);
        for size in [4096usize, 8192] {
            let tflops = |ms: f64| 2.0 * (size as f64).powi(3) / (ms * 1e-3) / 1e12;
            let shape = (size, size, size);
            let (a32, b32) = (rand_f32(size * size, 9), rand_f32(size * size, 10));
            // One launcher per GEMM kind; returns C as f64 for the sampled check.
            let mut compile_ms = vec![];
            let t0 = Instant::now();
            let key = kernels::matmul::tuning::key(size, size, size);
            let (tuned, c, scale) = match g {
                Gemm::F16 | Gemm::Bf16 => {
                    macro_rules! run16 {
                        ($t:ty) => {{
                            let a = rt.upload(&a32.iter().map(|&x| <$t>::from_f32(x)).collect::<Vec<_>>())?;
                            let b = rt.upload(&b32.iter().map(|&x| <$t>::from_f32(x)).collect::<Vec<_>>())?;
                            let mut c: CudaBuffer<$t> = rt.zeros(size * size)?;
                            let tuned = tuner.best(&device, &key, |cfg| g.fingerprint(cfg), |cfg| {
                                launch_matmul(&rt, cfg, &a, &b, &mut c, shape)?;
                                compile_ms.push(rt.cache_stats().last_compile.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3));
                                median_ms(&rt, 1, 5, || launch_matmul(&rt, cfg, &a, &b, &mut c, shape).map_err(|e| CudaError::LaunchFailed { kernel: g.name().into(), message: e }))
                                    .map_err(|e| e.to_string())
                            })?;
                            launch_matmul(&rt, &tuned.config, &a, &b, &mut c, shape)?;
                            let c: Vec<f64> = rt.download(&c)?.into_iter().map(|x| x.to_f64()).collect();
                            (tuned, c, 1.0f64)
                        }};
                    }
                    if g == Gemm::F16 { run16!(f16) } else { run16!(bf16) }
                }
                Gemm::Bf16Linear | Gemm::Fp8 => {
                    // `linear` (B stored [N, K]) with a bf16 result; `scale` multiplies the product.
                    macro_rules! run_linear {
                        ($t:ty, $input:expr, $scale:expr) => {{
                            let scale: f32 = $scale;
                            let a = rt.upload(&a32.iter().map(|&x| <$t>::from_f32($input * x)).collect::<Vec<_>>())?;
                            let b = rt.upload(&b32.iter().map(|&x| <$t>::from_f32($input * x)).collect::<Vec<_>>())?;
                            let mut c: CudaBuffer<bf16> = rt.zeros(size * size)?;
                            let tuned = tuner.best(&device, &key, |cfg| g.fingerprint(cfg), |cfg| {
                                launch_linear(&rt, cfg, &a, &b, &mut c, shape, scale)?;
                                compile_ms.push(rt.cache_stats().last_compile.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3));
                                median_ms(&rt, 1, 5, || {
                                    launch_linear(&rt, cfg, &a, &b, &mut c, shape, scale)
                                        .map_err(|e| CudaError::LaunchFailed { kernel: g.name().into(), message: e })
                                })
                                .map_err(|e| e.to_string())
                            })?;
                            launch_linear(&rt, &tuned.config, &a, &b, &mut c, shape, scale)?;
                            let c: Vec<f64> = rt.download(&c)?.into_iter().map(|x| x.to_f64()).collect();
                            (tuned, c, scale as f64)
                        }};
                    }
                    // fp8: values of a few units, so e4m3 keeps ~2 significant bits; scale 1/64 like a
                    // real per-tensor scale pair.
                    if g == Gemm::Fp8 { run_linear!(e4m3, 4.0, 1.0 / 64.0) } else { run_linear!(bf16, 1.0, 1.0) }
                }
            };
            let tune_s = t0.elapsed().as_secs_f64();
            if let Source::Measured { timings } = &tuned.source {
                for (cfg, r) in timings {
                    match r {
                        Ok(ms) => println!("TUNE {} | {size} | {cfg} | {ms:.3} | {:.1}", g.name(), tflops(*ms)),
                        Err(e) => println!("TUNE {} | {size} | {cfg} | failed: {e}", g.name()),
                    }
                }
            }
            // Sampled float64 check of the winner's output (inputs rounded as the kernel saw them).
            let round = |x: f32| -> f64 {
                match g {
                    Gemm::F16 => f16::from_f32(x).to_f64(),
                    Gemm::Bf16 | Gemm::Bf16Linear => bf16::from_f32(x).to_f64(),
                    Gemm::Fp8 => e4m3::from_f32(4.0 * x).to_f64(),
                }
            };
            let mut r = rng(11);
            let mut worst = 0.0f64;
            for _ in 0..32 {
                use rand::Rng;
                let (i, j) = (r.gen_range(0..size), r.gen_range(0..size));
                let (mut s, mut mag) = (0.0, 0.0);
                for kk in 0..size {
                    // matmul: B[k][j]; linear: B stored [N][K], so B[j][k].
                    let bv = if matches!(g, Gemm::Fp8 | Gemm::Bf16Linear) { b32[j * size + kk] } else { b32[kk * size + j] };
                    let p = round(a32[i * size + kk]) * round(bv);
                    s += p;
                    mag += p.abs();
                }
                let err = (c[i * size + j] - s * scale).abs() / (mag * scale);
                worst = worst.max(err);
            }
            compile_ms.sort_by(|a, b| a.total_cmp(b));
            println!(
                "GEMM {} | {size} | {} | {:.3} | {:.1} | autotune {tune_s:.1} s ({} configs) | LLVM compile median {:.0} ms max {:.0} ms | sampled error {worst:.1e} of sum|ab|",
                g.name(),
                tuned.config,
                tuned.ms,
                tflops(tuned.ms),
                g.configs().len(),
                compile_ms.get(compile_ms.len() / 2).copied().unwrap_or(f64::NAN),
                compile_ms.last().copied().unwrap_or(f64::NAN),
            );
            if worst > 1e-2 {
                return Err(format!("{} {size}: sampled error {worst:.2e} too large", g.name()).into());
            }
        }
        if let Some(path) = write {
            tuner.write_committed(path)?;
        }
    }
    Ok(())
}

fn compile_times() -> Res<()> {
    // A fresh runtime without the disk cache: every first launch compiles.
    let rt = CudaRuntime::new()?.with_disk_cache(None);
    println!("device: {} ({})", rt.device_name(), rt.target());
    println!("# kernel | trace ms | LLVM compile ms | driver load ms");
    let n = 1 << 20;
    let x = rt.upload(&rand_f32(n, 1))?;
    let y = rt.upload(&rand_f32(n, 2))?;
    let mut o: CudaBuffer<f32> = rt.zeros(n)?;
    let report = |name: &str, rt: &CudaRuntime| {
        let s = rt.cache_stats();
        let ms = |d: Option<std::time::Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        println!("COMPILE {name} | {:.2} | {:.2} | {:.2}", ms(s.last_trace), ms(s.last_compile), ms(s.last_load));
    };
    add::<1024>::launch(&rt, (n / 1024) as u32, &x, &y, &mut o, n as i32)?;
    report("add<1024>", &rt);
    copy::<f32, 1024>::launch(&rt, (n / 1024) as u32, &x, &mut o, n as i32)?;
    report("copy<f32,1024>", &rt);
    softmax::<f32, 1024>::launch(&rt, 1024, &x, &mut o, 1024, 1024, 1024)?;
    report("softmax<f32,1024>", &rt);
    rmsnorm::<f32, 1024>::launch(&rt, 1024, &x, &y, &mut o, 1024, 1024, 1024, 1e-6)?;
    report("rmsnorm<f32,1024>", &rt);
    kernels::matmul::matmul::<f32, f32, f32, 32, 32, 32>::launch(&rt, (32, 32), &x, &y, &mut o, 1024, 1024, 1024, 1024, 1, 1024, 1, 1024, 1)?;
    report("matmul<f32,32,32,32>", &rt);
    rt.synchronize()?;

    // Hit cost: host time of a launch whose kernel is loaded (memory hit).
    let reps = 2000;
    let t0 = Instant::now();
    for _ in 0..reps {
        add::<1024>::launch(&rt, (n / 1024) as u32, &x, &y, &mut o, n as i32)?;
    }
    let host_us = t0.elapsed().as_secs_f64() * 1e6 / reps as f64;
    rt.synchronize()?;
    println!("HIT memory | host time per launch (incl. the driver's launch) | {host_us:.2} us");

    // Disk hit: a fresh runtime with a disk cache that an earlier runtime filled.
    let dir = std::env::temp_dir().join(format!("gpu-check-cache-{}", std::process::id()));
    {
        let rt1 = CudaRuntime::new()?.with_disk_cache(Some(DiskCache::new(&dir)));
        let x1 = rt1.upload(&rand_f32(n, 1))?;
        let mut o1: CudaBuffer<f32> = rt1.zeros(n)?;
        softmax::<f32, 1024>::launch(&rt1, 1024, &x1, &mut o1, 1024, 1024, 1024)?;
        rt1.synchronize()?;
    }
    let rt2 = CudaRuntime::new()?.with_disk_cache(Some(DiskCache::new(&dir)));
    let x2 = rt2.upload(&rand_f32(n, 1))?;
    let mut o2: CudaBuffer<f32> = rt2.zeros(n)?;
    rt2.synchronize()?;
    let t0 = Instant::now();
    softmax::<f32, 1024>::launch(&rt2, 1024, &x2, &mut o2, 1024, 1024, 1024)?;
    let first_ms = t0.elapsed().as_secs_f64() * 1e3;
    let s = rt2.cache_stats();
    println!(
        "HIT disk | first launch in a fresh runtime: {first_ms:.2} ms (disk hits {}, compiles {}, driver load {:.2} ms)",
        s.disk_hits,
        s.compiles,
        s.last_load.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
