//! Tokenizer: a `tokenizers::Tokenizer` built from GGUF metadata or loaded
//! from an HF `tokenizer.json`, plus the special-token ids the generator needs.
//!
//! GGUF stores the vocabulary, not a `tokenizer.json`, so the pipeline is
//! rebuilt here to match llama.cpp:
//! * `tokenizer.ggml.model = "gpt2"`: byte-level BPE from `tokens` + `merges`,
//!   pre-tokenized according to `tokenizer.ggml.pre` (gpt2, smollm, llama3...).
//! * `tokenizer.ggml.model = "llama"`: SentencePiece BPE (Llama 2). GGUF keeps
//!   only token scores, so merges are derived from the scores (as HF's
//!   `SentencePieceExtractor` does), with byte fallback.
//!
//! Control and user-defined tokens are registered as special tokens so that
//! the markers a chat template writes (`<|im_start|>`, `<|eot_id|>`) encode to
//! their single ids.

use crate::error::{LlamaError, Result};
use crate::gguf::GgufFile;
use std::collections::HashMap;
use std::path::Path;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
};

/// Llama 3's pre-tokenizer regex (`tokenizer.ggml.pre = "llama-bpe"`).
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

fn tok_err(e: impl std::fmt::Display) -> LlamaError {
    LlamaError::Tokenizer(e.to_string())
}

/// A tokenizer with the model's special tokens.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    /// Ids that end generation (eos, end-of-turn, ...).
    pub stop_ids: Vec<u32>,
    /// Whether a BOS token is prepended to raw prompts.
    pub add_bos: bool,
    /// Jinja chat template, if the model ships one.
    pub chat_template: Option<String>,
}

/// Names of end-of-turn markers used by the supported model families.
const STOP_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "</s>",
];

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.*` metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Tokenizer> {
        let model = g.get_str("tokenizer.ggml.model")?;
        let tokens: Vec<String> = g
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .ok_or_else(|| LlamaError::MissingKey("tokenizer.ggml.tokens".into()))?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| LlamaError::MissingKey("tokenizer.ggml.tokens (strings)".into()))?;
        let types: Vec<i64> = match g
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
        {
            Some(a) => a.iter().map(|v| v.as_f64().unwrap_or(1.0) as i64).collect(),
            None => vec![1; tokens.len()],
        };
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let add_space_prefix = g
            .get("tokenizer.ggml.add_space_prefix")
            .and_then(|v| v.as_bool());
        let mut inner = match model {
            "gpt2" => {
                let merges: Vec<(String, String)> = g
                    .get("tokenizer.ggml.merges")
                    .and_then(|v| v.as_array())
                    .ok_or_else(|| LlamaError::MissingKey("tokenizer.ggml.merges".into()))?
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .and_then(|s| s.split_once(' '))
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        LlamaError::MissingKey("tokenizer.ggml.merges (\"a b\" strings)".into())
                    })?;
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .build()
                    .map_err(tok_err)?;
                let mut t = tokenizers::Tokenizer::new(bpe);
                let pre = g
                    .get("tokenizer.ggml.pre")
                    .and_then(|v| v.as_str())
                    .unwrap_or("gpt2");
                t.with_pre_tokenizer(Some(byte_level_pre_tokenizer(pre)?));
                t.with_decoder(Some(DecoderWrapper::from(ByteLevel::default())));
                t
            }
            "llama" => {
                let scores: Vec<f32> =
                    match g.get("tokenizer.ggml.scores").and_then(|v| v.as_array()) {
                        Some(a) => a.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect(),
                        None => return Err(LlamaError::MissingKey("tokenizer.ggml.scores".into())),
                    };
                let merges = spm_merges(&tokens, &scores, &vocab);
                let unk = g
                    .get_u64("tokenizer.ggml.unknown_token_id")
                    .ok()
                    .and_then(|i| tokens.get(i as usize).cloned())
                    .unwrap_or_else(|| "<unk>".into());
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .unk_token(unk)
                    .fuse_unk(true)
                    .byte_fallback(true)
                    .build()
                    .map_err(tok_err)?;
                let mut t = tokenizers::Tokenizer::new(bpe);
                let prefix = add_space_prefix.unwrap_or(true);
                t.with_normalizer(Some(spm_normalizer(prefix)?));
                t.with_decoder(Some(spm_decoder(prefix)?));
                t
            }
            other => {
                return Err(LlamaError::Tokenizer(format!(
                    "unsupported tokenizer model `{other}` (supported: gpt2, llama)"
                )))
            }
        };
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(types.iter().chain(std::iter::repeat(&1)))
            .filter(|(_, ty)| **ty == TOKEN_CONTROL || **ty == TOKEN_USER_DEFINED)
            .map(|(t, _)| AddedToken::from(t.clone(), true))
            .collect();
        inner.add_special_tokens(&specials);

        let id = |k: &str| {
            g.get_u64(k)
                .ok()
                .map(|v| v as u32)
                .filter(|&v| (v as usize) < tokens.len())
        };
        let bos_id = id("tokenizer.ggml.bos_token_id");
        let eos_id = id("tokenizer.ggml.eos_token_id");
        let mut stop_ids: Vec<u32> = [
            eos_id,
            id("tokenizer.ggml.eot_token_id"),
            id("tokenizer.ggml.eom_token_id"),
        ]
        .into_iter()
        .flatten()
        .collect();
        for name in STOP_NAMES {
            if let Some(i) = tokens.iter().position(|t| t == name) {
                if types.get(i) == Some(&TOKEN_CONTROL) {
                    stop_ids.push(i as u32);
                }
            }
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        let add_bos = g
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(model == "llama");
        let chat_template = g
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        Ok(Tokenizer {
            inner,
            bos_id,
            eos_id,
            stop_ids,
            add_bos,
            chat_template,
        })
    }

    /// Loads `tokenizer.json` (+ `tokenizer_config.json`, `generation_config.json`)
    /// from a Hugging Face model directory.
    pub fn from_hf_dir(dir: &Path) -> Result<Tokenizer> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| LlamaError::Tokenizer(format!("{}: {e}", path.display())))?;
        let read_json = |name: &str| -> Result<Option<serde_json::Value>> {
            let p = dir.join(name);
            if !p.exists() {
                return Ok(None);
            }
            let s = std::fs::read_to_string(&p).map_err(|e| LlamaError::io(&p, e))?;
            serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| LlamaError::Hf(format!("{}: {e}", p.display())))
        };
        let cfg = read_json("tokenizer_config.json")?.unwrap_or(serde_json::Value::Null);
        let gen = read_json("generation_config.json")?.unwrap_or(serde_json::Value::Null);
        let token_text = |v: &serde_json::Value| -> Option<String> {
            match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => o
                    .get("content")
                    .and_then(|c| c.as_str())
                    .map(str::to_string),
                _ => None,
            }
        };
        let by_name = |key: &str| {
            cfg.get(key)
                .and_then(token_text)
                .and_then(|t| inner.token_to_id(&t))
        };
        let bos_id = by_name("bos_token").or_else(|| {
            gen.get("bos_token_id")
                .and_then(|v| v.as_u64())
                .map(|v| v as u32)
        });
        let eos_id = by_name("eos_token");
        let mut stop_ids: Vec<u32> = eos_id.into_iter().collect();
        match gen.get("eos_token_id") {
            Some(serde_json::Value::Number(n)) => stop_ids.extend(n.as_u64().map(|v| v as u32)),
            Some(serde_json::Value::Array(a)) => {
                stop_ids.extend(a.iter().filter_map(|v| v.as_u64()).map(|v| v as u32))
            }
            _ => {}
        }
        for name in STOP_NAMES {
            if let Some(i) = inner.token_to_id(name) {
                if inner.get_added_vocabulary().is_special_token(name) {
                    stop_ids.push(i);
                }
            }
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        let add_bos = match cfg.get("add_bos_token").and_then(|v| v.as_bool()) {
            Some(b) => b,
            // No explicit flag: see whether the post-processor adds BOS.
            None => match (bos_id, inner.encode("a", true)) {
                (Some(b), Ok(e)) => e.get_ids().first() == Some(&b),
                _ => false,
            },
        };
        let chat_template = match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or(a.first())
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string),
            _ => None,
        };
        Ok(Tokenizer {
            inner,
            bos_id,
            eos_id,
            stop_ids,
            add_bos,
            chat_template,
        })
    }

    /// Encodes `text`; special-token markers in the text become their ids.
    /// A BOS is prepended when `add_bos` and the text does not already start
    /// with one.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if let (true, Some(b)) = (add_bos, self.bos_id) {
            if enc.get_ids().first() != Some(&b) {
                ids.push(b);
            }
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Decodes ids to text (special tokens are skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(tok_err)
    }

    /// The text of a single token (special tokens included).
    pub fn token_text(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Whether `id` ends generation.
    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_ids.contains(&id)
    }

    /// The underlying `tokenizers` object (e.g. to save it as `tokenizer.json`).
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// The pre-tokenizer llama.cpp uses for a `tokenizer.ggml.pre` name.
fn byte_level_pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper> {
    let bl = |regex: bool| PreTokenizerWrapper::from(ByteLevel::new(false, true, regex));
    Ok(match pre {
        "llama3" | "llama-bpe" | "llama-v3" | "smaug-bpe" => {
            let split = Split::new(
                SplitPattern::Regex(LLAMA3_PATTERN.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(tok_err)?;
            PreTokenizerWrapper::from(PreSequence::new(vec![split.into(), bl(false)]))
        }
        "smollm" | "starcoder" | "refact" | "codeshell" | "command-r" | "exaone" | "minerva-7b" => {
            PreTokenizerWrapper::from(PreSequence::new(vec![Digits::new(true).into(), bl(true)]))
        }
        // "gpt2", "default" and anything unknown: the GPT-2 regex.
        _ => bl(true),
    })
}

fn spm_normalizer(add_prefix: bool) -> Result<NormalizerWrapper> {
    let replace = Replace::new(" ", "\u{2581}").map_err(tok_err)?;
    Ok(if add_prefix {
        NormalizerWrapper::from(NormSequence::new(vec![
            Prepend::new("\u{2581}".into()).into(),
            replace.into(),
        ]))
    } else {
        replace.into()
    })
}

fn spm_decoder(strip_prefix: bool) -> Result<DecoderWrapper> {
    let mut v: Vec<DecoderWrapper> = vec![
        Replace::new("\u{2581}", " ").map_err(tok_err)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if strip_prefix {
        v.push(Strip::new(' ', 1, 0).into());
    }
    Ok(DecoderSequence::new(v).into())
}

/// Derives BPE merges from SentencePiece scores: every way of splitting a
/// token into two tokens is a merge, ranked by the merged token's score
/// (higher first), which is the order SentencePiece applies them in.
pub fn spm_merges(tokens: &[String], scores: &[f32], vocab: &Vocab) -> Vec<(String, String)> {
    let mut cands: Vec<(f32, u32, String, String)> = Vec::new();
    for (id, t) in tokens.iter().enumerate() {
        if t.chars().count() < 2 {
            continue;
        }
        let score = scores.get(id).copied().unwrap_or(0.0);
        for (pos, _) in t.char_indices().skip(1) {
            let (a, b) = t.split_at(pos);
            if vocab.contains_key(a) && vocab.contains_key(b) {
                cands.push((score, id as u32, a.to_string(), b.to_string()));
            }
        }
    }
    cands.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    cands.into_iter().map(|(_, _, a, b)| (a, b)).collect()
}

/// Incremental detokenizer for streaming: feeds ids, returns the new text.
///
/// Decoding the whole sequence each time (rather than token by token) keeps
/// multi-token characters and SentencePiece spaces right; text ending in an
/// incomplete UTF-8 sequence (U+FFFD) is held back until it completes.
pub struct StreamDecoder {
    ids: Vec<u32>,
    emitted: usize,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamDecoder {
    pub fn new() -> Self {
        StreamDecoder {
            ids: Vec::new(),
            emitted: 0,
        }
    }
    /// Adds a token; returns text that is now final.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = tok.decode(&self.ids)?;
        if text.ends_with('\u{FFFD}')
            || text.len() < self.emitted
            || !text.is_char_boundary(self.emitted)
        {
            return Ok(String::new());
        }
        let new = text[self.emitted..].to_string();
        self.emitted = text.len();
        Ok(new)
    }
}

/// Convenience: a map from token text to id for tests and tools.
pub fn vocab_map(tok: &Tokenizer) -> HashMap<String, u32> {
    tok.inner.get_vocab(true).into_iter().collect()
}
