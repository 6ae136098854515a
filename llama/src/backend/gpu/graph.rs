//! What the GPU backend asks of a runtime beyond [`Runtime`]: recording a decode step once and
//! replaying it (a CUDA graph: one driver call per token instead of one per kernel), and the device's
//! free memory. The interpreter records nothing and knows no memory limit, so on it every step runs
//! its launches eagerly: the same launches, in the same order, as the graph replays.

use crate::error::{LlamaError, Result};
use codegen_ptx::runtime::{CudaError, CudaGraph, CudaRuntime};
use dsl_core::interp::Interpreter;
use dsl_core::runtime::Runtime;

/// A [`Runtime`] the GPU backend runs on.
pub trait StepRuntime: Runtime {
    /// A recorded sequence of launches.
    type Graph: Send;
    /// Records the launches `f` makes, without running them; `Ok(None)` where this runtime cannot
    /// record (the caller then launches eagerly).
    fn record(&self, f: &mut dyn FnMut(&Self) -> Result<()>) -> Result<Option<Self::Graph>>;
    /// Runs a recorded sequence (asynchronously, like a launch).
    fn replay(&self, graph: &Self::Graph) -> Result<()>;
    /// `(free, total)` bytes of device memory, where there is a limit.
    fn memory(&self) -> Option<(u64, u64)>;
    /// Launches of a step so far recorded in `graph`.
    fn launches(graph: &Self::Graph) -> usize;
    /// Whether kernels that wait for their inputs inside (`gdc_wait`) start while the kernel ahead
    /// of them ends (programmatic dependent launch).
    fn overlaps_launches(&self) -> bool;
    /// The GPU's name, which committed autotune winners are filed under (`None`: not a GPU).
    fn device_name(&self) -> Option<String>;
    /// Whether tiles of 16 rows per warp run on warpgroup tensor cores (`wgmma`): the prefill
    /// attention's tile follows.
    fn warpgroup_mma(&self) -> bool;
}

impl StepRuntime for Interpreter {
    type Graph = ();
    fn record(&self, _f: &mut dyn FnMut(&Self) -> Result<()>) -> Result<Option<()>> {
        Ok(None)
    }
    fn replay(&self, _graph: &()) -> Result<()> {
        Ok(())
    }
    fn memory(&self) -> Option<(u64, u64)> {
        None
    }
    fn launches(_graph: &()) -> usize {
        0
    }
    fn overlaps_launches(&self) -> bool {
        false
    }
    fn device_name(&self) -> Option<String> {
        None
    }
    fn warpgroup_mma(&self) -> bool {
        false
    }
}

/// A capture's failure: the driver's, or the step's own.
enum CaptureError {
    Cuda(CudaError),
    Step(LlamaError),
}

impl From<CudaError> for CaptureError {
    fn from(e: CudaError) -> Self {
        CaptureError::Cuda(e)
    }
}

impl StepRuntime for CudaRuntime {
    type Graph = CudaGraph;
    fn record(&self, f: &mut dyn FnMut(&Self) -> Result<()>) -> Result<Option<CudaGraph>> {
        match self.capture(|rt| f(rt).map_err(CaptureError::Step)) {
            Ok(g) => Ok(Some(g)),
            Err(CaptureError::Step(e)) => Err(e),
            Err(CaptureError::Cuda(e)) => Err(LlamaError::Backend(format!("capturing the decode step: {e}"))),
        }
    }
    fn replay(&self, graph: &CudaGraph) -> Result<()> {
        graph.replay().map_err(|e| LlamaError::Backend(format!("replaying the decode step: {e}")))
    }
    fn memory(&self) -> Option<(u64, u64)> {
        self.memory_info().ok().map(|(free, total)| (free as u64, total as u64))
    }
    fn launches(graph: &CudaGraph) -> usize {
        graph.num_launches()
    }
    fn overlaps_launches(&self) -> bool {
        self.programmatic_launch()
    }
    fn device_name(&self) -> Option<String> {
        Some(CudaRuntime::device_name(self).to_string())
    }
    fn warpgroup_mma(&self) -> bool {
        CudaRuntime::warpgroup_mma(self)
    }
}
