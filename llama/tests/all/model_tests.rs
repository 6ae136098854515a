//! The CPU backend against the naive f64 reference, on tiny random models.

use crate::common::{gguf_bytes, random_weights, reference_forward, rel_err, write_temp, Spec};
use llama::backend::{create_backend, Device};
use llama::gguf::GgufFile;
use llama::model::LlamaWeights;
use llama::quant::DType;
use std::sync::Arc;

fn load(s: &Spec) -> (LlamaWeights, crate::common::Weights) {
    let w = random_weights(s);
    let dir = tempfile::tempdir().unwrap();
    let p = write_temp(&dir, "m.gguf", &gguf_bytes(s, &w));
    let g = GgufFile::open(&p).unwrap();
    (LlamaWeights::from_gguf(&g).unwrap(), w)
}

const TOKENS: [u32; 9] = [3, 17, 5, 39, 0, 22, 22, 8, 11];

/// Batched prefill of all tokens, then prefill + token-by-token decode.
fn check(s: &Spec, tol: f64) {
    let (lw, w) = load(s);
    check_loaded(s, lw, w, tol);
}

fn check_loaded(s: &Spec, lw: LlamaWeights, w: crate::common::Weights, tol: f64) {
    check_on(Device::Cpu, s, lw, w, tol)
}

/// [`check`] of the backend `device` creates.
fn check_on(device: Device, s: &Spec, lw: LlamaWeights, w: crate::common::Weights, tol: f64) {
    assert_eq!(lw.tied_embeddings, s.tied);
    let want = reference_forward(s, &w, &TOKENS);
    let mut b = create_backend(device, Arc::new(lw), s.ctx, Default::default()).unwrap();
    let all = b.forward(&TOKENS, true).unwrap();
    for (t, row) in all.chunks(s.vocab).enumerate() {
        let e = rel_err(row, &want[t]);
        assert!(e < tol, "{s:?}: batched position {t}: rel err {e}");
    }
    b.rewind(0);
    let last = b.forward(&TOKENS[..4], false).unwrap();
    assert!(rel_err(&last, &want[3]) < tol);
    for t in 4..TOKENS.len() {
        let l = b.forward(&TOKENS[t..t + 1], false).unwrap();
        let e = rel_err(&l, &want[t]);
        assert!(e < tol, "{s:?}: decode position {t}: rel err {e}");
    }
    assert_eq!(b.position(), TOKENS.len());
    // Rewinding and replaying gives the same logits.
    b.rewind(6);
    let l = b.forward(&TOKENS[6..7], false).unwrap();
    assert!(rel_err(&l, &want[6]) < tol);
}

#[test]
fn mha_untied() {
    check(&Spec::new(4, 4), 1e-4);
}

#[test]
fn gqa_2_tied() {
    check(
        &Spec {
            tied: true,
            ..Spec::new(4, 2)
        },
        1e-4,
    );
}

#[test]
fn mqa_llama3_rope_scaling() {
    let s = Spec {
        rope_base: 500000.0,
        // Small original context so that all three frequency bands occur for hd = 16.
        llama3_scaling: Some((8.0, 1.0, 4.0, 64.0)),
        ..Spec::new(4, 1)
    };
    check(&s, 1e-4);
}

#[test]
fn gqa_f16_and_bf16_weights() {
    check(
        &Spec {
            dtype: DType::F16,
            ..Spec::new(8, 2)
        },
        1e-4,
    );
    check(
        &Spec {
            dtype: DType::BF16,
            tied: true,
            ..Spec::new(2, 1)
        },
        1e-4,
    );
}

#[test]
fn context_overflow_is_an_error() {
    let s = Spec {
        ctx: 8,
        ..Spec::new(4, 2)
    };
    let (lw, _) = load(&s);
    let mut b = create_backend(Device::Cpu, Arc::new(lw), 8, Default::default()).unwrap();
    assert!(b.forward(&TOKENS, false).is_err());
    assert!(b.forward(&[], false).is_err());
    assert!(
        b.forward(&[1000], false).is_err(),
        "token out of vocabulary"
    );
}

/// `--device cuda` without a GPU (CI) is a clear error naming the device; with one, the GPU backend.
#[test]
fn cuda_without_a_gpu_is_an_error() {
    let s = Spec::new(4, 2);
    let (lw, _) = load(&s);
    match create_backend(Device::Cuda, Arc::new(lw), 8, Default::default()) {
        Ok(b) => assert_eq!(b.name(), "cuda"),
        Err(e) => assert!(e.to_string().contains("--device cuda: "), "{e}"),
    }
    assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
    assert_eq!("interp".parse::<Device>().unwrap(), Device::Interp);
    assert!("tpu".parse::<Device>().is_err());
}

/// The GPU backend's launches on the interpreter, on the same tiny GGUF models (llama.cpp's interleaved
/// RoPE rows: the backend reorders Q/K for its half-split kernel) against the f64 reference: MHA, GQA,
/// MQA with Llama 3.1 scaling, tied embeddings, F16/BF16 files. bf16 weights and GEMM inputs: 5e-2.
#[test]
fn gpu_backend_on_the_interpreter_matches_the_reference() {
    let specs = [
        Spec::new(4, 4),
        Spec { tied: true, ..Spec::new(4, 2) },
        Spec { rope_base: 500000.0, llama3_scaling: Some((8.0, 1.0, 4.0, 64.0)), ..Spec::new(4, 1) },
        Spec { dtype: DType::BF16, tied: true, ..Spec::new(2, 1) },
    ];
    for s in &specs {
        let (lw, w) = load(s);
        check_on(Device::Interp, s, lw, w, 5e-2);
    }
}

#[test]
fn quantized_weights_q4_0_q4_1_q8_0_q4_k_q6_k() {
    // K-quants need rows that are multiples of 256 elements.
    for dt in [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q8_0,
        DType::Q4_K,
        DType::Q6_K,
    ] {
        let s = Spec {
            d: 256,
            ffn: 512,
            dtype: dt,
            tied: dt == DType::Q8_0,
            ..Spec::new(4, 2)
        };
        let (w, raw) = crate::common::random_quant_weights(&s, dt);
        let dir = tempfile::tempdir().unwrap();
        let p = write_temp(&dir, "q.gguf", &crate::common::gguf_bytes_raw(&s, &w, &raw));
        let g = GgufFile::open(&p).unwrap();
        let lw = LlamaWeights::from_gguf(&g).unwrap();
        assert_eq!(lw.layers[0].wq.dtype, dt);
        // Decode uses 16-bit activations on AVX2 CPUs, hence the tolerance.
        check_loaded(&s, lw, w, 2e-3);
    }
}
