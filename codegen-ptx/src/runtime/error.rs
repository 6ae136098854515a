//! [`CudaError`]: every way the CUDA runtime can fail, each with the context a user needs (the kernel,
//! the bytes, the limit, the driver's own message).

use crate::error::CodegenError;
use cudarc::driver::result::DriverError;
use cudarc::driver::sys::CUresult;
use dsl_core::CompileError;

/// Why a CUDA runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// No usable NVIDIA driver library (`libcuda`) on this machine, or one too old.
    #[error("no CUDA driver: {0}")]
    NoDriver(String),
    /// The driver loaded but there is no (such) GPU.
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// The GPU is older than anything this backend generates code for.
    #[error("unsupported GPU `{name}` (compute capability {major}.{minor}): the PTX backend needs sm_80 (Ampere) or newer")]
    UnsupportedDevice { name: String, major: u32, minor: u32 },
    /// A device allocation failed.
    #[error("out of GPU memory allocating {bytes} bytes{detail}")]
    OutOfMemory { bytes: usize, detail: String },
    /// A kernel needs more shared memory per program than the device can give one block.
    #[error("kernel `{kernel}` needs {bytes} bytes of shared memory per program, more than this GPU's limit of {limit} bytes per block (use smaller blocks or fewer pipeline stages)")]
    SharedMemory { kernel: String, bytes: u64, limit: u64 },
    /// The launch itself failed, or (with synchronous launches) the kernel faulted while running.
    #[error("launch of kernel `{kernel}` failed: {message}")]
    LaunchFailed { kernel: String, message: String },
    /// A kernel faulted on the device; it is noticed at the next synchronizing call (`synchronize`,
    /// `download`...), which cannot know which of the launches since the last one failed.
    #[error("a kernel failed on the GPU: {message} (reported by {op}; the last kernel launched before it was {last}). \
             Set DSL_SYNC_LAUNCH=1 (or CudaRuntime::set_sync_launches(true)) to synchronize after every launch \
             and name the failing kernel. The CUDA context cannot be used after this error.")]
    DeviceFault { op: &'static str, last: String, message: String },
    /// The driver rejected the PTX of a kernel (a backend bug, or PTX too new for the driver).
    #[error("the CUDA driver rejected the PTX of kernel `{kernel}`: {message}{log}")]
    ModuleLoad { kernel: String, message: String, log: String },
    /// The launch arguments do not match the kernel's parameters (count, dtype, mutability, backend), or
    /// the grid is out of range.
    #[error("bad launch of kernel `{kernel}`: {message}")]
    BadLaunch { kernel: String, message: String },
    /// With bounds checks on: an access outside the buffer its pointer came from (it was skipped).
    #[error(
        "kernel `{kernel}` accessed element {index} of `{buffer}`, which has {len} elements\n  --> {location}\n  in program ({}, {}); the access was skipped. Is the buffer too small for the launch?",
        program[0], program[1]
    )]
    OutOfBounds { kernel: String, location: String, buffer: String, index: i64, len: usize, program: [u32; 2] },
    /// A host copy of the wrong length.
    #[error("copy of {got} elements into a buffer of {expected}")]
    LengthMismatch { expected: usize, got: usize },
    /// Something not allowed while a CUDA graph is being captured (see [`super::graph`]).
    #[error("{0}")]
    Capture(String),
    /// The kernel failed to specialize (trace).
    #[error("{0}")]
    Compile(#[from] CompileError),
    /// The kernel failed to compile to PTX.
    #[error("{0}")]
    Codegen(#[from] CodegenError),
    /// Any other driver error.
    #[error("CUDA driver error in {op}: {message}")]
    Driver { op: &'static str, message: String },
}

/// The driver's name and description of an error, e.g.
/// `CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered`.
pub(crate) fn describe(e: DriverError) -> String {
    let name = e.error_name().map(|s| s.to_string_lossy().into_owned());
    let text = e.error_string().map(|s| s.to_string_lossy().into_owned());
    match (name, text) {
        (Ok(n), Ok(t)) => format!("{n}: {t}"),
        (Ok(n), Err(_)) => n,
        _ => format!("{:?}", e.0),
    }
}

/// A plain driver error of operation `op`.
pub(crate) fn driver(op: &'static str) -> impl Fn(DriverError) -> CudaError {
    move |e| CudaError::Driver { op, message: describe(e) }
}

/// True for the errors a faulting kernel leaves behind (sticky: the context is unusable afterwards).
pub(crate) fn is_kernel_fault(e: DriverError) -> bool {
    matches!(
        e.0,
        CUresult::CUDA_ERROR_ILLEGAL_ADDRESS
            | CUresult::CUDA_ERROR_LAUNCH_FAILED
            | CUresult::CUDA_ERROR_ASSERT
            | CUresult::CUDA_ERROR_MISALIGNED_ADDRESS
            | CUresult::CUDA_ERROR_INVALID_ADDRESS_SPACE
            | CUresult::CUDA_ERROR_ILLEGAL_INSTRUCTION
            | CUresult::CUDA_ERROR_INVALID_PC
            | CUresult::CUDA_ERROR_HARDWARE_STACK_ERROR
            | CUresult::CUDA_ERROR_LAUNCH_TIMEOUT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_matters() {
        let e = CudaError::SharedMemory { kernel: "mm<BM=128>".into(), bytes: 300_000, limit: 232_448 };
        let s = e.to_string();
        assert!(s.contains("mm<BM=128>") && s.contains("300000") && s.contains("232448"), "{s}");
        let e = CudaError::OutOfMemory { bytes: 1 << 40, detail: String::new() };
        assert!(e.to_string().contains(&(1u64 << 40).to_string()));
        let e = CudaError::DeviceFault { op: "download", last: "`add<BLOCK=64>`".into(), message: "x".into() };
        assert!(e.to_string().contains("DSL_SYNC_LAUNCH=1"));
    }

    #[test]
    fn faults_are_classified() {
        assert!(is_kernel_fault(DriverError(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS)));
        assert!(is_kernel_fault(DriverError(CUresult::CUDA_ERROR_ASSERT)));
        assert!(!is_kernel_fault(DriverError(CUresult::CUDA_ERROR_OUT_OF_MEMORY)));
        assert!(!is_kernel_fault(DriverError(CUresult::CUDA_ERROR_INVALID_VALUE)));
    }
}
