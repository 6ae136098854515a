//! `gpu-check fp8`: the split-K fp8 GEMM ([`kernels::fp8_gemm`]) on the Llama 3 shapes of issue 5, timed
//! as CUDA-graph replays that rotate several weight buffers (so weights stream from HBM, not L2),
//! autotuned per (M bucket, N, K) with the winners merged into a committed-winners file, beside the
//! heuristic's choice and the memory roofline. `bench/fp8_gemm/baselines.py` times cuBLAS and Triton the
//! same way; `bench/fp8_gemm/compare.py` joins the two.

use codegen_ptx::runtime::autotune::{fingerprint, Autotuner, Config, Source};
use codegen_ptx::runtime::{CudaBuffer, CudaRuntime};
use dsl_core::prelude::{bf16, e4m3, Runtime};
use kernels::fp8_gemm::tuning::{self, bucket, candidates, describe, gemm_config, key};
use kernels::fp8_gemm::{fp8_gemm, heuristic, matvec_tiles, tickets_len, workspace_len, GemmConfig, GemmOptions, Operand, Scale, SplitKMode, Workspace};

/// Llama 3 70B and 8B linear layers: (name, N, K). `70B.gate_up` is one of the two (the shape issue 5
/// named); `70B.gate+up` both fused, as the Llama GPU backend runs them.
pub const SHAPES: [(&str, usize, usize); 9] = [
    ("70B.qkv", 10240, 8192),
    ("70B.o", 8192, 8192),
    ("70B.gate_up", 28672, 8192),
    ("70B.gate+up", 57344, 8192),
    ("70B.down", 8192, 28672),
    ("8B.qkv", 6144, 4096),
    ("8B.o", 4096, 4096),
    ("8B.gate_up", 28672, 4096),
    ("8B.down", 4096, 14336),
];
pub const MS: [usize; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096];
/// Copy bandwidth (read + write) in TB/s, the roofline's denominator: `$COPY_TBPS` (run.sh measures it
/// on the GPU with a large device-to-device copy), else the H100's 3.02 measured there.
pub fn copy_tbps() -> f64 {
    std::env::var("COPY_TBPS").ok().and_then(|v| v.parse().ok()).filter(|v: &f64| *v > 0.0).unwrap_or(3.02)
}
pub const TUNED_FILE: &str = tuning::COMMITTED_FILE;
pub const TUNED: &str = tuning::COMMITTED;

/// The autotuner of one M bucket (its candidates from `kernels::fp8_gemm::tuning`), without committed
/// winners.
pub fn fresh_autotuner(m: usize) -> Autotuner {
    Autotuner::new(&tuning::tuner_name("e4m3,bf16", m), candidates(m))
}

/// The autotuner of one M bucket, with the committed winners.
pub fn autotuner(m: usize) -> Autotuner {
    fresh_autotuner(m)
        .with_committed_text(TUNED_FILE, TUNED)
        .expect("bench/fp8_gemm/tuned.tsv parses")
        .retune_command("bash bench/gpu/build.sh, then on the GPU: gpu-check fp8 --write bench/fp8_gemm/tuned.tsv")
}

/// The fingerprint of the main kernel a config runs.
pub fn fingerprint_of(c: &Config) -> Result<String, String> {
    let spec = tuning::main_spec::<e4m3, e4m3>(c).map_err(|e| e.to_string())?;
    Ok(fingerprint(&(spec.build)().map_err(|e| e.to_string())?))
}

/// A tuning config as the host API's config (candidates are declared: they convert).
fn gemm_cfg(c: &Config) -> GemmConfig {
    gemm_config(c).expect("candidates convert (kernels' tuning tests)")
}

/// The three fastest candidates, and the fastest stream-K one (µs), for the notes.
fn runners_up(timings: &[(Config, Result<f64, String>)]) -> String {
    let mut ok: Vec<(&Config, f64)> = timings.iter().filter_map(|(c, t)| Some((c, *t.as_ref().ok()? * 1e3))).collect();
    ok.sort_by(|a, b| a.1.total_cmp(&b.1));
    let show = |(c, us): &(&Config, f64)| format!("{} s{} {us:.2}", describe(&gemm_cfg(c)), c.get("num_stages").unwrap_or(0));
    let top: Vec<String> = ok.iter().take(3).map(show).collect();
    let stream = ok.iter().find(|(c, _)| c.get("stream_k").is_some_and(|p| p > 0)).map_or("none".to_string(), show);
    format!("fastest: {} | fastest stream-K: {stream}", top.join("; "))
}

/// The fewest bytes a GEMM must move (A, B once, C once in bf16) at the measured copy bandwidth, in µs.
pub fn roofline_us(m: usize, n: usize, k: usize) -> f64 {
    let bytes = (m * k + n * k) as f64 + 2.0 * (m * n) as f64;
    bytes / (copy_tbps() * 1e12) * 1e6
}

struct Problem {
    m: usize,
    n: usize,
    k: usize,
    a: CudaBuffer<e4m3>,
    weights: Vec<CudaBuffer<e4m3>>,
    scale: CudaBuffer<f32>,
    out: CudaBuffer<bf16>,
    ws: CudaBuffer<f32>,
    tickets: CudaBuffer<i32>,
}

impl Problem {
    /// µs per GEMM: `reps` launches captured in one graph (cycling through the weights), the median of 3
    /// timed replays divided by `reps`.
    fn time_us(&mut self, rt: &CudaRuntime, cfg: GemmConfig, mode: SplitKMode) -> Result<f64, String> {
        let reps = (2 * self.weights.len()).max(20);
        let opts = GemmOptions { config: Some(cfg), mode, sm_count: 132, accumulate: false };
        let (m, n, k) = (self.m, self.n, self.k);
        let Problem { a, weights, scale, out, ws, tickets, .. } = self;
        let once = |rt: &CudaRuntime, i: usize| -> Result<(), String> {
            let a = Operand { buf: &*a, rows: m, cols: k, row_stride: k };
            let b = Operand { buf: &weights[i % weights.len()], rows: n, cols: k, row_stride: k };
            let ws = Workspace { partials: &mut *ws, tickets: Some(&mut *tickets) };
            fp8_gemm(rt, a, b, Scale::PerTensor(&*scale), Scale::PerTensor(&*scale), None, &mut *out, n, Some(ws), &opts)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        crate::graph_timing::graph_us(rt, reps, 3, once)
    }
}

/// Runs the sweep; prints one `FP8` line per (shape, M); merges the winners into `write`.
pub fn run(write: Option<&str>, only: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    let rt = CudaRuntime::new()?;
    // Tuned and timed with programmatic dependent launch (for kernels that call gdc_wait) as the
    // runtime's default; the `serial` column times the winner with it off for its launches.
    rt.set_programmatic_launch(true);
    let device = rt.device_name().to_string();
    let sms = rt.device_info().multiprocessors;
    println!("device: {device} ({} SMs); roofline at {:.3} TB/s copy bandwidth", sms, copy_tbps());
    println!("# FP8 | shape | M | N | K | tuned config | tuned us (deterministic) | heuristic config | heuristic us | roofline us | tuned % of roofline | same config, atomic split-K us | same config, no programmatic launch us | matrix-vector product us (M = 1)");
    // `FP8_BENCH_MS=1,16`: only these M (for quick probes).
    let ms_filter: Option<Vec<usize>> = std::env::var("FP8_BENCH_MS").ok().map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let mut tuners: Vec<(usize, Autotuner)> = vec![];
    let mut seed = 1u64;
    for (name, n, k) in SHAPES {
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        // Enough weight copies that one graph replay streams well over the 50 MB L2.
        let copies = (512usize << 20).div_ceil(n * k).clamp(2, 32);
        let mut host = vec![e4m3::from_f32(0.0); n * k];
        let mut weights = vec![];
        for _ in 0..copies {
            seed += 1;
            let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15);
            for v in host.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = e4m3::from_f32(((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0);
            }
            weights.push(rt.upload(&host)?);
        }
        for m in MS {
            if ms_filter.as_ref().is_some_and(|ms| !ms.contains(&m)) {
                continue;
            }
            let a_host: Vec<e4m3> = (0..m * k).map(|i| e4m3::from_f32(((i * 7919) % 17) as f32 / 4.0 - 2.0)).collect();
            let heur = heuristic(m, n, k, sms);
            let ws_len = candidates(m).iter().map(|c| workspace_len(m, n, k, &gemm_cfg(c))).chain([workspace_len(m, n, k, &heur)]).max();
            let mut p = Problem {
                m,
                n,
                k,
                a: rt.upload(&a_host)?,
                weights: std::mem::take(&mut weights),
                scale: rt.upload(&[1.0f32 / 64.0])?,
                out: rt.zeros(m * n)?,
                ws: rt.zeros(ws_len.unwrap_or(0).max(1))?,
                tickets: rt.zeros(candidates(m).iter().map(|c| tickets_len(m, n, &gemm_cfg(c))).max().unwrap_or(0).max(1))?,
            };
            let idx = match tuners.iter().position(|(b, _)| bucket(*b) == bucket(m)) {
                Some(i) => i,
                None => {
                    // Writing winners means searching afresh: committed winners are not consulted.
                    let tuner = if write.is_some() { fresh_autotuner(m) } else { autotuner(m) };
                    tuners.push((m, tuner.with_cache_dir(None)));
                    tuners.len() - 1
                }
            };
            let key = key(m, n, k);
            // Each config carries its warps and stages to its launches (per-launch options).
            let tuned = tuners[idx].1.best(&device, &key, fingerprint_of, |c| {
                p.time_us(&rt, gemm_cfg(c), SplitKMode::Deterministic).map(|us| us / 1e3)
            })?;
            let tuned_cfg = gemm_cfg(&tuned.config);
            let tuned_us = p.time_us(&rt, tuned_cfg, SplitKMode::Deterministic)?;
            let atomic = match tuned_cfg.stream_k {
                0 => format!("{:.2}", p.time_us(&rt, GemmConfig { fused_combine: false, ..tuned_cfg }, SplitKMode::Atomic)?),
                _ => "n/a (stream-K)".to_string(),
            };
            // The same config with every kernel waiting for the one ahead (no programmatic launch).
            let mut serial = tuned_cfg;
            serial.options.programmatic = Some(false);
            let serial_us = p.time_us(&rt, serial, SplitKMode::Deterministic)?;
            let h_us = p.time_us(&rt, heur, SplitKMode::Deterministic)?;
            // At M = 1, the matrix-vector product with each fp8 tile it declares.
            let mut matvec = vec![];
            for &(rows, bk) in matvec_tiles().iter().filter(|t| m == 1 && t.1 == 512) {
                matvec.push(format!("{rows} rows {:.2}", p.time_us(&rt, GemmConfig::matvec(rows, bk), SplitKMode::Deterministic)?));
            }
            let roof = roofline_us(m, n, k);
            println!(
                "FP8 | {name} | {m} | {n} | {k} | {} | {tuned_us:.2} | {} | {h_us:.2} | {roof:.2} | {:.0}% | atomic {atomic} | serial {serial_us:.2} | matvec {}",
                tuned.config,
                describe(&heur),
                100.0 * roof / tuned_us,
                if matvec.is_empty() { "-".to_string() } else { matvec.join(", ") }
            );
            if let Source::Measured { timings } = &tuned.source {
                println!("#   {}", runners_up(timings));
            }
            weights = p.weights;
        }
    }
    if let Some(path) = write {
        for (_, t) in &tuners {
            t.write_committed(path)?;
        }
    }
    Ok(())
}
