//! The compile pipeline: IR → LLVM IR text ([`crate::lower`]) → parsed and optimized by LLVM (O3) →
//! PTX from the NVPTX backend.

use crate::lower;
use crate::target::{CompileOptions, Specialization};
use dsl_core::ir::Kernel;
use inkwell::context::Context;
use inkwell::memory_buffer::MemoryBuffer;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{CodeModel, FileType, InitializationConfig, RelocMode, Target as LlvmTarget, TargetTriple};
use inkwell::OptimizationLevel;
use std::sync::Once;

pub use crate::error::CodegenError;

/// The PTX ISA version we emit (`+ptx84`: fp8 `mma.sync` and conversions need 8.4 or later; the H100
/// driver and ptxas 12.4+ accept it).
pub const PTX_FEATURES: &str = "+ptx84";

/// A kernel compiled to PTX, with what a launch needs to know.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The PTX module text.
    pub ptx: String,
    /// The kernel's entry name in `ptx`.
    pub entry: String,
    /// The LLVM IR we generated, before optimization (for debugging: `DSL_DUMP_LLVM`).
    pub llvm_ir: String,
    /// Threads per program (CTA): `32 * num_warps`.
    pub num_threads: u32,
    /// Dynamic shared memory the kernel needs, in bytes.
    pub shared_bytes: u32,
    /// The tensor maps a launch passes after the kernel's own parameters (see [`crate::abi`]).
    pub tensor_maps: Vec<crate::abi::TensorMapSpec>,
}

/// Compiles `kernel` for `opts.target` with the argument facts `spec`.
pub fn compile(kernel: &Kernel, spec: &Specialization, opts: &CompileOptions) -> Result<Compiled, CodegenError> {
    let name = kernel.display_name();
    if !opts.num_warps.is_power_of_two() || opts.num_warps > 32 {
        return Err(CodegenError::Options {
            kernel: name,
            message: format!("num_warps must be a power of two from 1 to 32, got {}", opts.num_warps),
        });
    }
    if std::env::var_os("DSL_DUMP_PLAN").is_some() {
        eprintln!("; ---- plan of {name}\n{}", lower::explain(kernel, spec, opts));
    }
    let lowered = lower::lower_kernel(kernel, spec, opts)?;
    if std::env::var_os("DSL_DUMP_LLVM").is_some() {
        eprintln!("; ---- LLVM IR of {name}\n{}", lowered.ir);
    }
    let ptx = llvm_to_ptx(&lowered.ir, opts).map_err(|message| CodegenError::Llvm { kernel: name, message })?;
    Ok(Compiled {
        ptx,
        entry: lowered.entry,
        llvm_ir: lowered.ir,
        num_threads: 32 * opts.num_warps,
        shared_bytes: lowered.shared_bytes,
        tensor_maps: lowered.tensor_maps,
    })
}

/// The LLVM version this backend links (part of the JIT cache key).
pub fn llvm_version() -> String {
    let (a, b, c) = inkwell::support::get_llvm_version();
    format!("{a}.{b}.{c}")
}

fn init_nvptx() {
    static INIT: Once = Once::new();
    INIT.call_once(|| LlvmTarget::initialize_nvptx(&InitializationConfig::default()));
}

/// Parses LLVM IR text, optimizes it at O3 and emits PTX.
pub fn llvm_to_ptx(ir: &str, opts: &CompileOptions) -> Result<String, String> {
    init_nvptx();
    let context = Context::create();
    let buffer = MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "kernel");
    let module = context.create_module_from_ir(buffer).map_err(|e| e.to_string())?;
    module.verify().map_err(|e| e.to_string())?;
    let triple = TargetTriple::create("nvptx64-nvidia-cuda");
    let target = LlvmTarget::from_triple(&triple).map_err(|e| e.to_string())?;
    let machine = target
        .create_target_machine(
            &triple,
            opts.target.cpu(),
            PTX_FEATURES,
            OptimizationLevel::Aggressive,
            RelocMode::Default,
            CodeModel::Default,
        )
        .ok_or("cannot create the NVPTX target machine")?;
    module.set_triple(&triple);
    module.set_data_layout(&machine.get_target_data().get_data_layout());
    module
        .run_passes("default<O3>", &machine, PassBuilderOptions::create())
        .map_err(|e| e.to_string())?;
    let out = machine.write_to_memory_buffer(&module, FileType::Assembly).map_err(|e| e.to_string())?;
    String::from_utf8(out.as_slice().to_vec()).map_err(|e| e.to_string())
}
