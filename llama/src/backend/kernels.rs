//! Fused "dequantize and dot" kernels for decode (matrix-vector) products.
//!
//! Decode is bound by reading weights, so the quantized bytes are consumed
//! directly instead of being expanded to `f32` first. The loops are written
//! for LLVM's auto-vectoriser and compiled twice: a portable version and,
//! on x86-64 CPUs that have them, an AVX2+FMA version chosen at run time (the
//! crate is built for the baseline x86-64 target, so this is the only way to
//! get 256-bit vectors without asking users for `-C target-cpu=native`).

use crate::quant::{DType, Q4_0_BYTES, Q4_1_BYTES, Q8_0_BYTES};
use half::f16;

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `sum(row * x)` for a Q4_1 row; `xsum[b]` is the sum of `x` over block `b`.
#[inline(always)]
fn q4_1_generic(row: &[u8], x: &[f32], xsum: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut off = 0f32;
    for ((b, xs), s) in row
        .chunks_exact(Q4_1_BYTES)
        .zip(x.chunks_exact(32))
        .zip(xsum)
    {
        let d = f16_at(b, 0);
        off += f16_at(b, 2) * s;
        let qs = &b[4..20];
        for j in 0..16 {
            acc[j] += d * ((qs[j] & 0x0F) as f32 * xs[j] + (qs[j] >> 4) as f32 * xs[j + 16]);
        }
    }
    acc.iter().sum::<f32>() + off
}

#[inline(always)]
fn q4_0_generic(row: &[u8], x: &[f32], xsum: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut off = 0f32;
    for ((b, xs), s) in row
        .chunks_exact(Q4_0_BYTES)
        .zip(x.chunks_exact(32))
        .zip(xsum)
    {
        let d = f16_at(b, 0);
        off -= 8.0 * d * s;
        let qs = &b[2..18];
        for j in 0..16 {
            acc[j] += d * ((qs[j] & 0x0F) as f32 * xs[j] + (qs[j] >> 4) as f32 * xs[j + 16]);
        }
    }
    acc.iter().sum::<f32>() + off
}

#[inline(always)]
fn q8_0_generic(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    for (b, xs) in row.chunks_exact(Q8_0_BYTES).zip(x.chunks_exact(32)) {
        let d = f16_at(b, 0);
        let qs = &b[2..34];
        for j in 0..32 {
            acc[j] += d * ((qs[j] as i8) as f32 * xs[j]);
        }
    }
    acc.iter().sum()
}

macro_rules! dispatch {
    ($name:ident, $generic:ident, ($($arg:ident : $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $name($($arg: $ty),*) -> f32 {
            $generic($($arg),*)
        }
    };
}
dispatch!(dot_avx2, dot_generic, (a: &[f32], b: &[f32]));
dispatch!(q4_1_avx2, q4_1_generic, (row: &[u8], x: &[f32], xsum: &[f32]));
dispatch!(q4_0_avx2, q4_0_generic, (row: &[u8], x: &[f32], xsum: &[f32]));
dispatch!(q8_0_avx2, q8_0_generic, (row: &[u8], x: &[f32]));

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dot product of two equal-length `f32` slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_generic(a, b)
}

/// Per-32-element block sums of `x` (used by the Q4 kernels' offsets).
pub fn block_sums(x: &[f32]) -> Vec<f32> {
    x.chunks(32).map(|c| c.iter().sum()).collect()
}

/// Whether [`row_dot`] has a fused kernel for `dtype`.
pub fn has_fused(dtype: DType) -> bool {
    matches!(dtype, DType::Q4_0 | DType::Q4_1 | DType::Q8_0)
}

/// Dot product of one quantized row with `x`, for types where
/// [`has_fused`] is true (returns `None` otherwise).
#[inline]
pub fn row_dot(dtype: DType, row: &[u8], x: &[f32], xsum: &[f32]) -> Option<f32> {
    let avx = has_avx2();
    #[cfg(not(target_arch = "x86_64"))]
    let _ = avx;
    Some(match dtype {
        #[cfg(target_arch = "x86_64")]
        // SAFETY (all three): AVX2 and FMA are available.
        DType::Q4_1 if avx => unsafe { q4_1_avx2(row, x, xsum) },
        #[cfg(target_arch = "x86_64")]
        DType::Q4_0 if avx => unsafe { q4_0_avx2(row, x, xsum) },
        #[cfg(target_arch = "x86_64")]
        DType::Q8_0 if avx => unsafe { q8_0_avx2(row, x) },
        DType::Q4_1 => q4_1_generic(row, x, xsum),
        DType::Q4_0 => q4_0_generic(row, x, xsum),
        DType::Q8_0 => q8_0_generic(row, x),
        _ => return None,
    })
}

/// Activations quantized to 16-bit integers per block of 32, so that the
/// decode kernels multiply integers (`pmaddwd`) instead of converting every
/// weight to `f32`. 16 bits keep the rounding error around 1e-5 of a block's
/// largest value; 8-bit activations (llama.cpp's choice) moved SmolLM2's
/// logits by up to ~10%, because its activations have large outliers.
pub struct QuantizedX {
    pub q: Vec<i16>,
    /// Scale of each block.
    pub d: Vec<f32>,
    /// Exact (f32) sum of each block, for the Q4 offset terms.
    pub sum: Vec<f32>,
}

/// Quantizes `x` (length a multiple of 32) to [`QuantizedX`].
pub fn quantize_x(x: &[f32]) -> QuantizedX {
    let nb = x.len() / 32;
    let mut q = vec![0i16; nb * 32];
    let mut d = vec![0f32; nb];
    let mut sum = vec![0f32; nb];
    for (b, xs) in x.chunks_exact(32).enumerate() {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 32767.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        for (o, v) in q[b * 32..b * 32 + 32].iter_mut().zip(xs) {
            *o = (v * inv).round().clamp(-32767.0, 32767.0) as i16;
        }
        d[b] = scale;
        sum[b] = xs.iter().sum();
    }
    QuantizedX { q, d, sum }
}

/// Whether the integer kernels ([`row_dot_int`]) can run on this CPU.
pub fn has_int_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Integer dot product of a Q4_0/Q4_1/Q8_0 row with quantized activations.
/// Returns `None` for other types, mismatched sizes, or when
/// [`has_int_kernels`] is false.
#[inline]
pub fn row_dot_int(dtype: DType, row: &[u8], x: &QuantizedX) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if has_int_kernels() && x.q.len() == x.d.len() * 32 && x.sum.len() == x.d.len() {
        let nb = x.d.len();
        // SAFETY: AVX2, FMA and F16C are available, and the row holds exactly
        // `nb` blocks of the activations' length (checked here).
        return match dtype {
            DType::Q4_1 if row.len() == nb * Q4_1_BYTES => Some(unsafe { int::q4_1(row, x) }),
            DType::Q4_0 if row.len() == nb * Q4_0_BYTES => Some(unsafe { int::q4_0(row, x) }),
            DType::Q8_0 if row.len() == nb * Q8_0_BYTES => Some(unsafe { int::q8_0(row, x) }),
            _ => None,
        };
    }
    let _ = (dtype, row, x);
    None
}

#[cfg(target_arch = "x86_64")]
mod int {
    //! AVX2 kernels: weights widened to i16, multiplied with i16 activations
    //! by `_mm256_madd_epi16` into i32 lanes (no overflow: |q| <= 128 and
    //! |x| <= 32767, four products per lane).
    use super::QuantizedX;
    use crate::quant::{Q4_0_BYTES, Q4_1_BYTES, Q8_0_BYTES};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn f16(p: *const u8) -> f32 {
        let bits = u16::from_le_bytes([*p, *p.add(1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        let s = _mm_hadd_ps(s, s);
        let s = _mm_hadd_ps(s, s);
        _mm_cvtss_f32(s)
    }

    /// Σ over a block of (nibble or i8 weight) × i16 activation, as 8 f32 lanes.
    /// `w0`/`w1` are the weights of elements 0..16 and 16..32 widened to i16.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block(w0: __m256i, w1: __m256i, xq: *const i16) -> __m256 {
        let y0 = _mm256_loadu_si256(xq as *const __m256i);
        let y1 = _mm256_loadu_si256(xq.add(16) as *const __m256i);
        let s = _mm256_add_epi32(_mm256_madd_epi16(w0, y0), _mm256_madd_epi16(w1, y1));
        _mm256_cvtepi32_ps(s)
    }

    /// The 32 unsigned nibbles of 16 bytes, widened: (elements 0..16, 16..32).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn nibbles(p: *const u8) -> (__m256i, __m256i) {
        let qs = _mm_loadu_si128(p as *const __m128i);
        let mask = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(qs, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);
        (_mm256_cvtepu8_epi16(lo), _mm256_cvtepu8_epi16(hi))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4_1(row: &[u8], x: &QuantizedX) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut off = 0f32;
        for b in 0..x.d.len() {
            let p = row.as_ptr().add(b * Q4_1_BYTES);
            let (d, m) = (f16(p), f16(p.add(2)));
            let (w0, w1) = nibbles(p.add(4));
            acc = _mm256_fmadd_ps(
                _mm256_set1_ps(d * x.d[b]),
                block(w0, w1, x.q.as_ptr().add(b * 32)),
                acc,
            );
            off += m * x.sum[b];
        }
        hsum(acc) + off
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4_0(row: &[u8], x: &QuantizedX) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut off = 0f32;
        for b in 0..x.d.len() {
            let p = row.as_ptr().add(b * Q4_0_BYTES);
            let d = f16(p);
            let (w0, w1) = nibbles(p.add(2));
            acc = _mm256_fmadd_ps(
                _mm256_set1_ps(d * x.d[b]),
                block(w0, w1, x.q.as_ptr().add(b * 32)),
                acc,
            );
            off -= 8.0 * d * x.sum[b];
        }
        hsum(acc) + off
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q8_0(row: &[u8], x: &QuantizedX) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for b in 0..x.d.len() {
            let p = row.as_ptr().add(b * Q8_0_BYTES);
            let d = f16(p);
            let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(2) as *const __m128i));
            let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(18) as *const __m128i));
            acc = _mm256_fmadd_ps(
                _mm256_set1_ps(d * x.d[b]),
                block(w0, w1, x.q.as_ptr().add(b * 32)),
                acc,
            );
        }
        hsum(acc)
    }
}
