//! f32 transcendental functions and fp8 conversions.
//!
//! Accuracy (f32; f16/bf16 compute in f32 and round once, so they are within one rounding of exact):
//! - `exp`: `ex2.approx` of `x·log2(e)` with the product's rounding error corrected by an fma
//!   (Cody–Waite style): about 2 ulp over the whole range. `exp2`: `ex2.approx.ftz`, 2 ulp where the
//!   result is normal; results under 2^-126 flush to zero (absolute error under 1.2e-38), which spares
//!   the three instructions per call that ptxas adds for subnormal results (an attention loop's softmax
//!   makes one call per score).
//! - `log`, `log2`: `lg2.approx` (times ln 2): 2^-22 absolute error near 1, a few ulp elsewhere.
//! - `sin`, `cos`: reduced to [-π, π] with a two-part 2π, then `sin/cos.approx`: about 2^-21 absolute.
//! - `tanh`: odd polynomial below 0.25, `1 - 2/(exp(2|x|)+1)` above: a few ulp.
//! - `sigmoid`: `1/(1+exp(-x))` with the `exp` above and IEEE division: a few ulp.
//! - `sqrt`, `/`, `floor`, `ceil`, `abs`, `fma`, `+ - *`: correctly rounded, equal to the interpreter.
//! - `rsqrt`: `rsqrt.approx`, about 1 ulp.
//! - Float `%` is LLVM's `frem`, which NVPTX expands to `x - trunc(x / y) * y`: not exact when the
//!   quotient is large (the interpreter computes `fmod` exactly); not yet checked against it.
//!
//! fp8 conversions use the `cvt ... e4m3x2 / e5m2x2` instructions on sm_89 and later, and integer
//! arithmetic on sm_80 (no fp8 `cvt`); both decode exactly and encode rounding to nearest even, saturating
//! to the largest finite value (`satfinite`), NaN staying NaN — exactly `dsl_core::scalar::cast`.
//! (e5m2 decodes by a shift on every target: it is the top byte of an f16.)

use super::Lowerer;
use dsl_core::types::DType;

/// An f32 constant as LLVM writes it (the f64 hex of the f32 value).
pub(super) fn f32_const(x: f32) -> String {
    format!("0x{:016X}", (x as f64).to_bits())
}

impl Lowerer<'_> {
    pub(super) fn exp_f32(&mut self, x: &str) -> String {
        let l = std::f64::consts::LOG2_E as f32;
        let l_lo = (std::f64::consts::LOG2_E - l as f64) as f32;
        let (lc, llc) = (f32_const(l), f32_const(l_lo));
        let t = self.f.inst(format!("fmul float {x}, {lc}"));
        let nt = self.f.inst(format!("fneg float {t}"));
        let e1 = self.fma(DType::F32, x, &lc, &nt);
        let e = self.fma(DType::F32, x, &llc, &e1);
        // Outside (-128, 128) the correction is meaningless (and NaN at infinities): drop it.
        let at = self.intrinsic_f32("fabs", &t);
        let small = self.f.inst(format!("fcmp olt float {at}, 128.0"));
        let p = self.ptx_f32("ex2.approx.f32", &t);
        let eln2 = self.f.inst(format!("fmul float {e}, {}", f32_const(std::f32::consts::LN_2)));
        let corrected = self.fma(DType::F32, &p, &eln2, &p);
        // At ±inf (and past overflow) the correction would be inf * 0 = NaN: keep `p` there.
        self.f.inst(format!("select i1 {small}, float {corrected}, float {p}"))
    }

    pub(super) fn sin_cos_f32(&mut self, sin: bool, x: &str) -> String {
        let two_pi = std::f64::consts::TAU;
        let c1 = two_pi as f32;
        let c2 = (two_pi - c1 as f64) as f32;
        let q = self.f.inst(format!("fmul float {x}, {}", f32_const((1.0 / two_pi) as f32)));
        let k = self.intrinsic_f32("rint", &q);
        let nk = self.f.inst(format!("fneg float {k}"));
        let r = self.fma(DType::F32, &nk, &f32_const(c1), x);
        let r = self.fma(DType::F32, &nk, &f32_const(c2), &r);
        self.ptx_f32(if sin { "sin.approx.f32" } else { "cos.approx.f32" }, &r)
    }

    pub(super) fn tanh_f32(&mut self, x: &str) -> String {
        let a = self.intrinsic_f32("fabs", x);
        // Small |x|: x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 (error < 1e-8 relative below 0.25).
        let x2 = self.f.inst(format!("fmul float {x}, {x}"));
        let coeffs = [62.0 / 2835.0, -17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0];
        let mut p = f32_const(coeffs[0] as f32);
        for c in &coeffs[1..] {
            p = self.fma(DType::F32, &p, &x2, &f32_const(*c as f32));
        }
        let px = self.f.inst(format!("fmul float {p}, {x2}"));
        let small = self.fma(DType::F32, &px, x, x);
        // Large |x|: 1 - 2 / (exp(2|x|) + 1), with x's sign.
        let a2 = self.f.inst(format!("fmul float {a}, 2.0"));
        let e = self.exp_f32(&a2);
        let e1 = self.f.inst(format!("fadd float {e}, 1.0"));
        let q = self.f.inst(format!("fdiv float 2.0, {e1}"));
        let t = self.f.inst(format!("fsub float 1.0, {q}"));
        self.declare("declare float @llvm.copysign.f32(float, float)");
        let big = self.f.inst(format!("call float @llvm.copysign.f32(float {t}, float {x})"));
        let is_small = self.f.inst(format!("fcmp olt float {a}, 0.25"));
        self.f.inst(format!("select i1 {is_small}, float {small}, float {big}"))
    }

    /// Two e4m3 values (`i8` bits) → two f32, exactly, with one `cvt.rn.f16x2.e4m3x2` (sm_89 and later:
    /// check `has_fp8_cvt`): half the conversions of two [`Self::fp8_to_f32`].
    pub(super) fn e4m3x2_to_f32(&mut self, lo: &str, hi: &str) -> (String, String) {
        let both = match (self.byte_of.get(lo).cloned(), self.byte_of.get(hi).cloned()) {
            // Neighbours in one loaded word (an even byte and the next): its 16-bit piece.
            (Some((w, b)), Some((w2, b2))) if w == w2 && b % 2 == 0 && b2 == b + 1 => {
                let s = self.f.inst(format!("lshr i32 {w}, {}", 8 * b));
                self.f.inst(format!("trunc i32 {s} to i16"))
            }
            _ => {
                let l = self.f.inst(format!("zext i8 {lo} to i16"));
                let h = self.f.inst(format!("zext i8 {hi} to i16"));
                let h = self.f.inst(format!("shl i16 {h}, 8"));
                self.f.inst(format!("or i16 {l}, {h}"))
            }
        };
        let pair = self.f.inst(format!("call i32 asm \"cvt.rn.f16x2.e4m3x2 $0, $1;\", \"=r,h\"(i16 {both})"));
        let top = self.f.inst(format!("lshr i32 {pair}, 16"));
        let mut half = |bits: &str| {
            let b = self.f.inst(format!("trunc i32 {bits} to i16"));
            let h = self.f.inst(format!("bitcast i16 {b} to half"));
            self.f.inst(format!("fpext half {h} to float"))
        };
        (half(&pair), half(&top))
    }

    /// fp8 bits (`i8`) → f32, exactly.
    pub(super) fn fp8_to_f32(&mut self, d: DType, x: &str) -> String {
        if d == DType::F8E4M3 && self.target.has_fp8_cvt() {
            // The low half of a pair whose high byte is zero (LLVM drops the unused high half).
            return self.e4m3x2_to_f32(x, "0").0;
        }
        if d == DType::F8E5M2 {
            // e5m2 is the top byte of an f16.
            let h = self.f.inst(format!("zext i8 {x} to i16"));
            let h = self.f.inst(format!("shl i16 {h}, 8"));
            let h = self.f.inst(format!("bitcast i16 {h} to half"));
            return self.f.inst(format!("fpext half {h} to float"));
        }
        let b = self.f.inst(format!("zext i8 {x} to i32"));
        let em = self.f.inst(format!("and i32 {b}, 127"));
        let m = self.f.inst(format!("and i32 {b}, 7"));
        let is_sub = self.f.inst(format!("icmp ult i32 {em}, 8"));
        let is_nan = self.f.inst(format!("icmp eq i32 {em}, 127"));
        // Normal: exponent e - 7 + 127, mantissa m << 20.
        let nb = self.f.inst(format!("shl i32 {em}, 20"));
        let nb = self.f.inst(format!("add i32 {nb}, {}", 120 << 23));
        let normal = self.f.inst(format!("bitcast i32 {nb} to float"));
        // Subnormal: m * 2^-9.
        let mf = self.f.inst(format!("uitofp i32 {m} to float"));
        let sub = self.f.inst(format!("fmul float {mf}, {}", f32_const(2f32.powi(-9))));
        let mag = self.f.inst(format!("select i1 {is_sub}, float {sub}, float {normal}"));
        let mag = self.f.inst(format!("select i1 {is_nan}, float 0x7FF8000000000000, float {mag}"));
        let neg = self.f.inst(format!("icmp uge i32 {b}, 128"));
        let n = self.f.inst(format!("fneg float {mag}"));
        self.f.inst(format!("select i1 {neg}, float {n}, float {mag}"))
    }

    /// f32 → fp8 bits, round to nearest even, saturating to ±max; NaN → NaN (0x7F with the sign).
    pub(super) fn f32_to_fp8(&mut self, d: DType, x: &str) -> String {
        if self.target.has_fp8_cvt() {
            // cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32 d, hi, lo: our value is the low byte.
            let ty = if d == DType::F8E4M3 { "e4m3x2" } else { "e5m2x2" };
            let pair = self.f.inst(format!(
                "call i16 asm \"cvt.rn.satfinite.{ty}.f32 $0, $1, $2;\", \"=h,f,f\"(float 0.0, float {x})"
            ));
            return self.f.inst(format!("trunc i16 {pair} to i8"));
        }
        let (mant, bias, max, min_normal): (u32, i32, f32, f32) = match d {
            DType::F8E4M3 => (3, 7, 448.0, 2f32.powi(-6)),
            _ => (2, 15, 57344.0, 2f32.powi(-14)),
        };
        let bits = self.f.inst(format!("bitcast float {x} to i32"));
        let s = self.f.inst(format!("lshr i32 {bits}, 24"));
        let s = self.f.inst(format!("and i32 {s}, 128"));
        let is_nan = self.f.inst(format!("fcmp uno float {x}, 0.0"));
        let a = self.intrinsic_f32("fabs", x);
        let over = self.f.inst(format!("fcmp ogt float {a}, {}", f32_const(max)));
        let a = self.f.inst(format!("select i1 {over}, float {}, float {a}", f32_const(max)));
        // Subnormal range: a multiple of the smallest subnormal 2^(1-bias-mant), rounded to even.
        let q = self.f.inst(format!("fmul float {a}, {}", f32_const(2f32.powi(bias - 1 + mant as i32))));
        let q = self.intrinsic_f32("rint", &q);
        let sub = self.f.inst(format!("fptoui float {q} to i32"));
        // Normal range: round the f32 encoding to `mant` mantissa bits (a carry bumps the exponent).
        let ab = self.f.inst(format!("bitcast float {a} to i32"));
        let shift = 23 - mant;
        let lsb = self.f.inst(format!("lshr i32 {ab}, {shift}"));
        let lsb = self.f.inst(format!("and i32 {lsb}, 1"));
        let r = self.f.inst(format!("add i32 {ab}, {}", (1u32 << (shift - 1)) - 1));
        let r = self.f.inst(format!("add i32 {r}, {lsb}"));
        let r = self.f.inst(format!("lshr i32 {r}, {shift}"));
        let normal = self.f.inst(format!("sub i32 {r}, {}", ((127 - bias) as u32) << mant));
        let is_sub = self.f.inst(format!("fcmp olt float {a}, {}", f32_const(min_normal)));
        let code = self.f.inst(format!("select i1 {is_sub}, i32 {sub}, i32 {normal}"));
        let code = self.f.inst(format!("or i32 {code}, {s}"));
        let nan = self.f.inst(format!("or i32 {s}, 127"));
        let code = self.f.inst(format!("select i1 {is_nan}, i32 {nan}, i32 {code}"));
        self.f.inst(format!("trunc i32 {code} to i8"))
    }
}
