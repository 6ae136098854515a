//! The launch path: check the arguments, find (or make) the loaded kernel for their facts, launch it on
//! the runtime's stream.

use super::args::{self, Packed};
use crate::abi;
use super::device::lock;
use super::driver;
use super::error::{describe, is_kernel_fault, CudaError};
use super::CudaRuntime;
use dsl_core::runtime::{Arg, KernelSpec, Launch};
use std::ffi::c_void;

/// The tensor maps of one launch, encoded from its packed words (a pointer's device address) and
/// scalar arguments.
fn tensor_maps(specs: &[abi::TensorMapSpec], words: &[u64], args: &[Arg<'_>]) -> Result<Vec<cudarc::driver::sys::CUtensorMap>, String> {
    let scalar = |p: usize| match args.get(p) {
        Some(Arg::Scalar(v, d)) if d.is_int() => Some(dsl_core::scalar::normalize(*d, *v).as_i64()),
        _ => None,
    };
    specs
        .iter()
        .map(|s| {
            let e = s.encode_args(words[s.base], scalar)?;
            driver::encode_tensor_map(&e).map_err(|e| describe(e))
        })
        .collect()
}

impl CudaRuntime {
    /// The device address of the bounds-check error record, zeroed for the next launch.
    fn oob_record_ptr(&self) -> Result<u64, CudaError> {
        let mut rec = lock(&self.oob_record);
        if rec.is_none() {
            *rec = Some(self.zeros::<u32>(abi::RECORD_WORDS)?);
        }
        let buf = rec.as_mut().expect("just set");
        buf.fill_zero()?;
        Ok(buf.device_ptr())
    }

    /// Waits for the launch and turns a filled error record into [`CudaError::OutOfBounds`].
    fn check_oob_record(&self, info: &super::jit::KernelInfo, args: &[Arg<'_>]) -> Result<(), CudaError> {
        let words = match lock(&self.oob_record).as_ref() {
            Some(b) => b.to_vec()?,
            None => return Ok(()),
        };
        let Some(oob) = abi::OutOfBounds::decode(&words) else { return Ok(()) };
        let len = match args.get(oob.param) {
            Some(Arg::Buffer(b)) => b.len(),
            Some(Arg::BufferMut(b)) => b.len(),
            _ => 0,
        };
        let file = info.kernel.body.ops.first().map_or("<kernel>", |op| op.loc.file);
        Err(CudaError::OutOfBounds {
            kernel: info.name.to_string(),
            location: format!("{file}:{}:{}", oob.line, oob.column),
            buffer: info.params.get(oob.param).map_or(String::new(), |p| p.name.clone()),
            index: oob.index,
            len,
            program: oob.program,
        })
    }

    pub(crate) fn launch_spec(&self, spec: &KernelSpec, launch: &Launch, args: &mut [Arg<'_>]) -> Result<(), CudaError> {
        let (grid, options) = (launch.grid, &launch.options);
        options.check().map_err(|message| CudaError::BadLaunch { kernel: spec.name.to_string(), message })?;
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
        let mut opts = self.options_for(options);
        opts.bounds_check &= !dev.is_capturing();
        let record = if opts.bounds_check { Some(self.oob_record_ptr()?) } else { None };
        let without_tma = || self.jit.loaded(dev, spec, &info, &facts, crate::target::CompileOptions { tma: false, ..opts });
        let mut loaded = match self.jit.loaded(dev, spec, &info, &facts, opts) {
            // TMA pipelines block-pointer loads, whose stages may not fit where the loads without it do.
            Err(CudaError::SharedMemory { .. }) if opts.tma => without_tma()?,
            r => r?,
        };
        let mut maps = match tensor_maps(&loaded.tensor_maps, &words, args) {
            Ok(maps) => maps,
            // A tensor TMA cannot map (a size or stride out of its range): the same kernel without TMA.
            Err(_) => {
                loaded = without_tma()?;
                vec![]
            }
        };
        let own = words.len();
        let is_pointer = args.iter().map(|a| matches!(a, Arg::Buffer(_) | Arg::BufferMut(_)));
        let hidden = abi::hidden_params(is_pointer, opts.bounds_check, maps.len());
        for h in &hidden {
            words.push(match *h {
                abi::Hidden::BufferLen { param } => match &args[param] {
                    Arg::Buffer(b) => b.len() as u64,
                    Arg::BufferMut(b) => b.len() as u64,
                    _ => 0, // not a pointer: hidden_params lists pointers only
                },
                abi::Hidden::ErrorRecord => record.unwrap_or(0),
                abi::Hidden::TensorMap { .. } => 0, // passed from `maps` below
            });
        }
        // One pointer a parameter, in order: the kernel's own words, then each hidden one (a tensor map
        // by the address of its 128 bytes).
        let mut params: Vec<*mut c_void> = Vec::with_capacity(words.len());
        let (own_words, hidden_words) = words.split_at_mut(own);
        params.extend(own_words.iter_mut().map(|w| w as *mut u64 as *mut c_void));
        for (h, w) in hidden.iter().zip(hidden_words.iter_mut()) {
            params.push(match *h {
                abi::Hidden::TensorMap { map } => &mut maps[map] as *mut _ as *mut c_void,
                _ => w as *mut u64 as *mut c_void,
            });
        }
        // SAFETY: `params` has one slot per kernel parameter (checked against the kernel's signature), each
        // a u64 holding a live device address of this context or a scalar's bytes; the function is loaded.
        let overlap = info.waits_for_grids && self.programmatic_for(options);
        unsafe { driver::launch(loaded.func, grid.0, loaded.num_threads, loaded.shared_bytes, dev.cu_stream, overlap, &mut params) }
            .map_err(|e| {
                if is_kernel_fault(e) {
                    // An earlier kernel faulted; this launch only saw the sticky error.
                    dev.sync_error("launch", e)
                } else {
                    CudaError::LaunchFailed { kernel: info.name.to_string(), message: describe(e) }
                }
            })?;
        *lock(&dev.last_kernel) = Some(loaded.name.clone());
        if overlap {
            self.programmatic_launches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if record.is_some() {
            self.check_oob_record(&info, args)?;
        }
        if dev.is_capturing() {
            if let Some(state) = lock(&dev.capture).as_mut() {
                state.buffers.extend(mems.into_iter().cloned());
                state.kernels.push((loaded.name.clone(), loaded.clone()));
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
