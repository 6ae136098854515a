//! Rematerialization: a `broadcast` of a tile computed only from `arange`, constants and scalars by
//! elementwise ops (offsets, masks: `rm[:, None] * stride + rk[None, :]`) is recomputed at each
//! destination element instead of exchanged through shared memory. Triton gets the same effect from its
//! slice layouts; with one blocked layout per size, recomputing is what keeps address arithmetic free.

use super::Lowerer;
use dsl_core::ir::{Kernel, Op, OpKind, ValueId};

/// The most ops recomputed per element before giving up (and exchanging instead).
const BUDGET: usize = 48;

/// Whether `v` can be recomputed at any element: it depends only on aranges, constants, scalars
/// (`splat`: one value in every element) and elementwise ops, within [`BUDGET`] ops.
pub(super) fn rematerializable(k: &Kernel, defs: &[Option<&Op>], splat: &[bool], v: ValueId) -> bool {
    fn walk(k: &Kernel, defs: &[Option<&Op>], splat: &[bool], v: ValueId, budget: &mut usize) -> bool {
        use OpKind::*;
        if k.ty(v).numel() <= 1 || splat[v.0 as usize] {
            return true;
        }
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let Some(op) = defs[v.0 as usize] else { return false };
        match &op.kind {
            Arange { .. } | Constant { .. } => true,
            kind if kind.is_elementwise() || matches!(kind, Broadcast { .. } | ExpandDims { .. } | Reshape { .. }) => {
                kind.operands().iter().all(|o| walk(k, defs, splat, *o, budget))
            }
            _ => false,
        }
    }
    let mut budget = BUDGET;
    walk(k, defs, splat, v, &mut budget)
}

impl<'k> Lowerer<'k> {
    /// Whether [`Self::remat_at`] can recompute `v`: it depends only on aranges, constants, scalars and
    /// elementwise ops, within [`BUDGET`] ops.
    pub(super) fn can_remat(&self, v: ValueId) -> bool {
        rematerializable(self.k, &self.defs, &self.plan.splat, v)
    }

    fn def(&self, v: ValueId) -> Option<&'k Op> {
        self.defs[v.0 as usize]
    }

    /// Element `idx` (flat row-major, an i32 operand) of `v`, recomputed from its definition.
    pub(super) fn remat_at(&mut self, v: ValueId, idx: &str) -> String {
        use OpKind::*;
        if self.ty(v).numel() <= 1 || self.plan.splat[v.0 as usize] {
            return self.val(v).regs()[0].clone();
        }
        let op = self.def(v).expect("checked by can_remat");
        match &op.kind {
            Arange { start, .. } => self.f.inst(format!("add i32 {idx}, {start}")),
            Constant { .. } => self.val(v).regs()[0].clone(),
            ExpandDims { src, .. } | Reshape { src, .. } => self.remat_at(*src, idx),
            Broadcast { src, .. } => {
                let j = self.broadcast_source_index(*src, v, idx);
                self.remat_at(*src, &j)
            }
            kind => self.remat_elementwise(kind, &mut |s, x| s.remat_at(x, idx)),
        }
    }

    /// The element of `v` at `coords` (one i32 operand per dimension), recomputed from its definition:
    /// what converts an index or mask tile into another layout (an mma accumulator's) for free. With
    /// coordinates rather than a flat index, row-only and column-only parts are shared between registers.
    pub(super) fn remat_coords(&mut self, v: ValueId, coords: &[String]) -> String {
        use OpKind::*;
        if self.ty(v).numel() <= 1 || self.plan.splat[v.0 as usize] {
            return self.val(v).regs()[0].clone();
        }
        let op = self.def(v).expect("checked by can_remat");
        match &op.kind {
            Arange { start, .. } => self.f.inst(format!("add i32 {}, {start}", coords[0])),
            Constant { .. } => self.val(v).regs()[0].clone(),
            ExpandDims { src, axis } => {
                let mut c = coords.to_vec();
                c.remove(*axis);
                self.remat_coords(*src, &c)
            }
            Reshape { src, .. } => {
                let shape = self.ty(v).shape.clone();
                let st = crate::layout::strides(&shape);
                let terms: Vec<(String, usize)> = coords.iter().cloned().zip(st).collect();
                let flat = self.linear(&terms);
                let src_shape = self.ty(*src).shape.clone();
                let c = self.coords(&flat, &src_shape);
                self.remat_coords(*src, &c)
            }
            Broadcast { src, .. } => {
                let src_shape = self.ty(*src).shape.clone();
                let pad = coords.len() - src_shape.len();
                let c: Vec<String> =
                    (0..src_shape.len()).map(|i| if src_shape[i] == 1 { "0".into() } else { coords[pad + i].clone() }).collect();
                self.remat_coords(*src, &c)
            }
            kind => self.remat_elementwise(kind, &mut |s, x| s.remat_coords(x, coords)),
        }
    }

    /// An elementwise op of a rematerialized tile, its operands recomputed by `at` (in operand order).
    fn remat_elementwise(&mut self, kind: &OpKind, at: &mut dyn FnMut(&mut Self, ValueId) -> String) -> String {
        use OpKind::*;
        let d = |s: &Self, x: ValueId| s.dtype(x);
        match kind {
            Cast { src, to } => {
                let x = at(self, *src);
                self.cast(d(self, *src), *to, &x)
            }
            Bitcast { src, to } => {
                let x = at(self, *src);
                self.bitcast(d(self, *src), *to, &x)
            }
            Unary { op: u, src } => {
                let x = at(self, *src);
                self.unary(*u, d(self, *src), &x)
            }
            Binary { op: b, lhs, rhs } => {
                let (x, y) = (at(self, *lhs), at(self, *rhs));
                self.binary(*b, d(self, *lhs), &x, &y)
            }
            Compare { op: c, lhs, rhs } => {
                let (x, y) = (at(self, *lhs), at(self, *rhs));
                self.compare(*c, d(self, *lhs), &x, &y)
            }
            Select { cond, on_true, on_false } => {
                let t = super::lty(&self.ty(*on_true).elem);
                let (c, a, b) = (at(self, *cond), at(self, *on_true), at(self, *on_false));
                self.f.inst(format!("select i1 {c}, {t} {a}, {t} {b}"))
            }
            Fma { a, b, c } => {
                let (x, y, z) = (at(self, *a), at(self, *b), at(self, *c));
                self.fma(d(self, *a), &x, &y, &z)
            }
            _ => unreachable!("checked by can_remat"),
        }
    }
}
