//! The CUDA runtime: [`CudaRuntime`] runs `#[kernel]`s on an NVIDIA GPU through the same typed launchers
//! as the interpreter (it implements [`dsl_core::runtime::Runtime`]).
//!
//! ```no_run
//! use codegen_ptx::runtime::{CudaError, CudaRuntime};
//! use dsl_core::prelude::*;
//! use kernels::elementwise::add;
//!
//! fn main() -> Result<(), CudaError> {
//!     let n = 4096;
//!     let rt = CudaRuntime::new()?; // Err(NoDriver / NoDevice) without a GPU
//!     let x = rt.upload(&vec![1.0f32; n])?; // CudaBuffer<f32>
//!     let mut out = rt.zeros::<f32>(n)?;
//!     add::<1024>::launch(&rt, (n / 1024) as u32, &x, &x, &mut out, n as i32)?; // compiled once, then cached
//!     let host = rt.download(&out)?; // waits for the launch
//!     assert_eq!(host, vec![2.0; n]);
//!     Ok(())
//! }
//! ```
//!
//! - **One binary with or without a GPU.** The driver library is loaded at run time; without it (or with
//!   a driver too old) [`CudaRuntime::new`] returns [`CudaError::NoDriver`] / [`CudaError::NoDevice`]
//!   instead of panicking, so programs can fall back to the interpreter.
//! - **JIT cache.** The first launch of a specialization with given argument facts (see
//!   [`crate::target::ArgFact`]) traces, compiles and loads it; later launches find it in memory (a few
//!   microseconds of host time). Compiled PTX is also kept on disk ([`disk_cache`]) so the next run of
//!   the program skips LLVM. [`CudaRuntime::cache_stats`] counts hits and compiles.
//! - **Ordering.** All work goes on one stream in order: launches are asynchronous, and `download` /
//!   `to_vec` / `synchronize` wait for everything before them. A kernel that faults is therefore noticed
//!   at the next waiting call; set `DSL_SYNC_LAUNCH=1` (or [`CudaRuntime::set_sync_launches`]) to wait
//!   after every launch, so the error names the kernel.
//! - **Graphs and timing.** [`CudaRuntime::capture`] records launches into a [`CudaGraph`] to replay
//!   (rules in [`graph`]); [`CudaRuntime::time`] measures GPU time with events.
//!
//! Kernel ABI (what [`crate::compile`] produces and [`args`] passes): one `.entry` parameter per kernel
//! parameter; pointers are u64 device addresses, scalars their dtype's little-endian bytes; a program is a
//! block of `32 * num_warps` threads with the kernel's dynamic shared memory.

mod args;
pub mod autotune;
mod buffer;
mod device;
pub mod disk_cache;
mod driver;
mod error;
pub mod graph;
mod jit;
mod launch;
mod timing;

pub use autotune::{AutotuneError, Autotuner, Tuned};
pub use buffer::CudaBuffer;
pub use device::{device_count, DeviceInfo};
pub use disk_cache::DiskCache;
pub use error::CudaError;
pub use graph::CudaGraph;
pub use jit::CacheStats;

use crate::target::{CompileOptions, Target};
use device::Device;
use dsl_core::runtime::{Arg, KernelSpec, Launch, LaunchOptions, Runtime};
use dsl_core::types::Elem;
use jit::Jit;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A GPU, a stream on it, and the kernels compiled for it. Cheap to share by reference across threads
/// (`Send + Sync`); everything it launches is ordered on its one stream.
pub struct CudaRuntime {
    dev: Arc<Device>,
    jit: Jit,
    num_warps: AtomicU32,
    num_stages: AtomicU32,
    bounds_check: std::sync::atomic::AtomicBool,
    wgmma: std::sync::atomic::AtomicBool,
    tma: std::sync::atomic::AtomicBool,
    programmatic_launch: std::sync::atomic::AtomicBool,
    /// Launches made with programmatic stream serialization (for tests that must know they overlapped).
    programmatic_launches: std::sync::atomic::AtomicU64,
    /// The error record of bounds-checked launches (allocated on first use).
    oob_record: std::sync::Mutex<Option<CudaBuffer<u32>>>,
}

impl CudaRuntime {
    /// The runtime on GPU 0.
    pub fn new() -> Result<CudaRuntime, CudaError> {
        Self::new_on(0)
    }

    /// The runtime on GPU `ordinal`. Reads `DSL_SYNC_LAUNCH` (`1`: synchronize after every launch) and the
    /// disk cache location (see [`disk_cache`]) from the environment.
    pub fn new_on(ordinal: usize) -> Result<CudaRuntime, CudaError> {
        let dev = Arc::new(Device::open(ordinal)?);
        let sync = std::env::var("DSL_SYNC_LAUNCH").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        dev.sync_launches.store(sync, Ordering::Relaxed);
        let checked = std::env::var("DSL_CHECK_BOUNDS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let wgmma = !std::env::var("DSL_WGMMA").is_ok_and(|v| v == "0" || v.eq_ignore_ascii_case("false"));
        let tma = std::env::var("DSL_TMA").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let pdl = std::env::var("DSL_PDL").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        Ok(CudaRuntime {
            dev,
            jit: Jit::new(DiskCache::from_env()),
            num_warps: AtomicU32::new(4),
            num_stages: AtomicU32::new(std::env::var("DSL_NUM_STAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1)),
            bounds_check: std::sync::atomic::AtomicBool::new(checked),
            wgmma: std::sync::atomic::AtomicBool::new(wgmma),
            tma: std::sync::atomic::AtomicBool::new(tma),
            programmatic_launch: std::sync::atomic::AtomicBool::new(pdl),
            programmatic_launches: std::sync::atomic::AtomicU64::new(0),
            oob_record: std::sync::Mutex::new(None),
        })
    }

    /// Uses `cache` (or no disk cache with `None`) instead of the one the environment names.
    pub fn with_disk_cache(mut self, cache: Option<DiskCache>) -> CudaRuntime {
        self.jit.disk = cache;
        self
    }

    /// The disk cache in use, if any.
    pub fn disk_cache(&self) -> Option<&DiskCache> {
        self.jit.disk.as_ref()
    }

    /// The architecture kernels are compiled for.
    pub fn target(&self) -> Target {
        self.dev.info.target
    }

    pub fn device_name(&self) -> &str {
        &self.dev.info.name
    }

    pub fn device_info(&self) -> &DeviceInfo {
        &self.dev.info
    }

    /// The default warps per program of launches that do not give `num_warps` themselves (default 4; a
    /// power of two up to 32). Part of the cache key: kernels already compiled with another value stay
    /// cached. Prefer the per-launch option (`Launch::num_warps`): this is shared state.
    pub fn set_num_warps(&self, num_warps: u32) {
        self.num_warps.store(num_warps, Ordering::Relaxed);
    }

    pub fn num_warps(&self) -> u32 {
        self.num_warps.load(Ordering::Relaxed)
    }

    /// The default pipeline depth of launches that do not give `num_stages` themselves (see
    /// [`CompileOptions::num_stages`]; default 3, or `DSL_NUM_STAGES`). Part of the cache key.
    pub fn set_num_stages(&self, num_stages: u32) {
        self.num_stages.store(num_stages.max(1), Ordering::Relaxed);
    }

    pub fn num_stages(&self) -> u32 {
        self.num_stages.load(Ordering::Relaxed)
    }

    /// The options a launch with no launch options of its own compiles with.
    pub fn options(&self) -> CompileOptions {
        self.options_for(&LaunchOptions::default())
    }

    /// The compile options of a launch with `launch`'s options: each one it gives, else this runtime's
    /// default.
    pub fn options_for(&self, launch: &LaunchOptions) -> CompileOptions {
        CompileOptions {
            target: self.dev.info.target,
            num_warps: launch.num_warps.unwrap_or_else(|| self.num_warps()),
            bounds_check: self.bounds_check(),
            wgmma: self.wgmma(),
            tma: self.tma(),
            num_stages: launch.num_stages.unwrap_or_else(|| self.num_stages()).max(1),
        }
    }

    /// Check every global access of later launches against its buffer's length: an access outside is
    /// skipped and the launch returns [`CudaError::OutOfBounds`] (naming the kernel, the source line and
    /// the buffer). Kernels are compiled again with the checks, and each launch waits for the GPU: for
    /// tests and debugging. Launches inside a graph capture are not checked. Also set by
    /// `DSL_CHECK_BOUNDS=1`.
    pub fn set_bounds_check(&self, on: bool) {
        self.bounds_check.store(on, Ordering::Relaxed);
    }

    pub fn bounds_check(&self) -> bool {
        self.bounds_check.load(Ordering::Relaxed)
    }

    /// Lower the `dot`s that fit warpgroup tensor cores to `wgmma` on sm_90a (default on; off with
    /// `DSL_WGMMA=0`, to compare against `mma.sync`). Part of the cache key.
    pub fn set_wgmma(&self, on: bool) {
        self.wgmma.store(on, Ordering::Relaxed);
    }

    pub fn wgmma(&self) -> bool {
        self.wgmma.load(Ordering::Relaxed)
    }

    /// Pipeline block-pointer loads that feed `wgmma` with TMA on sm_90a (default off; on with
    /// `DSL_TMA=1`). Part of the cache key.
    pub fn set_tma(&self, on: bool) {
        self.tma.store(on, Ordering::Relaxed);
    }

    pub fn tma(&self) -> bool {
        self.tma.load(Ordering::Relaxed)
    }

    /// Whether `dot`s of tiles with 16 rows per warp (on whole warpgroups) run on `wgmma` here: an
    /// sm_90a device with [`Self::wgmma`] on. Kernel heuristics pick their tiles by it.
    pub fn warpgroup_mma(&self) -> bool {
        self.target() == Target::Sm90a && self.wgmma()
    }

    /// The default for launches that do not say (`Launch::programmatic`): launch kernels that call
    /// `gdc_wait` with programmatic dependent launch (Hopper, the sm_90a target; also set by `DSL_PDL=1`): their programs may start while the kernel ahead of them on the stream
    /// finishes, and run up to `gdc_wait` (see `dsl_core::lang::gdc_wait`). Back-to-back kernels can
    /// hide the gap between them; results do not change as long as what a kernel loads before its
    /// `gdc_wait` is not written by the kernels ahead (the kernel author's promise: weights, not
    /// activations). Kernels without `gdc_wait` always wait for the one ahead. Off by default until it
    /// has been measured on a GPU (`bench/fp8_gemm/NOTES.md`).
    pub fn set_programmatic_launch(&self, on: bool) {
        self.programmatic_launch.store(on, Ordering::Relaxed);
    }

    /// Whether a launch of a kernel that calls `gdc_wait` with no option of its own overlaps the kernel
    /// ahead of it.
    pub fn programmatic_launch(&self) -> bool {
        self.programmatic_for(&LaunchOptions::default())
    }

    /// Whether a launch with `launch`'s options, of a kernel that calls `gdc_wait`, overlaps the kernel
    /// ahead of it (never off Hopper).
    pub fn programmatic_for(&self, launch: &LaunchOptions) -> bool {
        launch.programmatic.unwrap_or_else(|| self.programmatic_launch.load(Ordering::Relaxed)) && self.dev.info.target == Target::Sm90a
    }

    /// How many launches so far were made with programmatic stream serialization.
    pub fn programmatic_launch_count(&self) -> u64 {
        self.programmatic_launches.load(Ordering::Relaxed)
    }

    /// Synchronize after every launch (and graph replay), so a kernel fault is reported by the launch that
    /// caused it. Slow; for debugging. Also set by `DSL_SYNC_LAUNCH=1`.
    pub fn set_sync_launches(&self, on: bool) {
        self.dev.sync_launches.store(on, Ordering::Relaxed);
    }

    pub fn sync_launches(&self) -> bool {
        self.dev.sync_launches()
    }

    /// Waits for all work queued on this runtime.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.dev.synchronize("synchronize")?;
        self.dev.free_deferred();
        Ok(())
    }

    /// A buffer of `len` zeros.
    pub fn zeros<T: Elem>(&self, len: usize) -> Result<CudaBuffer<T>, CudaError> {
        let mut b = CudaBuffer::alloc(&self.dev, len)?;
        b.fill_zero()?;
        Ok(b)
    }

    /// A buffer of `len` elements with unspecified contents (for outputs that a kernel overwrites).
    pub fn alloc<T: Elem>(&self, len: usize) -> Result<CudaBuffer<T>, CudaError> {
        CudaBuffer::alloc(&self.dev, len)
    }

    /// Free and total GPU memory in bytes.
    pub fn memory_info(&self) -> Result<(usize, usize), CudaError> {
        self.dev.bind()?;
        self.dev.memory_info()
    }

    /// Hit and compile counters of the JIT cache, and the duration of the last trace, compile and load.
    pub fn cache_stats(&self) -> CacheStats {
        self.jit.stats()
    }

    /// Unloads every compiled kernel (the next launches load them again, from the disk cache if it is on):
    /// for benchmarks of the cold path. Waits for queued work first.
    pub fn clear_kernel_cache(&self) -> Result<(), CudaError> {
        self.synchronize()?;
        self.jit.clear_loaded();
        Ok(())
    }

    /// The disk cache key a launch of `spec` with argument facts `facts` and launch options `launch`
    /// uses (traces the kernel if needed). For tools that inspect or seed the cache.
    pub fn disk_cache_key(&self, spec: &KernelSpec, facts: &[crate::target::ArgFact], launch: &LaunchOptions) -> Result<String, CudaError> {
        let info = self.jit.info(spec)?;
        let spec = crate::target::Specialization { facts: facts.to_vec() };
        Ok(Jit::disk_key(&info, &spec, self.options_for(launch)))
    }
}

impl Drop for CudaRuntime {
    /// Waits for queued work before the kernels' modules are unloaded (buffers and graphs that are still
    /// alive keep what they need themselves).
    fn drop(&mut self) {
        if !self.dev.is_capturing() && self.dev.bind().is_ok() {
            let _ = driver::stream_synchronize(self.dev.cu_stream);
        }
        self.dev.free_deferred();
    }
}

impl std::fmt::Debug for CudaRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaRuntime({} on GPU {}, {})", self.dev.info.name, self.dev.info.ordinal, self.dev.info.target)
    }
}

impl Runtime for CudaRuntime {
    type Buffer<T: Elem> = CudaBuffer<T>;
    type Error = CudaError;

    fn launch(&self, kernel: &KernelSpec, launch: &Launch, args: &mut [Arg<'_>]) -> Result<(), CudaError> {
        self.launch_spec(kernel, launch, args)
    }

    fn upload<T: Elem>(&self, values: &[T]) -> Result<CudaBuffer<T>, CudaError> {
        let mut b = CudaBuffer::alloc(&self.dev, values.len())?;
        b.copy_from(values)?;
        Ok(b)
    }

    fn download<T: Elem>(&self, buffer: &CudaBuffer<T>) -> Result<Vec<T>, CudaError> {
        buffer.to_vec()
    }

    fn write<T: Elem>(&self, buffer: &mut CudaBuffer<T>, values: &[T]) -> Result<(), CudaError> {
        buffer.copy_from(values)
    }
}

#[cfg(test)]
mod tests;
