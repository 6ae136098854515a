//! Rematerialization: a `broadcast` of a tile computed only from `arange`, constants and scalars by
//! elementwise ops (offsets, masks: `rm[:, None] * stride + rk[None, :]`) is recomputed at each
//! destination element instead of exchanged through shared memory. Triton gets the same effect from its
//! slice layouts; with one blocked layout per size, recomputing is what keeps address arithmetic free.

use super::Lowerer;
use dsl_core::ir::{Op, OpKind, ValueId};

/// The most ops recomputed per element before giving up (and exchanging instead).
const BUDGET: usize = 48;

impl<'k> Lowerer<'k> {
    /// Whether [`Self::remat_at`] can recompute `v`: it depends only on aranges, constants, scalars and
    /// elementwise ops, within [`BUDGET`] ops.
    pub(super) fn can_remat(&self, v: ValueId) -> bool {
        let mut budget = BUDGET;
        self.rematerializable(v, &mut budget)
    }

    fn def(&self, v: ValueId) -> Option<&'k Op> {
        self.defs[v.0 as usize]
    }

    /// Whether [`Self::remat_at`] can recompute `v` within `budget` ops.
    fn rematerializable(&self, v: ValueId, budget: &mut usize) -> bool {
        use OpKind::*;
        if self.ty(v).numel() <= 1 || self.plan.splat[v.0 as usize] {
            return true;
        }
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let Some(op) = self.def(v) else { return false };
        match &op.kind {
            Arange { .. } | Constant { .. } => true,
            Broadcast { .. } | ExpandDims { .. } | Reshape { .. } | Cast { .. } | Bitcast { .. } | Unary { .. } | Binary { .. }
            | Compare { .. } | Select { .. } | Fma { .. } => op.kind.operands().iter().all(|o| self.rematerializable(*o, budget)),
            _ => false,
        }
    }

    /// Element `idx` (flat row-major, an i32 operand) of `v`, recomputed from its definition.
    pub(super) fn remat_at(&mut self, v: ValueId, idx: &str) -> String {
        use OpKind::*;
        if self.ty(v).numel() <= 1 || self.plan.splat[v.0 as usize] {
            return self.val(v).regs()[0].clone();
        }
        let op = self.def(v).expect("checked by can_remat");
        let d = |s: &Self, x: ValueId| s.dtype(x);
        match &op.kind {
            Arange { start, .. } => self.f.inst(format!("add i32 {idx}, {start}")),
            Constant { .. } => self.val(v).regs()[0].clone(),
            ExpandDims { src, .. } | Reshape { src, .. } => self.remat_at(*src, idx),
            Broadcast { src, .. } => {
                let j = self.broadcast_source_index(*src, v, idx);
                self.remat_at(*src, &j)
            }
            Cast { src, to } => {
                let x = self.remat_at(*src, idx);
                self.cast(d(self, *src), *to, &x)
            }
            Bitcast { src, to } => {
                let x = self.remat_at(*src, idx);
                self.bitcast(d(self, *src), *to, &x)
            }
            Unary { op: u, src } => {
                let x = self.remat_at(*src, idx);
                self.unary(*u, d(self, *src), &x)
            }
            Binary { op: b, lhs, rhs } => {
                let (x, y) = (self.remat_at(*lhs, idx), self.remat_at(*rhs, idx));
                self.binary(*b, d(self, *lhs), &x, &y)
            }
            Compare { op: c, lhs, rhs } => {
                let (x, y) = (self.remat_at(*lhs, idx), self.remat_at(*rhs, idx));
                self.compare(*c, d(self, *lhs), &x, &y)
            }
            Select { cond, on_true, on_false } => {
                let t = super::lty(&self.ty(*on_true).elem);
                let (c, a, b) = (self.remat_at(*cond, idx), self.remat_at(*on_true, idx), self.remat_at(*on_false, idx));
                self.f.inst(format!("select i1 {c}, {t} {a}, {t} {b}"))
            }
            Fma { a, b, c } => {
                let (x, y, z) = (self.remat_at(*a, idx), self.remat_at(*b, idx), self.remat_at(*c, idx));
                self.fma(d(self, *a), &x, &y, &z)
            }
            _ => unreachable!("checked by can_remat"),
        }
    }
}
