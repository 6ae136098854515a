//! What the vectorizer may assume about integer and pointer tiles (Triton's axis analysis, simplified to
//! the row-major flat index that [`crate::layout`] distributes).
//!
//! For each value we track, along the flat index, runs that start at multiples of their length:
//! - `contig`: within each run of `contig` elements the values go up by exactly 1 (elements, for
//!   pointers);
//! - `const_run`: within each run of `const_run` elements the value is one constant;
//! - `div`: the first value of each `contig` run (and so every value of a `const_run` run) is divisible by
//!   `div` (bytes, for pointers).
//!
//! All three are powers of two. A load of `w` consecutive elements per thread is one `w`-wide access when
//! the pointer's `contig >= w`, its `div` is a multiple of the access size, and the mask's `const_run >= w`.

use crate::target::{ArgFact, Specialization};
use dsl_core::ir::{BinaryOp, Block, CmpOp, Const, Kernel, OpKind, ValueId};
use dsl_core::types::{DType, ElemTy};

/// The largest divisibility we track (a value known to be 0 is divisible by everything).
const MAX_DIV: u64 = 1 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisInfo {
    pub contig: u64,
    pub const_run: u64,
    pub div: u64,
}

impl AxisInfo {
    /// Nothing known.
    fn unknown() -> AxisInfo {
        AxisInfo { contig: 1, const_run: 1, div: 1 }
    }

    /// What divides *every* element (inside a run of `contig > 1` consecutive values only the start is
    /// divisible by `div`).
    fn elem_div(self) -> u64 {
        if self.contig > 1 {
            1
        } else {
            self.div
        }
    }
}

/// The analysis result: one entry per value (unknown for values it does not reason about).
pub struct AxisAnalysis {
    info: Vec<AxisInfo>,
    /// Values known to be 1 in every element (an `ArgFact::One` argument, the constant 1, and their
    /// broadcasts): multiplying by them keeps the other operand's runs (`k * stride` with a unit stride).
    one: Vec<bool>,
}

impl AxisAnalysis {
    pub fn get(&self, v: ValueId) -> AxisInfo {
        self.info[v.0 as usize]
    }

    pub fn run(k: &Kernel, spec: &Specialization) -> AxisAnalysis {
        let mut a = AxisAnalysis { info: vec![AxisInfo::unknown(); k.types.len()], one: vec![false; k.types.len()] };
        for (i, p) in k.params.iter().enumerate() {
            let div = match (spec.fact(i), &k.ty(p.value).elem) {
                (ArgFact::Aligned16, ElemTy::Ptr { .. }) => 16,
                (ArgFact::Div16, ElemTy::Scalar(_)) => 16,
                _ => 1,
            };
            // A parameter is a scalar: one constant run.
            a.info[p.value.0 as usize] = AxisInfo { contig: 1, const_run: 1, div };
            a.one[p.value.0 as usize] = spec.fact(i) == ArgFact::One;
        }
        a.block(k, &k.body);
        a
    }

    fn block(&mut self, k: &Kernel, b: &Block) {
        for op in &b.ops {
            if let OpKind::For { lo, step, body, .. } = &op.kind {
                // The induction variable is lo + i * step; carried values stay unknown (no fixpoint needed).
                let div = gcd(self.get(*lo).div, self.get(*step).div);
                self.info[body.args[0].0 as usize] = AxisInfo { contig: 1, const_run: 1, div };
            }
            for nested in op.kind.blocks() {
                self.block(k, nested);
            }
            let Some(&r) = op.results.first() else { continue };
            let numel = k.ty(r).numel().max(1) as u64;
            self.one[r.0 as usize] = match &op.kind {
                OpKind::Constant { value: Const::I(1), .. } => true,
                OpKind::Broadcast { src, .. } | OpKind::ExpandDims { src, .. } | OpKind::Reshape { src, .. } => self.one[src.0 as usize],
                OpKind::Cast { src, to } => to.is_int() && self.one[src.0 as usize],
                _ => false,
            };
            let info = self.op(k, &op.kind, numel);
            // A scalar is one constant run.
            let info = if numel == 1 { AxisInfo { contig: 1, const_run: 1, div: info.div } } else { info };
            self.info[r.0 as usize] = info;
        }
    }

    fn op(&self, k: &Kernel, kind: &OpKind, numel: u64) -> AxisInfo {
        let g = |v: &ValueId| self.get(*v);
        match kind {
            OpKind::Arange { start, end } => {
                AxisInfo { contig: (*end - *start) as u64, const_run: 1, div: pow2_div(*start as i64) }
            }
            OpKind::Constant { value: Const::I(c), .. } => AxisInfo { contig: 1, const_run: 1, div: pow2_div(*c) },
            OpKind::ProgramId { .. } | OpKind::NumPrograms { .. } => AxisInfo::unknown(),
            OpKind::Broadcast { src, shape } => {
                let s = g(src);
                let src_shape = &k.ty(*src).shape;
                let src_numel = src_shape.iter().product::<usize>().max(1) as u64;
                if src_numel == 1 {
                    return AxisInfo { contig: 1, const_run: numel, div: s.div };
                }
                // Trailing dims that are equal keep their runs; a stretched last dim makes runs constant.
                let pad = shape.len() - src_shape.len();
                let mut same_tail = 1u64;
                for i in (0..src_shape.len()).rev() {
                    if src_shape[i] == shape[pad + i] {
                        same_tail *= src_shape[i] as u64;
                    } else {
                        break;
                    }
                }
                if same_tail > 1 {
                    let period = pow2_floor(same_tail);
                    AxisInfo { contig: s.contig.min(period), const_run: s.const_run.min(period), div: s.div }
                } else {
                    let last = *shape.last().unwrap_or(&1) as u64;
                    AxisInfo { contig: 1, const_run: pow2_floor(last), div: s.elem_div() }
                }
            }
            OpKind::Reshape { src, .. } | OpKind::ExpandDims { src, .. } => g(src),
            OpKind::Cast { src, to } if to.is_int() && k.ty(*src).dtype().is_some_and(|d| d.is_int()) => {
                // Widening keeps everything; narrowing may wrap.
                let from = k.ty(*src).dtype().unwrap_or(DType::I32);
                if to.bits() >= from.bits() {
                    g(src)
                } else {
                    AxisInfo::unknown()
                }
            }
            OpKind::Binary { op, lhs, rhs } => {
                let (a, b) = (g(lhs), g(rhs));
                match op {
                    BinaryOp::Add => add_info(a, b),
                    BinaryOp::Sub => {
                        // x - c keeps x's runs when c is constant over them.
                        let contig = a.contig.min(b.const_run);
                        let div = if contig > 1 { gcd(a.div, b.div) } else { gcd(a.elem_div(), b.elem_div()) };
                        AxisInfo { contig, const_run: a.const_run.min(b.const_run), div }
                    }
                    BinaryOp::Mul if self.one[rhs.0 as usize] => a,
                    BinaryOp::Mul if self.one[lhs.0 as usize] => b,
                    BinaryOp::Mul => AxisInfo {
                        contig: 1,
                        const_run: a.const_run.min(b.const_run),
                        div: (a.elem_div().saturating_mul(b.elem_div())).min(MAX_DIV),
                    },
                    BinaryOp::Shl => {
                        // Only the common `x << const` with a known amount is worth it; stay conservative.
                        AxisInfo { contig: 1, const_run: a.const_run.min(b.const_run), div: 1 }
                    }
                    _ => AxisInfo { contig: 1, const_run: a.const_run.min(b.const_run), div: 1 },
                }
            }
            OpKind::Compare { op, lhs, rhs } => {
                let (a, b) = (g(lhs), g(rhs));
                // `x < n` is constant over a run of x when n is constant over it and the run cannot straddle
                // n: true when the run length divides both the run's start and n.
                let run = match op {
                    CmpOp::Lt | CmpOp::Ge | CmpOp::Le | CmpOp::Gt => {
                        let straddle = gcd(a.div, b.div).min(a.contig);
                        a.const_run.max(straddle).min(b.const_run.max(1))
                    }
                    _ => a.const_run.min(b.const_run),
                };
                let run = match op {
                    // `x <= n` is `x < n + 1`: the run may straddle n + 1; only constant runs survive.
                    CmpOp::Le | CmpOp::Gt => a.const_run.min(b.const_run),
                    _ => run,
                };
                AxisInfo { contig: 1, const_run: run.max(1), div: 1 }
            }
            OpKind::AddPtr { ptr, offset } => {
                let (p, o) = (g(ptr), g(offset));
                let size = match &k.ty(*ptr).elem {
                    ElemTy::Ptr { pointee, .. } => pointee.size_bytes() as u64,
                    _ => 1,
                };
                let o_bytes = AxisInfo { div: (o.div.saturating_mul(size)).min(MAX_DIV), ..o };
                add_info(p, o_bytes)
            }
            OpKind::PtrCast { ptr, .. } => AxisInfo { contig: 1, const_run: g(ptr).const_run, div: g(ptr).elem_div() },
            _ => AxisInfo::unknown(),
        }
    }
}

fn add_info(a: AxisInfo, b: AxisInfo) -> AxisInfo {
    let contig = a.contig.min(b.const_run).max(b.contig.min(a.const_run));
    // Run starts are sums of run starts only when one side is constant over the other's runs.
    let div = if contig > 1 { gcd(a.div, b.div) } else { gcd(a.elem_div(), b.elem_div()) };
    AxisInfo { contig, const_run: a.const_run.min(b.const_run), div }
}

/// The largest power of two dividing `x` (capped; 0 is divisible by everything).
pub fn pow2_div(x: i64) -> u64 {
    if x == 0 {
        MAX_DIV
    } else {
        (1u64 << x.unsigned_abs().trailing_zeros()).min(MAX_DIV)
    }
}

fn pow2_floor(x: u64) -> u64 {
    if x == 0 {
        1
    } else {
        1 << (63 - x.leading_zeros())
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    // Both are powers of two.
    a.min(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsl_core::prelude::*;

    /// `out[r, c] = x[r, c]` for a `[R, C]` tile of a row-major matrix with row stride `stride`.
    #[kernel]
    fn tile2d<const R: i32, const C: i32>(x: Ptr<f32>, out: MutPtr<f32>, stride: i32) {
        let rows = program_id(0) * R + arange(0, R);
        let cols = arange(0, C);
        let offs = rows.expand_dims(1) * stride + cols.expand_dims(0);
        store(out + offs, load(x + offs));
    }

    /// `out[i] = x[2i]` over a block: `arange + arange` is not contiguous.
    #[kernel]
    fn doubled<const B: i32>(x: Ptr<f32>, out: MutPtr<f32>) {
        let i = arange(0, B);
        store(out + i, load(x + (i + i)));
    }

    /// `x[i * s]`: contiguous exactly when the stride `s` is known to be 1.
    #[kernel]
    fn strided<const B: i32>(x: Ptr<f32>, out: MutPtr<f32>, s: i32) {
        let i = arange(0, B);
        store(out + i, load(x + i * s));
    }

    fn load_ptr_info(k: &Kernel, facts: Vec<ArgFact>) -> AxisInfo {
        let a = AxisAnalysis::run(k, &Specialization { facts });
        let ptr = k.body.ops.iter().find_map(|op| match op.kind {
            OpKind::Load { ptr, .. } => Some(ptr),
            _ => None,
        });
        a.get(ptr.expect("a load"))
    }

    #[test]
    fn row_start_alignment_needs_a_stride_divisible_by_16() {
        let k = tile2d::<16, 32>::build().unwrap();
        let aligned = [ArgFact::Aligned16, ArgFact::Aligned16];
        // Unknown stride: rows start anywhere (4-byte aligned f32), though each row's 32 are contiguous.
        let info = load_ptr_info(&k, [aligned.to_vec(), vec![ArgFact::None]].concat());
        assert_eq!((info.contig, info.div), (32, 4), "{info:?}");
        // Stride divisible by 16 elements: every row starts 16-byte aligned.
        let info = load_ptr_info(&k, [aligned.to_vec(), vec![ArgFact::Div16]].concat());
        assert_eq!(info.contig, 32);
        assert!(info.div >= 16, "{info:?}");
    }

    #[test]
    fn sums_of_ranges_are_not_contiguous_and_not_aligned() {
        let k = doubled::<64>::build().unwrap();
        let info = load_ptr_info(&k, vec![ArgFact::Aligned16, ArgFact::Aligned16]);
        assert_eq!(info.contig, 1, "{info:?}");
        assert!(info.div <= 4, "only the f32 size is known: {info:?}");
    }

    #[test]
    fn a_unit_stride_argument_keeps_contiguity() {
        let k = strided::<64>::build().unwrap();
        let aligned = vec![ArgFact::Aligned16, ArgFact::Aligned16];
        let info = load_ptr_info(&k, [aligned.clone(), vec![ArgFact::One]].concat());
        assert_eq!(info.contig, 64, "{info:?}");
        let info = load_ptr_info(&k, [aligned, vec![ArgFact::Div16]].concat());
        assert_eq!(info.contig, 1, "{info:?}");
    }
}
