//! CUDA graphs: record a sequence of launches once, replay it with one driver call (what removes the
//! per-launch CPU cost from a decode step).
//!
//! ```no_run
//! use codegen_ptx::runtime::{CudaError, CudaRuntime};
//! use dsl_core::prelude::*;
//! use kernels::elementwise::{add, copy};
//!
//! fn main() -> Result<(), CudaError> {
//!     let (n, grid) = (4096, 4u32);
//!     let rt = CudaRuntime::new()?;
//!     let (x, mut y) = (rt.upload(&vec![1.0f32; n])?, rt.zeros::<f32>(n)?);
//!     let mut out = rt.zeros::<f32>(n)?;
//!     let graph = rt.capture(|rt| {
//!         add::<1024>::launch(rt, grid, &x, &x, &mut out, n as i32)?;
//!         copy::<f32, 1024>::launch(rt, grid, &out, &mut y, n as i32)?;
//!         Ok::<(), CudaError>(())
//!     })?;
//!     for _ in 0..100 {
//!         graph.replay()?;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The rules, and why:
//! - Inside `capture` only launch kernels. Allocation, copies, `synchronize`, `time` and `replay` return
//!   [`CudaError::Capture`]: they would be recorded into the graph or would synchronize a capturing stream
//!   (which invalidates the capture).
//! - A kernel launched for the first time inside `capture` is compiled and loaded there: that is host
//!   work plus a module load, which touches no stream (we relax the thread's capture mode for the load).
//! - A graph replays exactly what was captured: the same buffers (by address) and the same scalar
//!   values. To vary an input between replays, put it in a buffer and overwrite it with `copy_from`.
//! - The graph keeps every buffer and kernel it uses alive; buffers dropped inside `capture` are freed
//!   when it ends.
//! - The capture records the runtime's stream, whichever thread launches on it: don't launch on the same
//!   runtime from another thread meanwhile.

use super::device::{lock, CaptureState, Device};
use super::driver::{self, GraphExec};
use super::error::{describe, is_kernel_fault, CudaError};
use super::CudaRuntime;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A captured, instantiated sequence of launches. Replays on the stream of the runtime that captured it.
pub struct CudaGraph {
    exec: GraphExec,
    dev: Arc<Device>,
    launches: usize,
    /// Names the graph in error messages: its kernels.
    label: Arc<str>,
    _keep: CaptureState,
}

// SAFETY: the graph's handles may be used from any thread (with the context bound, which `replay` does);
// CUDA graphs are not safe for concurrent use, and `CudaGraph` is not `Sync`.
unsafe impl Send for GraphExec {}

impl CudaGraph {
    /// Launches the whole graph on the runtime's stream (asynchronously, like a launch; with synchronous
    /// launches on, waits and reports a fault).
    pub fn replay(&self) -> Result<(), CudaError> {
        let dev = &self.dev;
        dev.not_capturing("replay")?;
        dev.bind()?;
        self.exec.launch(dev.cu_stream).map_err(|e| {
            if is_kernel_fault(e) {
                dev.sync_error("replay", e)
            } else {
                CudaError::LaunchFailed { kernel: self.label.to_string(), message: describe(e) }
            }
        })?;
        *lock(&dev.last_kernel) = Some(self.label.clone());
        if dev.sync_launches() {
            driver::stream_synchronize(dev.cu_stream).map_err(|e| CudaError::LaunchFailed {
                kernel: self.label.to_string(),
                message: format!("{} (found by synchronizing right after the replay)", describe(e)),
            })?;
        }
        Ok(())
    }

    /// The number of kernel launches captured.
    pub fn num_launches(&self) -> usize {
        self.launches
    }
}

impl std::fmt::Debug for CudaGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaGraph({})", self.label)
    }
}

/// Ends the capture however `capture` is left (error, panic), so the stream is usable again.
struct Capturing<'a> {
    dev: &'a Device,
    begun: bool,
    ended: bool,
}

impl Capturing<'_> {
    fn end(&mut self) -> (Result<cudarc::driver::sys::CUgraph, String>, CaptureState) {
        self.ended = true;
        let graph = if self.begun {
            driver::end_capture(self.dev.cu_stream).map_err(describe)
        } else {
            Err("the capture did not begin".to_string())
        };
        let state = lock(&self.dev.capture).take().unwrap_or_default();
        self.dev.capturing.store(false, Ordering::Release);
        self.dev.free_deferred();
        (graph, state)
    }
}

impl Drop for Capturing<'_> {
    fn drop(&mut self) {
        if !self.ended {
            if let (Ok(g), _) = self.end() {
                driver::destroy_graph(g);
            }
        }
    }
}

impl CudaRuntime {
    /// Captures the launches `f` makes on this runtime into a [`CudaGraph`] (see the module docs for what
    /// `f` may do). If `f` fails, its error is returned and nothing was run.
    pub fn capture<E: From<CudaError>>(&self, f: impl FnOnce(&Self) -> Result<(), E>) -> Result<CudaGraph, E> {
        let dev = &self.dev;
        dev.bind()?;
        if dev.capturing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            Err(CudaError::Capture("a CUDA graph is already being captured on this runtime".into()))?;
        }
        *lock(&dev.capture) = Some(CaptureState::default());
        let mut cap = Capturing { dev, begun: false, ended: false };
        driver::begin_capture(dev.cu_stream)
            .map_err(|e| CudaError::Capture(format!("cannot begin a CUDA graph capture: {}", describe(e))))?;
        cap.begun = true;
        let result = f(self);
        let (graph, keep) = cap.end();
        if let Err(e) = result {
            if let Ok(g) = graph {
                driver::destroy_graph(g);
            }
            return Err(e);
        }
        let graph = graph.map_err(|m| {
            CudaError::Capture(format!(
                "the CUDA graph capture failed: {m} (inside `capture` only launch kernels: no allocation, copy or synchronize)"
            ))
        })?;
        if graph.is_null() {
            Err(CudaError::Capture("the CUDA graph capture produced no graph".into()))?;
        }
        let exec = GraphExec::instantiate(graph)
            .map_err(|e| CudaError::Capture(format!("cannot instantiate the captured graph: {}", describe(e))))?;
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in &keep.kernels {
            if !names.contains(&&**name) {
                names.push(name);
            }
        }
        let label = format!("CUDA graph of {} launches: {}", keep.launches, names.join(", "));
        Ok(CudaGraph { exec, dev: dev.clone(), launches: keep.launches, label: label.into(), _keep: keep })
    }
}
