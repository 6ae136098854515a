//! HF `config.json` parsing (`hf::config_from_json`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(j) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let c = llama::hf::config_from_json(&j);
    if llama_fuzz::debug() {
        eprintln!("{c:?}");
    }
    if let Ok(c) = c {
        // What `LlamaWeights::validate` computes on every load.
        let _ = (c.q_dim(), c.kv_dim());
        if c.rope_dim <= 1 << 16 {
            let _ = c.rope_inv_freqs();
        }
    }
});
