//! Where each tile value lives, decided before lowering ([`plan`]): in the blocked layout (the default,
//! [`crate::layout::Layout`]), or in a tensor-core layout so that a `dot` result and what is computed
//! from it stay in the registers the `mma.sync` left them in:
//!
//! - [`Place::Mma`]: the accumulator fragments ([`MmaLayout`]): `dot` results, elementwise ops on them,
//!   loop-carried accumulators, `if` results that both branches leave there;
//! - [`Place::Rows`]: a `[m]` or `[m, 1]` vector of an accumulator's rows ([`RowLayout`]): row
//!   reductions of an mma tile whose rows each lie in one warp (two shuffles within the lane quad), and
//!   elementwise ops on them (an online softmax's running max and sum);
//! - [`Place::RowsBcast`]: a `[m, 1]` row vector broadcast to `[m, n]`, still held as its rows: read
//!   for free by any mma tile with those rows (`acc * alpha[:, None]`).
//!
//! Index and mask tiles computed only from aranges and scalars (rematerializable) are recomputed in
//! whatever layout their user lives in, so they never pull an mma tile back to the blocked layout.
//! A `dot` whose result is row-reduced, or whose A operand is an mma tile (P·V after Q·Kᵀ), takes the
//! warps along `m` only ([`MmaLayout::choose_rows`]) where the tile allows it. Any other use converts
//! through shared memory (`Lowerer::regs_in`); the plan only decides where conversions are not needed.

use super::remat::rematerializable;
use super::Lowerer;
use crate::layout::{MmaLayout, RowLayout};
use crate::target::Target;
use dsl_core::ir::{Block, Kernel, Op, OpKind, ReduceOp, ValueId};
use std::collections::HashMap;

/// Where a tile value lives when not in the blocked layout (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Mma(MmaLayout),
    Rows(RowLayout),
    RowsBcast(RowLayout),
}

impl Place {
    /// Registers per thread.
    pub fn regs(&self) -> usize {
        match self {
            Place::Mma(l) => l.regs(),
            Place::Rows(r) | Place::RowsBcast(r) => r.regs(),
        }
    }

    pub fn mma(&self) -> Option<MmaLayout> {
        match self {
            Place::Mma(l) => Some(*l),
            _ => None,
        }
    }
}

/// Each value's [`Place`] (`None`: blocked), and which values are *splats* (one value in every element:
/// constants and broadcast scalars, convertible to any layout for free).
pub(super) struct Plan {
    pub layout: Vec<Option<Place>>,
    pub splat: Vec<bool>,
}

/// The most passes over the kernel (a loop's accumulator depends on its own body; a handful suffice).
const MAX_PASSES: usize = 16;

/// Decides the [`Plan`] for a kernel on `warps` warps, iterated to a fixed point (`wgmma`: the target
/// has warpgroup tensor cores and they are wanted).
pub(super) fn plan(k: &Kernel, warps: usize, target: Target, wgmma: bool) -> Plan {
    let mut defs = vec![None; k.types.len()];
    super::record_defs(&k.body, &mut defs);
    let mut uses = vec![0u32; k.types.len()];
    super::count_uses(&k.body, &mut uses);
    let mut ctx = Ctx { k, warps, target, wgmma, defs, uses, row_reduced: row_reduced(k), carried_init: HashMap::new() };
    carried_inits(&k.body, &mut ctx.carried_init);
    let mut p = Plan { layout: vec![None; k.types.len()], splat: vec![false; k.types.len()] };
    for _ in 0..MAX_PASSES {
        let before = (p.layout.clone(), p.splat.clone());
        ctx.block(&k.body, &mut p);
        if (&p.layout, &p.splat) == (&before.0, &before.1) {
            break;
        }
    }
    p
}

struct Ctx<'k> {
    k: &'k Kernel,
    warps: usize,
    target: Target,
    /// `dot`s that fit `wgmma` take its accumulator layout (see `super::wgmma`).
    wgmma: bool,
    defs: Vec<Option<&'k Op>>,
    /// How many ops read each value.
    uses: Vec<u32>,
    /// Values reduced along their last axis, directly or through elementwise ops.
    row_reduced: Vec<bool>,
    /// Each loop-carried block argument's initial value.
    carried_init: HashMap<ValueId, ValueId>,
}

fn carried_inits(b: &Block, out: &mut HashMap<ValueId, ValueId>) {
    for op in &b.ops {
        if let OpKind::For { init, body, .. } = &op.kind {
            for (i, v) in init.iter().enumerate() {
                out.insert(body.args[i + 1], *v);
            }
        }
        for nb in op.kind.blocks() {
            carried_inits(nb, out);
        }
    }
}

/// The values a loop body or branch yields (none when it ends without a yield).
pub(super) fn yields(b: &Block) -> &[ValueId] {
    match b.ops.last().map(|o| &o.kind) {
        Some(OpKind::Yield { values }) => values,
        _ => &[],
    }
}

/// Which values flow (through elementwise ops, loop-carried values and branch results) into a
/// reduction along the last axis of a 2-D tile: the `dot` results that should keep each row in one warp.
fn row_reduced(k: &Kernel) -> Vec<bool> {
    fn walk(k: &Kernel, b: &Block, marks: &mut Vec<bool>) {
        for op in b.ops.iter().rev() {
            for nb in op.kind.blocks() {
                walk(k, nb, marks);
            }
            match &op.kind {
                OpKind::Reduce { src, axis, .. } if k.ty(*src).shape.len() == 2 && *axis == 1 => marks[src.0 as usize] = true,
                kind if kind.is_elementwise() => {
                    if marks[op.results[0].0 as usize] {
                        let shape = &k.ty(op.results[0]).shape;
                        for v in kind.operands() {
                            if &k.ty(v).shape == shape {
                                marks[v.0 as usize] = true;
                            }
                        }
                    }
                }
                OpKind::For { init, body, .. } => {
                    for (i, v) in yields(body).iter().enumerate() {
                        if marks[op.results[i].0 as usize] || marks[body.args[i + 1].0 as usize] {
                            marks[v.0 as usize] = true;
                            marks[init[i].0 as usize] = true;
                        }
                    }
                }
                OpKind::If { then_block, else_block, .. } => {
                    for blk in [then_block, else_block] {
                        for (i, v) in yields(blk).iter().enumerate() {
                            if marks[op.results[i].0 as usize] {
                                marks[v.0 as usize] = true;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut marks = vec![false; k.types.len()];
    loop {
        let before = marks.clone();
        walk(k, &k.body, &mut marks);
        if marks == before {
            return marks;
        }
    }
}

impl Ctx<'_> {
    fn block(&self, b: &Block, p: &mut Plan) {
        use OpKind::*;
        for op in &b.ops {
            let Some(&r) = op.results.first() else {
                for nb in op.kind.blocks() {
                    self.block(nb, p);
                }
                continue;
            };
            let ri = r.0 as usize;
            let k = self.k;
            let numel = |v: ValueId| k.ty(v).numel();
            match &op.kind {
                Constant { .. } => p.splat[ri] = true,
                ExpandDims { src, .. } | Reshape { src, .. } => {
                    p.splat[ri] = numel(*src) <= 1 || p.splat[src.0 as usize];
                    let shape = &k.ty(r).shape;
                    if let Some(Place::Rows(rl)) = p.layout[src.0 as usize] {
                        if shape[0] == rl.m && numel(r) == rl.m && shape.len() <= 2 {
                            p.layout[ri] = Some(Place::Rows(rl));
                        }
                    }
                }
                Broadcast { src, .. } => {
                    p.splat[ri] = numel(*src) <= 1 || p.splat[src.0 as usize];
                    let (ss, ds) = (&k.ty(*src).shape, &k.ty(r).shape);
                    if let Some(Place::Rows(rl)) = p.layout[src.0 as usize] {
                        if ss.len() == 2 && ds.len() == 2 && ss[1] == 1 && ds[0] == rl.m {
                            p.layout[ri] = Some(Place::RowsBcast(rl));
                        }
                    }
                }
                Dot { a, b, .. } => {
                    let (sa, sb) = (&k.ty(*a).shape, &k.ty(*b).shape);
                    if let (Some(da), Some(db)) = (k.ty(*a).dtype(), k.ty(*b).dtype()) {
                        if Lowerer::mma_fits(self.target, da, db, sa[0], sa[1], sb[1]) {
                            let a_rows = matches!(p.layout[a.0 as usize], Some(Place::Mma(l)) if l.wn == 1);
                            let (m, n) = (sa[0], sb[1]);
                            let b_kmajor = super::mma::kmajor_source(&self.defs, &self.uses, *b).is_some();
                            let wg = self.wgmma && !a_rows && super::wgmma::fits(da, db, m, sa[1], n, self.warps, b_kmajor);
                            let rows = (self.row_reduced[ri] || a_rows || wg).then(|| MmaLayout::choose_rows(m, n, self.warps)).flatten();
                            p.layout[ri] = rows.or_else(|| MmaLayout::choose(m, n, self.warps)).map(Place::Mma);
                        }
                    }
                }
                Reduce { op: ro, src, axis, .. } => {
                    let arg = matches!(ro, ReduceOp::ArgMax | ReduceOp::ArgMin);
                    if let Some(Place::Mma(l)) = p.layout[src.0 as usize] {
                        if !arg && *axis == 1 && k.ty(*src).shape.len() == 2 {
                            p.layout[ri] = l.rows().map(Place::Rows);
                        }
                    }
                }
                kind if kind.is_elementwise() => self.elementwise(kind, r, p),
                For { body, .. } => {
                    self.block(body, p);
                    for (i, v) in yields(body).iter().enumerate() {
                        if let Some(l) = p.layout[v.0 as usize] {
                            p.layout[body.args[i + 1].0 as usize] = Some(l);
                            p.layout[op.results[i].0 as usize] = Some(l);
                        }
                    }
                }
                // A result lives where both branches leave it (a score tile masked on some steps only).
                If { then_block, else_block, .. } => {
                    self.block(then_block, p);
                    self.block(else_block, p);
                    for (i, (t, e)) in yields(then_block).iter().zip(yields(else_block)).enumerate() {
                        let (lt, le) = (p.layout[t.0 as usize], p.layout[e.0 as usize]);
                        if lt.is_some() && lt == le {
                            p.layout[op.results[i].0 as usize] = lt;
                        }
                    }
                }
                _ => {
                    for nb in op.kind.blocks() {
                        self.block(nb, p);
                    }
                }
            }
        }
    }

    /// An elementwise op lives where its placed operands do (an mma tile first, else a row vector),
    /// when every other operand reads there for free.
    fn elementwise(&self, kind: &OpKind, r: ValueId, p: &mut Plan) {
        let ri = r.0 as usize;
        let ops = kind.operands();
        let placed: Vec<Place> = ops.iter().filter_map(|v| p.layout[v.0 as usize]).collect();
        let lead = placed
            .iter()
            .find(|pl| matches!(pl, Place::Mma(_)))
            .or_else(|| placed.iter().find(|pl| matches!(pl, Place::Rows(_))))
            .copied();
        match lead {
            Some(place) => {
                if ops.iter().all(|v| self.reads_free(*v, place, p)) {
                    p.layout[ri] = Some(place);
                }
            }
            None => {
                let free = |v: &ValueId| p.splat[v.0 as usize] || self.k.ty(*v).numel() <= 1;
                p.splat[ri] = self.k.ty(r).numel() > 1 && ops.iter().all(free);
            }
        }
    }

    /// Whether `v` can be read in `place` without an exchange.
    fn reads_free(&self, v: ValueId, place: Place, p: &Plan) -> bool {
        let vi = v.0 as usize;
        let have = p.layout[vi];
        if have == Some(place) || p.splat[vi] || self.k.ty(v).numel() <= 1 {
            return true;
        }
        if let (Some(Place::RowsBcast(rl)), Place::Mma(l)) = (have, place) {
            return l.rows() == Some(rl);
        }
        if have.is_some() {
            return false;
        }
        // Blocked: free when recomputed there, or (optimistically) a loop-carried value starting as a
        // splat, whose layout the loop's next value decides (converted where that guess is wrong).
        rematerializable(self.k, &self.defs, &p.splat, v)
            || self.carried_init.get(&v).is_some_and(|init| p.splat[init.0 as usize] || self.k.ty(*init).numel() <= 1)
    }
}
