//! GGUF reader: open/parse, read metadata, list tensors, dequantize each
//! (bounded) tensor, then build the config and the weights from it.
//! Every input must give `Ok` or `Err`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llama::config::LlamaConfig;
use llama::gguf::GgufFile;
use llama::model::LlamaWeights;
use llama_fuzz::{debug, write_input, MAX_DEQUANT_ELEMS};

fuzz_target!(|data: &[u8]| {
    let path = write_input("input.gguf", data);
    let g = match GgufFile::open(&path) {
        Ok(g) => g,
        Err(e) => {
            if debug() {
                eprintln!("open: {e}");
            }
            return;
        }
    };
    for v in g.metadata.values() {
        let _ = v.summary();
        let _ = (
            v.as_u64(),
            v.as_f64(),
            v.as_str(),
            v.as_bool(),
            v.as_array(),
        );
    }
    let _ = g.architecture();
    for info in &g.tensors {
        let _ = g.tensor_bytes(info);
        let _ = (info.shape(), g.tensor_info(&info.name).is_some());
        if info.n_elements() > MAX_DEQUANT_ELEMS {
            continue;
        }
        let t = g.tensor(&info.name).expect("listed tensor must be found");
        let _ = (t.rows(), t.row_bytes(), t.bytes().len());
        let _ = t.to_f32();
        // A zero-element tensor can still have a huge column count.
        if (t.cols() as u64) <= MAX_DEQUANT_ELEMS {
            let mut row = vec![0f32; t.cols()];
            let _ = t.dequantize_rows(0, &mut row);
        }
    }
    if let Ok(c) = LlamaConfig::from_gguf(&g) {
        let _ = c.rope_inv_freqs();
    }
    let w = LlamaWeights::from_gguf(&g);
    if debug() {
        eprintln!(
            "{} tensors, weights: {:?}",
            g.tensors.len(),
            w.map(|w| w.config)
        );
    }
});
