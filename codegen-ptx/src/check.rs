//! [`PtxCheckRuntime`]: a runtime for machines without a GPU that checks the PTX backend on real launches.
//! Every launch is compiled to PTX for each target, assembled with `ptxas` (and disassembled), and then
//! run by the interpreter, so a test suite written against `Runtime` both checks results and proves
//! that every kernel specialization it launches lowers and assembles.

use crate::compile::compile;
use crate::error::CodegenError;
use crate::ptxas::{assemble, find_nvdisasm, find_ptxas, Assembled};
use crate::target::{ArgFact, CompileOptions, Specialization, Target};
use dsl_core::error::CompileError;
use dsl_core::interp::{HostBuffer, InterpError, Interpreter};
use dsl_core::runtime::{Arg, KernelSpec, Launch, Runtime};
use dsl_core::types::Elem;
use std::any::TypeId;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;

/// One assembled kernel specialization.
#[derive(Clone, Debug)]
pub struct Report {
    /// `name<constexprs>` and the argument facts.
    pub kernel: String,
    pub facts: String,
    pub target: Target,
    pub num_warps: u32,
    pub num_stages: u32,
    /// Threads per program of the compiled kernel (`32 * num_warps`).
    pub num_threads: u32,
    pub assembled: Assembled,
    pub compile_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Interp(#[from] InterpError),
    #[error("{0}")]
    Codegen(#[from] CodegenError),
    #[error("{0}")]
    Ptxas(String),
}

impl From<CompileError> for CheckError {
    fn from(e: CompileError) -> Self {
        CheckError::Interp(InterpError::Compile(e))
    }
}

pub struct PtxCheckRuntime {
    interp: Interpreter,
    targets: Vec<Target>,
    num_warps: u32,
    ptxas: PathBuf,
    nvdisasm: Option<PathBuf>,
    /// What was assembled already: the specialization, its argument facts, and the launch's warps and stages.
    seen: Mutex<HashSet<(TypeId, Specialization, u32, u32)>>,
    reports: Mutex<Vec<Report>>,
}

impl PtxCheckRuntime {
    /// Checks every launch for sm_80 and sm_90a, with the launch's warps and stages (default 4 warps and
    /// [`CompileOptions::default`]'s stages); `None` when `ptxas` is not installed.
    pub fn new() -> Option<PtxCheckRuntime> {
        Some(PtxCheckRuntime {
            interp: Interpreter::new(),
            targets: vec![Target::Sm80, Target::Sm90a],
            num_warps: 4,
            ptxas: find_ptxas()?,
            nvdisasm: find_nvdisasm(),
            seen: Mutex::new(HashSet::new()),
            reports: Mutex::new(vec![]),
        })
    }

    /// Everything assembled so far.
    pub fn reports(&self) -> Vec<Report> {
        self.reports.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The argument facts of a launch on host buffers (which start at offset 0 of an allocation: aligned, as
/// device allocations are).
fn facts_of(args: &[Arg<'_>]) -> Specialization {
    Specialization {
        facts: args
            .iter()
            .map(|a| match a {
                Arg::Buffer(_) | Arg::BufferMut(_) => ArgFact::Aligned16,
                Arg::Scalar(v, d) => ArgFact::of_scalar(*d, *v),
            })
            .collect(),
    }
}

impl Runtime for PtxCheckRuntime {
    type Buffer<T: Elem> = HostBuffer<T>;
    type Error = CheckError;

    fn launch(&self, spec: &KernelSpec, launch: &Launch, args: &mut [Arg<'_>]) -> Result<(), CheckError> {
        let facts = facts_of(args);
        let num_warps = launch.options.num_warps.unwrap_or(self.num_warps);
        let num_stages = launch.options.num_stages.unwrap_or(CompileOptions::default().num_stages);
        let first = self.seen.lock().map(|mut s| s.insert((spec.id, facts.clone(), num_warps, num_stages))).unwrap_or(true);
        if first && launch.options.check().is_ok() {
            let kernel = (spec.build)()?;
            for &target in &self.targets {
                let t0 = std::time::Instant::now();
                let options = CompileOptions { target, num_warps, num_stages, ..CompileOptions::default() };
                let c = compile(&kernel, &facts, &options)?;
                let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
                let assembled = assemble(&self.ptxas, self.nvdisasm.as_deref(), &c.ptx, target)
                    .map_err(|e| CheckError::Ptxas(format!("kernel `{}`: {e}", kernel.display_name())))?;
                if let Ok(mut r) = self.reports.lock() {
                    r.push(Report { kernel: kernel.display_name(), facts: facts.key(), target, num_warps, num_stages, num_threads: c.num_threads, assembled, compile_ms });
                }
            }
        }
        // The interpreter checks the options (and refuses bad ones) as every backend does.
        Ok(self.interp.launch(spec, launch, args)?)
    }

    fn upload<T: Elem>(&self, values: &[T]) -> Result<HostBuffer<T>, CheckError> {
        Ok(self.interp.upload(values)?)
    }

    fn download<T: Elem>(&self, buffer: &HostBuffer<T>) -> Result<Vec<T>, CheckError> {
        Ok(self.interp.download(buffer)?)
    }

    fn write<T: Elem>(&self, buffer: &mut HostBuffer<T>, values: &[T]) -> Result<(), CheckError> {
        Ok(self.interp.write(buffer, values)?)
    }
}
