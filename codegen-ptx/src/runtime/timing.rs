//! GPU time of a sequence of launches, measured with CUDA events on the runtime's stream (so it counts
//! device time between the first and the last launch, not the host's launch overhead before them).

use super::driver;
use super::error::{driver as drv, CudaError};
use super::CudaRuntime;
use cudarc::driver::sys::CUevent_flags;

impl CudaRuntime {
    /// Runs `f` (which launches work on this runtime) and returns the GPU milliseconds from before its
    /// first launch to after its last. Waits for the work to finish.
    ///
    /// For a benchmark, call it after a warm-up (the first launch of a kernel compiles it) and time many
    /// iterations inside one call: one event pair has a resolution of about half a microsecond.
    pub fn time<E: From<CudaError>>(&self, f: impl FnOnce() -> Result<(), E>) -> Result<f64, E> {
        let dev = &self.dev;
        dev.not_capturing("time")?;
        dev.bind()?;
        let event = || dev.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).map_err(drv("cuEventCreate"));
        let (start, end) = (event()?, event()?);
        start.record(&dev.stream).map_err(drv("cuEventRecord"))?;
        f()?;
        end.record(&dev.stream).map_err(drv("cuEventRecord"))?;
        end.synchronize().map_err(|e| dev.sync_error("time", e))?;
        let ms = driver::event_elapsed_ms(start.cu_event(), end.cu_event()).map_err(drv("cuEventElapsedTime"))?;
        Ok(ms as f64)
    }
}
