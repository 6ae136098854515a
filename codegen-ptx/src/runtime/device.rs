//! One opened GPU: its context, the runtime's stream, the limits launches are checked against, and the
//! state that buffers and graphs share with the runtime (capture in progress, deferred frees, the last
//! kernel launched), and its untyped allocations ([`DeviceMem`]; typed buffers are `super::buffer`'s).
//! Buffers and graphs hold an `Arc<Device>`, so the context outlives them.

use super::driver::{self, check_driver, device_attribute, init_and_count, no_panic};
use super::error::{driver as drv, is_kernel_fault, describe, CudaError};
use crate::target::Target;
use cudarc::driver::result::DriverError;
use cudarc::driver::sys::{self, CUdevice_attribute as A};
use cudarc::driver::{CudaContext, CudaStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What the runtime knows about its GPU.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (u32, u32),
    pub target: Target,
    pub multiprocessors: u32,
    /// Largest grid along x, y, z.
    pub max_grid: [u32; 3],
    pub max_threads_per_block: u32,
    /// Shared memory one block may use when the kernel opts in (`cudaFuncAttributeMaxDynamicSharedMemorySize`).
    pub max_shared_optin: u32,
    /// Whether allocations are stream-ordered (`cuMemAllocAsync`).
    pub memory_pools: bool,
}

/// Default dynamic shared memory a kernel may use without opting in.
pub(crate) const SHARED_DEFAULT_LIMIT: u32 = 48 * 1024;

/// State of a capture in progress: what the graph must keep alive. The loaded kernels are held without
/// their type (the JIT sits above this layer), with their names for the graph's messages.
#[derive(Default)]
pub(crate) struct CaptureState {
    pub(crate) buffers: Vec<Arc<DeviceMem>>,
    pub(crate) kernels: Vec<(Arc<str>, Arc<dyn std::any::Any + Send + Sync>)>,
    pub(crate) launches: usize,
}

pub(crate) struct Device {
    pub(crate) ctx: Arc<CudaContext>,
    /// The runtime's stream (everything is ordered on it); `cu_stream` is its handle.
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) cu_stream: sys::CUstream,
    pub(crate) info: DeviceInfo,
    /// True while a graph capture is in progress on `cu_stream`.
    pub(crate) capturing: AtomicBool,
    pub(crate) capture: Mutex<Option<CaptureState>>,
    /// Device memory dropped during a capture, freed when it ends (a free then would be captured).
    pub(crate) deferred_frees: Mutex<Vec<u64>>,
    /// The display name of the last kernel launched, for fault messages.
    pub(crate) last_kernel: Mutex<Option<Arc<str>>>,
    /// Synchronize after every launch and graph replay, so a fault names its kernel.
    pub(crate) sync_launches: AtomicBool,
}

// SAFETY: the raw stream handle is owned by `stream` (itself Send + Sync); every other field is Sync.
unsafe impl Send for Device {}
unsafe impl Sync for Device {}

/// A poisoned lock only means another thread panicked while holding it; the data stays usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Device {
    /// Opens GPU `ordinal`: retains its primary context and creates a non-blocking stream (graph capture
    /// needs a stream other than the legacy default one).
    pub(crate) fn open(ordinal: usize) -> Result<Device, CudaError> {
        check_driver()?;
        let count = init_and_count()?;
        if count == 0 {
            return Err(CudaError::NoDevice("the NVIDIA driver reports no GPU".into()));
        }
        if ordinal >= count {
            return Err(CudaError::NoDevice(format!("GPU {ordinal} asked for, but this machine has {count}")));
        }
        no_panic("opening the CUDA device", || {
            let ctx = CudaContext::new(ordinal).map_err(drv("cuDevicePrimaryCtxRetain"))?;
            let dev = ctx.cu_device();
            let attr = |a| device_attribute(dev, a).map(|v| v.max(0) as u32);
            let name = ctx.name().map_err(drv("cuDeviceGetName"))?;
            let cc = (attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?, attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?);
            let native = Target::for_compute_capability(cc.0, cc.1)
                .ok_or_else(|| CudaError::UnsupportedDevice { name: name.clone(), major: cc.0, minor: cc.1 })?;
            let target = target_override(native)?;
            let info = DeviceInfo {
                ordinal,
                name,
                compute_capability: cc,
                target,
                multiprocessors: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
                max_grid: [
                    attr(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)?,
                    attr(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y)?,
                    attr(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z)?,
                ],
                max_threads_per_block: attr(A::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?,
                max_shared_optin: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?,
                memory_pools: ctx.has_async_alloc(),
            };
            // Everything this runtime does is ordered on one stream, so cudarc's per-buffer events (which
            // would also break graph capture) are not needed. We allocate no cudarc buffers anyway.
            // SAFETY: no CudaSlice exists in this context struct yet.
            unsafe { ctx.disable_event_tracking() };
            let stream = ctx.new_stream().map_err(drv("cuStreamCreate"))?;
            let cu_stream = stream.cu_stream();
            Ok(Device {
                ctx,
                stream,
                cu_stream,
                info,
                capturing: AtomicBool::new(false),
                capture: Mutex::new(None),
                deferred_frees: Mutex::new(Vec::new()),
                last_kernel: Mutex::new(None),
                sync_launches: AtomicBool::new(false),
            })
        })
    }

    /// Makes the context current on this thread (cheap when it already is).
    pub(crate) fn bind(&self) -> Result<(), CudaError> {
        self.ctx.bind_to_thread().map_err(|e| self.sync_error("binding the CUDA context", e))
    }

    pub(crate) fn sync_launches(&self) -> bool {
        self.sync_launches.load(Ordering::Relaxed)
    }

    /// Frees the memory whose buffers were dropped during a capture.
    pub(crate) fn free_deferred(&self) {
        if self.is_capturing() {
            return;
        }
        let ptrs = std::mem::take(&mut *lock(&self.deferred_frees));
        for p in ptrs {
            free_now(self, p);
        }
    }

    pub(crate) fn is_capturing(&self) -> bool {
        self.capturing.load(Ordering::Acquire)
    }

    /// Refuses `op` while a graph is being captured (it would be recorded into the graph, or would
    /// synchronize a capturing stream, which invalidates the capture).
    pub(crate) fn not_capturing(&self, op: &str) -> Result<(), CudaError> {
        if self.is_capturing() {
            return Err(CudaError::Capture(format!(
                "`{op}` is not allowed while a CUDA graph is being captured: inside `capture` only launch \
                 kernels; allocate, upload, download and synchronize before or after it"
            )));
        }
        Ok(())
    }

    /// Waits for all work on the stream.
    pub(crate) fn synchronize(&self, op: &'static str) -> Result<(), CudaError> {
        self.not_capturing(op)?;
        self.bind()?;
        driver::stream_synchronize(self.cu_stream).map_err(|e| self.sync_error(op, e))
    }

    /// Maps an error seen by a synchronizing call: a kernel fault becomes [`CudaError::DeviceFault`]
    /// naming the last kernel launched.
    pub(crate) fn sync_error(&self, op: &'static str, e: DriverError) -> CudaError {
        if is_kernel_fault(e) {
            let last = match &*lock(&self.last_kernel) {
                Some(k) => format!("`{k}`"),
                None => "none".to_string(),
            };
            CudaError::DeviceFault { op, last, message: describe(e) }
        } else {
            CudaError::Driver { op, message: describe(e) }
        }
    }

    /// Free and total device memory, for out-of-memory messages.
    pub(crate) fn memory_info(&self) -> Result<(usize, usize), CudaError> {
        self.ctx.mem_get_info().map_err(drv("cuMemGetInfo"))
    }
}

/// The number of CUDA GPUs on this machine; an error (never a panic) if there is no driver.
pub fn device_count() -> Result<usize, CudaError> {
    init_and_count()
}

/// `DSL_TARGET=sm_80` (or `sm_89`) compiles for an older architecture than the device's, which it runs
/// too (PTX is forward compatible): how the sm_80 code paths are checked on a newer GPU.
fn target_override(native: Target) -> Result<Target, CudaError> {
    let Ok(name) = std::env::var("DSL_TARGET") else { return Ok(native) };
    let t = Target::from_name(&name).ok_or_else(|| {
        CudaError::Driver { op: "DSL_TARGET", message: format!("unknown target {name:?} (sm_80, sm_89 or sm_90a)") }
    })?;
    if t.rank() > native.rank() {
        return Err(CudaError::Driver { op: "DSL_TARGET", message: format!("{name} is newer than this device ({native})") });
    }
    Ok(t)
}

/// One device allocation.
pub(crate) struct DeviceMem {
    /// Device address (0 for an empty buffer, which allocates nothing).
    pub(crate) ptr: u64,
    pub(crate) bytes: usize,
    pub(crate) dev: Arc<Device>,
}

impl DeviceMem {
    pub(crate) fn alloc(dev: &Arc<Device>, bytes: usize) -> Result<DeviceMem, CudaError> {
        dev.not_capturing("alloc")?;
        dev.bind()?;
        let ptr = if bytes == 0 {
            0
        } else {
            driver::alloc(bytes, dev.cu_stream, dev.info.memory_pools).map_err(|e| {
                if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                    let detail = match dev.memory_info() {
                        Ok((free, total)) => format!(" ({free} of {total} bytes free)"),
                        Err(_) => String::new(),
                    };
                    CudaError::OutOfMemory { bytes, detail }
                } else {
                    dev.sync_error("alloc", e)
                }
            })?
        };
        Ok(DeviceMem { ptr, bytes, dev: dev.clone() })
    }
}

impl Drop for DeviceMem {
    fn drop(&mut self) {
        if self.ptr == 0 {
            return;
        }
        if self.dev.is_capturing() {
            lock(&self.dev.deferred_frees).push(self.ptr);
            return;
        }
        free_now(&self.dev, self.ptr);
    }
}

/// Frees `ptr` on the device's stream; errors cannot be reported from a drop (a dead context frees all).
pub(crate) fn free_now(dev: &Device, ptr: u64) {
    if dev.ctx.bind_to_thread().is_ok() {
        // SAFETY: `ptr` came from `driver::alloc` on this stream and is freed once (its DeviceMem is gone).
        let _ = unsafe { driver::free(ptr, dev.cu_stream, dev.info.memory_pools) };
    }
}
