//! The generation loop: one batched prefill, then token-by-token decode,
//! streaming text through a callback and timing both phases.

use crate::backend::Backend;
use crate::error::{LlamaError, Result};
use crate::sampler::Sampler;
use crate::tokenizer::{StreamDecoder, Tokenizer};
use std::time::Instant;

/// Token counts and timings of one generation.
#[derive(Debug, Clone, Default)]
pub struct GenStats {
    pub prefill_tokens: usize,
    pub prefill_secs: f64,
    pub decode_tokens: usize,
    pub decode_secs: f64,
}

impl GenStats {
    fn rate(n: usize, s: f64) -> f64 {
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }
    /// `prefill: N tok, X tok/s; decode: M tok, Y tok/s`
    pub fn summary(&self) -> String {
        format!(
            "prefill: {} tok, {:.1} tok/s; decode: {} tok, {:.1} tok/s",
            self.prefill_tokens,
            Self::rate(self.prefill_tokens, self.prefill_secs),
            self.decode_tokens,
            Self::rate(self.decode_tokens, self.decode_secs)
        )
    }
}

/// Result of [`generate`].
pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    pub stats: GenStats,
    /// True when a stop token ended generation (rather than `max_tokens`).
    pub stopped: bool,
}

/// Generates up to `max_tokens` tokens after `prompt`.
///
/// The backend's cache may already hold a prefix of `prompt` (chat turns):
/// tokens up to `backend.position()` are assumed cached and only the rest is
/// prefilled. `on_text` receives text as soon as it is final.
pub fn generate(
    backend: &mut dyn Backend,
    tok: &Tokenizer,
    prompt: &[u32],
    max_tokens: usize,
    sampler: &mut Sampler,
    mut on_text: impl FnMut(&str) -> Result<()>,
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(LlamaError::Invalid("the prompt is empty".into()));
    }
    if backend.batch() != 1 {
        return Err(LlamaError::Invalid(format!("generation runs one sequence; this backend runs {} side by side", backend.batch())));
    }
    let cap = backend.capacity();
    if prompt.len() >= cap {
        return Err(LlamaError::Invalid(format!(
            "the prompt is {} tokens long, which does not fit in the context of {cap} tokens",
            prompt.len()
        )));
    }
    let cached = backend.position().min(prompt.len() - 1);
    backend.rewind(cached);
    let mut stats = GenStats {
        prefill_tokens: prompt.len() - cached,
        ..Default::default()
    };
    // Plain greedy decoding lets the backend pick each token (on the GPU: one id copied back per
    // step instead of the logits); anything else samples from the logits here.
    let on_device = sampler.is_plain_greedy();
    let mut step = |backend: &mut dyn Backend, tokens: &[u32], history: &[u32]| -> Result<u32> {
        if on_device {
            backend.forward_greedy(tokens)
        } else {
            let logits = backend.forward(tokens, false)?;
            Ok(sampler.sample(&logits, history))
        }
    };
    let t0 = Instant::now();
    let mut next = step(backend, &prompt[cached..], prompt)?;
    stats.prefill_secs = t0.elapsed().as_secs_f64();

    let mut history: Vec<u32> = prompt.to_vec();
    let mut out = Vec::new();
    let mut dec = StreamDecoder::new();
    let mut stopped = false;
    let max_tokens = max_tokens.min(cap - prompt.len());
    let t1 = Instant::now();
    while out.len() < max_tokens {
        if tok.is_stop(next) {
            stopped = true;
            break;
        }
        out.push(next);
        history.push(next);
        on_text(&dec.push(tok, next)?)?;
        if out.len() >= max_tokens || backend.position() >= cap {
            break;
        }
        next = step(backend, &[next], &history)?;
        stats.decode_tokens += 1;
    }
    stats.decode_secs = t1.elapsed().as_secs_f64();
    let text = tok.decode(&out)?;
    Ok(Generation {
        tokens: out,
        text,
        stats,
        stopped,
    })
}
