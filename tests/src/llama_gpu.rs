//! `gpu-check smollm2 MODEL.gguf GOLDENS_DIR`: the Llama runtime's GPU backend on a real model against
//! its CPU backend and the transformers goldens (`llama/tests/fixtures/goldens/smollm2.json`): first-step
//! logits, 32-token greedy continuations (how many tokens match, and the logit margin where they part),
//! and decode speed beside the CPU's.

use llama::backend::{create_backend, Backend, Device};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// max |a - b| / max |b|.
fn rel_to_max(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale
}

fn argmax(v: &[f32]) -> u32 {
    v.iter().enumerate().fold((0, f32::MIN), |best, (i, &x)| if x > best.1 { (i, x) } else { best }).0 as u32
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect()).unwrap_or_default()
}

/// `steps` greedy tokens after `first_logits`, each fed back alone; with the logits of every step.
fn greedy(b: &mut dyn Backend, first_logits: Vec<f32>, steps: usize) -> Res<(Vec<u32>, Vec<Vec<f32>>)> {
    let (mut toks, mut all) = (vec![], vec![]);
    let mut logits = first_logits;
    for _ in 0..steps {
        let t = argmax(&logits);
        toks.push(t);
        all.push(logits);
        logits = b.forward(&[t], false)?;
    }
    Ok((toks, all))
}

pub fn run(model: &Path, goldens: &Path) -> Res<()> {
    let m = llama::loader::load(model)?;
    let w = Arc::new(m.weights.clone());
    let g: Value = serde_json::from_str(&std::fs::read_to_string(goldens.join("smollm2.json"))?)?;
    let bytes = std::fs::read(goldens.join("smollm2_first_logits.f32"))?;
    let first: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let vocab = w.config.vocab_size;
    println!("# SMOLLM2 | prompt | first-step logits: gpu~cpu, gpu~transformers, cpu~transformers (max abs err / max |logit|) | greedy 32: gpu=cpu, gpu=transformers, cpu=transformers (tokens equal; first divergence and the GPU's margin there)");
    for (i, case) in g["cases"].as_array().ok_or("no cases")?.iter().enumerate() {
        let prompt = case["prompt"].as_str().unwrap_or("");
        let ids = ids_of(&case["ids"]);
        let want = ids_of(&case["greedy32"]);
        let golden = &first[i * vocab..(i + 1) * vocab];
        let mut gpu = create_backend(Device::Cuda, w.clone(), 256)?;
        let mut cpu = create_backend(Device::Cpu, w.clone(), 256)?;
        let lg = gpu.forward(&ids, false)?;
        let lc = cpu.forward(&ids, false)?;
        let (e_gc, e_gt, e_ct) = (rel_to_max(&lg, &lc), rel_to_max(&lg, golden), rel_to_max(&lc, golden));
        let (tg, logits_g) = greedy(gpu.as_mut(), lg, want.len())?;
        let (tc, _) = greedy(cpu.as_mut(), lc, want.len())?;
        let same = |a: &[u32], b: &[u32]| a.iter().zip(b).filter(|(x, y)| x == y).count();
        let part = match tg.iter().zip(&want).position(|(a, b)| a != b) {
            None => "none".to_string(),
            Some(s) => {
                let l = &logits_g[s];
                format!("step {s}: gpu {} ({:.3}) vs transformers {} ({:.3}), margin {:.3}", tg[s], l[tg[s] as usize], want[s], l[want[s] as usize], l[tg[s] as usize] - l[want[s] as usize])
            }
        };
        println!(
            "SMOLLM2 | {prompt:?} | {e_gc:.2e}, {e_gt:.2e}, {e_ct:.2e} | {}/32, {}/32, {}/32 | divergence from transformers: {part}",
            same(&tg, &tc),
            same(&tg, &want),
            same(&tc, &want)
        );
    }
    // Decode speed: eager launches, one token per step, after a short prompt.
    for (device, steps) in [(Device::Cuda, 128usize), (Device::Cpu, 64)] {
        let mut b = create_backend(device, w.clone(), 512)?;
        let mut logits = b.forward(&[1, 2, 3, 4], false)?;
        let t0 = Instant::now();
        for _ in 0..steps {
            logits = b.forward(&[argmax(&logits)], false)?;
        }
        let s = t0.elapsed().as_secs_f64();
        println!("SMOLLM2-SPEED | {} | {steps} decode steps | {:.1} tokens/s", b.name(), steps as f64 / s);
    }
    Ok(())
}
