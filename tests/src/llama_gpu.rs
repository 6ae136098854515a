//! `gpu-check smollm2 MODEL.gguf GOLDENS_DIR`: the Llama runtime's GPU backend on a real model against
//! its CPU backend and the transformers goldens (`llama/tests/fixtures/goldens/smollm2.json`): first-step
//! logits, 32-token greedy continuations (how many tokens match, and the logit margin where they part),
//! FP8 weights against bf16 (first-step logits, teacher-forced top-1 agreement and perplexity on a fixed
//! text, in one forward and one token a step as decode runs it, with bf16 and with e4m3 activations), 1,000 decode steps replayed as a CUDA graph against eager launches (the tokens must be
//! identical), and decode speed (graph, eager, CPU).

use llama::backend::gpu::{GpuOptions, WeightFormat};
use llama::backend::{create_backend, Backend, Device};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// max |a - b| / max |b|.
fn rel_to_max(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    // A NaN anywhere is an infinite error (`f32::max` would drop it).
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) }) / scale
}

pub(crate) fn argmax(v: &[f32]) -> u32 {
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
        let mut gpu = create_backend(Device::Cuda, w.clone(), 256, GpuOptions::default())?;
        let mut cpu = create_backend(Device::Cpu, w.clone(), 256, GpuOptions::default())?;
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
    fp8_against_bf16(&m, &w)?;
    graph_against_eager(&w)?;
    // Decode speed: one token per step after a short prompt, the greedy choice made on the device.
    let bf16_graph = GpuOptions::default();
    let eager = GpuOptions { graphs: false, ..bf16_graph };
    let fp8 = GpuOptions { weights: WeightFormat::Fp8, ..bf16_graph };
    for (label, device, opts, steps) in [
        ("cuda bf16 graph", Device::Cuda, bf16_graph, 256usize),
        ("cuda bf16 eager", Device::Cuda, eager, 256),
        ("cuda fp8 graph", Device::Cuda, fp8, 256),
        ("cpu", Device::Cpu, bf16_graph, 64),
    ] {
        let mut b = create_backend(device, w.clone(), 512, opts)?;
        let mut t = b.forward_greedy(&[1, 2, 3, 4])?;
        t = b.forward_greedy(&[t])?;
        let t0 = Instant::now();
        for _ in 0..steps {
            t = b.forward_greedy(&[t])?;
        }
        let s = t0.elapsed().as_secs_f64();
        println!("SMOLLM2-SPEED | {label} | {steps} decode steps | {:.1} tokens/s", steps as f64 / s);
    }
    Ok(())
}

/// A fixed English text for teacher-forced agreement and perplexity.
pub const TEXT: &str = "The history of the city goes back more than two thousand years. It was founded on the banks of a wide river, where traders from the north and the south met to exchange grain, wool and salt. Over the centuries it grew into a busy port, and its markets became famous across the region. Today the old town is a maze of narrow streets, small squares and churches, and the river is crossed by seven bridges. Visitors come for the museums, the food and the long summer evenings, when the whole city seems to be outside.";

/// log-softmax of `logits` at `t`, in f64.
pub(crate) fn log_prob(logits: &[f32], t: u32) -> f64 {
    let m = logits.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let z: f64 = logits.iter().map(|&x| (x as f64 - m).exp()).sum();
    logits[t as usize] as f64 - m - z.ln()
}

/// FP8 weights against bf16 on the GPU: first-step logits, then one forward of `TEXT` with every
/// position's logits: top-1 agreement and each format's perplexity (the CPU's too).
fn fp8_against_bf16(m: &llama::loader::LoadedModel, w: &Arc<llama::model::LlamaWeights>) -> Res<()> {
    let ids = m.tokenizer.encode(TEXT, m.tokenizer.add_bos)?;
    let n = ids.len();
    let vocab = w.config.vocab_size;
    let mut all = vec![];
    for (device, opts) in [(Device::Cuda, GpuOptions::default()), (Device::Cuda, GpuOptions { weights: WeightFormat::Fp8, ..GpuOptions::default() }), (Device::Cpu, GpuOptions::default())] {
        let mut b = create_backend(device, w.clone(), n + 8, opts)?;
        all.push(b.forward(&ids, true)?);
    }
    let ppl = |l: &[f32]| (-(0..n - 1).map(|p| log_prob(&l[p * vocab..(p + 1) * vocab], ids[p + 1])).sum::<f64>() / (n - 1) as f64).exp();
    let top1 = |a: &[f32], b: &[f32]| (0..n - 1).filter(|&p| argmax(&a[p * vocab..(p + 1) * vocab]) == argmax(&b[p * vocab..(p + 1) * vocab])).count();
    let (bf, f8, cpu) = (&all[0], &all[1], &all[2]);
    let (pb, pf, pc) = (ppl(bf), ppl(f8), ppl(cpu));
    println!(
        "SMOLLM2-FP8 | {} tokens | top-1 fp8=bf16 {}/{} ({:.1}%), bf16=cpu {}/{} | perplexity bf16 {pb:.3}, fp8 {pf:.3} ({:+.2}%), cpu {pc:.3} | logits fp8~bf16 {:.2e}",
        n,
        top1(f8, bf),
        n - 1,
        100.0 * top1(f8, bf) as f64 / (n - 1) as f64,
        top1(bf, cpu),
        n - 1,
        100.0 * (pf / pb - 1.0),
        rel_to_max(f8, bf)
    );
    // The same text one token a step, as generation runs it: FP8 decode steps read bf16 activations
    // (W8A16, the default) or e4m3 ones; against bf16 decode steps.
    let fp8 = GpuOptions { weights: WeightFormat::Fp8, ..GpuOptions::default() };
    let mut steps = vec![];
    for opts in [GpuOptions::default(), fp8, GpuOptions { matvec_fp8_activations: true, ..fp8 }] {
        let mut b = create_backend(Device::Cuda, w.clone(), n + 8, opts)?;
        let mut l = Vec::with_capacity(n * vocab);
        for &t in &ids {
            l.extend(b.forward(&[t], false)?);
        }
        steps.push(l);
    }
    let (pb, pw, pq) = (ppl(&steps[0]), ppl(&steps[1]), ppl(&steps[2]));
    println!(
        "SMOLLM2-FP8-DECODE | {} steps | top-1 against bf16: fp8 W8A16 {}/{} ({:.1}%), fp8 W8A8 {}/{} ({:.1}%) | perplexity bf16 {pb:.3}, W8A16 {pw:.3} ({:+.2}%), W8A8 {pq:.3} ({:+.2}%)",
        n,
        top1(&steps[1], &steps[0]),
        n - 1,
        100.0 * top1(&steps[1], &steps[0]) as f64 / (n - 1) as f64,
        top1(&steps[2], &steps[0]),
        n - 1,
        100.0 * top1(&steps[2], &steps[0]) as f64 / (n - 1) as f64,
        100.0 * (pw / pb - 1.0),
        100.0 * (pq / pb - 1.0),
    );
    Ok(())
}

/// `gpu-check graph-eager ARCH WEIGHTS STEPS`: [`graph_against_eager`]'s check on an architecture with
/// random weights made on the device (`llama-3-8b`, `smollm2-135m`...), bf16 or fp8: the decode graph,
/// with this GPU's GEMM configurations (tuned winners, fused split-K combines), replayed `steps` times
/// gives exactly the tokens of eager launches. `norm_in_residual`: with `GpuOptions::norm_in_residual`.
pub fn graph_against_eager_random(arch: &str, weights: &str, steps: usize, norm_in_residual: bool) -> Res<()> {
    use llama::backend::gpu::{GpuBackend, WeightSource};
    let config = llama::arch::by_name(arch)?;
    let mut runs = vec![];
    let mut mode = String::new();
    for graphs in [true, false] {
        let rt = llama::backend::cuda_runtime(&GpuOptions::default())?;
        let sms = rt.device_info().multiprocessors;
        let opts = GpuOptions { graphs, weights: weights.parse()?, norm_in_residual, ..GpuOptions::default() };
        let mut b = GpuBackend::new(rt, "cuda", sms, WeightSource::Random { config: &config, seed: 7 }, steps + 16, opts)?;
        if graphs {
            mode = b.launch_mode();
        }
        let mut t = b.forward_greedy(&[1, 504, 3458, 314])?;
        let mut toks = vec![t];
        for _ in 0..steps {
            t = b.forward_greedy(&[t])?;
            toks.push(t);
        }
        runs.push(toks);
    }
    let same = runs[0].iter().zip(&runs[1]).filter(|(a, b)| a == b).count();
    let first = runs[0].iter().zip(&runs[1]).position(|(a, b)| a != b);
    let distinct = runs[0].iter().collect::<std::collections::HashSet<_>>().len();
    let verdict = if same == runs[0].len() { "PASS" } else { "FAIL" };
    println!("GRAPH-EAGER | {arch} {weights} (random) | {mode} | {steps} decode steps | graph = eager: {same}/{} tokens ({distinct} distinct) | first difference: {first:?} | {verdict}", runs[0].len());
    if verdict == "FAIL" {
        return Err("the decode graph's tokens differ from eager launches".into());
    }
    Ok(())
}

/// `gpu-check batch ARCH WEIGHTS SEQS STEPS`: `seqs` sequences side by side (`GpuOptions::batch`, the
/// decode steps replayed as a graph) on an architecture with random weights, each with its own prompt,
/// against each sequence alone on the same GEMM kind (the split-K GEMM at every row count, so that only
/// the row count and its tuned tiles differ). Each step feeds the batched run's choices to both.
///
/// The measure is the logits' error relative to their largest, at every prefill and decode step. Other
/// tiles round differently, and on deep random models that grows through the layers (SmolLM2 bf16:
/// about 1e-2), so the bound is set by what a mix-up would show instead: each sequence must be at
/// least 5 times closer to itself alone than to any other sequence alone at the same step (a sequence
/// reading another's queries, keys or positions would be as close to that one as to itself). The
/// greedy choices that agree are reported.
///
/// `heuristic`: the GEMMs' heuristic tiles instead of the tuned winners (FP8) and one-token prompts,
/// so that every GEMM has at most 16 rows batched (`seqs` ≤ 16) and one alone, which the heuristic
/// cuts into the same tiles and splits, and the attention's keys fit its first split: the batched
/// logits must then equal each sequence's alone bit for bit. (Longer prompts put more rows in the
/// batched prefill's GEMMs than in each one alone: other tiles, other sums.)
pub fn batch_against_alone_random(arch: &str, weights: &str, seqs: usize, steps: usize, heuristic: bool) -> Res<()> {
    use llama::backend::gpu::{GpuBackend, WeightSource};
    if seqs < 2 || (heuristic && seqs > 16) {
        return Err("gpu-check batch needs 2 sequences or more (at most 16 with `heuristic`)".into());
    }
    let plen = if heuristic { 1 } else { 24 };
    let config = llama::arch::by_name(arch)?;
    let vocab = config.vocab_size;
    let opts = GpuOptions { weights: weights.parse()?, matvec_rows: None, tuned_configs: !heuristic, ..GpuOptions::default() };
    let make = |batch: usize| -> Res<GpuBackend<codegen_ptx::runtime::CudaRuntime>> {
        let rt = llama::backend::cuda_runtime(&opts)?;
        let sms = rt.device_info().multiprocessors;
        Ok(GpuBackend::new(rt, "cuda", sms, WeightSource::Random { config: &config, seed: 7 }, steps + 40, GpuOptions { batch, ..opts })?)
    };
    // The batched run first, keeping every step's logits and choices; then each sequence alone: one
    // copy of the weights on the device at a time.
    let mut batched = make(seqs)?;
    let mode = batched.launch_mode();
    let prompts = llama::bench::tokens(seqs * plen, vocab);
    let mut logits = vec![batched.forward(&prompts, false)?];
    let mut fed = vec![];
    for _ in 0..steps {
        let chosen: Vec<u32> = logits.last().expect("one step at least").chunks(vocab).map(argmax).collect();
        logits.push(batched.forward(&chosen, false)?);
        fed.push(chosen);
    }
    drop(batched);
    // alone[b][step]: sequence b alone, fed the batched run's choices for it.
    let mut alone = vec![];
    for b in 0..seqs {
        let mut a = make(1)?;
        let mut runs = vec![a.forward(&prompts[b * plen..][..plen], false)?];
        for t in &fed {
            runs.push(a.forward(&[t[b]], false)?);
        }
        alone.push(runs);
    }
    let (mut worst, mut closest_other, mut agree, mut total) = (0f32, f32::INFINITY, 0, 0);
    for (step, got) in logits.iter().enumerate() {
        for b in 0..seqs {
            let got = &got[b * vocab..][..vocab];
            let own = &alone[b][step];
            worst = worst.max(rel_to_max(got, own));
            for other in (0..seqs).filter(|&o| o != b) {
                closest_other = closest_other.min(rel_to_max(got, &alone[other][step]));
            }
            agree += usize::from(argmax(got) == argmax(own));
            total += 1;
        }
    }
    let verdict = if worst * 5.0 < closest_other && (!heuristic || worst == 0.0) { "PASS" } else { "FAIL" };
    println!(
        "BATCH | {arch} {weights} (random) | {mode} | {seqs} sequences, {plen}-token prompts, {steps} decode steps | worst relative logit error to each alone {worst:.2e}, closest to another sequence alone {closest_other:.2e} (must be 5x more{}) | greedy choices agree {agree}/{total} | {verdict}",
        if heuristic { ", and 0 with the same tiles" } else { "" }
    );
    if verdict == "FAIL" {
        return Err("a batched sequence's logits are not clearly its own".into());
    }
    Ok(())
}

/// 1,000 greedy decode steps replayed as one recorded graph per step against the same steps launched
/// eagerly: the tokens must be the same, every one.
fn graph_against_eager(w: &Arc<llama::model::LlamaWeights>) -> Res<()> {
    let steps = 1000;
    let mut runs = vec![];
    for graphs in [true, false] {
        let mut b = create_backend(Device::Cuda, w.clone(), steps + 16, GpuOptions { graphs, ..GpuOptions::default() })?;
        let mut t = b.forward_greedy(&[1, 504, 3458, 314])?;
        let mut toks = vec![t];
        for _ in 0..steps {
            t = b.forward_greedy(&[t])?;
            toks.push(t);
        }
        runs.push(toks);
    }
    let same = runs[0].iter().zip(&runs[1]).filter(|(a, b)| a == b).count();
    let first = runs[0].iter().zip(&runs[1]).position(|(a, b)| a != b);
    println!("SMOLLM2-GRAPH | {steps} decode steps | graph = eager: {same}/{} tokens | first difference: {first:?} | {}", runs[0].len(), if same == runs[0].len() { "PASS" } else { "FAIL" });
    Ok(())
}
