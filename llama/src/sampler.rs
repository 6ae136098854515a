//! Next-token sampling: repetition penalty, then greedy or
//! temperature / top-k / top-p sampling from a seeded RNG (so `--seed`
//! reproduces a run exactly).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Sampling parameters.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    /// Softmax temperature; `<= 0` means greedy.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability mass reaches `top_p` (1 = all).
    pub top_p: f32,
    /// llama.cpp-style penalty on recently generated tokens (1 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// Always take the most likely token.
    pub greedy: bool,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            greedy: false,
            seed: 42,
        }
    }
}

/// Stateful sampler (owns the RNG).
pub struct Sampler {
    pub cfg: SamplerConfig,
    rng: StdRng,
}

/// Index of the largest value (first one on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Sampler {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Sampler { cfg, rng }
    }

    /// Divides positive logits / multiplies negative ones of tokens seen in
    /// the last `repeat_last_n` of `history` by the penalty (each token once).
    pub fn apply_repeat_penalty(&self, logits: &mut [f32], history: &[u32]) {
        let p = self.cfg.repeat_penalty;
        if p == 1.0 || p <= 0.0 {
            return;
        }
        let start = history.len().saturating_sub(self.cfg.repeat_last_n);
        let mut seen: Vec<u32> = history[start..].to_vec();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l > 0.0 { *l / p } else { *l * p };
            }
        }
    }

    /// True when every choice is the plain argmax of the logits (greedy, no repetition penalty): what a
    /// backend can pick on the device.
    pub fn is_plain_greedy(&self) -> bool {
        (self.cfg.greedy || self.cfg.temperature <= 0.0) && (self.cfg.repeat_penalty == 1.0 || self.cfg.repeat_penalty <= 0.0)
    }

    /// Picks the next token from `logits` given the tokens so far.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        if logits.is_empty() {
            return 0;
        }
        let mut l = logits.to_vec();
        self.apply_repeat_penalty(&mut l, history);
        if self.cfg.greedy || self.cfg.temperature <= 0.0 {
            return argmax(&l);
        }
        let mut idx: Vec<u32> = (0..l.len() as u32).collect();
        idx.sort_unstable_by(|a, b| l[*b as usize].total_cmp(&l[*a as usize]).then(a.cmp(b)));
        if self.cfg.top_k > 0 && self.cfg.top_k < idx.len() {
            idx.truncate(self.cfg.top_k);
        }
        let t = self.cfg.temperature;
        let mx = l[idx[0] as usize];
        let mut probs: Vec<f32> = idx
            .iter()
            .map(|&i| ((l[i as usize] - mx) / t).exp())
            .collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        if self.cfg.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if acc >= self.cfg.top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            idx.truncate(keep);
        }
        let total: f32 = probs.iter().sum();
        let mut r = self.rng.gen::<f32>() * total;
        for (i, p) in idx.iter().zip(&probs) {
            if r < *p {
                return *i;
            }
            r -= p;
        }
        idx[idx.len() - 1]
    }
}
