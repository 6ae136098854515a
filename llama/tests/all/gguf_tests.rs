//! GGUF parsing of files written by the test, and bad-input handling.

use crate::common::{gguf_bytes, random_weights, write_temp, Spec};
use llama::config::LlamaConfig;
use llama::gguf::{GgufFile, Value};
use llama::gguf_writer::GgufWriter;
use llama::model::LlamaWeights;
use llama::quant::DType;
use llama::LlamaError;

fn small_file() -> Vec<u8> {
    let mut g = GgufWriter::new();
    g.kv("general.architecture", Value::String("llama".into()))
        .kv("some.u8", Value::U8(7))
        .kv("some.i64", Value::I64(-5))
        .kv("some.f64", Value::F64(0.5))
        .kv("some.bool", Value::Bool(true))
        .kv(
            "some.arr",
            Value::Array(vec![Value::String("a".into()), Value::String("bc".into())]),
        );
    let a: Vec<f32> = (0..6).map(|i| i as f32).collect();
    g.tensor(
        "a",
        &[2, 3],
        DType::F32,
        llama::quant::encode_float(DType::F32, &a).unwrap(),
    );
    let mut q = half::f16::from_f32(2.0).to_le_bytes().to_vec();
    q.extend((0..32).map(|i| i as u8));
    g.tensor("q", &[32], DType::Q8_0, q);
    g.to_bytes()
}

#[test]
fn parse_written_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_temp(&dir, "x.gguf", &small_file());
    let g = GgufFile::open(&p).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.get_u64("some.u8").unwrap(), 7);
    assert_eq!(g.get("some.i64"), Some(&Value::I64(-5)));
    assert_eq!(g.get_f64("some.f64").unwrap(), 0.5);
    assert_eq!(g.get("some.bool").and_then(|v| v.as_bool()), Some(true));
    assert_eq!(
        g.get("some.arr")
            .and_then(|v| v.as_array())
            .map(|a| a.len()),
        Some(2)
    );
    let a = g.tensor("a").unwrap();
    assert_eq!(a.shape, vec![2, 3]);
    assert_eq!(a.to_f32().unwrap(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let q = g.tensor("q").unwrap();
    assert_eq!(q.dtype, DType::Q8_0);
    assert_eq!(q.to_f32().unwrap()[5], 10.0);
    assert!(matches!(g.get_u64("nope"), Err(LlamaError::MissingKey(_))));
    assert!(g.tensor("nope").is_err());
}

#[test]
fn version_2_accepted() {
    let mut b = small_file();
    b[4..8].copy_from_slice(&2u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        GgufFile::open(write_temp(&dir, "v2.gguf", &b))
            .unwrap()
            .version,
        2
    );
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    let e = GgufFile::open(write_temp(&dir, "v1.gguf", &b))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("version 1"), "{e}");
}

#[test]
fn wrong_magic() {
    let mut b = small_file();
    b[0] = b'X';
    let dir = tempfile::tempdir().unwrap();
    let e = GgufFile::open(write_temp(&dir, "m.gguf", &b))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("magic"), "{e}");
}

#[test]
fn truncated_files_error_without_panicking() {
    let b = small_file();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.gguf");
    for cut in (0..b.len()).step_by(3).chain([b.len() - 1]) {
        std::fs::write(&p, &b[..cut]).unwrap();
        assert!(
            GgufFile::open(&p).is_err(),
            "cut at {cut} of {} accepted",
            b.len()
        );
    }
}

#[test]
fn tensor_past_eof() {
    let mut g = GgufWriter::new();
    g.kv("general.architecture", Value::String("llama".into()));
    // Declares 64 f32 elements but provides only 16 bytes.
    g.tensor("big", &[64], DType::F32, vec![0u8; 16]);
    let b = g.to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let e = GgufFile::open(write_temp(&dir, "e.gguf", &b))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("past the end"), "{e}");
}

#[test]
fn unknown_tensor_type() {
    let mut g = GgufWriter::new();
    g.kv("general.architecture", Value::String("llama".into()));
    g.tensor("t", &[32], DType::Q8_0, vec![0u8; 34]);
    let mut b = g.to_bytes();
    // Patch the type id (u32 after the single u64 dim) to 99.
    let name_pos = b
        .windows(9)
        .position(|w| w == [1, 0, 0, 0, 0, 0, 0, 0, b't'])
        .unwrap();
    let ty_pos = name_pos + 9 + 4 + 8;
    assert_eq!(&b[ty_pos..ty_pos + 4], &8u32.to_le_bytes());
    b[ty_pos..ty_pos + 4].copy_from_slice(&99u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let e = GgufFile::open(write_temp(&dir, "u.gguf", &b))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("unsupported tensor type") && e.contains("99"),
        "{e}"
    );
}

#[test]
fn huge_counts_rejected() {
    let mut b = small_file();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    assert!(GgufFile::open(write_temp(&dir, "h.gguf", &b)).is_err());
}

#[test]
fn missing_metadata_keys() {
    let s = Spec::new(4, 2);
    let w = random_weights(&s);
    let good = gguf_bytes(&s, &w);
    let dir = tempfile::tempdir().unwrap();
    let g = GgufFile::open(write_temp(&dir, "ok.gguf", &good)).unwrap();
    let cfg = LlamaConfig::from_gguf(&g).unwrap();
    assert_eq!(
        (cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim),
        (2, 4, 2, 16)
    );
    // Rename the key so that the file stays well-formed but lacks block_count.
    let key = b"llama.block_count";
    let pos = good.windows(key.len()).position(|w| w == key).unwrap();
    let mut bad = good.clone();
    bad[pos..pos + 5].copy_from_slice(b"xxxxx");
    let g = GgufFile::open(write_temp(&dir, "bad.gguf", &bad)).unwrap();
    let e = LlamaWeights::from_gguf(&g).err().unwrap();
    assert!(
        matches!(&e, LlamaError::MissingKey(k) if k == "llama.block_count"),
        "{e}"
    );
    // A missing tensor is reported by name.
    let key = b"blk.1.ffn_up.weight";
    let pos = good.windows(key.len()).position(|w| w == key).unwrap();
    let mut bad = good.clone();
    bad[pos] = b'X';
    let g = GgufFile::open(write_temp(&dir, "bad2.gguf", &bad)).unwrap();
    let e = LlamaWeights::from_gguf(&g).err().unwrap().to_string();
    assert!(e.contains("blk.1.ffn_up.weight"), "{e}");
}

#[test]
fn unsupported_architecture() {
    let mut g = GgufWriter::new();
    g.kv("general.architecture", Value::String("gpt2".into()));
    let dir = tempfile::tempdir().unwrap();
    let f = GgufFile::open(write_temp(&dir, "a.gguf", &g.to_bytes())).unwrap();
    let e = LlamaConfig::from_gguf(&f).err().unwrap().to_string();
    assert!(e.contains("architecture"), "{e}");
}

#[test]
fn missing_file() {
    let e = GgufFile::open("/nonexistent/model.gguf")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("/nonexistent/model.gguf"), "{e}");
}
