//! Scalar semantics shared by the interpreter and constant handling: how each element type holds a value,
//! rounds, converts, and sits in memory.
//!
//! Floats of every width are held as `f64` that is exactly representable in their own type; integers as
//! `i64` wrapped to their width; bools as `bool`. An operation computes in `f64` and rounds once to its
//! type. For `+ - * /` and `sqrt` of f32/f16/bf16 this is the correctly rounded result the GPU's IEEE
//! instructions give (f64 has more than twice the precision of f32, so the double rounding is harmless).

use crate::types::{bf16, e4m3, e5m2, f16, DType};

/// One element as the interpreter holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    F(f64),
    I(i64),
    B(bool),
}

impl Scalar {
    pub fn as_f64(self) -> f64 {
        match self {
            Scalar::F(x) => x,
            Scalar::I(i) => i as f64,
            Scalar::B(b) => b as u8 as f64,
        }
    }
    pub fn as_i64(self) -> i64 {
        match self {
            Scalar::F(x) => x as i64,
            Scalar::I(i) => i,
            Scalar::B(b) => b as i64,
        }
    }
    pub fn as_bool(self) -> bool {
        match self {
            Scalar::F(x) => x != 0.0,
            Scalar::I(i) => i != 0,
            Scalar::B(b) => b,
        }
    }
}

/// Rounds `x` to the nearest value of float type `d` (ties to even).
///
/// f32/f16/bf16 overflow to ±inf as `cvt.rn` does; fp8 saturates to the largest finite value as
/// `cvt.rn.satfinite` does (also for ±inf); NaN stays NaN.
pub fn round_float(d: DType, x: f64) -> f64 {
    match d {
        DType::F32 => x as f32 as f64,
        // Not `f16::from_f64`/`bf16::from_f64`: they drop the sticky bits below f32 precision and so
        // misround some values just beside a tie (the exhaustive tests below caught it).
        DType::F16 => round_binary(x, 10, -14, 65504.0),
        DType::BF16 => round_binary(x, 7, -126, bf16::MAX.to_f64()),
        DType::F8E4M3 => e4m3::from_f64(x).to_f64(),
        DType::F8E5M2 => e5m2::from_f64(x).to_f64(),
        _ => panic!("round_float on non-float {d}"),
    }
}

/// Round-to-nearest-even of `x` to a binary format with `mant` explicit mantissa bits and smallest
/// normal exponent `emin`, overflowing to ±inf above `max`; works on the f64 significand's bits, so the
/// rounding sees every bit of `x`.
fn round_binary(x: f64, mant: i32, emin: i32, max: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // An f64 subnormal is far below half the smallest subnormal of every narrower format.
        return 0.0f64.copysign(x);
    }
    let e = biased - 1023;
    let sig = ((bits & ((1u64 << 52) - 1)) | (1u64 << 52)) as u128; // x = sig * 2^(e - 52)
    let quantum_exp = e.max(emin) - mant; // the result is a multiple of 2^quantum_exp
    let shift = (quantum_exp - (e - 52)) as u32; // low bits of sig below the quantum (> 0)
    if shift > 100 {
        return 0.0f64.copysign(x);
    }
    let mut q = sig >> shift;
    let rem = sig & ((1u128 << shift) - 1);
    let half = 1u128 << (shift - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q += 1;
    }
    let r = (q as f64) * 2f64.powi(quantum_exp); // exact: q has at most mant + 2 bits
    let r = if r > max { f64::INFINITY } else { r };
    r.copysign(x)
}

/// Wraps `x` to the width of integer type `d` (two's complement truncation, then sign or zero extension).
pub fn wrap_int(d: DType, x: i64) -> i64 {
    match d {
        DType::I8 => x as i8 as i64,
        DType::I16 => x as i16 as i64,
        DType::I32 => x as i32 as i64,
        DType::I64 => x,
        DType::U8 => x as u8 as i64,
        DType::U32 => x as u32 as i64,
        _ => panic!("wrap_int on non-integer {d}"),
    }
}

/// Brings any scalar to the canonical form of type `d` (rounding floats, wrapping integers).
pub fn normalize(d: DType, v: Scalar) -> Scalar {
    if d.is_float() {
        Scalar::F(round_float(d, v.as_f64()))
    } else if d.is_int() {
        Scalar::I(wrap_int(d, v.as_i64()))
    } else {
        Scalar::B(v.as_bool())
    }
}

/// Float to integer as `cvt.rzi.sat`: truncate toward zero, saturate to the range, NaN becomes 0.
fn float_to_int(d: DType, x: f64) -> i64 {
    match d {
        DType::I8 => x as i8 as i64,
        DType::I16 => x as i16 as i64,
        DType::I32 => x as i32 as i64,
        DType::I64 => x as i64,
        DType::U8 => x as u8 as i64,
        DType::U32 => x as u32 as i64,
        _ => unreachable!(),
    }
}

/// Integer to float, rounding to nearest even once (no double rounding through f64 for f32).
fn int_to_float(d: DType, i: i64) -> f64 {
    match d {
        DType::F32 => i as f32 as f64,
        // Exact in f64 for every value these narrow types can hold finitely; larger ones overflow anyway.
        _ => round_float(d, i as f64),
    }
}

/// Value conversion (`x.to::<T>()`): the semantics of every cast between element types.
///
/// - float → float: round to nearest even; see [`round_float`] for overflow and fp8 saturation.
/// - float → int: truncate toward zero, saturate, NaN → 0 (`cvt.rzi.sat`).
/// - int → float: round to nearest even. int → int: wrap (truncate / extend by the source's signedness).
/// - bool → number: 0 or 1. number → bool: `x != 0` (NaN is true).
pub fn cast(from: DType, to: DType, v: Scalar) -> Scalar {
    match (from.is_float(), to) {
        (_, DType::Bool) => Scalar::B(v.as_bool()),
        (true, t) if t.is_float() => Scalar::F(round_float(t, v.as_f64())),
        (true, t) => Scalar::I(float_to_int(t, v.as_f64())),
        (false, t) if t.is_float() => Scalar::F(int_to_float(t, v.as_i64())),
        (false, t) => Scalar::I(wrap_int(t, v.as_i64())),
    }
}

/// The raw bits of `v` held as type `d`, in the low `d.bits()` bits.
pub fn to_bits(d: DType, v: Scalar) -> u64 {
    match d {
        DType::F32 => (v.as_f64() as f32).to_bits() as u64,
        DType::F16 => f16::from_f64(v.as_f64()).to_bits() as u64,
        DType::BF16 => bf16::from_f64(v.as_f64()).to_bits() as u64,
        DType::F8E4M3 => e4m3::from_f64(v.as_f64()).to_bits() as u64,
        // The conversion saturates, but an e5m2 infinity (from memory or a bitcast) keeps its bits.
        DType::F8E5M2 if v.as_f64().is_infinite() => if v.as_f64() > 0.0 { 0x7c } else { 0xfc },
        DType::F8E5M2 => e5m2::from_f64(v.as_f64()).to_bits() as u64,
        DType::Bool => v.as_bool() as u64,
        _ => (v.as_i64() as u64) & mask_bits(d.bits()),
    }
}

/// The value of type `d` whose bits are the low `d.bits()` bits of `bits`.
pub fn from_bits(d: DType, bits: u64) -> Scalar {
    let bits = bits & mask_bits(d.bits());
    match d {
        DType::F32 => Scalar::F(f32::from_bits(bits as u32) as f64),
        DType::F16 => Scalar::F(f16::from_bits(bits as u16).to_f64()),
        DType::BF16 => Scalar::F(bf16::from_bits(bits as u16).to_f64()),
        DType::F8E4M3 => Scalar::F(e4m3::from_bits(bits as u8).to_f64()),
        DType::F8E5M2 => Scalar::F(e5m2::from_bits(bits as u8).to_f64()),
        DType::Bool => Scalar::B(bits != 0),
        _ => Scalar::I(wrap_int(d, bits as i64)),
    }
}

fn mask_bits(bits: u32) -> u64 {
    if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Reinterprets the bits of a value of type `from` as type `to` (same width).
pub fn bitcast(from: DType, to: DType, v: Scalar) -> Scalar {
    from_bits(to, to_bits(from, v))
}

/// Reads one element of type `d` from little-endian memory.
pub fn read_mem(d: DType, bytes: &[u8]) -> Scalar {
    let mut raw = [0u8; 8];
    raw[..bytes.len()].copy_from_slice(bytes);
    from_bits(d, u64::from_le_bytes(raw))
}

/// Writes one element of type `d` to little-endian memory.
pub fn write_mem(d: DType, v: Scalar, out: &mut [u8]) {
    let raw = to_bits(d, v).to_le_bytes();
    let n = out.len();
    out.copy_from_slice(&raw[..n]);
}

#[cfg(test)]
mod tests {
    //! The scalar types come from `half` and `float8`; these tests check them exhaustively against an
    //! independent rounding written from the formats' definitions, rather than trusting them.
    use super::*;

    /// A binary float format: explicit mantissa bits, smallest normal exponent, largest finite value.
    struct Format {
        mant: i32,
        min_exp: i32,
        max: f64,
        /// Out-of-range values saturate to ±max (fp8 `satfinite`) instead of becoming ±inf.
        saturate: bool,
    }

    const F16: Format = Format { mant: 10, min_exp: -14, max: 65504.0, saturate: false };
    const BF16: Format = Format { mant: 7, min_exp: -126, max: 3.3895313892515355e38, saturate: false };
    const E4M3: Format = Format { mant: 3, min_exp: -6, max: 448.0, saturate: true };
    const E5M2: Format = Format { mant: 2, min_exp: -14, max: 57344.0, saturate: true };

    /// Round-to-nearest-even into `f`, from the definition: scale to an integer grid of the value's
    /// binade (or the subnormal grid), round ties to even, scale back, then handle overflow.
    fn reference_round(f: &Format, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        if x.is_infinite() {
            return if f.saturate { f.max.copysign(x) } else { x };
        }
        if x == 0.0 {
            return x;
        }
        let exp = (((x.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(f.min_exp);
        let quantum = 2f64.powi(exp - f.mant);
        let r = (x / quantum).round_ties_even() * quantum;
        if r.abs() > f.max {
            if f.saturate {
                f.max.copysign(x)
            } else {
                f64::INFINITY.copysign(x)
            }
        } else if r == 0.0 {
            0.0f64.copysign(x)
        } else {
            r
        }
    }

    fn same(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
    }

    /// Decodes an fp8 code from the format's definition (sign, biased exponent, mantissa).
    fn reference_decode_fp8(code: u8, e4m3: bool) -> f64 {
        let sign = if code & 0x80 != 0 { -1.0 } else { 1.0 };
        let (ebits, mbits, bias) = if e4m3 { (4, 3, 7) } else { (5, 2, 15) };
        let e = ((code & 0x7f) >> mbits) as i32;
        let m = (code & ((1 << mbits) - 1)) as i32;
        let emax_field = (1 << ebits) - 1;
        if e4m3 && e == emax_field && m == (1 << mbits) - 1 {
            return f64::NAN;
        }
        if !e4m3 && e == emax_field {
            return if m == 0 { sign * f64::INFINITY } else { f64::NAN };
        }
        if e == 0 {
            sign * m as f64 * 2f64.powi(1 - bias - mbits)
        } else {
            sign * (1.0 + m as f64 / (1 << mbits) as f64) * 2f64.powi(e - bias)
        }
    }

    #[test]
    fn fp8_decode_all_256_codes() {
        for code in 0..=255u8 {
            let a = from_bits(DType::F8E4M3, code as u64).as_f64();
            assert!(same(a, reference_decode_fp8(code, true)), "e4m3 code {code:#04x}: {a}");
            let b = from_bits(DType::F8E5M2, code as u64).as_f64();
            assert!(same(b, reference_decode_fp8(code, false)), "e5m2 code {code:#04x}: {b}");
        }
    }

    #[test]
    fn fp8_encode_all_256_codes_round_trip() {
        for (d, e4m3) in [(DType::F8E4M3, true), (DType::F8E5M2, false)] {
            for code in 0..=255u8 {
                let v = reference_decode_fp8(code, e4m3);
                let back = to_bits(d, Scalar::F(v)) as u8;
                if v.is_nan() {
                    assert!(reference_decode_fp8(back, e4m3).is_nan(), "{d} NaN code {code:#04x} -> {back:#04x}");
                } else if v.is_infinite() {
                    // Memory keeps an infinity's bits; converting one to e5m2 saturates (satfinite).
                    assert_eq!(back, code, "{d} inf bits");
                    assert_eq!(round_float(d, v), E5M2.max.copysign(v), "{d} inf converts to max");
                } else {
                    assert_eq!(back, code, "{d} value {v} should encode to {code:#04x}");
                }
            }
        }
    }

    /// Every midpoint between neighbouring codes, and points just beside it, against the reference.
    fn check_format_exhaustive(d: DType, f: &Format, codes: u32) {
        let mut vals: Vec<f64> = (0..codes).map(|c| from_bits(d, c as u64).as_f64()).filter(|v| v.is_finite()).collect();
        vals.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        vals.dedup();
        let mut probes = vec![];
        for w in vals.windows(2) {
            let mid = (w[0] + w[1]) / 2.0; // exact in f64 for these narrow formats
            probes.extend([mid, f64::from_bits(mid.to_bits() + 1), f64::from_bits(mid.to_bits() - 1), w[0]]);
        }
        // Beyond the largest finite value: ties to overflow, and far out.
        let top = f.max + 2f64.powi(((f.max.to_bits() >> 52) & 0x7ff) as i32 - 1023 - f.mant) / 2.0;
        probes.extend([top, -top, top * 0.999999, f.max * 4.0, -f.max * 4.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.0, -0.0]);
        for x in probes {
            let got = round_float(d, x);
            let want = reference_round(f, x);
            assert!(same(got, want), "{d}: round({x:e}) = {got:e}, want {want:e}");
        }
    }

    #[test]
    fn f16_rounding_exhaustive() {
        check_format_exhaustive(DType::F16, &F16, 1 << 16);
    }

    #[test]
    fn bf16_rounding_exhaustive() {
        check_format_exhaustive(DType::BF16, &BF16, 1 << 16);
    }

    #[test]
    fn e4m3_rounding_exhaustive_ties_and_saturation() {
        check_format_exhaustive(DType::F8E4M3, &E4M3, 256);
        // Explicit cases: a tie rounds to the even code; 464 is the tie between 448 and (absent) 480.
        assert_eq!(round_float(DType::F8E4M3, 464.0), 448.0);
        assert_eq!(round_float(DType::F8E4M3, 1e9), 448.0);
        assert_eq!(round_float(DType::F8E4M3, -f64::INFINITY), -448.0);
        assert_eq!(round_float(DType::F8E4M3, 1.0625), 1.0); // tie between 1.0 and 1.125 -> even
        assert_eq!(round_float(DType::F8E4M3, 1.1875), 1.25); // tie between 1.125 and 1.25 -> even
        assert!(round_float(DType::F8E4M3, f64::NAN).is_nan());
    }

    #[test]
    fn e5m2_rounding_exhaustive_ties_and_saturation() {
        check_format_exhaustive(DType::F8E5M2, &E5M2, 256);
        assert_eq!(round_float(DType::F8E5M2, f64::INFINITY), 57344.0);
        assert_eq!(round_float(DType::F8E5M2, 61440.0), 57344.0); // the tie above max saturates
    }

    #[test]
    fn f32_rounding_matches_reference_on_random_values() {
        const F32: Format = Format { mant: 23, min_exp: -126, max: f32::MAX as f64, saturate: false };
        let mut s = 0x9e3779b97f4a7c15u64;
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Random f64 bits within f32's range, plus some at f32 midpoints.
            let x = f64::from_bits((s & 0x800f_ffff_ffff_ffff) | (((s >> 52) % 300 + 1023 - 150) << 52));
            let got = round_float(DType::F32, x);
            assert!(same(got, reference_round(&F32, x)), "f32 round({x:e})");
        }
    }

    #[test]
    fn float_to_int_truncates_saturates_and_maps_nan_to_zero() {
        let c = |v: f64, to| cast(DType::F32, to, Scalar::F(v)).as_i64();
        assert_eq!(c(2.9, DType::I32), 2);
        assert_eq!(c(-2.9, DType::I32), -2);
        assert_eq!(c(1e20, DType::I32), i32::MAX as i64);
        assert_eq!(c(-1e20, DType::I32), i32::MIN as i64);
        assert_eq!(c(f64::NAN, DType::I32), 0);
        assert_eq!(c(-5.0, DType::U32), 0);
        assert_eq!(c(300.0, DType::U8), 255);
        assert_eq!(c(-200.0, DType::I8), -128);
    }

    #[test]
    fn int_casts_wrap_and_bool_casts() {
        assert_eq!(cast(DType::I32, DType::I8, Scalar::I(300)).as_i64(), 44);
        assert_eq!(cast(DType::I32, DType::U8, Scalar::I(-1)).as_i64(), 255);
        assert_eq!(cast(DType::I32, DType::U32, Scalar::I(-1)).as_i64(), u32::MAX as i64);
        assert_eq!(cast(DType::U32, DType::I32, Scalar::I(u32::MAX as i64)).as_i64(), -1);
        assert_eq!(cast(DType::I64, DType::F32, Scalar::I(16_777_217)).as_f64(), 16_777_216.0);
        assert_eq!(cast(DType::F32, DType::Bool, Scalar::F(f64::NAN)), Scalar::B(true));
        assert_eq!(cast(DType::F32, DType::Bool, Scalar::F(-0.0)), Scalar::B(false));
        assert_eq!(cast(DType::Bool, DType::F16, Scalar::B(true)).as_f64(), 1.0);
        // float -> fp8 through any source type rounds once from the exact value
        assert_eq!(cast(DType::F16, DType::F8E4M3, Scalar::F(1.0625)).as_f64(), 1.0);
    }

    #[test]
    fn bitcasts_round_trip_bits() {
        assert_eq!(bitcast(DType::F32, DType::U32, Scalar::F(1.0)).as_i64(), 0x3f80_0000);
        assert_eq!(bitcast(DType::U32, DType::F32, Scalar::I(0xbf80_0000)).as_f64(), -1.0);
        assert_eq!(bitcast(DType::F16, DType::I16, Scalar::F(-2.0)).as_i64(), 0xc000u16 as i16 as i64);
        assert_eq!(bitcast(DType::BF16, DType::I16, Scalar::F(1.0)).as_i64(), 0x3f80);
        assert_eq!(bitcast(DType::F8E4M3, DType::U8, Scalar::F(448.0)).as_i64(), 0x7e);
        assert_eq!(bitcast(DType::U8, DType::F8E5M2, Scalar::I(0x7c)).as_f64(), f64::INFINITY);
        for code in 0..=255u64 {
            let v = from_bits(DType::F8E5M2, code);
            if !v.as_f64().is_nan() {
                assert_eq!(to_bits(DType::F8E5M2, v), code);
            }
        }
    }

    #[test]
    fn memory_encoding_round_trips_each_type() {
        for d in DType::ALL {
            let v = match d {
                DType::Bool => Scalar::B(true),
                d if d.is_float() => Scalar::F(-1.5),
                d if d.is_signed_int() => Scalar::I(-7),
                _ => Scalar::I(200),
            };
            let mut buf = vec![0u8; d.size_bytes()];
            write_mem(d, v, &mut buf);
            assert_eq!(read_mem(d, &buf), v, "{d}");
        }
    }
}
