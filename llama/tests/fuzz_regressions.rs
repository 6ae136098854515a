//! Regression tests for inputs found by the cargo-fuzz targets in `llama/fuzz`
//! (see `llama/fuzz/README.md`). Each fixture in `tests/fixtures/fuzz/` is the
//! fuzzer's minimized input; loading it must give an `Err`, never a panic or
//! an abort.

use llama::gguf::GgufFile;
use llama::model::LlamaWeights;
use std::path::PathBuf;

fn write_tmp(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

/// A tensor with dims `[0, 2^40, 2^40]`: the reader checked the product in
/// file order (where the leading 0 hides the overflow), but `Tensor` shapes
/// are reversed and `Tensor::n_elements` overflowed ("attempt to multiply with
/// overflow" in debug builds, a wrong count in release).
#[test]
fn gguf_zero_dim_does_not_hide_overflow() {
    let bytes = include_bytes!("fixtures/fuzz/gguf_dims_overflow.gguf");
    let (_d, p) = write_tmp("dims.gguf", bytes);
    match GgufFile::open(&p) {
        Err(e) => assert!(e.to_string().contains("overflow"), "{e}"),
        Ok(g) => {
            for info in &g.tensors {
                let t = g.tensor(&info.name).unwrap();
                let _ = (t.n_elements(), t.rows());
            }
            panic!("expected an overflow error");
        }
    }
}

/// `llama.block_count` = 0x90000001 with otherwise valid llama metadata: the
/// loader reserved `Vec::with_capacity(n_layers)` layers (~1.9 TB) before
/// looking for the first layer's tensors, and the allocation failure aborted.
#[test]
fn gguf_huge_block_count_is_an_error() {
    let bytes = include_bytes!("fixtures/fuzz/gguf_huge_block_count.gguf");
    let (_d, p) = write_tmp("layers.gguf", bytes);
    let g = GgufFile::open(&p).unwrap();
    let e = LlamaWeights::from_gguf(&g).err().expect("must be an error");
    // Now rejected by the config check; before it, by the missing layer tensor.
    assert!(e.to_string().contains("blk.") || e.to_string().contains("implausible"), "{e}");
}

// Crashes found by reading the code while fuzzing (reproducers written by hand; see llama/fuzz/README.md).

/// `llama.attention.key_length` = 2^62: `n_heads * head_dim` overflowed.
#[test]
fn gguf_huge_key_length_is_an_error() {
    let (_d, p) = write_tmp("k.gguf", include_bytes!("fixtures/fuzz/gguf_key_length_q_dim_overflow.gguf"));
    let r = GgufFile::open(&p).and_then(|g| LlamaWeights::from_gguf(&g));
    assert!(r.is_err());
}

/// A huge `head_dim` in config.json overflowed `q_dim`, or (with llama3 rope scaling) allocated a huge
/// frequency table.
#[test]
fn hf_config_huge_head_dim_is_an_error() {
    for bytes in [
        &include_bytes!("fixtures/fuzz/hf_config_head_dim_overflow.json")[..],
        &include_bytes!("fixtures/fuzz/hf_config_llama3_huge_head_dim.json")[..],
    ] {
        let json: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let e = llama::hf::config_from_json(&json).unwrap_err();
        assert!(e.to_string().contains("head_dim") || e.to_string().contains("implausible"), "{e}");
    }
}

/// Safetensors files loaded through an HF directory (a valid tiny config.json beside them).
fn load_hf_with(safetensors: &[u8]) -> llama::error::Result<llama::model::LlamaWeights> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/goldens/tiny-llama2/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::write(dir.path().join("model.safetensors"), safetensors).unwrap();
    llama::hf::load_weights(dir.path())
}

/// `data_offsets` ending at u64::MAX: the `safetensors` crate adds without overflow checks and panicked.
#[test]
fn safetensors_offset_overflow_is_an_error() {
    let e = load_hf_with(include_bytes!("fixtures/fuzz/safetensors_header_offset_overflow.safetensors")).unwrap_err();
    assert!(e.to_string().contains("data_offsets"), "{e}");
}

/// An fp8 tensor named "" with a `weight_scale` beside it made the fp8 loader recurse forever.
#[test]
fn safetensors_fp8_scale_recursion_is_an_error() {
    assert!(load_hf_with(include_bytes!("fixtures/fuzz/safetensors_fp8_scale_recursion.safetensors")).is_err());
}
