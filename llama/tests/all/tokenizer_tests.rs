//! Tokenizers built from GGUF metadata (gpt2 byte-level BPE and llama
//! SentencePiece), and chat templates.

use crate::common::write_temp;
use llama::chat::{render, Message};
use llama::gguf::{GgufFile, Value};
use llama::gguf_writer::GgufWriter;
use llama::tokenizer::Tokenizer;

fn strings(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect())
}

fn open(g: &GgufWriter) -> Tokenizer {
    let dir = tempfile::tempdir().unwrap();
    let f = GgufFile::open(write_temp(&dir, "t.gguf", &g.to_bytes())).unwrap();
    Tokenizer::from_gguf(&f).unwrap()
}

fn gpt2(pre: &str) -> Tokenizer {
    let toks = [
        "<|im_start|>",
        "<|im_end|>",
        "h",
        "e",
        "l",
        "o",
        "\u{120}",
        "w",
        "r",
        "d",
        "he",
        "ll",
        "hell",
        "hello",
        "\u{120}w",
        "or",
        "\u{120}wor",
        "ld",
        "\u{120}world",
        "1",
        "2",
        "12",
        "\u{120}1",
    ];
    let merges = [
        "h e",
        "l l",
        "he ll",
        "hell o",
        "\u{120} w",
        "o r",
        "\u{120}w or",
        "l d",
        "\u{120}wor ld",
        "1 2",
        "\u{120} 1",
    ];
    let types: Vec<Value> = toks
        .iter()
        .enumerate()
        .map(|(i, _)| Value::I32(if i < 2 { 3 } else { 1 }))
        .collect();
    let mut g = GgufWriter::new();
    g.kv("tokenizer.ggml.model", Value::String("gpt2".into()))
        .kv("tokenizer.ggml.pre", Value::String(pre.into()))
        .kv("tokenizer.ggml.tokens", strings(&toks))
        .kv("tokenizer.ggml.token_type", Value::Array(types))
        .kv("tokenizer.ggml.merges", strings(&merges))
        .kv("tokenizer.ggml.bos_token_id", Value::U32(0))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(1))
        .kv("tokenizer.ggml.add_bos_token", Value::Bool(false))
        .kv(
            "tokenizer.chat_template",
            Value::String(llama::chat::CHATML.into()),
        );
    open(&g)
}

#[test]
fn gpt2_byte_level_bpe() {
    let t = gpt2("gpt2");
    assert_eq!(t.encode("hello world", false).unwrap(), vec![13, 18]);
    assert_eq!(t.decode(&[13, 18]).unwrap(), "hello world");
    // Special markers become single ids; decode skips them.
    let ids = t
        .encode("<|im_start|>hello world<|im_end|>", false)
        .unwrap();
    assert_eq!(ids, vec![0, 13, 18, 1]);
    assert_eq!(t.decode(&ids).unwrap(), "hello world");
    assert!(t.is_stop(1));
    assert!(!t.add_bos);
    assert_eq!(t.encode("hello", true).unwrap(), vec![0, 13]);
    // gpt2 keeps "12" whole.
    assert_eq!(t.encode("12", false).unwrap(), vec![21]);
}

#[test]
fn smollm_pre_tokenizer_splits_digits() {
    let t = gpt2("smollm");
    assert_eq!(t.encode("12", false).unwrap(), vec![19, 20]);
    assert_eq!(t.encode("hello world", false).unwrap(), vec![13, 18]);
}

#[test]
fn llama3_pre_tokenizer_builds() {
    let t = gpt2("llama-bpe");
    assert_eq!(t.encode("hello world", false).unwrap(), vec![13, 18]);
    assert_eq!(t.encode("12", false).unwrap(), vec![21]);
}

#[test]
fn sentencepiece_from_scores() {
    let mut toks: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    for b in 0..256 {
        toks.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    let pieces = [
        ("\u{2581}", -0.5),
        ("h", -10.0),
        ("e", -10.0),
        ("l", -10.0),
        ("o", -10.0),
        ("\u{2581}h", -1.0),
        ("he", -5.0),
        ("ll", -2.0),
        ("\u{2581}he", -1.5),
        ("\u{2581}hell", -3.0),
        ("llo", -4.0),
        ("\u{2581}hello", -6.0),
    ];
    let mut scores = vec![0.0f32; toks.len()];
    for (p, s) in pieces {
        toks.push(p.into());
        types.push(1);
        scores.push(s);
    }
    let base = 259;
    let mut g = GgufWriter::new();
    let tr: Vec<&str> = toks.iter().map(String::as_str).collect();
    g.kv("tokenizer.ggml.model", Value::String("llama".into()))
        .kv("tokenizer.ggml.tokens", strings(&tr))
        .kv(
            "tokenizer.ggml.scores",
            Value::Array(scores.iter().map(|s| Value::F32(*s)).collect()),
        )
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(types.iter().map(|t| Value::I32(*t)).collect()),
        )
        .kv("tokenizer.ggml.bos_token_id", Value::U32(1))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(2))
        .kv("tokenizer.ggml.unknown_token_id", Value::U32(0));
    let t = open(&g);
    assert!(t.add_bos, "llama tokenizers add BOS by default");
    let ids = t.encode("hello", true).unwrap();
    assert_eq!(ids, vec![1, base + 11]);
    assert_eq!(t.decode(&ids).unwrap(), "hello");
    // "é" is not in the vocabulary: byte fallback to <0xC3><0xA9>.
    let ids = t.encode("hello é", false).unwrap();
    assert_eq!(ids, vec![base + 11, base, 3 + 0xC3, 3 + 0xA9]);
    assert_eq!(t.decode(&ids).unwrap(), "hello é");
    assert!(t.is_stop(2));
}

#[test]
fn chat_template_rendering() {
    let t = gpt2("gpt2");
    let msgs = [
        Message::new("system", "S"),
        Message::new("user", "hello world"),
    ];
    let text = render(t.chat_template.as_deref().unwrap(), &msgs, "", "", true).unwrap();
    assert_eq!(text, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n");
    let ids = t.encode(&text, false).unwrap();
    assert_eq!(ids.first(), Some(&0));
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 2);
    // Llama 3 style templates: bos_token, python string methods, raise_exception.
    let l3 = "{{ bos_token }}{% for m in messages %}{{ m['role'] | upper }}:{{ m['content'].strip() }}{% endfor %}{% if not add_generation_prompt %}{{ raise_exception('no') }}{% endif %}";
    let out = render(l3, &[Message::new("user", "  hi  ")], "<s>", "</s>", true).unwrap();
    assert_eq!(out, "<s>USER:hi");
    let e = render(l3, &[Message::new("user", "hi")], "<s>", "</s>", false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no"), "{e}");
    assert!(render("{% for %}", &[], "", "", true).is_err());
}

#[test]
fn stream_decoder_holds_partial_utf8() {
    let t = gpt2("gpt2");
    let mut d = llama::tokenizer::StreamDecoder::new();
    let a = d.push(&t, 13).unwrap();
    let b = d.push(&t, 18).unwrap();
    assert_eq!(format!("{a}{b}"), "hello world");
}

#[test]
fn missing_tokenizer_keys() {
    let mut g = GgufWriter::new();
    g.kv("tokenizer.ggml.model", Value::String("gpt2".into()));
    let dir = tempfile::tempdir().unwrap();
    let f = GgufFile::open(write_temp(&dir, "t.gguf", &g.to_bytes())).unwrap();
    let e = Tokenizer::from_gguf(&f).err().unwrap().to_string();
    assert!(e.contains("tokenizer.ggml.tokens"), "{e}");
    let mut g = GgufWriter::new();
    g.kv("tokenizer.ggml.model", Value::String("bert".into()))
        .kv("tokenizer.ggml.tokens", strings(&["a"]));
    let f = GgufFile::open(write_temp(&dir, "t2.gguf", &g.to_bytes())).unwrap();
    assert!(Tokenizer::from_gguf(&f).is_err());
}

#[test]
fn llama2_fallback_template() {
    let msgs = [
        Message::new("system", "Be brief."),
        Message::new("user", "Hi"),
        Message::new("assistant", "Hello!"),
        Message::new("user", "Bye"),
    ];
    let out = render(llama::chat::LLAMA2, &msgs, "<s>", "</s>", true).unwrap();
    assert_eq!(
        out,
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]"
    );
}
