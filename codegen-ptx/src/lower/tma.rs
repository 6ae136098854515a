//! Block-pointer loads pipelined with Hopper's Tensor Memory Accelerator (sm_90a,
//! `CompileOptions::tma`): one thread asks the TMA unit for a whole tile (`cp.async.bulk.tensor.2d`)
//! through a tensor map the runtime encodes on the host ([`crate::abi::TensorMapSpec`], a by-value
//! `__grid_constant__` parameter), and the copy completes on an `mbarrier` of its stage, which every
//! thread waits on. The ring of stage buffers, the prefetch distance and the barrier that protects a
//! stage before it is refilled are [`super::pipeline`]'s; this file decides which loads qualify and
//! emits the TMA and `mbarrier` instructions.
//!
//! **Which loads** ([`Lowerer::plan_tma`]): a `load_block` with zero padding, used once, as a shared-memory
//! operand of a `wgmma` dot ([`super::wgmma`]), in an innermost loop; its block pointer is carried by
//! the loop and advanced by a step that is constant or defined outside the loop; the pointer was made
//! by `make_block_ptr` of rank 2 with order `[1, 0]` on a pointer parameter known to be 16-byte aligned
//! (`ArgFact::Aligned16`), a unit column stride, a row stride of whole 16-byte units (a parameter with
//! `Div16`, or a constant) and sizes that are parameters or constants — what the host needs to build the
//! map. Rows of 32 or 64 bytes are one box; longer rows are cut into 128-byte column slabs, one box
//! each, placed as [`Lowerer::operand_offset`] places them.
//!
//! **Layout**: the TMA swizzle modes (16-byte chunk `c` of row `r` at `c ^ (r & 7)` for 128-byte rows,
//! `c ^ ((r >> 1) & 3)` for 64, `c ^ ((r >> 2) & 1)` for 32, over 1024-byte-aligned buffers) are the
//! layouts `wgmma` reads ([`crate::layout::swizzle`]; `layout.rs` tests the two against each other).
//!
//! **Per stage**: one `mbarrier` (8 bytes, after the stage buffers) with an arrival count of 1. Thread 0
//! issues `mbarrier.arrive.expect_tx` with the stage's bytes, then the copies; the barrier's phase
//! completes when they have landed. Iteration `i` waits on stage `i % S` with parity `(i / S) & 1` (the
//! loop carries it). Copies only go out for iterations that run, and each is waited for, so none is in
//! flight when the loop exits; thread 0 then invalidates the barriers, whose bytes later exchanges may
//! reuse.

use super::pipeline::PipeLoop;
use super::{Lowerer, Val};
use crate::abi::{Extent, TensorMapSpec};
use crate::target::ArgFact;
use dsl_core::ir::{Block, Const, OpKind, Padding, ValueId};
use dsl_core::types::DType;
use std::collections::HashMap;

/// How far a block pointer moves each iteration along one dimension.
#[derive(Clone, Copy, Debug)]
pub(super) enum Delta {
    Const(i64),
    /// A value defined outside the loop.
    Val(ValueId),
}

/// A pipelined load that TMA performs.
#[derive(Clone, Debug)]
pub(super) struct TmaLoad {
    /// The tensor map (kernel parameter `%tm{map}`).
    pub map: usize,
    pub spec: TensorMapSpec,
    /// The loop-carried block pointer: `body.args[slot + 1]`, initialized by the loop's `init[slot]`.
    pub slot: usize,
    /// Its advance each iteration, rows then columns.
    pub delta: [Delta; 2],
    /// Boxes a tile takes (128-byte column slabs), each `box_bytes` bytes.
    pub boxes: usize,
    pub box_bytes: usize,
}

/// Where the block pointer of the iteration being issued comes from.
pub(super) enum TmaFrom<'a> {
    /// Before the loop: the loop's initial values, advanced `ahead` times.
    Init(&'a [ValueId], usize),
    /// In the body: this iteration's carried values, advanced `ahead` times.
    Carried(usize),
}

impl<'k> Lowerer<'k> {
    /// The TMA load of `operand` (`load_block(ptr)` at index `li` of `body`), or `None` where it does not
    /// qualify (see the module docs). The map index is assigned by the caller.
    pub(super) fn plan_tma(&self, body: &'k Block, index: &HashMap<ValueId, usize>, ptr: ValueId, padding: Padding, operand: ValueId) -> Option<TmaLoad> {
        if !self.tma || padding != Padding::Zero || self.uses[operand.0 as usize] != 1 || !self.wg_operands.contains(&operand) {
            return None;
        }
        let slot = body.args[1..].iter().position(|a| *a == ptr)?;
        // Advanced once per iteration from itself.
        let next = *super::place::yields(body).get(slot)?;
        let OpKind::AdvanceBlockPtr { ptr: from, offsets } = &body.ops[*index.get(&next)?].kind else { return None };
        if *from != ptr || offsets.len() != 2 {
            return None;
        }
        let delta = |v: ValueId| match self.const_int(v) {
            Some(c) => Some(Delta::Const(c)),
            // Defined before the loop: not by the body, and neither the induction variable nor a carried value.
            None if !index.contains_key(&self.uncast(v)) && !body.args.contains(&self.uncast(v)) => Some(Delta::Val(self.uncast(v))),
            None => None,
        };
        let delta = [delta(offsets[0])?, delta(offsets[1])?];
        // Made by `make_block_ptr` before the loop.
        let for_op = self.defs.iter().flatten().find(|o| matches!(&o.kind, OpKind::For { body: b, .. } if std::ptr::eq(b, body)))?;
        let OpKind::For { init, .. } = &for_op.kind else { return None };
        let OpKind::MakeBlockPtr { base, shape, strides, block_shape, order, .. } = &self.defs[init[slot].0 as usize]?.kind else { return None };
        if block_shape.len() != 2 || order[..] != [1, 0] || self.ty(operand).shape[..] != block_shape[..] {
            return None;
        }
        let base = self.k.params.iter().position(|p| p.value == *base)?;
        if self.facts.fact(base) != ArgFact::Aligned16 {
            return None;
        }
        let d = self.dtype(operand);
        let es = d.size_bytes();
        if !matches!(d, DType::F16 | DType::BF16 | DType::F8E4M3 | DType::F8E5M2) {
            return None;
        }
        if self.extent(strides[1])? != Extent::Const(1) {
            return None;
        }
        let row_stride = self.extent(strides[0])?;
        let stride_ok = match row_stride {
            Extent::Const(c) => c > 0 && (c * es as i64) % 16 == 0,
            Extent::Param(p) => self.facts.fact(p) == ArgFact::Div16,
        };
        let (rows, cols) = (block_shape[0], block_shape[1]);
        let row_bytes = cols * es;
        let (box_cols, swizzle) = match row_bytes {
            32 | 64 => (cols, row_bytes),
            b if b % 128 == 0 => (128 / es, 128),
            _ => return None,
        };
        if !stride_ok || rows % 8 != 0 || rows > 256 {
            return None;
        }
        let spec = TensorMapSpec {
            base,
            elem_bytes: es,
            bf16: d == DType::BF16,
            rows: self.extent(shape[0])?,
            cols: self.extent(shape[1])?,
            row_stride,
            box_rows: rows as u32,
            box_cols: box_cols as u32,
            swizzle: swizzle as u32,
        };
        let boxes = cols / box_cols;
        Some(TmaLoad { map: 0, spec, slot, delta, boxes, box_bytes: rows * box_cols * es })
    }

    /// `v` before the integer widenings that made it (`make_block_ptr` takes its sizes, strides and
    /// offsets as i64 casts of the i32 arguments; widening keeps the value).
    fn uncast(&self, v: ValueId) -> ValueId {
        let mut v = v;
        while let Some(OpKind::Cast { src, .. }) = self.defs[v.0 as usize].map(|o| &o.kind) {
            let (from, to) = (self.dtype(*src), self.dtype(v));
            // Same signedness and at least as wide, or unsigned into a wider type.
            let same = from.is_signed_int() == to.is_signed_int() && to.size_bytes() >= from.size_bytes();
            let widened = !from.is_signed_int() && to.size_bytes() > from.size_bytes();
            if !(from.is_int() && to.is_int() && (same || widened)) {
                break;
            }
            v = *src;
        }
        v
    }

    /// The integer constant `v` is, if it is one.
    fn const_int(&self, v: ValueId) -> Option<i64> {
        match self.defs[self.uncast(v).0 as usize].map(|o| &o.kind) {
            Some(OpKind::Constant { value: Const::I(c), .. }) => Some(*c),
            _ => None,
        }
    }

    /// `v` as the host knows it at launch: a constant, or an integer parameter (the constant 1 where the
    /// launch is specialized on it being 1).
    fn extent(&self, v: ValueId) -> Option<Extent> {
        if let Some(c) = self.const_int(v) {
            return Some(Extent::Const(c));
        }
        let v = self.uncast(v);
        let p = self.k.params.iter().position(|p| p.value == v)?;
        if !self.dtype(v).is_int() {
            return None;
        }
        Some(if self.facts.fact(p) == ArgFact::One { Extent::Const(1) } else { Extent::Param(p) })
    }

    /// The shared-memory address (i32) of stage `stage`'s `mbarrier`.
    fn mbarrier(&mut self, p: &PipeLoop, stage: &str) -> String {
        let smem = self.f.inst("ptrtoint ptr addrspace(3) @__smem to i32");
        let s = self.f.inst(format!("mul i32 {stage}, 8"));
        let off = self.f.inst(format!("add i32 {s}, {}", p.bars));
        self.f.inst(format!("add i32 {smem}, {off}"))
    }

    /// Runs what `emit` writes in thread 0 only, where `cond` (an i1 operand) also holds.
    fn in_thread0(&mut self, cond: &str, emit: impl FnOnce(&mut Self)) {
        let t = self.tid();
        let first = self.f.inst(format!("icmp eq i32 {t}, 0"));
        let go = self.and(&first, cond);
        let then = self.f.block("tma");
        let after = self.f.block("tma_done");
        self.f.emit(format!("br i1 {go}, label {}, label {}", self.f.label(then), self.f.label(after)));
        self.f.switch_to(then);
        emit(self);
        self.f.emit(format!("br label {}", self.f.label(after)));
        self.f.switch_to(after);
    }

    /// Before a TMA loop's prologue: earlier generic writes to the stage buffers are ordered before the
    /// copies (`fence.proxy.async`), and thread 0 initializes one `mbarrier` a stage.
    pub(super) fn tma_init(&mut self, p: &PipeLoop) {
        self.fence_proxy_async();
        self.barrier();
        let bars: Vec<String> = (0..p.stages).map(|s| self.mbarrier(p, &s.to_string())).collect();
        self.in_thread0("true", |l| {
            for b in &bars {
                l.f.emit(format!("call void asm sideeffect \"mbarrier.init.shared::cta.b64 [$0], 1;\", \"r,~{{memory}}\"(i32 {b}) #1"));
            }
            l.f.emit("call void asm sideeffect \"fence.mbarrier_init.release.cluster;\", \"~{memory}\"() #1");
        });
        self.barrier();
    }

    /// Issues the TMA copies of one iteration into stage `stage` (thread 0, where `guard` holds): the
    /// stage's expected bytes on its barrier, then one copy per box.
    pub(super) fn tma_issue(&mut self, p: &PipeLoop, body: &'k Block, guard: &str, stage: &str, from: &TmaFrom<'_>) {
        let loads: Vec<_> = p.loads.iter().filter_map(|l| l.tma.clone().map(|t| (l.offset, t))).collect();
        if loads.is_empty() {
            return;
        }
        let bytes: usize = loads.iter().map(|(_, t)| t.boxes * t.box_bytes).sum();
        let bar = self.mbarrier(p, stage);
        let smem = self.f.inst("ptrtoint ptr addrspace(3) @__smem to i32");
        let stage_off = self.f.inst(format!("mul i32 {stage}, {}", p.stage_bytes));
        let stage_at = self.f.inst(format!("add i32 {smem}, {stage_off}"));
        // Coordinates (innermost first) and destinations of every box, computed in all threads.
        let mut copies = vec![];
        for (offset, t) in &loads {
            let (blk, ahead) = match from {
                TmaFrom::Init(init, ahead) => (self.val(init[t.slot]).clone(), *ahead),
                TmaFrom::Carried(ahead) => (self.val(body.args[t.slot + 1]).clone(), *ahead),
            };
            let Val::Block { dims, .. } = blk else { panic!("verified IR: block pointer") };
            let coord: Vec<String> = (0..2)
                .map(|d| {
                    let step = match t.delta[d] {
                        Delta::Const(c) => (c * ahead as i64).to_string(),
                        Delta::Val(v) => {
                            let x = self.regs(v)[0].clone();
                            let x = self.cast(self.dtype(v), DType::I64, &x);
                            self.f.inst(format!("mul i64 {x}, {ahead}"))
                        }
                    };
                    let at = self.f.inst(format!("add i64 {}, {step}", dims[d][2]));
                    self.f.inst(format!("trunc i64 {at} to i32"))
                })
                .collect();
            for b in 0..t.boxes {
                let col = self.f.inst(format!("add i32 {}, {}", coord[1], b * t.spec.box_cols as usize));
                let dst = self.f.inst(format!("add i32 {stage_at}, {}", offset + b * t.box_bytes));
                copies.push((t.map, dst, col, coord[0].clone()));
            }
        }
        self.in_thread0(guard, |l| {
            l.f.emit(format!(
                "call void asm sideeffect \"mbarrier.arrive.expect_tx.shared::cta.b64 _, [$0], {bytes};\", \"r,~{{memory}}\"(i32 {bar}) #1"
            ));
            for (map, dst, col, row) in &copies {
                l.f.emit(format!(
                    "call void asm sideeffect \"cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [$0], [$1, {{$2, $3}}], [$4];\", \"r,l,r,r,r,~{{memory}}\"(i32 {dst}, ptr %tm{map}, i32 {col}, i32 {row}, i32 {bar}) #1"
                ));
            }
        });
    }

    /// Waits (every thread) until stage `stage`'s copies of phase `phase` (i32 0 or 1) have landed.
    pub(super) fn tma_wait(&mut self, p: &PipeLoop, stage: &str, phase: &str) {
        let bar = self.mbarrier(p, stage);
        let spin = self.f.block("tma_wait");
        let landed = self.f.block("tma_landed");
        self.f.emit(format!("br label {}", self.f.label(spin)));
        self.f.switch_to(spin);
        let done = self.f.inst(format!(
            "call i32 asm sideeffect \"{{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [$1], $2; selp.u32 $0, 1, 0, p; }}\", \"=r,r,r,~{{memory}}\"(i32 {bar}, i32 {phase}) #1"
        ));
        let ok = self.f.inst(format!("icmp ne i32 {done}, 0"));
        self.f.emit(format!("br i1 {ok}, label {}, label {}", self.f.label(landed), self.f.label(spin)));
        self.f.switch_to(landed);
    }

    /// After the loop's exit barrier: thread 0 invalidates the barriers (their bytes may be reused), and
    /// every thread waits for that.
    pub(super) fn tma_release(&mut self, p: &PipeLoop) {
        let bars: Vec<String> = (0..p.stages).map(|s| self.mbarrier(p, &s.to_string())).collect();
        self.in_thread0("true", |l| {
            for b in &bars {
                l.f.emit(format!("call void asm sideeffect \"mbarrier.inval.shared::cta.b64 [$0];\", \"r,~{{memory}}\"(i32 {b}) #1"));
            }
        });
        self.barrier();
    }
}
