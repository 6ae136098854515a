//! Tokenizer built from GGUF `tokenizer.*` metadata, then a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llama::gguf::GgufFile;
use llama::tokenizer::{StreamDecoder, Tokenizer};
use llama_fuzz::{debug, write_input};

fuzz_target!(|data: &[u8]| {
    let path = write_input("input.gguf", data);
    let Ok(g) = GgufFile::open(&path) else {
        return;
    };
    let tok = match Tokenizer::from_gguf(&g) {
        Ok(t) => t,
        Err(e) => {
            if debug() {
                eprintln!("tokenizer: {e}");
            }
            return;
        }
    };
    let _ = tok.vocab_size();
    if let Ok(ids) = tok.encode("Hello world! <|eot_id|> 123 \u{e9}\u{1F600}", true) {
        let text = tok.decode(&ids);
        if debug() {
            eprintln!("{ids:?} -> {text:?}");
        }
        let mut sd = StreamDecoder::new();
        for &id in &ids {
            let _ = sd.push(&tok, id);
        }
        for &id in &ids {
            let _ = tok.token_text(id);
            let _ = tok.is_stop(id);
        }
    }
});
