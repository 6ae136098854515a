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
        DType::F16 => f16::from_f64(x).to_f64(),
        DType::BF16 => bf16::from_f64(x).to_f64(),
        DType::F8E4M3 => e4m3::from_f64(x).to_f64(),
        DType::F8E5M2 => e5m2::from_f64(x).to_f64(),
        _ => panic!("round_float on non-float {d}"),
    }
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
