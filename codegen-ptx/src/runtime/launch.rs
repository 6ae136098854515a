//! The launch path: check the arguments, find (or make) the loaded kernel for their facts, launch it on
//! the runtime's stream.

use super::args::{self, Packed};
use super::device::lock;
use super::driver;
use super::error::{describe, is_kernel_fault, CudaError};
use super::CudaRuntime;
use dsl_core::runtime::{Arg, Grid, KernelSpec};
use std::ffi::c_void;

impl CudaRuntime {
    pub(crate) fn launch_spec(&self, spec: &KernelSpec, grid: Grid, args: &mut [Arg<'_>]) -> Result<(), CudaError> {
        let dev = &self.dev;
        dev.bind()?;
        let info = self.jit.info(spec)?;
        args::check(&info.name, &info.params, args)?;
        let Packed { mut words, facts, mems } = args::pack(&info.name, &info.params, args, dev)?;
        if grid.0.contains(&0) {
            return Ok(());
        }
        if (0..3).any(|a| grid.0[a] > dev.info.max_grid[a]) {
            return Err(CudaError::BadLaunch {
                kernel: info.name.to_string(),
                message: format!("grid {:?} exceeds this GPU's limit of {:?} programs per axis", grid.0, dev.info.max_grid),
            });
        }
        let loaded = self.jit.loaded(dev, spec, &info, &facts, self.options())?;
        let mut params: Vec<*mut c_void> = words.iter_mut().map(|w| w as *mut u64 as *mut c_void).collect();
        // SAFETY: `params` has one slot per kernel parameter (checked against the kernel's signature), each
        // a u64 holding a live device address of this context or a scalar's bytes; the function is loaded.
        unsafe { driver::launch(loaded.func, grid.0, loaded.num_threads, loaded.shared_bytes, dev.cu_stream, &mut params) }
            .map_err(|e| {
                if is_kernel_fault(e) {
                    // An earlier kernel faulted; this launch only saw the sticky error.
                    dev.sync_error("launch", e)
                } else {
                    CudaError::LaunchFailed { kernel: info.name.to_string(), message: describe(e) }
                }
            })?;
        *lock(&dev.last_kernel) = Some(loaded.name.clone());
        if dev.is_capturing() {
            if let Some(state) = lock(&dev.capture).as_mut() {
                state.buffers.extend(mems.into_iter().cloned());
                state.kernels.push(loaded.clone());
                state.launches += 1;
            }
        } else if dev.sync_launches() {
            driver::stream_synchronize(dev.cu_stream).map_err(|e| CudaError::LaunchFailed {
                kernel: info.name.to_string(),
                message: format!("{} (found by synchronizing right after the launch)", describe(e)),
            })?;
        }
        Ok(())
    }
}
