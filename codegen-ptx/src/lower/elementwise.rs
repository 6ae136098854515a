//! Register-by-register ops: casts, unary and binary math, comparisons, fma. The semantics are
//! `dsl_core::scalar::cast` and `dsl_core::interp`'s; where the GPU's result can differ (transcendental
//! approximations, float `%`), [`super::math`] documents the accuracy.

use super::{dtype_lty, Lowerer};
use dsl_core::ir::{BinaryOp, CmpOp, UnaryOp};
use dsl_core::types::DType;

/// f32 `i`-bit LLVM intrinsic suffix of an integer type.
fn int_suffix(d: DType) -> &'static str {
    dtype_lty(d)
}

impl Lowerer<'_> {
    /// Value conversion with `scalar::cast`'s semantics.
    pub(super) fn cast(&mut self, from: DType, to: DType, x: &str) -> String {
        if from == to {
            return x.to_string();
        }
        let (ft, tt) = (dtype_lty(from), dtype_lty(to));
        if to == DType::Bool {
            return if from.is_fp8() {
                // Any code but ±0 (NaN codes included) is true.
                let m = self.f.inst(format!("and i8 {x}, 127"));
                self.f.inst(format!("icmp ne i8 {m}, 0"))
            } else if from.is_float() {
                self.f.inst(format!("fcmp une {ft} {x}, 0.0"))
            } else {
                self.f.inst(format!("icmp ne {ft} {x}, 0"))
            };
        }
        if from == DType::Bool {
            return if to.is_float() {
                let one = self.f.inst(format!("uitofp i1 {x} to float"));
                self.narrow_f32(to, &one)
            } else {
                self.f.inst(format!("zext i1 {x} to {tt}"))
            };
        }
        match (from.is_float(), to.is_float()) {
            (true, true) => {
                let f = self.widen_f32(from, x);
                self.narrow_f32(to, &f)
            }
            (true, false) => {
                let f = self.widen_f32(from, x);
                let kind = if to.is_signed_int() { "fptosi" } else { "fptoui" };
                let s = int_suffix(to);
                self.declare(format!("declare {tt} @llvm.{kind}.sat.{s}.f32(float)"));
                self.f.inst(format!("call {tt} @llvm.{kind}.sat.{s}.f32(float {f})"))
            }
            (false, true) => {
                let kind = if from.is_signed_int() { "sitofp" } else { "uitofp" };
                if to.is_fp8() {
                    let f = self.f.inst(format!("{kind} {ft} {x} to float"));
                    self.narrow_f32(to, &f)
                } else {
                    self.f.inst(format!("{kind} {ft} {x} to {tt}"))
                }
            }
            (false, false) => {
                let (fb, tb) = (from.bits(), to.bits());
                if tb == fb {
                    x.to_string()
                } else if tb < fb {
                    self.f.inst(format!("trunc {ft} {x} to {tt}"))
                } else if from.is_signed_int() {
                    self.f.inst(format!("sext {ft} {x} to {tt}"))
                } else {
                    self.f.inst(format!("zext {ft} {x} to {tt}"))
                }
            }
        }
    }

    /// An exact widening of any float type to f32.
    pub(super) fn widen_f32(&mut self, d: DType, x: &str) -> String {
        match d {
            DType::F32 => x.to_string(),
            DType::F16 | DType::BF16 => self.f.inst(format!("fpext {} {x} to float", dtype_lty(d))),
            DType::F8E4M3 | DType::F8E5M2 => self.fp8_to_f32(d, x),
            _ => panic!("to_f32 of {d}"),
        }
    }

    /// f32 → float type `d`, rounding to nearest even (fp8: saturating, as `cvt.rn.satfinite`).
    pub(super) fn narrow_f32(&mut self, d: DType, x: &str) -> String {
        match d {
            DType::F32 => x.to_string(),
            DType::F16 | DType::BF16 => self.f.inst(format!("fptrunc float {x} to {}", dtype_lty(d))),
            DType::F8E4M3 | DType::F8E5M2 => self.f32_to_fp8(d, x),
            _ => panic!("from_f32 to {d}"),
        }
    }

    pub(super) fn bitcast(&mut self, from: DType, to: DType, x: &str) -> String {
        let (ft, tt) = (dtype_lty(from), dtype_lty(to));
        if ft == tt {
            x.to_string()
        } else {
            self.f.inst(format!("bitcast {ft} {x} to {tt}"))
        }
    }

    pub(super) fn unary(&mut self, op: UnaryOp, d: DType, x: &str) -> String {
        let t = dtype_lty(d);
        if d == DType::Bool {
            return self.f.inst(format!("xor i1 {x}, true"));
        }
        if d.is_int() {
            return match op {
                UnaryOp::Neg => self.f.inst(format!("sub {t} 0, {x}")),
                UnaryOp::Not => self.f.inst(format!("xor {t} {x}, -1")),
                UnaryOp::Abs => {
                    self.declare(format!("declare {t} @llvm.abs.{t}({t}, i1)"));
                    self.f.inst(format!("call {t} @llvm.abs.{t}({t} {x}, i1 false)"))
                }
                _ => unreachable!("verified IR: {op:?} on {d}"),
            };
        }
        // Floats: f32 math (exact widening), one rounding back to `d`.
        let f = self.widen_f32(d, x);
        let r = match op {
            UnaryOp::Neg => self.f.inst(format!("fneg float {f}")),
            UnaryOp::Abs => self.intrinsic_f32("fabs", &f),
            UnaryOp::Floor => self.intrinsic_f32("floor", &f),
            UnaryOp::Ceil => self.intrinsic_f32("ceil", &f),
            UnaryOp::Sqrt => self.intrinsic_f32("sqrt", &f),
            UnaryOp::Rsqrt => self.ptx_f32("rsqrt.approx.f32", &f),
            UnaryOp::Exp => self.exp_f32(&f),
            UnaryOp::Exp2 => self.ptx_f32("ex2.approx.ftz.f32", &f),
            UnaryOp::Log => {
                let l2 = self.ptx_f32("lg2.approx.f32", &f);
                self.f.inst(format!("fmul float {l2}, 0x3FE62E4300000000"))
            }
            UnaryOp::Log2 => self.ptx_f32("lg2.approx.f32", &f),
            UnaryOp::Sin => self.sin_cos_f32(true, &f),
            UnaryOp::Cos => self.sin_cos_f32(false, &f),
            UnaryOp::Tanh => self.tanh_f32(&f),
            UnaryOp::Sigmoid => {
                let n = self.f.inst(format!("fneg float {f}"));
                let e = self.exp_f32(&n);
                let d1 = self.f.inst(format!("fadd float {e}, 1.0"));
                self.f.inst(format!("fdiv float 1.0, {d1}"))
            }
            UnaryOp::Not => unreachable!("verified IR: not on a float"),
        };
        self.narrow_f32(d, &r)
    }

    pub(super) fn intrinsic_f32(&mut self, name: &str, x: &str) -> String {
        self.declare(format!("declare float @llvm.{name}.f32(float)"));
        self.f.inst(format!("call float @llvm.{name}.f32(float {x})"))
    }

    /// One PTX instruction `op dst, src` on f32.
    pub(super) fn ptx_f32(&mut self, op: &str, x: &str) -> String {
        self.f.inst(format!("call float asm \"{op} $0, $1;\", \"=f,f\"(float {x})"))
    }

    pub(super) fn binary(&mut self, op: BinaryOp, d: DType, a: &str, b: &str) -> String {
        let t = dtype_lty(d);
        if d == DType::Bool {
            let o = match op {
                BinaryOp::And | BinaryOp::Min => "and",
                BinaryOp::Or | BinaryOp::Max => "or",
                _ => "xor",
            };
            return self.f.inst(format!("{o} i1 {a}, {b}"));
        }
        if d.is_float() {
            if d.is_fp8() {
                let (x, y) = (self.widen_f32(d, a), self.widen_f32(d, b));
                let r = self.binary(op, DType::F32, &x, &y);
                return self.narrow_f32(d, &r);
            }
            return match op {
                BinaryOp::Add => self.f.inst(format!("fadd {t} {a}, {b}")),
                BinaryOp::Sub => self.f.inst(format!("fsub {t} {a}, {b}")),
                BinaryOp::Mul => self.f.inst(format!("fmul {t} {a}, {b}")),
                BinaryOp::Div => self.f.inst(format!("fdiv {t} {a}, {b}")),
                BinaryOp::Rem => self.f.inst(format!("frem {t} {a}, {b}")),
                BinaryOp::Min | BinaryOp::Max => {
                    let n = if op == BinaryOp::Min { "minimum" } else { "maximum" };
                    let s = llvm_fsuffix(d);
                    self.declare(format!("declare {t} @llvm.{n}.{s}({t}, {t})"));
                    self.f.inst(format!("call {t} @llvm.{n}.{s}({t} {a}, {t} {b})"))
                }
                _ => unreachable!("verified IR: {op:?} on {d}"),
            };
        }
        let signed = d.is_signed_int();
        let bits = d.bits();
        match op {
            BinaryOp::Add => self.f.inst(format!("add {t} {a}, {b}")),
            BinaryOp::Sub => self.f.inst(format!("sub {t} {a}, {b}")),
            BinaryOp::Mul => self.f.inst(format!("mul {t} {a}, {b}")),
            BinaryOp::And => self.f.inst(format!("and {t} {a}, {b}")),
            BinaryOp::Or => self.f.inst(format!("or {t} {a}, {b}")),
            BinaryOp::Xor => self.f.inst(format!("xor {t} {a}, {b}")),
            BinaryOp::Div | BinaryOp::Rem => {
                // x / 0 = -1 and x % 0 = x (the GPU's answers, defined here); MIN / -1 wraps.
                let zero = self.f.inst(format!("icmp eq {t} {b}, 0"));
                let mut bad = zero.clone();
                if signed {
                    let min = -(1i128 << (bits - 1));
                    let is_min = self.f.inst(format!("icmp eq {t} {a}, {min}"));
                    let neg1 = self.f.inst(format!("icmp eq {t} {b}, -1"));
                    let ovf = self.f.inst(format!("and i1 {is_min}, {neg1}"));
                    bad = self.f.inst(format!("or i1 {zero}, {ovf}"));
                }
                let safe = self.f.inst(format!("select i1 {bad}, {t} 1, {t} {b}"));
                let (dv, rm) = if signed { ("sdiv", "srem") } else { ("udiv", "urem") };
                if op == BinaryOp::Div {
                    let q = self.f.inst(format!("{dv} {t} {a}, {safe}"));
                    self.f.inst(format!("select i1 {zero}, {t} -1, {t} {q}"))
                } else {
                    let r = self.f.inst(format!("{rm} {t} {a}, {safe}"));
                    self.f.inst(format!("select i1 {zero}, {t} {a}, {t} {r}"))
                }
            }
            BinaryOp::Shl | BinaryOp::Shr => {
                // Amounts >= the width (or negative: huge unsigned) shift everything out.
                let big = self.f.inst(format!("icmp uge {t} {b}, {bits}"));
                let safe = self.f.inst(format!("select i1 {big}, {t} 0, {t} {b}"));
                match (op, signed) {
                    (BinaryOp::Shl, _) => {
                        let r = self.f.inst(format!("shl {t} {a}, {safe}"));
                        self.f.inst(format!("select i1 {big}, {t} 0, {t} {r}"))
                    }
                    (_, true) => {
                        let amt = self.f.inst(format!("select i1 {big}, {t} {}, {t} {b}", bits - 1));
                        self.f.inst(format!("ashr {t} {a}, {amt}"))
                    }
                    (_, false) => {
                        let r = self.f.inst(format!("lshr {t} {a}, {safe}"));
                        self.f.inst(format!("select i1 {big}, {t} 0, {t} {r}"))
                    }
                }
            }
            BinaryOp::Min | BinaryOp::Max => {
                let n = match (op, signed) {
                    (BinaryOp::Min, true) => "smin",
                    (BinaryOp::Min, false) => "umin",
                    (_, true) => "smax",
                    (_, false) => "umax",
                };
                self.declare(format!("declare {t} @llvm.{n}.{t}({t}, {t})"));
                self.f.inst(format!("call {t} @llvm.{n}.{t}({t} {a}, {t} {b})"))
            }
        }
    }

    pub(super) fn compare(&mut self, op: CmpOp, d: DType, a: &str, b: &str) -> String {
        if d.is_fp8() {
            let (x, y) = (self.widen_f32(d, a), self.widen_f32(d, b));
            return self.compare(op, DType::F32, &x, &y);
        }
        let t = dtype_lty(d);
        if d.is_float() {
            let p = match op {
                CmpOp::Lt => "olt",
                CmpOp::Le => "ole",
                CmpOp::Gt => "ogt",
                CmpOp::Ge => "oge",
                CmpOp::Eq => "oeq",
                CmpOp::Ne => "une",
            };
            return self.f.inst(format!("fcmp {p} {t} {a}, {b}"));
        }
        let signed = d.is_signed_int();
        let p = match (op, signed) {
            (CmpOp::Eq, _) => "eq",
            (CmpOp::Ne, _) => "ne",
            (CmpOp::Lt, true) => "slt",
            (CmpOp::Le, true) => "sle",
            (CmpOp::Gt, true) => "sgt",
            (CmpOp::Ge, true) => "sge",
            (CmpOp::Lt, false) => "ult",
            (CmpOp::Le, false) => "ule",
            (CmpOp::Gt, false) => "ugt",
            (CmpOp::Ge, false) => "uge",
        };
        self.f.inst(format!("icmp {p} {t} {a}, {b}"))
    }

    pub(super) fn fma(&mut self, d: DType, a: &str, b: &str, c: &str) -> String {
        let t = dtype_lty(d);
        let s = llvm_fsuffix(d);
        self.declare(format!("declare {t} @llvm.fma.{s}({t}, {t}, {t})"));
        self.f.inst(format!("call {t} @llvm.fma.{s}({t} {a}, {t} {b}, {t} {c})"))
    }
}

/// The overload suffix of float intrinsics.
pub(super) fn llvm_fsuffix(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => panic!("no float intrinsics on {d}"),
    }
}
