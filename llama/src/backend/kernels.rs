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
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
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
    for ((b, xs), s) in row.chunks_exact(Q4_1_BYTES).zip(x.chunks_exact(32)).zip(xsum) {
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
    for ((b, xs), s) in row.chunks_exact(Q4_0_BYTES).zip(x.chunks_exact(32)).zip(xsum) {
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
