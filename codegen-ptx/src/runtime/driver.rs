//! The driver layer: finding `libcuda` without panicking, and thin checked wrappers over the raw driver
//! calls the runtime makes. Unsafe FFI is confined here (and to the byte views in `buffer`).
//!
//! cudarc's `dynamic-loading` resolves every driver function on first use and panics if `libcuda` or the
//! symbol is missing. [`check_driver`] therefore looks for the library and for every symbol this runtime
//! calls *before* the first driver call, so a machine without a GPU (or with a too-old driver) gets an
//! error, not a panic.

use super::error::{driver, CudaError};
use cudarc::driver::result::DriverError;
use cudarc::driver::sys::{self, CUresult};
use std::ffi::{c_void, CString};
use std::sync::OnceLock;

/// Every driver entry point the runtime (and the parts of cudarc it uses) calls.
const REQUIRED_SYMBOLS: &[&str] = &[
    "cuInit",
    "cuDeviceGet",
    "cuDeviceGetCount",
    "cuDeviceGetName",
    "cuDeviceGetAttribute",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxGetCurrent",
    "cuCtxSetCurrent",
    "cuCtxSynchronize",
    "cuStreamCreate",
    "cuStreamDestroy_v2",
    "cuStreamSynchronize",
    "cuStreamBeginCapture_v2",
    "cuStreamEndCapture",
    "cuThreadExchangeStreamCaptureMode",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemAllocAsync",
    "cuMemFreeAsync",
    "cuMemGetInfo_v2",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuMemsetD8Async",
    "cuModuleLoadDataEx",
    "cuModuleGetFunction",
    "cuModuleUnload",
    "cuFuncGetAttribute",
    "cuFuncSetAttribute",
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cuEventCreate",
    "cuEventRecord",
    "cuEventSynchronize",
    "cuEventDestroy_v2",
    "cuGraphInstantiateWithFlags",
    "cuGraphLaunch",
    "cuGraphExecDestroy",
    "cuGraphDestroy",
    "cuGetErrorName",
    "cuGetErrorString",
];

/// Checks that the NVIDIA driver library can be loaded and has every function we call. Cheap after the
/// first call (the answer is cached).
pub(crate) fn check_driver() -> Result<(), CudaError> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            // SAFETY: only tries to dlopen the candidate library names.
            if !unsafe { sys::is_culib_present() } {
                return Err("the NVIDIA driver library (libcuda.so) was not found: this machine has no NVIDIA \
                            driver, or the loader's search path (LD_LIBRARY_PATH) does not reach it. Kernels \
                            still run on the CPU in dsl_core's Interpreter."
                    .to_string());
            }
            // SAFETY: the library is present (checked above), so `culib` does not panic.
            let lib = unsafe { sys::culib() };
            for name in REQUIRED_SYMBOLS {
                // SAFETY: looking a symbol up does not call it.
                if unsafe { lib.get::<*const c_void>(name.as_bytes()) }.is_err() {
                    return Err(format!(
                        "the NVIDIA driver is too old: libcuda has no `{name}` (this runtime needs a driver for \
                         CUDA 12 or newer)"
                    ));
                }
            }
            Ok(())
        })
        .clone()
        .map_err(CudaError::NoDriver)
}

/// Runs a driver call that cannot panic once [`check_driver`] passed, but catches a panic anyway (a
/// cudarc invariant we did not foresee must not abort a program that can fall back to the CPU).
pub(crate) fn no_panic<R>(what: &str, f: impl FnOnce() -> Result<R, CudaError>) -> Result<R, CudaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(CudaError::NoDriver(format!("{what} panicked inside cudarc: {msg}")))
    })
}

/// `cuInit` and the number of devices.
pub(crate) fn init_and_count() -> Result<usize, CudaError> {
    check_driver()?;
    no_panic("cuInit", || {
        // SAFETY: plain driver call.
        match unsafe { sys::cuInit(0) }.result() {
            Ok(()) => {}
            Err(DriverError(CUresult::CUDA_ERROR_NO_DEVICE)) => {
                return Err(CudaError::NoDevice("the NVIDIA driver found no GPU".into()))
            }
            Err(e) => {
                return Err(CudaError::NoDevice(format!(
                    "the NVIDIA driver failed to initialize: {}",
                    super::error::describe(e)
                )))
            }
        }
        let n = cudarc::driver::result::device::get_count().map_err(driver("cuDeviceGetCount"))?;
        Ok(n.max(0) as usize)
    })
}

/// One attribute of device `dev`.
pub(crate) fn device_attribute(dev: sys::CUdevice, attr: sys::CUdevice_attribute) -> Result<i32, CudaError> {
    // SAFETY: `dev` came from cuDeviceGet.
    unsafe { cudarc::driver::result::device::get_attribute(dev, attr) }.map_err(driver("cuDeviceGetAttribute"))
}

/// Device memory: stream-ordered (`cuMemAllocAsync`) where the device has memory pools.
pub(crate) fn alloc(bytes: usize, stream: sys::CUstream, pooled: bool) -> Result<u64, DriverError> {
    // SAFETY: plain allocation; the caller owns the pointer and frees it with `free`.
    unsafe {
        if pooled {
            cudarc::driver::result::malloc_async(stream, bytes)
        } else {
            cudarc::driver::result::malloc_sync(bytes)
        }
    }
}

/// Frees memory from [`alloc`] (stream-ordered: after all work queued on `stream`).
///
/// # Safety
/// `ptr` came from [`alloc`] with the same `pooled` and is freed once; all uses are on `stream`.
pub(crate) unsafe fn free(ptr: u64, stream: sys::CUstream, pooled: bool) -> Result<(), DriverError> {
    if pooled {
        cudarc::driver::result::free_async(ptr, stream)
    } else {
        cudarc::driver::result::stream::synchronize(stream)?;
        cudarc::driver::result::free_sync(ptr)
    }
}

/// Copies `src` to device address `dst` on `stream`. From pageable memory the driver has consumed `src`
/// when this returns; from page-locked (or managed) memory the copy is asynchronous, so we wait for it.
///
/// # Safety
/// `dst` points to at least `src.len()` bytes of live device memory used on `stream`.
pub(crate) unsafe fn copy_to_device(dst: u64, src: &[u8], stream: sys::CUstream) -> Result<(), DriverError> {
    if src.is_empty() {
        return Ok(());
    }
    cudarc::driver::result::memcpy_htod_async(dst, src, stream)?;
    // `src` is only borrowed for this call: wait for the copy (from page-locked memory it would still be
    // reading). Asking the driver whether `src` is page-locked fails for pageable memory, which
    // compute-sanitizer reports as an API error on every upload.
    cudarc::driver::result::stream::synchronize(stream)
}

/// Copies device memory at `src` into `dst` and waits for it (and for everything queued before it).
///
/// # Safety
/// `src` points to at least `dst.len()` bytes of live device memory used on `stream`.
pub(crate) unsafe fn copy_to_host(dst: &mut [u8], src: u64, stream: sys::CUstream) -> Result<(), DriverError> {
    if !dst.is_empty() {
        cudarc::driver::result::memcpy_dtoh_async(dst, src, stream)?;
    }
    cudarc::driver::result::stream::synchronize(stream)
}

/// Zeroes `bytes` bytes at `dst` on `stream`.
///
/// # Safety
/// `dst` points to at least `bytes` bytes of live device memory used on `stream`.
pub(crate) unsafe fn zero(dst: u64, bytes: usize, stream: sys::CUstream) -> Result<(), DriverError> {
    if bytes == 0 {
        return Ok(());
    }
    cudarc::driver::result::memset_d8_async(dst, 0, bytes, stream)
}

pub(crate) fn stream_synchronize(stream: sys::CUstream) -> Result<(), DriverError> {
    // SAFETY: the stream is alive (owned by the runtime's device).
    unsafe { cudarc::driver::result::stream::synchronize(stream) }
}

/// Runs `f` with this thread's stream-capture mode relaxed, so that calls CUDA deems "potentially unsafe"
/// during a capture (loading a module) are allowed. They touch no captured stream.
pub(crate) fn with_relaxed_capture_mode<R>(f: impl FnOnce() -> R) -> R {
    let mut mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED;
    // SAFETY: exchanges a thread-local setting; restored below.
    let swapped = unsafe { sys::cuThreadExchangeStreamCaptureMode(&mut mode) } == CUresult::CUDA_SUCCESS;
    let r = f();
    if swapped {
        // SAFETY: as above; puts the previous mode back.
        unsafe { sys::cuThreadExchangeStreamCaptureMode(&mut mode) };
    }
    r
}

/// A loaded PTX module (unloaded on drop, with its context bound).
pub(crate) struct Module {
    module: sys::CUmodule,
    ctx: std::sync::Arc<cudarc::driver::CudaContext>,
}

// SAFETY: a CUmodule handle may be used from any thread once its context is current; we bind the context
// before every use.
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

impl Module {
    /// JIT-compiles and loads PTX text. On failure returns the driver error and the JIT's error log.
    pub(crate) fn load(
        ctx: &std::sync::Arc<cudarc::driver::CudaContext>,
        ptx: &str,
    ) -> Result<Module, (String, String)> {
        let src = CString::new(ptx).map_err(|_| ("the PTX text contains a NUL byte".to_string(), String::new()))?;
        ctx.bind_to_thread().map_err(|e| (super::error::describe(e), String::new()))?;
        let mut log = vec![0u8; 1 << 14];
        let mut opts = [
            sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER,
            sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
        ];
        let mut vals = [log.as_mut_ptr() as *mut c_void, log.len() as *mut c_void];
        let mut module: sys::CUmodule = std::ptr::null_mut();
        // SAFETY: `src` is NUL-terminated PTX; the option arrays have 2 entries; `log` outlives the call.
        let r = unsafe {
            sys::cuModuleLoadDataEx(
                &mut module,
                src.as_ptr() as *const c_void,
                opts.len() as u32,
                opts.as_mut_ptr(),
                vals.as_mut_ptr(),
            )
        };
        match r.result() {
            Ok(()) => Ok(Module { module, ctx: ctx.clone() }),
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
                Err((super::error::describe(e), text))
            }
        }
    }

    /// The kernel `name` in this module.
    pub(crate) fn function(&self, name: &str) -> Result<sys::CUfunction, DriverError> {
        let name = CString::new(name).map_err(|_| DriverError(CUresult::CUDA_ERROR_INVALID_VALUE))?;
        // SAFETY: the module is loaded (we own it).
        unsafe { cudarc::driver::result::module::get_function(self.module, name) }
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_ok() {
            // SAFETY: loaded by us, unloaded once. Errors cannot be reported from drop.
            let _ = unsafe { cudarc::driver::result::module::unload(self.module) };
        }
    }
}

pub(crate) fn function_attribute(f: sys::CUfunction, attr: sys::CUfunction_attribute) -> Result<i32, DriverError> {
    // SAFETY: `f` comes from a module that is still loaded.
    unsafe { cudarc::driver::result::function::get_function_attribute(f, attr) }
}

pub(crate) fn set_function_attribute(
    f: sys::CUfunction,
    attr: sys::CUfunction_attribute,
    value: i32,
) -> Result<(), DriverError> {
    // SAFETY: `f` comes from a module that is still loaded.
    unsafe { cudarc::driver::result::function::set_function_attribute(f, attr, value) }
}

/// Launches `f` with one pointer per parameter in `params`. With `programmatic`, the launch may start
/// before the kernel ahead of it on the stream has finished (programmatic stream serialization: the
/// kernel waits for it with `griddepcontrol.wait`).
///
/// # Safety
/// `f` is loaded; `params` has exactly one pointer per kernel parameter, each to a value of at least the
/// parameter's size; device pointers among them point to live memory used on `stream`. With
/// `programmatic`, `f` executes `griddepcontrol.wait` before touching memory the kernel ahead may use.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn launch(
    f: sys::CUfunction,
    grid: [u32; 3],
    block: u32,
    shared_bytes: u32,
    stream: sys::CUstream,
    programmatic: bool,
    params: &mut [*mut c_void],
) -> Result<(), DriverError> {
    if !programmatic {
        return cudarc::driver::result::launch_kernel(f, (grid[0], grid[1], grid[2]), (block, 1, 1), shared_bytes, stream, params);
    }
    // SAFETY: an all-zero attribute is a valid (ignored) value; the fields set below are the ones read.
    let mut attr: sys::CUlaunchAttribute = std::mem::zeroed();
    attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attr.value.programmaticStreamSerializationAllowed = 1;
    let config = sys::CUlaunchConfig {
        gridDimX: grid[0],
        gridDimY: grid[1],
        gridDimZ: grid[2],
        blockDimX: block,
        blockDimY: 1,
        blockDimZ: 1,
        sharedMemBytes: shared_bytes,
        hStream: stream,
        attrs: &mut attr,
        numAttrs: 1,
    };
    sys::cuLaunchKernelEx(&config, f, params.as_mut_ptr(), std::ptr::null_mut()).result()
}

/// Milliseconds between two recorded events (`cuEventElapsedTime_v2` on CUDA 13 drivers, the original
/// entry point on older ones: cudarc's CUDA 13 bindings only know the new name).
pub(crate) fn event_elapsed_ms(start: sys::CUevent, end: sys::CUevent) -> Result<f32, DriverError> {
    type Elapsed = unsafe extern "C" fn(*mut f32, sys::CUevent, sys::CUevent) -> CUresult;
    static FN: OnceLock<Option<Elapsed>> = OnceLock::new();
    let f = FN.get_or_init(|| {
        // SAFETY: check_driver passed before any runtime exists, so the library is loaded; symbol lookups
        // do not call anything. The signature is the same for both names.
        let lib = unsafe { sys::culib() };
        ["cuEventElapsedTime_v2", "cuEventElapsedTime"]
            .iter()
            .find_map(|name| unsafe { lib.get::<Elapsed>(name.as_bytes()) }.ok().map(|s| *s))
    });
    let f = f.ok_or(DriverError(CUresult::CUDA_ERROR_NOT_FOUND))?;
    let mut ms = 0f32;
    // SAFETY: both events were created in the current context and recorded.
    unsafe { f(&mut ms, start, end) }.result()?;
    Ok(ms)
}

/// Starts capturing the work queued on `stream` into a graph.
pub(crate) fn begin_capture(stream: sys::CUstream) -> Result<(), DriverError> {
    // SAFETY: the stream is alive and not the legacy default stream.
    unsafe {
        cudarc::driver::result::stream::begin_capture(
            stream,
            sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
        )
    }
}

/// Ends a capture begun with [`begin_capture`]; the graph may be null if nothing was captured.
pub(crate) fn end_capture(stream: sys::CUstream) -> Result<sys::CUgraph, DriverError> {
    // SAFETY: the stream is alive.
    unsafe { cudarc::driver::result::stream::end_capture(stream) }
}

/// An instantiated graph, destroyed on drop.
pub(crate) struct GraphExec {
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
}

impl GraphExec {
    /// Instantiates `graph`, taking ownership of it (destroyed also on failure).
    pub(crate) fn instantiate(graph: sys::CUgraph) -> Result<GraphExec, DriverError> {
        // SAFETY: `graph` is a valid graph from end_capture.
        match unsafe { cudarc::driver::result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) } {
            Ok(exec) => Ok(GraphExec { graph, exec }),
            Err(e) => {
                destroy_graph(graph);
                Err(e)
            }
        }
    }

    pub(crate) fn launch(&self, stream: sys::CUstream) -> Result<(), DriverError> {
        // SAFETY: the exec and the stream are alive.
        unsafe { cudarc::driver::result::graph::launch(self.exec, stream) }
    }
}

impl Drop for GraphExec {
    fn drop(&mut self) {
        // SAFETY: created by us, destroyed once.
        unsafe {
            let _ = cudarc::driver::result::graph::exec_destroy(self.exec);
        }
        destroy_graph(self.graph);
    }
}

pub(crate) fn destroy_graph(graph: sys::CUgraph) {
    if !graph.is_null() {
        // SAFETY: a graph from end_capture, destroyed once.
        let _ = unsafe { cudarc::driver::result::graph::destroy(graph) };
    }
}

/// A TMA tensor map (`cuTensorMapEncodeTiled`, looked up without panicking where a driver lacks it).
pub(crate) fn encode_tensor_map(e: &crate::abi::EncodeArgs) -> Result<sys::CUtensorMap, DriverError> {
    use sys::{CUtensorMapDataType as Dt, CUtensorMapFloatOOBfill as Oob, CUtensorMapInterleave as Il};
    use sys::{CUtensorMapL2promotion as L2, CUtensorMapSwizzle as Sw};
    type Encode = unsafe extern "C" fn(
        *mut sys::CUtensorMap,
        Dt,
        u32,
        *mut c_void,
        *const u64,
        *const u64,
        *const u32,
        *const u32,
        Il,
        Sw,
        L2,
        Oob,
    ) -> CUresult;
    static FN: OnceLock<Option<Encode>> = OnceLock::new();
    let f = FN.get_or_init(|| {
        // SAFETY: check_driver passed before any runtime exists, so the library is loaded; the lookup
        // calls nothing.
        let lib = unsafe { sys::culib() };
        unsafe { lib.get::<Encode>(b"cuTensorMapEncodeTiled") }.ok().map(|s| *s)
    });
    let f = f.ok_or(DriverError(CUresult::CUDA_ERROR_NOT_FOUND))?;
    let dtype = match (e.elem_bytes, e.bf16) {
        (1, _) => Dt::CU_TENSOR_MAP_DATA_TYPE_UINT8,
        (2, true) => Dt::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        (2, false) => Dt::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
        _ => return Err(DriverError(CUresult::CUDA_ERROR_INVALID_VALUE)),
    };
    let swizzle = match e.swizzle {
        32 => Sw::CU_TENSOR_MAP_SWIZZLE_32B,
        64 => Sw::CU_TENSOR_MAP_SWIZZLE_64B,
        128 => Sw::CU_TENSOR_MAP_SWIZZLE_128B,
        _ => return Err(DriverError(CUresult::CUDA_ERROR_INVALID_VALUE)),
    };
    // SAFETY: all-zero bytes are a valid (empty) map; the driver fills it.
    let mut map: sys::CUtensorMap = unsafe { std::mem::zeroed() };
    let strides = [e.row_stride_bytes];
    let element_strides = [1u32, 1];
    // SAFETY: every pointer is to a live local array of the rank the call names (strides: rank - 1).
    unsafe {
        f(
            &mut map,
            dtype,
            2,
            e.address as *mut c_void,
            e.global_dim.as_ptr(),
            strides.as_ptr(),
            e.box_dim.as_ptr(),
            element_strides.as_ptr(),
            Il::CU_TENSOR_MAP_INTERLEAVE_NONE,
            swizzle,
            L2::CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
            Oob::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    }
    .result()?;
    Ok(map)
}
