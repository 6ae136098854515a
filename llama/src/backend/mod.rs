//! Backend interface: what a device must provide to run a Llama model.
//!
//! The boundary is a whole forward pass (not individual ops) so that a GPU
//! backend can keep weights, activations and the KV cache on the device and
//! only ship token ids in and logits out.

pub mod cpu;
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
    /// Runs `tokens` (at positions `position()..position() + tokens.len()`)
    /// through the model in one batch, appending their keys/values to the
    /// cache. Returns the logits of the last token (`vocab_size` values), or
    /// of every token (`tokens.len() * vocab_size`) when `all_logits`.
    fn forward(&mut self, tokens: &[u32], all_logits: bool) -> Result<Vec<f32>>;
}

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
    /// The best available device (today: the CPU).
    Auto,
}

impl std::str::FromStr for Device {
    type Err = LlamaError;
    fn from_str(s: &str) -> Result<Device> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            "auto" => Ok(Device::Auto),
            other => Err(LlamaError::Invalid(format!(
                "unknown device `{other}` (expected cpu, cuda or auto)"
            ))),
        }
    }
}

/// Creates a backend for `weights` with room for `capacity` positions.
pub fn create_backend(
    device: Device,
    weights: Arc<LlamaWeights>,
    capacity: usize,
) -> Result<Box<dyn Backend>> {
    match device {
        Device::Cpu | Device::Auto => Ok(Box::new(cpu::CpuBackend::new(weights, capacity)?)),
        Device::Cuda => Err(LlamaError::Backend(
            "the CUDA backend is not built yet; use --device cpu (or auto)".into(),
        )),
    }
}
