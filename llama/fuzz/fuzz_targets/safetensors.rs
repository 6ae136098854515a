//! HF loading path: a fixed minimal `config.json` next to a fuzzed
//! `model.safetensors`, loaded with `hf::load_weights`; tensors that load are
//! dequantized. Every input must give `Ok` or `Err`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llama_fuzz::{debug, scratch_dir, write_input, MAX_DEQUANT_ELEMS, TINY_CONFIG};
use std::sync::Once;

fuzz_target!(|data: &[u8]| {
    static CONFIG: Once = Once::new();
    CONFIG.call_once(|| {
        write_input("config.json", TINY_CONFIG.as_bytes());
    });
    write_input("model.safetensors", data);
    let w = match llama::hf::load_weights(scratch_dir()) {
        Ok(w) => w,
        Err(e) => {
            if debug() {
                eprintln!("load: {e}");
            }
            return;
        }
    };
    if debug() {
        eprintln!("loaded: tied={} {:?}", w.tied_embeddings, w.tok_embd);
    }
    let mut all = vec![&w.tok_embd, &w.norm, &w.output];
    for l in &w.layers {
        all.extend([
            &l.attn_norm,
            &l.wq,
            &l.wk,
            &l.wv,
            &l.wo,
            &l.ffn_norm,
            &l.w_gate,
            &l.w_up,
            &l.w_down,
        ]);
    }
    for t in all {
        if (t.n_elements() as u64) <= MAX_DEQUANT_ELEMS {
            let _ = t.to_f32();
        }
    }
});
