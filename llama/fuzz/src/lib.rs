//! Shared helpers of the fuzz targets.
//!
//! The `llama` readers take paths (they memory-map files), so each input is
//! written to a file in a per-process scratch directory, overwritten on every
//! run; on Linux `/tmp` keeps this cheap.

use std::path::PathBuf;
use std::sync::OnceLock;

/// A scratch directory private to this process (created once).
pub fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("llama-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create scratch dir");
        d
    })
}

/// Writes `data` to `name` inside the scratch directory and returns the path.
pub fn write_input(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch_dir().join(name);
    std::fs::write(&p, data).expect("write fuzz input");
    p
}

/// Elements above which a tensor is not dequantized (keeps runs fast; the
/// readers already bound sizes by the file length).
pub const MAX_DEQUANT_ELEMS: u64 = 1 << 20;

/// A minimal valid Llama `config.json` matching the seed safetensors model.
pub const TINY_CONFIG: &str = r#"{
  "model_type": "llama",
  "hidden_size": 8,
  "num_attention_heads": 2,
  "num_key_value_heads": 1,
  "num_hidden_layers": 1,
  "intermediate_size": 16,
  "vocab_size": 16,
  "max_position_embeddings": 64,
  "rms_norm_eps": 1e-5,
  "tie_word_embeddings": true
}"#;

/// True when `LLAMA_FUZZ_DEBUG` is set: targets then print what each input
/// reached (used to check that the seeds are valid models).
pub fn debug() -> bool {
    static D: OnceLock<bool> = OnceLock::new();
    *D.get_or_init(|| std::env::var_os("LLAMA_FUZZ_DEBUG").is_some())
}
