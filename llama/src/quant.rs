//! Tensor element types and dequantization.
//!
//! Block layouts follow ggml (`ggml-common.h` / `ggml-quants.c`): each
//! quantized type stores a fixed number of elements (`block_size`) in a fixed
//! number of bytes (`type_size`). All multi-byte fields are little endian.
//! Dequantization works on whole rows, which is what the CPU backend needs to
//! turn a block of weight rows into `f32` just before a matrix product.

use crate::error::{LlamaError, Result};
use half::{bf16, f16};

/// Element type of a tensor (the subset of ggml types we can decode, plus the
/// types found in Hugging Face safetensors).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q4_K,
    Q6_K,
    /// FP8 E4M3 (Hugging Face FP8 checkpoints), one byte per value; a tensor of it carries one f32 scale
    /// per row ([`crate::tensor::Tensor::row_scale`]), which [`dequantize`] does not apply.
    F8E4M3,
}

/// Bytes of a Q4_0 block (f16 scale + 16 bytes of nibbles).
pub const Q4_0_BYTES: usize = 18;
/// Bytes of a Q4_1 block (f16 scale, f16 min, 16 bytes of nibbles).
pub const Q4_1_BYTES: usize = 20;
/// Bytes of a Q8_0 block (f16 scale + 32 i8).
pub const Q8_0_BYTES: usize = 34;
/// Bytes of a Q4_K super-block (d, dmin, 12 bytes of 6-bit scales, 128 bytes of nibbles).
pub const Q4_K_BYTES: usize = 144;
/// Bytes of a Q6_K super-block (128 low nibbles, 64 high 2-bits, 16 i8 scales, f16 d).
pub const Q6_K_BYTES: usize = 210;
/// Elements in a K-quant super-block.
pub const QK_K: usize = 256;

impl DType {
    /// Maps a ggml type id (as stored in GGUF tensor infos) to a [`DType`].
    pub fn from_ggml(id: u32) -> Result<DType> {
        Ok(match id {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::Q4_0,
            3 => DType::Q4_1,
            8 => DType::Q8_0,
            12 => DType::Q4_K,
            14 => DType::Q6_K,
            30 => DType::BF16,
            other => {
                let known = match other {
                    6 => "Q5_0",
                    7 => "Q5_1",
                    9 => "Q8_1",
                    10 => "Q2_K",
                    11 => "Q3_K",
                    13 => "Q5_K",
                    15 => "Q8_K",
                    16..=23 => "IQ*",
                    24 => "I8",
                    25 => "I16",
                    26 => "I32",
                    27 => "I64",
                    28 => "F64",
                    29 => "IQ1_M",
                    _ => "unknown",
                };
                return Err(LlamaError::UnsupportedType(format!(
                    "ggml type id {other} ({known}); supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K"
                )));
            }
        })
    }

    /// The ggml type id, used when writing GGUF files (GGUF has none for F8_E4M3).
    pub fn ggml_id(self) -> Option<u32> {
        Some(match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Q4_0 => 2,
            DType::Q4_1 => 3,
            DType::Q8_0 => 8,
            DType::Q4_K => 12,
            DType::Q6_K => 14,
            DType::BF16 => 30,
            DType::F8E4M3 => return None,
        })
    }

    /// Number of elements in one block.
    pub fn block_size(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::BF16 | DType::F8E4M3 => 1,
            DType::Q8_0 | DType::Q4_0 | DType::Q4_1 => 32,
            DType::Q4_K | DType::Q6_K => QK_K,
        }
    }

    /// Number of bytes in one block.
    pub fn type_size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::F8E4M3 => 1,
            DType::Q8_0 => Q8_0_BYTES,
            DType::Q4_0 => Q4_0_BYTES,
            DType::Q4_1 => Q4_1_BYTES,
            DType::Q4_K => Q4_K_BYTES,
            DType::Q6_K => Q6_K_BYTES,
        }
    }

    /// Bytes needed for `n` elements, or `None` if `n` is not a whole number
    /// of blocks (or overflows).
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        if n % self.block_size() != 0 {
            return None;
        }
        (n / self.block_size()).checked_mul(self.type_size())
    }

    /// Human readable name (ggml spelling).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::Q8_0 => "Q8_0",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q4_K => "Q4_K",
            DType::Q6_K => "Q6_K",
            DType::F8E4M3 => "F8_E4M3",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantizes `out.len()` elements stored in `src` with type `dtype`.
///
/// `out.len()` must be a multiple of the block size and `src` must hold
/// exactly the matching number of bytes; callers (tensor loaders) validate
/// sizes when a file is opened, so a mismatch here is a programming error and
/// is reported as an `Err` rather than a panic anyway.
pub fn dequantize(dtype: DType, src: &[u8], out: &mut [f32]) -> Result<()> {
    let need = dtype.bytes_for(out.len()).ok_or_else(|| {
        LlamaError::Invalid(format!(
            "{} elements is not a whole number of {dtype} blocks",
            out.len()
        ))
    })?;
    if src.len() != need {
        return Err(LlamaError::Invalid(format!(
            "{dtype}: {} bytes given for {} elements (expected {need})",
            src.len(),
            out.len()
        )));
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the copy is compiled for.
        unsafe { dequantize_avx2(dtype, src, out) };
        return Ok(());
    }
    dequantize_impl(dtype, src, out);
    Ok(())
}

/// [`dequantize_impl`] compiled with AVX2/FMA so the loops vectorise wider.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dequantize_avx2(dtype: DType, src: &[u8], out: &mut [f32]) {
    dequantize_impl(dtype, src, out)
}

/// The dequantization loops; sizes were checked by [`dequantize`].
#[inline(always)]
fn dequantize_impl(dtype: DType, src: &[u8], out: &mut [f32]) {
    match dtype {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        DType::F16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::BF16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::F8E4M3 => {
            for (o, &b) in out.iter_mut().zip(src) {
                *o = float8::F8E4M3::from_bits(b).to_f32();
            }
        }
        DType::Q8_0 => {
            for (o, b) in out.chunks_exact_mut(32).zip(src.chunks_exact(Q8_0_BYTES)) {
                let d = f16_at(b, 0);
                for (x, &q) in o.iter_mut().zip(&b[2..34]) {
                    *x = d * (q as i8) as f32;
                }
            }
        }
        DType::Q4_0 => {
            for (o, b) in out.chunks_exact_mut(32).zip(src.chunks_exact(Q4_0_BYTES)) {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                for j in 0..16 {
                    o[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
                    o[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        DType::Q4_1 => {
            for (o, b) in out.chunks_exact_mut(32).zip(src.chunks_exact(Q4_1_BYTES)) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qs = &b[4..20];
                for j in 0..16 {
                    o[j] = (qs[j] & 0x0F) as f32 * d + m;
                    o[j + 16] = (qs[j] >> 4) as f32 * d + m;
                }
            }
        }
        DType::Q4_K => {
            for (o, b) in out.chunks_exact_mut(QK_K).zip(src.chunks_exact(Q4_K_BYTES)) {
                dequant_q4_k_block(b, o);
            }
        }
        DType::Q6_K => {
            for (o, b) in out.chunks_exact_mut(QK_K).zip(src.chunks_exact(Q6_K_BYTES)) {
                dequant_q6_k_block(b, o);
            }
        }
    }
}

/// The 6-bit (scale, min) pair `j` (0..8) of a Q4_K block, packed in 12 bytes
/// as ggml's `get_scale_min_k4` does.
#[inline]
pub fn q4_k_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

#[inline(always)]
fn dequant_q4_k_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for (chunk, (q, yy)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = q4_k_scale_min(2 * chunk, scales);
        let (sc2, m2) = q4_k_scale_min(2 * chunk + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            yy[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            yy[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

#[inline(always)]
fn dequant_q6_k_block(b: &[u8], y: &mut [f32]) {
    let ql_all = &b[0..128];
    let qh_all = &b[128..192];
    let sc_all = &b[192..208];
    let d = f16_at(b, 208);
    for half in 0..2 {
        let ql = &ql_all[64 * half..64 * half + 64];
        let qh = &qh_all[32 * half..32 * half + 32];
        let sc = &sc_all[8 * half..8 * half + 8];
        let yy = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            yy[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            yy[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            yy[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            yy[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

/// Encodes `f32` values as `dtype` for the plain float types (used by the
/// converters and the test GGUF writer). Quantized types are not produced.
pub fn encode_float(dtype: DType, src: &[f32]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len() * dtype.type_size());
    match dtype {
        DType::F32 => src
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        DType::F16 => src
            .iter()
            .for_each(|x| out.extend_from_slice(&f16::from_f32(*x).to_le_bytes())),
        DType::BF16 => src
            .iter()
            .for_each(|x| out.extend_from_slice(&bf16::from_f32(*x).to_le_bytes())),
        other => {
            return Err(LlamaError::UnsupportedType(format!(
                "cannot encode {other}"
            )))
        }
    }
    Ok(out)
}
