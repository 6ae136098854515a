//! Hugging Face directories: same logits as the GGUF path, conversion, FP8,
//! and corrupt safetensors.

use crate::common::{
    gguf_bytes, random_weights, reference_forward, rel_err, write_hf, write_temp, Spec,
};
use llama::backend::{create_backend, Device};
use llama::gguf::GgufFile;
use llama::model::LlamaWeights;
use llama::quant::DType;
use llama::tokenizer::Tokenizer;
use std::sync::Arc;

const TOKENS: [u32; 6] = [1, 7, 30, 2, 2, 19];

fn logits(w: LlamaWeights) -> Vec<f32> {
    let mut b = create_backend(Device::Cpu, Arc::new(w), 32, Default::default()).unwrap();
    b.forward(&TOKENS, true).unwrap()
}

#[test]
fn hf_dir_matches_reference_and_gguf() {
    for s in [
        Spec::new(4, 2),
        Spec {
            tied: true,
            dtype: DType::BF16,
            ..Spec::new(4, 1)
        },
        Spec {
            llama3_scaling: Some((8.0, 1.0, 4.0, 64.0)),
            rope_base: 500000.0,
            ..Spec::new(2, 2)
        },
    ] {
        let w = random_weights(&s);
        let dir = tempfile::tempdir().unwrap();
        write_hf(&s, &w, dir.path());
        let hf = llama::hf::load_weights(dir.path()).unwrap();
        assert_eq!(hf.config.rope_layout, llama::config::RopeLayout::Half);
        let a = logits(hf);
        let g = GgufFile::open(write_temp(&dir, "m.gguf", &gguf_bytes(&s, &w))).unwrap();
        let b = logits(LlamaWeights::from_gguf(&g).unwrap());
        let want = reference_forward(&s, &w, &TOKENS);
        for t in 0..TOKENS.len() {
            let (ra, rb) = (
                &a[t * s.vocab..(t + 1) * s.vocab],
                &b[t * s.vocab..(t + 1) * s.vocab],
            );
            assert!(rel_err(ra, &want[t]) < 1e-4, "{s:?} hf vs reference at {t}");
            let diff = ra
                .iter()
                .zip(rb)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-4, "{s:?} hf vs gguf at {t}: {diff}");
        }
    }
}

#[test]
fn convert_gguf_to_hf_gives_same_logits() {
    for s in [
        Spec::new(4, 2),
        Spec {
            tied: true,
            ..Spec::new(4, 4)
        },
    ] {
        let w = random_weights(&s);
        let dir = tempfile::tempdir().unwrap();
        let g = GgufFile::open(write_temp(&dir, "m.gguf", &gguf_bytes(&s, &w))).unwrap();
        let gw = LlamaWeights::from_gguf(&g).unwrap();
        let tok = Tokenizer::from_gguf(&g).unwrap();
        let out = dir.path().join("hf");
        llama::hf::write_hf_dir(&gw, &tok, &out, "f32").unwrap();
        let m = llama::loader::load(&out).unwrap();
        assert_eq!(m.format, "hf");
        assert_eq!(m.weights.tied_embeddings, s.tied);
        assert_eq!(m.tokenizer.bos_id, Some(0));
        assert!(m.tokenizer.is_stop(1));
        let (a, b) = (logits(gw), logits(m.weights));
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "{s:?}: {diff}");
        // bf16 output loads too and stays close.
        let out16 = dir.path().join("hf16");
        llama::hf::write_hf_dir(&LlamaWeights::from_gguf(&g).unwrap(), &tok, &out16, "bf16")
            .unwrap();
        let c = logits(llama::hf::load_weights(&out16).unwrap());
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = a
            .iter()
            .zip(&c)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            diff < 0.05 * scale,
            "bf16 conversion drifted: {diff} (scale {scale})"
        );
        assert!(
            llama::hf::write_hf_dir(&LlamaWeights::from_gguf(&g).unwrap(), &tok, &out16, "q3")
                .is_err()
        );
    }
}

#[test]
fn sharded_fp8_with_scales() {
    let s = Spec::new(4, 2);
    let w = random_weights(&s);
    let dir = tempfile::tempdir().unwrap();
    write_hf(&s, &w, dir.path());
    // Re-write one projection as FP8 E4M3 with a per-row scale in a second
    // shard, referenced from an index file.
    let name = "model.layers.0.mlp.down_proj.weight";
    let (shape, vals) = &w[name];
    let rows = shape[0];
    let cols = shape[1];
    let scales: Vec<f32> = (0..rows)
        .map(|r| {
            vals[r * cols..(r + 1) * cols]
                .iter()
                .fold(1e-6f32, |m, v| m.max(v.abs()))
                / 448.0
        })
        .collect();
    let q: Vec<u8> = vals
        .iter()
        .enumerate()
        .map(|(i, v)| float8::F8E4M3::from_f32(v / scales[i / cols]).to_bits())
        .collect();
    let deq: Vec<f32> = q
        .iter()
        .enumerate()
        .map(|(i, b)| float8::F8E4M3::from_bits(*b).to_f32() * scales[i / cols])
        .collect();
    let sb: Vec<u8> = scales.iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        (
            name.to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F8_E4M3, shape.clone(), &q)
                .unwrap(),
        ),
        (
            "model.layers.0.mlp.down_proj.weight_scale".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![rows, 1], &sb)
                .unwrap(),
        ),
    ];
    safetensors::serialize_to_file(views, &None, &dir.path().join("shard2.safetensors")).unwrap();
    let mut map = serde_json::Map::new();
    for k in w.keys() {
        let f = if k == name {
            "shard2.safetensors"
        } else {
            "model.safetensors"
        };
        map.insert(k.clone(), serde_json::Value::String(f.into()));
    }
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        serde_json::json!({ "weight_map": map }).to_string(),
    )
    .unwrap();
    let hf = llama::hf::load_weights(dir.path()).unwrap();
    // Kept as stored: the e4m3 bytes and the row scales; dequantized rows are e4m3 x scale exactly.
    let up = &hf.layers[0].w_down;
    assert_eq!(up.dtype, DType::F8E4M3);
    assert_eq!(up.bytes(), &q[..]);
    assert_eq!(up.row_scale.as_deref(), Some(&scales));
    assert_eq!(up.to_f32().unwrap(), deq);
    let mut row = vec![0f32; cols];
    up.dequantize_rows(rows - 1, &mut row).unwrap();
    assert_eq!(row, deq[(rows - 1) * cols..]);
    // The GPU backend's fp8 upload (on the interpreter) keeps them too: the down projection's device
    // weight is the checkpoint's bytes and scales unchanged.
    let rt = dsl_core::interp::Interpreter::new();
    let fmt = llama::backend::gpu::WeightFormat::Fp8;
    let dev = llama::backend::gpu::weights::upload(&rt, &hf, fmt, 8, &mut |_| {}).unwrap();
    let llama::backend::gpu::weights::Weight::Fp8 { q: dq, scale: ds } = &dev.layers[0].down.w else {
        panic!("fp8 upload made a bf16 weight")
    };
    use dsl_core::runtime::Runtime;
    let (dq, ds) = (rt.download(dq).unwrap(), rt.download(ds).unwrap());
    assert_eq!(ds, scales);
    assert_eq!(dq.iter().map(|d| d.to_bits()).collect::<Vec<u8>>(), q);
    // The whole model still runs, close to the full-precision reference.
    let a = logits(hf);
    let want = reference_forward(&s, &w, &TOKENS);
    assert!(rel_err(&a[..s.vocab], &want[0]) < 0.1);
}

#[test]
fn lying_safetensors_header() {
    let s = Spec::new(4, 2);
    let w = random_weights(&s);
    let dir = tempfile::tempdir().unwrap();
    write_hf(&s, &w, dir.path());
    let p = dir.path().join("model.safetensors");
    let good = std::fs::read(&p).unwrap();
    // Truncated data.
    std::fs::write(&p, &good[..good.len() - 10]).unwrap();
    assert!(llama::hf::load_weights(dir.path()).is_err());
    // Header length pointing past the end.
    let mut bad = good.clone();
    bad[..8].copy_from_slice(&(good.len() as u64).to_le_bytes());
    std::fs::write(&p, &bad).unwrap();
    assert!(llama::hf::load_weights(dir.path()).is_err());
    // Offsets that disagree with the shape: edit the JSON header in place.
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(good[8..8 + n].to_vec()).unwrap();
    let lied = header.replacen("[40,64]", "[41,64]", 1);
    assert_ne!(lied, header, "header should contain the embedding shape");
    let mut bad = (lied.len() as u64).to_le_bytes().to_vec();
    bad.extend(lied.as_bytes());
    bad.extend(&good[8 + n..]);
    std::fs::write(&p, &bad).unwrap();
    let e = llama::hf::load_weights(dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("safetensors") || e.contains("inconsistent"),
        "{e}"
    );
    // Tiny file.
    std::fs::write(&p, b"abc").unwrap();
    assert!(llama::hf::load_weights(dir.path()).is_err());
    // No config.json.
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let e = llama::hf::load_weights(dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("config.json"), "{e}");
}
