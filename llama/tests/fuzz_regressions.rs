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
    assert!(e.to_string().contains("blk."), "{e}");
}
