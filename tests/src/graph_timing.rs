//! GPU time of a step as CUDA-graph replays: what the benchmarks (`fp8_bench`, `gpu-check decode`) time;
//! and the median of single launches timed with CUDA events.

use codegen_ptx::runtime::{CudaError, CudaRuntime};

/// µs per step: `step(rt, 0)` once (it compiles outside the capture), then `reps` steps
/// (`step(rt, i)`, e.g. cycling through weight copies) captured in one graph, replayed once to warm up
/// and `timed` times; the median replay divided by `reps`.
pub fn graph_us(rt: &CudaRuntime, reps: usize, timed: usize, mut step: impl FnMut(&CudaRuntime, usize) -> Result<(), String>) -> Result<f64, String> {
    step(rt, 0)?;
    let graph = rt
        .capture(|rt| -> Result<(), CaptureErr> {
            for i in 0..reps {
                step(rt, i).map_err(CaptureErr)?;
            }
            Ok(())
        })
        .map_err(|e| e.0)?;
    graph.replay().map_err(|e| e.to_string())?;
    let mut t = vec![];
    for _ in 0..timed.max(1) {
        t.push(rt.time(|| graph.replay()).map_err(|e| e.to_string())?);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2] * 1e3 / reps as f64)
}

/// A step's error inside a capture, or the runtime's.
struct CaptureErr(String);
impl From<CudaError> for CaptureErr {
    fn from(e: CudaError) -> Self {
        CaptureErr(e.to_string())
    }
}

/// The median of `reps` CUDA-event timings (ms) of `f`, after `warm` untimed calls.
pub fn median_ms(rt: &CudaRuntime, warm: usize, reps: usize, mut f: impl FnMut() -> Result<(), CudaError>) -> Result<f64, CudaError> {
    for _ in 0..warm {
        f()?;
    }
    rt.synchronize()?;
    let mut t = vec![];
    for _ in 0..reps {
        t.push(rt.time(&mut f)?);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[reps / 2])
}
