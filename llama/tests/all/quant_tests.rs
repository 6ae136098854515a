//! Dequantizers on hand-built blocks; expected values are computed here
//! from the ggml block definitions, element by element.

use half::f16;
use llama::quant::{dequantize, DType};

fn h(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

fn deq(dt: DType, b: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize(dt, b, &mut out).expect("dequantize");
    out
}

#[test]
fn f32_f16_bf16() {
    let vals = [1.5f32, -2.25, 0.0, 65504.0];
    let b: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(deq(DType::F32, &b, 4), vals);
    let b: Vec<u8> = vals.iter().flat_map(|v| h(*v)).collect();
    assert_eq!(deq(DType::F16, &b, 4), vals);
    // bf16 of 1.5 is 0x3FC0, of -2.25 is 0xC010.
    let b = [0xC0, 0x3F, 0x10, 0xC0];
    assert_eq!(deq(DType::BF16, &b, 2), [1.5, -2.25]);
}

#[test]
fn q8_0_block() {
    let mut b = h(0.5).to_vec();
    let qs: Vec<i8> = (0..32).map(|i| (i as i8 - 16) * 8).collect(); // -128..120
    b.extend(qs.iter().map(|q| *q as u8));
    let out = deq(DType::Q8_0, &b, 32);
    for i in 0..32 {
        assert_eq!(out[i], qs[i] as f32 * 0.5);
    }
    assert_eq!(out[0], -64.0);
}

#[test]
fn q4_0_block() {
    // Element j < 16 is the low nibble of byte j, element j + 16 the high nibble.
    let nib = |i: usize| ((i * 7) % 16) as u8;
    let mut b = h(0.25).to_vec();
    for j in 0..16 {
        b.push(nib(j) | (nib(j + 16) << 4));
    }
    let out = deq(DType::Q4_0, &b, 32);
    for i in 0..32 {
        assert_eq!(out[i], (nib(i) as f32 - 8.0) * 0.25, "element {i}");
    }
}

#[test]
fn q4_1_block() {
    let nib = |i: usize| ((i * 5 + 3) % 16) as u8;
    let mut b = h(0.5).to_vec();
    b.extend(h(-3.0));
    for j in 0..16 {
        b.push(nib(j) | (nib(j + 16) << 4));
    }
    let out = deq(DType::Q4_1, &b, 32);
    for i in 0..32 {
        assert_eq!(out[i], nib(i) as f32 * 0.5 - 3.0, "element {i}");
    }
    // A literal: first element nibble 3 -> 3 * 0.5 - 3 = -1.5.
    assert_eq!(out[0], -1.5);
}

#[test]
fn q4_k_block() {
    // 8 sub-blocks of 32 with 6-bit scales/mins.
    let sc: [u8; 8] = [1, 63, 17, 40, 5, 33, 62, 20];
    let mn: [u8; 8] = [0, 7, 63, 12, 48, 3, 31, 60];
    let mut scales = [0u8; 12];
    for j in 0..4 {
        scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        scales[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        scales[j + 8] = (sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4);
    }
    let q = |i: usize| ((i * 11 + i / 7) % 16) as u8;
    // Chunk c (64 elements) uses bytes 32c..32c+32: low nibbles are elements
    // 64c..64c+32, high nibbles elements 64c+32..64c+64.
    let mut qs = [0u8; 128];
    for c in 0..4 {
        for l in 0..32 {
            qs[32 * c + l] = q(64 * c + l) | (q(64 * c + 32 + l) << 4);
        }
    }
    let (d, dmin) = (0.125f32, 0.0625f32);
    let mut b = h(d).to_vec();
    b.extend(h(dmin));
    b.extend(scales);
    b.extend(qs);
    assert_eq!(b.len(), 144);
    let out = deq(DType::Q4_K, &b, 256);
    for i in 0..256 {
        let sub = i / 32;
        let want = d * sc[sub] as f32 * q(i) as f32 - dmin * mn[sub] as f32;
        assert!(
            (out[i] - want).abs() < 1e-6,
            "element {i}: {} vs {want}",
            out[i]
        );
    }
}

#[test]
fn q6_k_block() {
    let q = |i: usize| ((i * 13 + 5) % 64) as u8; // unsigned 6-bit value
    let scales: Vec<i8> = (0..16).map(|i| (i as i8 - 8) * 9).collect();
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for i in 0..256 {
        let (half, r) = (i / 128, i % 128);
        let (g, l) = (r / 32, r % 32);
        let v = q(i);
        let qi = 64 * half + l + if g % 2 == 1 { 32 } else { 0 };
        ql[qi] |= if g < 2 { v & 0x0F } else { (v & 0x0F) << 4 };
        qh[32 * half + l] |= (v >> 4) << (2 * g);
    }
    let d = 0.03125f32;
    let mut b = ql.to_vec();
    b.extend(qh);
    b.extend(scales.iter().map(|s| *s as u8));
    b.extend(h(d));
    assert_eq!(b.len(), 210);
    let out = deq(DType::Q6_K, &b, 256);
    for i in 0..256 {
        let (half, r) = (i / 128, i % 128);
        let (g, l) = (r / 32, r % 32);
        let s = scales[8 * half + l / 16 + 2 * g] as f32;
        let want = d * s * (q(i) as f32 - 32.0);
        assert!(
            (out[i] - want).abs() < 1e-6,
            "element {i}: {} vs {want}",
            out[i]
        );
    }
}

#[test]
fn size_mismatch_is_an_error() {
    let mut out = vec![0f32; 32];
    assert!(dequantize(DType::Q4_1, &[0u8; 19], &mut out).is_err());
    let mut out = vec![0f32; 31];
    assert!(dequantize(DType::Q8_0, &[0u8; 34], &mut out).is_err());
}

#[test]
fn type_ids() {
    for dt in [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q4_K,
        DType::Q6_K,
    ] {
        assert_eq!(DType::from_ggml(dt.ggml_id().expect("a ggml type")).expect("known"), dt);
    }
    assert_eq!(DType::F8E4M3.ggml_id(), None);
    let e = DType::from_ggml(13).unwrap_err().to_string();
    assert!(e.contains("Q5_K"), "{e}");
    assert!(DType::from_ggml(1234).is_err());
}

#[test]
fn fused_kernels_match_dequantize_then_dot() {
    use llama::backend::kernels::{block_sums, dot, row_dot};
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let k = 32 * 9;
    let x: Vec<f32> = (0..k).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let xs = block_sums(&x);
    for dt in [DType::Q4_0, DType::Q4_1, DType::Q8_0] {
        let blocks = k / 32;
        let mut row = Vec::new();
        for _ in 0..blocks {
            row.extend(h(rng.gen_range(-0.1..0.1)));
            if dt == DType::Q4_1 {
                row.extend(h(rng.gen_range(-0.5..0.5)));
            }
            let nq = dt.type_size() - row.len() % dt.type_size();
            row.extend((0..nq).map(|_| rng.gen::<u8>()));
        }
        assert_eq!(row.len(), blocks * dt.type_size());
        let want = dot(&deq(dt, &row, k), &x);
        let got = row_dot(dt, &row, &x, &xs).expect("fused kernel");
        assert!(
            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
            "{dt}: {got} vs {want}"
        );
    }
    assert!(row_dot(DType::F16, &[0; 64], &x[..32], &xs).is_none());
}

/// Random blocks dequantized by an independent implementation (the `gguf`
/// Python package 0.19, `gguf.quants.dequantize`), stored as a fixture.
#[test]
fn matches_gguf_py_reference() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dequant_gguf_py.json"
    ))
    .unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (name, dt) in [
        ("Q4_0", DType::Q4_0),
        ("Q4_1", DType::Q4_1),
        ("Q8_0", DType::Q8_0),
        ("Q4_K", DType::Q4_K),
        ("Q6_K", DType::Q6_K),
    ] {
        let hex = j[name]["hex"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let want: Vec<f32> = j[name]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = deq(dt, &bytes, want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{name} element {i}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn int_kernels_match_dequantize_then_dot() {
    use llama::backend::kernels::{dot, has_int_kernels, quantize_x, row_dot_int};
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let k = 32 * 18;
    let mut x: Vec<f32> = (0..k).map(|_| rng.gen_range(-2.0..2.0)).collect();
    x[5] = 300.0; // an outlier, as real activations have
    let xq = quantize_x(&x);
    // Quantized activations stay within half a step of the originals.
    for (i, v) in x.iter().enumerate() {
        let back = xq.q[i] as f32 * xq.d[i / 32];
        assert!((back - v).abs() <= xq.d[i / 32] * 0.5 + 1e-6);
    }
    if !has_int_kernels() {
        eprintln!("skipping integer kernel comparison: no AVX2/FMA/F16C");
        return;
    }
    for dt in [DType::Q4_0, DType::Q4_1, DType::Q8_0] {
        for trial in 0..20 {
            let mut row = Vec::new();
            for _ in 0..k / 32 {
                row.extend(h(rng.gen_range(-0.1..0.1)));
                if dt == DType::Q4_1 {
                    row.extend(h(rng.gen_range(-0.5..0.5)));
                }
                let nq = dt.type_size() - row.len() % dt.type_size();
                // Include the extreme i8 values (-128, 127) for Q8_0.
                row.extend((0..nq).map(|j| {
                    if trial == 0 && j < 2 {
                        [0x80u8, 0x7F][j]
                    } else {
                        rng.gen::<u8>()
                    }
                }));
            }
            let w = deq(dt, &row, k);
            let want = dot(&w, &x);
            let bound: f32 =
                w.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum::<f32>() * 1e-4 + 1e-4;
            let got = row_dot_int(dt, &row, &xq).expect("integer kernel");
            assert!(
                (got - want).abs() < bound,
                "{dt}: {got} vs {want} (bound {bound})"
            );
        }
        assert!(
            row_dot_int(dt, &row_of(dt, k - 32), &xq).is_none(),
            "size mismatch is refused"
        );
    }
    assert!(row_dot_int(DType::F16, &[0; 64], &xq).is_none());
}

fn row_of(dt: DType, k: usize) -> Vec<u8> {
    vec![0u8; dt.bytes_for(k).unwrap()]
}
