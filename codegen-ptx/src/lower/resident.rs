//! Loop-invariant `dot` operands kept in shared memory: an A operand of tensor-core `dot`s inside
//! loops, defined before them and used only there (attention's query tile), is written once, where
//! it is defined, into a region of its own (below the exchange scratch, beside the pipeline stages),
//! swizzled as `dot` reads it; each iteration's `dot` then reads it with `ldmatrix` instead of staging
//! it again (a barrier and a tile of shared stores per iteration), and its registers die at once.

use super::place::Place;
use super::Lowerer;
use dsl_core::ir::{Block, OpKind, ValueId};
use dsl_core::types::DType;
use std::collections::HashMap;

impl<'k> Lowerer<'k> {
    /// Finds the resident operands and gives each its region from byte `base` on; returns the end.
    pub(super) fn plan_resident(&mut self, base: usize) -> usize {
        let mut uses = HashMap::new();
        self.find_resident(&self.k.body, &mut vec![], &mut uses);
        let mut at = base.next_multiple_of(128);
        let mut found: Vec<ValueId> = uses
            .into_iter()
            .filter(|&(a, (n, in_loop))| in_loop && n == self.uses[a.0 as usize] as usize)
            .map(|(a, _)| a)
            .collect();
        found.sort_by_key(|v| v.0);
        for a in found {
            let (m, k) = (self.ty(a).shape[0], self.ty(a).shape[1]);
            if self.wg_operands.contains(&a) {
                at = at.next_multiple_of(1024);
            }
            self.resident.insert(a, at);
            at = (at + m * k * 2).next_multiple_of(128);
        }
        at
    }

    /// Walks `b`; `outer` holds the values defined in the loops around it (innermost last). Counts, per
    /// value, its uses as the A operand of a 16-bit tensor-core `dot` where it is loop-invariant, and
    /// whether one of them is inside a loop: resident when every use is such a one.
    fn find_resident(&self, b: &'k Block, outer: &mut Vec<Vec<ValueId>>, uses: &mut HashMap<ValueId, (usize, bool)>) {
        for op in &b.ops {
            if let OpKind::For { body, .. } = &op.kind {
                outer.push(defined_in(body));
                self.find_resident(body, outer, uses);
                outer.pop();
                continue;
            }
            for nb in op.kind.blocks() {
                self.find_resident(nb, outer, uses);
            }
            let OpKind::Dot { a, .. } = op.kind else { continue };
            let on_tc = matches!(self.place_of(op.results[0]), Some(Place::Mma(_)));
            let sixteen = matches!(self.dtype(a), DType::F16 | DType::BF16);
            let invariant = outer.last().is_none_or(|inner| !inner.contains(&a));
            let blocked = self.place_of(a).is_none() && !self.plan.splat[a.0 as usize];
            if on_tc && sixteen && invariant && blocked {
                let e = uses.entry(a).or_insert((0, false));
                e.0 += 1;
                e.1 |= !outer.is_empty();
            }
        }
    }

    /// After `v` is lowered: a resident operand is written to its region (a barrier first: warps still
    /// reading an earlier value of it, in an outer loop, are done; one after: it is complete).
    pub(super) fn write_resident(&mut self, v: ValueId) {
        let Some(&at) = self.resident.get(&v) else { return };
        let (l, regs) = (self.layout(v).expect("a dot operand fits the blocked layout"), self.regs(v));
        let k = self.ty(v).shape[1];
        let t = super::dtype_lty(self.dtype(v));
        self.barrier();
        let wg = self.wg_operands.contains(&v);
        self.smem_write_operand(&regs, l, t, k, 2, at, wg.then_some(self.ty(v).shape[0]));
        if wg {
            self.fence_proxy_async();
        }
        self.barrier();
    }
}

/// Every value defined in `b` (its arguments and op results, nested blocks included).
fn defined_in(b: &Block) -> Vec<ValueId> {
    let mut out = b.args.clone();
    for op in &b.ops {
        out.extend(&op.results);
        for nb in op.kind.blocks() {
            out.extend(defined_in(nb));
        }
    }
    out
}
