//! Backend interface: what a device must provide to run a Llama model.
//!
//! The boundary is a whole forward pass (not individual ops) so that a GPU
//! backend can keep weights, activations and the KV cache on the device and
//! only ship token ids in and logits out.

pub mod cpu;
pub mod forward;
pub mod gpu;
pub mod kernels;

use crate::config::LlamaConfig;
use crate::error::{LlamaError, Result};
use crate::model::LlamaWeights;
use std::sync::Arc;

/// A device able to run a Llama forward pass with a KV cache.
pub trait Backend: Send {
    /// Short name ("cpu", "cuda").
    fn name(&self) -> &'static str;
    /// The model configuration.
    fn config(&self) -> &LlamaConfig;
    /// Number of positions already in the KV cache.
    fn position(&self) -> usize;
    /// Maximum number of positions the KV cache holds.
    fn capacity(&self) -> usize;
    /// Forgets every cached position from `pos` on (`rewind(0)` clears the
    /// cache); used to reuse a shared prompt prefix between chat turns.
    fn rewind(&mut self, pos: usize);
    /// Sequences run side by side, in lockstep (1 but for a GPU backend made with a batch, for
    /// `llama bench --batch`).
    fn batch(&self) -> usize {
        1
    }
    /// Runs `tokens` (at positions `position()..position() + tokens.len()`)
    /// through the model in one batch, appending their keys/values to the
    /// cache. Returns the logits of the last token (`vocab_size` values), or
    /// of every token (`tokens.len() * vocab_size`) when `all_logits`.
    /// With [`Backend::batch`] sequences, `tokens` holds each one's tokens in
    /// turn (equal counts, `tokens.len() / batch` positions each), and the
    /// logits are each sequence's in turn.
    fn forward(&mut self, tokens: &[u32], all_logits: bool) -> Result<Vec<f32>>;
    /// [`Backend::forward`] of `tokens`, then the most likely next token (the first on ties): greedy
    /// decoding. A GPU backend picks it on the device and copies back one id instead of the logits.
    fn forward_greedy(&mut self, tokens: &[u32]) -> Result<u32> {
        Ok(crate::sampler::argmax(&self.forward(tokens, false)?))
    }
    /// [`Backend::forward_greedy`] of every sequence ([`Backend::batch`]; `tokens` as for
    /// [`Backend::forward`]): each one's next token.
    fn forward_greedy_batch(&mut self, tokens: &[u32]) -> Result<Vec<u32>> {
        Ok(vec![self.forward_greedy(tokens)?])
    }
    /// How a decode step's kernels are launched ("graph", "eager", "+ PDL" where launches overlap);
    /// "-" where there are no kernels.
    fn launch_mode(&self) -> String {
        "-".into()
    }
}

/// The checks every backend's `forward` makes before any work: at least one token, room in the cache
/// for them after `pos` (of `capacity`), every id inside the vocabulary.
pub fn check_batch(c: &LlamaConfig, pos: usize, capacity: usize, tokens: &[u32]) -> Result<()> {
    let n = tokens.len();
    if n == 0 {
        return Err(LlamaError::Invalid("forward called with no tokens".into()));
    }
    if pos + n > capacity {
        return Err(LlamaError::Invalid(format!("context full: {pos} positions used + {n} new > capacity {capacity}")));
    }
    if let Some(t) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
        return Err(LlamaError::Invalid(format!("token id {t} out of range (vocab {})", c.vocab_size)));
    }
    Ok(())
}

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
    /// The GPU backend's code on the reference interpreter (CPU, slow: for checking it).
    Interp,
    /// The GPU when a driver and a device are present, else the CPU.
    Auto,
}

impl std::str::FromStr for Device {
    type Err = LlamaError;
    fn from_str(s: &str) -> Result<Device> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            "auto" => Ok(Device::Auto),
            "interp" => Ok(Device::Interp),
            other => Err(LlamaError::Invalid(format!(
                "unknown device `{other}` (expected cpu, cuda, auto or interp)"
            ))),
        }
    }
}

/// Creates a backend for `weights` with room for `capacity` positions; `gpu` applies to the GPU
/// backend (on CUDA and on the interpreter). `Auto` says on stderr which device it picked, and why not
/// the GPU when it falls back to the CPU.
pub fn create_backend(
    device: Device,
    weights: Arc<LlamaWeights>,
    capacity: usize,
    gpu: gpu::GpuOptions,
) -> Result<Box<dyn Backend>> {
    let source = gpu::WeightSource::Loaded(&weights);
    match device {
        Device::Cpu => Ok(Box::new(cpu::CpuBackend::new(weights, capacity)?)),
        Device::Cuda => {
            let rt = cuda_runtime(&gpu)?;
            let sms = rt.device_info().multiprocessors;
            Ok(Box::new(gpu::GpuBackend::new(rt, "cuda", sms, source, capacity, gpu)?))
        }
        Device::Interp => {
            let rt = dsl_core::interp::Interpreter::new();
            Ok(Box::new(gpu::GpuBackend::new(rt, "interp", 132, source, capacity, gpu)?))
        }
        Device::Auto => match codegen_ptx::runtime::CudaRuntime::new() {
            Ok(rt) => {
                rt.set_programmatic_launch(gpu.programmatic);
                eprintln!("device: cuda ({}, {})", rt.device_name(), rt.target());
                let sms = rt.device_info().multiprocessors;
                Ok(Box::new(gpu::GpuBackend::new(rt, "cuda", sms, source, capacity, gpu)?))
            }
            Err(e) => {
                eprintln!("device: cpu (no usable GPU: {e})");
                Ok(Box::new(cpu::CpuBackend::new(weights, capacity)?))
            }
        },
    }
}

/// The CUDA runtime set up for `gpu`'s options, or a clear error when there is no driver or no device.
pub fn cuda_runtime(gpu: &gpu::GpuOptions) -> Result<codegen_ptx::runtime::CudaRuntime> {
    let rt = codegen_ptx::runtime::CudaRuntime::new().map_err(|e| LlamaError::Backend(format!("--device cuda: {e}")))?;
    rt.set_programmatic_launch(gpu.programmatic);
    Ok(rt)
}
