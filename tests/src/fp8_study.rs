//! `gpu-check fp8-study MODEL.gguf`: which of a model's linear layers lose most to FP8 weights, on the
//! CPU (no GPU needed). Each variant replaces some linears by their per-row e4m3 round trip (the GPU
//! backend's quantization, [`quantize_per_row`]) and runs the CPU backend's forward over fixed texts;
//! the reference is the same forward with every linear rounded to bf16 (the GPU's bf16 weights). With
//! f32 activations this is the weights' share of the error, as W8A16 decode steps (the default) have it.
//! `FP8_STUDY_ALL=1` adds each linear kind and each layer kept in bf16. Printed per variant: top-1 agreement with the reference and the perplexity change, per text.

use crate::llama_gpu::{argmax, log_prob};
use llama::backend::gpu::weights::quantize_per_row;
use llama::backend::{create_backend, Device};
use llama::model::{LayerWeights, LlamaWeights};
use llama::tensor::Tensor;
use std::path::Path;
use std::sync::Arc;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The linears of a block, by name.
const LINEARS: [&str; 7] = ["q", "k", "v", "o", "gate", "up", "down"];

fn linear_mut<'a>(l: &'a mut LayerWeights, name: &str) -> &'a mut Tensor {
    match name {
        "q" => &mut l.wq,
        "k" => &mut l.wk,
        "v" => &mut l.wv,
        "o" => &mut l.wo,
        "gate" => &mut l.w_gate,
        "up" => &mut l.w_up,
        _ => &mut l.w_down,
    }
}

/// How a linear's values are rounded.
#[derive(Clone, Copy, PartialEq)]
enum Round {
    /// Kept as loaded (f32).
    None,
    Bf16,
    /// Per-row e4m3 with the row's largest magnitude at 448 (the GPU backend's).
    Fp8Row,
    /// e4m3 with one scale per block of this many columns of a row (the row's last block may be shorter).
    Fp8Block(usize),
    /// Per-row e4m3, the scale chosen among 32 from `amax / 448` down to half of it for the least
    /// squared error of the row.
    Fp8RowMse,
}

fn e4m3_round_trip(row: &[f32], s: f32) -> impl Iterator<Item = f32> + '_ {
    row.iter().map(move |&x| dsl_core::prelude::e4m3::from_f32((x / s).clamp(-448.0, 448.0)).to_f32() * s)
}

/// `t`'s values rounded as `mode` says.
fn rounded(t: &Tensor, mode: Round) -> Res<Tensor> {
    let v = t.to_f32()?;
    let cols = t.cols();
    let out: Vec<f32> = match mode {
        Round::None => v,
        Round::Bf16 => v.iter().map(|&x| dsl_core::prelude::bf16::from_f32(x).to_f32()).collect(),
        Round::Fp8Row => {
            let (q, s) = quantize_per_row(&v, cols);
            q.chunks(cols).zip(&s).flat_map(|(row, &s)| row.iter().map(move |x| x.to_f32() * s)).collect()
        }
        Round::Fp8Block(b) => v
            .chunks(cols)
            .flat_map(|row| row.chunks(b))
            .flat_map(|blk| {
                let amax = blk.iter().fold(0f32, |m, x| m.max(x.abs()));
                e4m3_round_trip(blk, if amax > 0.0 { amax / 448.0 } else { 1.0 }).collect::<Vec<_>>()
            })
            .collect(),
        Round::Fp8RowMse => v
            .chunks(cols)
            .flat_map(|row| {
                let amax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
                if amax == 0.0 {
                    return row.to_vec();
                }
                let err = |s: f32| e4m3_round_trip(row, s).zip(row).map(|(q, x)| ((q - x) as f64).powi(2)).sum::<f64>();
                let best = (0..32).map(|i| amax / 448.0 * (1.0 - i as f32 / 64.0)).min_by(|a, b| err(*a).total_cmp(&err(*b))).unwrap();
                e4m3_round_trip(row, best).collect()
            })
            .collect(),
    };
    Ok(Tensor::from_f32(&t.name, t.shape.clone(), &out)?)
}

/// The weights with each linear rounded as `mode(layer, name)` says.
fn variant(w: &LlamaWeights, mode: &dyn Fn(usize, &str) -> Round) -> Res<Arc<LlamaWeights>> {
    let mut out = w.clone();
    for (i, l) in out.layers.iter_mut().enumerate() {
        for name in LINEARS {
            let t = linear_mut(l, name);
            *t = rounded(t, mode(i, name))?;
        }
    }
    Ok(Arc::new(out))
}

/// Every position's logits of one forward over `ids`.
fn logits(w: &Arc<LlamaWeights>, ids: &[u32]) -> Res<Vec<f32>> {
    let mut b = create_backend(Device::Cpu, w.clone(), ids.len() + 8, Default::default())?;
    Ok(b.forward(ids, true)?)
}

/// A second, longer text (with [`crate::llama_gpu::TEXT`]) so that one token is not a whole point.
const LONG_TEXT: &str = "In the spring the farmers of the valley begin to plough their fields, and by early summer the hills are green with wheat and barley. The village school closes for the harvest, because every pair of hands is needed. Children carry water and bread to the workers, and in the evenings the families gather in the square to talk about the weather, the prices at the market and the news from the city. When the grain is in, there is a feast with music and dancing that lasts until morning. Then the cold comes down from the mountains. The roads turn to mud, the river rises, and the shepherds bring their flocks down to the lower pastures. During the long winter nights the old people tell stories of wolves, floods and lost travellers, and the young ones listen by the fire and dream of leaving for the coast. Many of them do leave, and some come back years later with money, new clothes and strange ideas, to find that the valley has hardly changed at all. A scientist who studies the climate of the region explained that the winters have become shorter over the last fifty years, and that the river now floods less often than it did. The farmers have noticed it too: they sow earlier, they grow new kinds of fruit, and they worry about the summers, which are hotter and drier than their parents remember.";

pub fn run(model: &Path) -> Res<()> {
    let m = llama::loader::load(model)?;
    let w = &m.weights;
    let vocab = w.config.vocab_size;
    let texts: Vec<Vec<u32>> = [crate::llama_gpu::TEXT, LONG_TEXT].iter().map(|t| m.tokenizer.encode(t, m.tokenizer.add_bos)).collect::<Result<_, _>>()?;
    let reference = variant(w, &|_, _| Round::Bf16)?;
    let refs: Vec<Vec<f32>> = texts.iter().map(|ids| logits(&reference, ids)).collect::<Res<_>>()?;
    let ppl = |l: &[f32], ids: &[u32]| (-(0..ids.len() - 1).map(|p| log_prob(&l[p * vocab..(p + 1) * vocab], ids[p + 1])).sum::<f64>() / (ids.len() - 1) as f64).exp();
    let report = |label: &str, mode: &dyn Fn(usize, &str) -> Round| -> Res<()> {
        let v = variant(w, mode)?;
        let mut cols = vec![];
        for (ids, r) in texts.iter().zip(&refs) {
            let l = logits(&v, ids)?;
            let n = ids.len() - 1;
            let same = (0..n).filter(|&p| argmax(&l[p * vocab..(p + 1) * vocab]) == argmax(&r[p * vocab..(p + 1) * vocab])).count();
            cols.push(format!("{same}/{n} ({:.1}%), ppl {:+.2}%", 100.0 * same as f64 / n as f64, 100.0 * (ppl(&l, ids) / ppl(r, ids) - 1.0)));
        }
        println!("FP8-STUDY | {label} | {}", cols.join(" | "));
        Ok(())
    };
    let layers = w.layers.len();
    println!("# FP8-STUDY | fp8 linears (the rest bf16) | text 1 ({} tokens): top-1 vs bf16, perplexity | text 2 ({} tokens)", texts[0].len(), texts[1].len());
    let fp8 = |keep: bool| if keep { Round::Bf16 } else { Round::Fp8Row };
    report("none (f32 weights: the reference's own rounding)", &|_, _| Round::None)?;
    report("all", &|_, _| Round::Fp8Row)?;
    report("all, scales per 128 columns", &|_, _| Round::Fp8Block(128))?;
    report("all, scales per 32 columns", &|_, _| Round::Fp8Block(32))?;
    report("all, per-row scale of least squared error", &|_, _| Round::Fp8RowMse)?;
    if std::env::var_os("FP8_STUDY_ALL").is_some() {
        for name in LINEARS {
            report(&format!("all but {name}"), &|_, n| fp8(n == name))?;
        }
        for i in 0..layers {
            report(&format!("all but layer {i}"), &|l, _| fp8(l == i))?;
        }
    }
    Ok(())
}
