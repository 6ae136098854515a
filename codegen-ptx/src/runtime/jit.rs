//! The in-memory JIT cache: traced kernels by specialization id, and loaded CUDA functions by
//! (specialization id, argument facts, compile options). A launch that hits it takes two short lock
//! sections and no allocation beyond the argument vectors. A miss traces the kernel, then takes the PTX
//! from the disk cache or compiles it, loads it into the context and checks its resource needs.

use super::args::{signature, ParamSig};
use super::device::{lock, Device, SHARED_DEFAULT_LIMIT};
use super::disk_cache::{cache_key, CachedPtx, DiskCache, KeyParts};
use super::driver::{self, Module};
use super::error::{describe, CudaError};
use crate::compile::{compile, llvm_version};
use crate::target::{ArgFact, CompileOptions, Specialization};
use cudarc::driver::sys::{self, CUfunction_attribute as FA};
use dsl_core::ir::Kernel;
use dsl_core::runtime::KernelSpec;
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A traced specialization.
pub(crate) struct KernelInfo {
    pub(crate) kernel: Kernel,
    /// `Kernel::display_name()`, e.g. `add<BLOCK=64>`.
    pub(crate) name: Arc<str>,
    pub(crate) params: Vec<ParamSig>,
    /// The kernel calls `gdc_wait`, so it may be launched before the kernel ahead of it has finished.
    pub(crate) waits_for_grids: bool,
    /// The IR text for the disk cache key, printed on first need.
    ir_text: OnceLock<String>,
}

/// A kernel loaded into the context, ready to launch.
pub(crate) struct Loaded {
    pub(crate) func: sys::CUfunction,
    pub(crate) num_threads: u32,
    pub(crate) shared_bytes: u32,
    pub(crate) name: Arc<str>,
    /// The tensor maps a launch passes after the kernel's own parameters.
    pub(crate) tensor_maps: Vec<crate::abi::TensorMapSpec>,
    /// Keeps `func` valid.
    _module: Module,
}

// SAFETY: a CUfunction handle is usable from any thread with its context current (the runtime binds it);
// the module that owns it lives as long as this value.
unsafe impl Send for Loaded {}
unsafe impl Sync for Loaded {}

struct Entry {
    info: Arc<KernelInfo>,
    variants: Vec<(Vec<ArgFact>, CompileOptions, Arc<Loaded>)>,
}

/// Counters of the JIT cache (see [`super::CudaRuntime::cache_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CacheStats {
    /// Launches that found their kernel loaded in memory.
    pub memory_hits: u64,
    /// Kernels loaded from PTX in the disk cache (no LLVM).
    pub disk_hits: u64,
    /// Kernels compiled by LLVM.
    pub compiles: u64,
    /// Failed writes to the disk cache (the kernel still runs).
    pub disk_write_errors: u64,
    /// How long the last miss took to trace the kernel into IR (`spec.build`).
    pub last_trace: Option<Duration>,
    /// How long the last compile took (IR → LLVM → PTX).
    pub last_compile: Option<Duration>,
    /// How long the last module load took (the driver's PTX → SASS JIT).
    pub last_load: Option<Duration>,
}

#[derive(Default)]
struct Timings {
    trace: Option<Duration>,
    compile: Option<Duration>,
    load: Option<Duration>,
}

pub(crate) struct Jit {
    entries: Mutex<HashMap<TypeId, Entry>>,
    pub(crate) disk: Option<DiskCache>,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    compiles: AtomicU64,
    disk_write_errors: AtomicU64,
    timings: Mutex<Timings>,
}

impl Jit {
    pub(crate) fn new(disk: Option<DiskCache>) -> Jit {
        Jit {
            entries: Mutex::new(HashMap::new()),
            disk,
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            compiles: AtomicU64::new(0),
            disk_write_errors: AtomicU64::new(0),
            timings: Mutex::new(Timings::default()),
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let t = lock(&self.timings);
        CacheStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            compiles: self.compiles.load(Ordering::Relaxed),
            disk_write_errors: self.disk_write_errors.load(Ordering::Relaxed),
            last_trace: t.trace,
            last_compile: t.compile,
            last_load: t.load,
        }
    }

    /// Forgets every loaded kernel (traced IR is kept). The caller has synchronized the stream; graphs
    /// keep the kernels they launch alive themselves.
    pub(crate) fn clear_loaded(&self) {
        for e in lock(&self.entries).values_mut() {
            e.variants.clear();
        }
    }

    /// The traced kernel of `spec` (traced on first use).
    pub(crate) fn info(&self, spec: &KernelSpec) -> Result<Arc<KernelInfo>, CudaError> {
        if let Some(e) = lock(&self.entries).get(&spec.id) {
            return Ok(e.info.clone());
        }
        let t = Instant::now();
        let kernel = (spec.build)()?;
        lock(&self.timings).trace = Some(t.elapsed());
        let info = Arc::new(KernelInfo {
            name: kernel.display_name().into(),
            params: signature(&kernel),
            waits_for_grids: kernel.body.ops.iter().any(|op| matches!(op.kind, dsl_core::ir::OpKind::GridDepWait)),
            kernel,
            ir_text: OnceLock::new(),
        });
        let mut entries = lock(&self.entries);
        let e = entries.entry(spec.id).or_insert_with(|| Entry { info, variants: Vec::new() });
        Ok(e.info.clone())
    }

    /// The loaded kernel for `spec` with argument facts `facts` and options `opts` (compiled, or read from
    /// the disk cache, and loaded on first use).
    pub(crate) fn loaded(
        &self,
        dev: &Device,
        spec: &KernelSpec,
        info: &KernelInfo,
        facts: &[ArgFact],
        opts: CompileOptions,
    ) -> Result<Arc<Loaded>, CudaError> {
        if let Some(e) = lock(&self.entries).get(&spec.id) {
            if let Some((_, _, l)) = e.variants.iter().find(|(f, o, _)| f == facts && *o == opts) {
                self.memory_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(l.clone());
            }
        }
        let specialization = Specialization { facts: facts.to_vec() };
        let compiled = self.ptx(info, &specialization, opts)?;
        let t = Instant::now();
        // Derived from the plan (deterministic), so PTX read from the disk cache gets them too.
        let maps = crate::lower::tensor_maps(&info.kernel, &specialization, &opts);
        let loaded = Arc::new(load(dev, info, compiled, maps)?);
        lock(&self.timings).load = Some(t.elapsed());
        let mut entries = lock(&self.entries);
        let Some(e) = entries.get_mut(&spec.id) else {
            return Ok(loaded); // the cache was cleared meanwhile: use it once
        };
        if let Some((_, _, l)) = e.variants.iter().find(|(f, o, _)| f == facts && *o == opts) {
            return Ok(l.clone()); // another thread loaded it meanwhile
        }
        e.variants.push((facts.to_vec(), opts, loaded.clone()));
        Ok(loaded)
    }

    /// The disk cache key of one compile.
    pub(crate) fn disk_key(info: &KernelInfo, spec: &Specialization, opts: CompileOptions) -> String {
        let ir = info.ir_text.get_or_init(|| dsl_core::ir::print::print(&info.kernel, true));
        cache_key(&KeyParts {
            ir,
            specialization: &spec.key(),
            target: opts.target,
            num_warps: opts.num_warps,
            num_stages: opts.num_stages,
            bounds_check: opts.bounds_check,
            wgmma: opts.wgmma,
            tma: opts.tma,
            llvm_version: &llvm_version(),
            // The version and a hash of the code generator's source (build.rs): a cache written by
            // another build of the same version is not read.
            crate_version: concat!(env!("CARGO_PKG_VERSION"), "+", env!("CODEGEN_SOURCE_HASH")),
        })
    }

    /// The PTX of one specialization: from the disk cache, else compiled (and written to the cache).
    fn ptx(&self, info: &KernelInfo, spec: &Specialization, opts: CompileOptions) -> Result<CachedPtx, CudaError> {
        let key = self.disk.as_ref().map(|_| Self::disk_key(info, spec, opts));
        if let (Some(disk), Some(key)) = (&self.disk, &key) {
            if let Some(c) = disk.load(key) {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(c);
            }
        }
        let t = Instant::now();
        let c = compile(&info.kernel, spec, &opts)?;
        lock(&self.timings).compile = Some(t.elapsed());
        self.compiles.fetch_add(1, Ordering::Relaxed);
        let c = CachedPtx { entry: c.entry, num_threads: c.num_threads, shared_bytes: c.shared_bytes, ptx: c.ptx };
        if let (Some(disk), Some(key)) = (&self.disk, &key) {
            if disk.store(key, &c).is_err() {
                self.disk_write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(c)
    }
}

/// Loads PTX into the device's context and checks what the kernel needs against what the device has.
fn load(dev: &Device, info: &KernelInfo, c: CachedPtx, tensor_maps: Vec<crate::abi::TensorMapSpec>) -> Result<Loaded, CudaError> {
    let kernel = info.name.to_string();
    dev.bind()?;
    // Loading a module is not a stream operation, but CUDA refuses it inside a thread-local capture; it is
    // safe here, so relax the mode for this call (see `graph`).
    let module = driver::with_relaxed_capture_mode(|| Module::load(&dev.ctx, &c.ptx))
        .map_err(|(message, log)| CudaError::ModuleLoad {
            kernel: kernel.clone(),
            message,
            log: if log.is_empty() { String::new() } else { format!("\n{log}") },
        })?;
    let func = module.function(&c.entry).map_err(|e| CudaError::ModuleLoad {
        kernel: kernel.clone(),
        message: format!("no entry `{}` in the module: {}", c.entry, describe(e)),
        log: String::new(),
    })?;
    let attr = |a| driver::function_attribute(func, a).map_err(|e| dev.sync_error("cuFuncGetAttribute", e));
    let static_shared = attr(FA::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)?.max(0) as u64;
    let total_shared = static_shared + c.shared_bytes as u64;
    if total_shared > dev.info.max_shared_optin as u64 {
        return Err(CudaError::SharedMemory { kernel, bytes: total_shared, limit: dev.info.max_shared_optin as u64 });
    }
    if total_shared > SHARED_DEFAULT_LIMIT as u64 {
        driver::set_function_attribute(func, FA::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, c.shared_bytes as i32)
            .map_err(|e| CudaError::LaunchFailed {
                kernel: kernel.clone(),
                message: format!("cannot allow {} bytes of dynamic shared memory: {}", c.shared_bytes, describe(e)),
            })?;
    }
    let max_threads = attr(FA::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?.max(0) as u32;
    if c.num_threads == 0 || c.num_threads > max_threads {
        let regs = attr(FA::CU_FUNC_ATTRIBUTE_NUM_REGS)?;
        return Err(CudaError::LaunchFailed {
            kernel,
            message: format!(
                "it is compiled for {} threads per program but uses {regs} registers per thread, so at most \
                 {max_threads} fit in a block: lower num_warps",
                c.num_threads
            ),
        });
    }
    Ok(Loaded { func, num_threads: c.num_threads, shared_bytes: c.shared_bytes, name: info.name.clone(), tensor_maps, _module: module })
}
