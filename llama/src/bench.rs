//! `llama bench`: prefill and decode speed of a backend, in the spirit of llama.cpp's `llama-bench`.
//!
//! One run: `reps` prefills of a `prompt`-token prompt from an empty cache (tokens/s of the batched
//! forward), then `reps` decodes of `gen` tokens after it, one token per step, each step fed the
//! previous one's greedy choice: once with the choice made on the device (one id copied back) and once
//! with every step's logits copied back to the host and the choice made there (what sampling with
//! temperature costs). Before timing, one prefill and two decode steps run untimed: they compile the
//! kernels and record the decode graph. Token ids are a fixed pseudo-random sequence: the speed of a
//! step does not depend on them.
//!
//! A backend of [`Backend::batch`] sequences runs them in lockstep: each prefill takes a different
//! `prompt`-token prompt for each sequence in one forward, and each decode step one token of each. The
//! rates count every sequence's tokens (a batch of 16 decoding at 40 steps/s is 640 tokens/s).

use crate::backend::Backend;
use crate::error::{LlamaError, Result};
use crate::sampler::argmax;
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchSpec {
    /// Prompt tokens (the context the decode steps start at).
    pub prompt: usize,
    /// Decode steps per repetition.
    pub gen: usize,
    pub reps: usize,
}

/// The median of each measurement over the repetitions, in tokens/s of all sequences together.
#[derive(Debug, Clone, Copy)]
pub struct BenchResult {
    /// Sequences side by side.
    pub batch: usize,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    /// Decode with each step's logits copied to the host and the choice made there.
    pub decode_host_tok_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A fixed pseudo-random token sequence inside the vocabulary.
pub fn tokens(n: usize, vocab: usize) -> Vec<u32> {
    (0..n as u64).map(|i| ((i.wrapping_mul(2654435761).wrapping_add(12345) >> 3) % vocab as u64) as u32).collect()
}

/// Runs `spec` on `b`, calling `progress(done, total)` after each timed run.
pub fn run(b: &mut dyn Backend, spec: BenchSpec, progress: &mut dyn FnMut(usize, usize)) -> Result<BenchResult> {
    let vocab = b.config().vocab_size;
    if spec.prompt == 0 || spec.reps == 0 {
        return Err(LlamaError::Invalid("bench needs a prompt of at least 1 token and at least 1 repetition".into()));
    }
    if spec.prompt + spec.gen + 2 > b.capacity() {
        return Err(LlamaError::Invalid(format!(
            "{} prompt + {} generated tokens do not fit in the context of {} (use --ctx-size)",
            spec.prompt,
            spec.gen,
            b.capacity()
        )));
    }
    let seqs = b.batch();
    let prompt = tokens(seqs * spec.prompt, vocab);
    let total = 3 * spec.reps;
    let mut done = 0;
    // Untimed: compile the prefill and decode kernels, record the graph.
    b.rewind(0);
    let first = b.forward_greedy_batch(&prompt)?;
    let t = b.forward_greedy_batch(&first)?;
    b.forward_greedy_batch(&t)?;

    let mut prefill = vec![];
    for _ in 0..spec.reps {
        b.rewind(0);
        let t0 = Instant::now();
        b.forward_greedy_batch(&prompt)?;
        prefill.push((seqs * spec.prompt) as f64 / t0.elapsed().as_secs_f64());
        done += 1;
        progress(done, total);
    }
    let mut decode = |on_device: bool| -> Result<Vec<f64>> {
        let mut rates = vec![];
        for _ in 0..spec.reps {
            b.rewind(spec.prompt);
            let mut t = first.clone();
            let t0 = Instant::now();
            for _ in 0..spec.gen {
                t = if on_device { b.forward_greedy_batch(&t)? } else { b.forward(&t, false)?.chunks(vocab).map(argmax).collect() };
            }
            rates.push((seqs * spec.gen) as f64 / t0.elapsed().as_secs_f64());
            done += 1;
            progress(done, total);
        }
        Ok(rates)
    };
    let dev = decode(true)?;
    let host = decode(false)?;
    Ok(BenchResult { batch: seqs, prefill_tok_s: median(prefill), decode_tok_s: median(dev), decode_host_tok_s: median(host) })
}
