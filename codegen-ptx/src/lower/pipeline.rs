//! Software pipelining of loops that feed `dot` (`CompileOptions::num_stages`, Triton's scheme): the
//! loads of a `dot` operand are issued `num_stages - 1` iterations ahead with `cp.async` straight into a
//! ring of shared-memory stage buffers (swizzled as `dot` reads them), so global latency overlaps the
//! tensor-core work of the iterations in between.
//!
//! A load is pipelined when it sits in an innermost loop's body (whose branches, if any, only compute),
//! is used once, by a tensor-core `dot` in the same body, reads in accesses of 4, 8 or 16 bytes
//! (proven by [`crate::axis`]), fills masked-off elements with zero, and its pointer and mask
//! depend only on the induction variable and on values from outside the loop (never on carried
//! values), in a body that writes no memory (a store could change what a copy issued ahead already
//! read). Those operand computations (the *slice*) are lowered again for the iteration being
//! prefetched. A load that reaches the `dot` through a conversion (`load(..).to::<bf16>()` of an fp8
//! KV cache) is copied ahead the same way and *read back*: each thread reads the vectors its own
//! copies wrote into registers in the load's layout, where the conversion and the `dot`'s staging
//! take them as they took the global load's.
//!
//! Per iteration `i` (stage `s = i % S`): wait until the copies of iteration `i` landed
//! (`cp.async.wait_group S-2`) and barrier (every warp also finished reading iteration `i - 1`'s stage);
//! issue iteration `i + S - 1`'s copies into that stage and commit; then `dot` reads stage `s` with
//! `ldmatrix`. A `wgmma` dot issues its instructions first and the copies while they run. Where a loop
//! keeps a `wgmma` group in flight across iterations ([`super::wgmma`]'s lagged dots), iteration
//! `i - 1`'s stage may still be read after the barrier, so the copies run `S - 2` iterations ahead
//! (into the stage of `i - 2`) and the wait allows `S - 3` groups. The stage buffers sit below the
//! scratch area the other exchanges use.

use super::{Lowerer, Val};
use crate::error::CodegenError;
use dsl_core::ir::{Block, Const, Effect, OpKind, ValueId};
use dsl_core::types::DType;
use std::collections::{BTreeSet, HashMap};

/// One pipelined load.
#[derive(Clone, Debug)]
pub(super) struct PipeLoad {
    pub result: ValueId,
    pub ptr: ValueId,
    pub mask: Option<ValueId>,
    /// Byte offset of its buffer within a stage.
    pub offset: usize,
    /// Elements per `cp.async`.
    pub width: usize,
    /// A block-pointer load that TMA performs instead (see [`super::tma`]).
    pub tma: Option<super::tma::TmaLoad>,
    /// Read back into registers where the load stands (its value feeds the `dot` through a
    /// conversion), rather than read by the `dot` from the stage buffer.
    pub readback: bool,
}

/// The pipeline of one loop.
#[derive(Clone, Debug)]
pub(super) struct PipeLoop {
    pub loads: Vec<PipeLoad>,
    /// Indices (in the body's op list) of the ops that compute the loads' operands, in order.
    pub slice: Vec<usize>,
    pub stage_bytes: usize,
    pub stages: usize,
    /// How many iterations ahead the copies run: `stages - 1`, or `stages - 2` when a lagged `wgmma`
    /// dot of the body may still read the previous iteration's stage.
    pub distance: usize,
    /// The body's `dot`s that leave their `wgmma` group in flight into the next iteration.
    pub lagged: Vec<ValueId>,
    /// Byte offset of the stages' `mbarrier`s (8 bytes each, after the stage buffers) where TMA loads.
    pub bars: usize,
}

impl PipeLoop {
    pub fn has_tma(&self) -> bool {
        self.loads.iter().any(|l| l.tma.is_some())
    }

    pub fn has_cp_async(&self) -> bool {
        self.loads.iter().any(|l| l.tma.is_none())
    }

    /// Shared-memory bytes: the stage buffers, and the barriers where TMA loads.
    pub fn bytes(&self) -> usize {
        self.stage_bytes * self.stages + if self.has_tma() { 8 * self.stages } else { 0 }
    }
}

/// A pipelined loop being lowered.
pub(super) struct ActivePipe<'k> {
    pub pipe: PipeLoop,
    pub body: &'k Block,
    /// The induction variable's register in this iteration (the value is `body.args[0]`).
    pub iv_reg: String,
    pub step: String,
    pub hi: String,
    pub it: &'static str,
    pub signed: bool,
    /// The stage iteration `i` reads (an i32 register).
    pub stage: String,
    /// The parity of that stage's use (`(i / stages) & 1`, i32), which its TMA barrier's wait names.
    pub phase: String,
    /// The wait and barrier of this iteration are emitted.
    pub synced: bool,
    /// And its copies for iteration `i + distance` issued.
    pub prefetched: bool,
    /// Byte offset (i32 operand) of each pipelined load's buffer for the stage being read.
    pub at: HashMap<ValueId, String>,
}

fn is_zero_splat(l: &Lowerer, v: ValueId) -> bool {
    let mut v = v;
    loop {
        match l.defs[v.0 as usize].map(|o| &o.kind) {
            Some(OpKind::Constant { value, .. }) => return matches!(value, Const::F(x) if *x == 0.0) || matches!(value, Const::I(0)),
            Some(OpKind::Broadcast { src, .. } | OpKind::ExpandDims { src, .. } | OpKind::Reshape { src, .. } | OpKind::Cast { src, .. }) => v = *src,
            _ => return false,
        }
    }
}

impl<'k> Lowerer<'k> {
    /// Plans the pipelines of every innermost loop of the kernel (with `stages >= 2`); returns the bytes
    /// of stage buffers the largest needs.
    pub(super) fn plan_pipelines(&mut self, stages: usize) -> usize {
        let mut loops = vec![];
        collect_loops(&self.k.body, &mut loops);
        let mut most = 0;
        for body in loops {
            if let Some(mut p) = self.plan_loop(body, stages) {
                for l in p.loads.iter_mut().filter_map(|l| l.tma.as_mut()) {
                    l.map = self.tma_maps.len();
                    self.tma_maps.push(l.spec);
                }
                most = most.max(p.bytes());
                self.lagged.extend(p.lagged.iter().copied());
                self.pipes.insert(body as *const Block as usize, p);
            }
        }
        most
    }

    fn plan_loop(&self, body: &'k Block, stages: usize) -> Option<PipeLoop> {
        // Branches inside the body are fine when they only compute (a mask applied on some steps):
        // nothing in them reads, writes or waits.
        if body.ops.iter().any(|o| o.kind.blocks().iter().any(|b| !only_computes(b))) {
            return None;
        }
        // A store or atomic in the body could write what a copy issued iterations ahead has read.
        if body.ops.iter().any(|o| matches!(o.kind, OpKind::Store { .. } | OpKind::StoreBlock { .. } | OpKind::Atomic { .. } | OpKind::AtomicCas { .. })) {
            return None;
        }
        let index: HashMap<ValueId, usize> =
            body.ops.iter().enumerate().flat_map(|(i, o)| o.results.iter().map(move |r| (*r, i))).collect();
        let mut loads = vec![];
        let mut slice = BTreeSet::new();
        let (mut offset, mut stage_align) = (0usize, 128usize);
        for op in &body.ops {
            let OpKind::Dot { a, b, .. } = op.kind else { continue };
            if self.place_of(op.results[0]).and_then(|p| p.mma()).is_none() {
                continue;
            }
            let fp8 = matches!(self.dtype(a), DType::F8E4M3 | DType::F8E5M2);
            // B is copied as it sits in memory: its transpose's source ([n][k]), or [k][n] for 16-bit types
            // (fp8 [k][n] is transposed while staged from registers, so it cannot be copied).
            let b_src = match self.kmajor.get(&b) {
                Some(x) => Some(*x),
                None if fp8 => None,
                None => Some(b),
            };
            for operand in [Some(a), b_src].into_iter().flatten() {
                let Some(&li) = index.get(&operand) else { continue };
                // An operand converted from a load of the body (an fp8 KV cache widened to 16 bits): the
                // load is copied ahead and read back before the conversion.
                let (operand, li, readback) = match body.ops[li].kind {
                    OpKind::Cast { src, .. } => match index.get(&src) {
                        // Read back as 1-, 2- or 4-byte elements of 32-bit words.
                        Some(&si) if matches!(body.ops[si].kind, OpKind::Load { .. }) && self.dtype(src) != DType::Bool && self.dtype(src).size_bytes() <= 4 => {
                            (src, si, true)
                        }
                        _ => continue,
                    },
                    _ => (operand, li, false),
                };
                if loads.iter().any(|l: &PipeLoad| l.result == operand) {
                    continue;
                }
                let (ptr, mask, width, tma) = match body.ops[li].kind {
                    // A block-pointer load: copied by TMA (a `wgmma` operand) or not pipelined.
                    OpKind::LoadBlock { ptr, padding, .. } => {
                        let Some(t) = self.plan_tma(body, &index, ptr, padding, operand) else { continue };
                        (ptr, None, 0, Some(t))
                    }
                    OpKind::Load { ptr, mask, other, .. } => {
                        if self.uses[operand.0 as usize] != 1 || other.is_some_and(|o| !is_zero_splat(self, o)) {
                            continue;
                        }
                        let Ok(l) = self.layout(ptr) else { continue };
                        let width = self.vector_width(ptr, mask, l);
                        if l.replicated() || !matches!(width * self.dtype(operand).size_bytes(), 4 | 8 | 16) {
                            continue;
                        }
                        let mut deps = BTreeSet::new();
                        if ![Some(ptr), mask].into_iter().flatten().all(|v| slice_of(body, &index, v, &mut deps)) {
                            continue;
                        }
                        slice.extend(deps);
                        (ptr, mask, width, None)
                    }
                    _ => continue,
                };
                // wgmma operands start at multiples of 1024 bytes (see `super::wgmma`), so stages do too.
                let align = if self.wg_operands.contains(&operand) { 1024 } else { 128 };
                offset = offset.next_multiple_of(align);
                stage_align = stage_align.max(align);
                loads.push(PipeLoad { result: operand, ptr, mask, offset, width, tma, readback });
                offset += (self.ty(operand).numel() * self.dtype(operand).size_bytes()).next_multiple_of(128);
            }
        }
        if loads.is_empty() {
            return None;
        }
        let copied: Vec<ValueId> = loads.iter().map(|l| l.result).collect();
        let lagged: Vec<ValueId> = body.ops.iter().filter(|op| self.lags(body, op, &copied, stages)).map(|op| op.results[0]).collect();
        let distance = if lagged.is_empty() { stages - 1 } else { stages - 2 };
        let stage_bytes = offset.next_multiple_of(stage_align);
        let bars = stage_bytes * stages;
        Some(PipeLoop { loads, slice: slice.into_iter().collect(), stage_bytes, stages, distance, lagged, bars })
    }

    /// Issues the copies of one iteration (induction variable `iv_reg`; nothing is read where `guard` is
    /// false) into stage `stage` (an i32 operand), then commits them as one group. Lowers the slice again
    /// for that iteration first.
    pub(super) fn pipe_issue(&mut self, body: &'k Block, iv_reg: &str, guard: &str, stage: &str, from: super::tma::TmaFrom<'_>) -> Result<(), CodegenError> {
        let pipe = self.pipes[&(body as *const Block as usize)].clone();
        self.tma_issue(&pipe, body, guard, stage, &from);
        self.set(body.args[0], Val::Tile(vec![iv_reg.to_string()]));
        for &i in &pipe.slice {
            let op = &body.ops[i];
            self.loc = op.loc;
            self.op(op)?;
        }
        let stage_off = self.f.inst(format!("mul i32 {stage}, {}", pipe.stage_bytes));
        for pl in pipe.loads.iter().filter(|l| l.tma.is_none()) {
            let l = self.layout(pl.ptr)?;
            let (rows, row_len) = (self.ty(pl.result).shape[0], self.ty(pl.result).shape[1]);
            let es = self.dtype(pl.result).size_bytes();
            let wg_rows = self.wg_operands.contains(&pl.result).then_some(rows);
            let p = self.regs(pl.ptr);
            let m = pl.mask.map(|m| self.regs(m));
            let bytes = pl.width * es;
            let kind = if bytes == 16 { "cg" } else { "ca" };
            let name = format!("llvm.nvvm.cp.async.{kind}.shared.global.{bytes}.s");
            self.declare(format!("declare void @{name}(ptr addrspace(3), ptr addrspace(1), i32)"));
            for g in (0..p.len()).step_by(pl.width) {
                let dst = self.stage_slot(l, g, row_len, es, wg_rows, &stage_off, pl.offset);
                let active = match &m {
                    Some(m) => self.and(&m[g], guard),
                    None => guard.to_string(),
                };
                let size = self.f.inst(format!("select i1 {active}, i32 {bytes}, i32 0"));
                self.f.emit(format!("call void @{name}(ptr addrspace(3) {dst}, {} {}, i32 {size})", super::PTR, p[g]));
            }
        }
        if pipe.has_cp_async() {
            self.declare("declare void @llvm.nvvm.cp.async.commit.group()");
            self.f.emit("call void @llvm.nvvm.cp.async.commit.group()");
        }
        Ok(())
    }

    /// The shared-memory address of register `g`'s element of a pipelined load (layout `l`, rows of
    /// `row_len` elements of `es` bytes, `wg_rows` for a `wgmma` operand) in the stage at byte
    /// `stage_off` (an i32 operand), its buffer `offset` bytes into the stage: where its copy writes and
    /// where the `dot` or the read-back finds it.
    #[allow(clippy::too_many_arguments)]
    fn stage_slot(&mut self, l: crate::layout::Layout, g: usize, row_len: usize, es: usize, wg_rows: Option<usize>, stage_off: &str, offset: usize) -> String {
        let e = self.elem_index(l, g);
        let off = self.operand_offset(&e, row_len, es, wg_rows);
        let off = self.f.inst(format!("add i32 {off}, {stage_off}"));
        let off = self.f.inst(format!("add i32 {off}, {offset}"));
        self.f.inst(format!("getelementptr i8, ptr addrspace(3) @__smem, i32 {off}"))
    }

    /// Whether iteration `iv + k·step` of a loop bounded by `hi` runs: `iv < hi` and `k·step < hi - iv`,
    /// so that neither `iv + k·step` nor `k·step` wraps near the type's maximum (a wrapped sum would
    /// pass `< hi` and prefetch from far outside the loop's range). The step is positive (checked
    /// before the loop); `hi - iv` is exact as an unsigned number once `iv < hi`.
    pub(super) fn iteration_exists(&mut self, it: &str, signed: bool, iv: &str, step: &str, k: usize, hi: &str) -> String {
        let runs = self.f.inst(format!("icmp {} {it} {iv}, {hi}", if signed { "slt" } else { "ult" }));
        if k == 0 {
            return runs;
        }
        let left = self.f.inst(format!("sub {it} {hi}, {iv}"));
        let bits: u32 = it[1..].parse().expect("an integer loop type");
        let fits = match step.parse::<i128>() {
            Ok(c) => {
                // As the unsigned number the register holds (a u32 step prints as i32).
                let ahead = c.rem_euclid(1i128 << bits) * k as i128;
                if ahead >= 1i128 << bits {
                    return "false".into();
                }
                self.f.inst(format!("icmp ugt {it} {left}, {ahead}"))
            }
            Err(_) => {
                self.declare(format!("declare {{{it}, i1}} @llvm.umul.with.overflow.{it}({it}, {it})"));
                let m = self.f.inst(format!("call {{{it}, i1}} @llvm.umul.with.overflow.{it}({it} {step}, {it} {k})"));
                let ahead = self.f.inst(format!("extractvalue {{{it}, i1}} {m}, 0"));
                let wraps = self.f.inst(format!("extractvalue {{{it}, i1}} {m}, 1"));
                let gt = self.f.inst(format!("icmp ugt {it} {left}, {ahead}"));
                let no_wrap = self.f.inst(format!("xor i1 {wraps}, true"));
                self.and(&gt, &no_wrap)
            }
        };
        self.and(&runs, &fits)
    }

    /// `cp.async.wait_group n`.
    pub(super) fn pipe_wait(&mut self, n: usize) {
        self.declare("declare void @llvm.nvvm.cp.async.wait.group(i32)");
        self.f.emit(format!("call void @llvm.nvvm.cp.async.wait.group(i32 {n})"));
    }

    /// Before the first `dot` that reads a pipelined operand in this iteration (or the first read-back
    /// load, [`PipeLoad::readback`]): wait for this
    /// iteration's copies, fence them for `wgmma` where it reads them, and barrier.
    pub(super) fn pipe_sync(&mut self) {
        let Some(ap) = self.active.as_mut() else { return };
        if ap.synced {
            return;
        }
        ap.synced = true;
        let pending = ap.pipe.distance - 1;
        let to_wgmma = ap.pipe.loads.iter().any(|l| l.tma.is_none() && self.wg_operands.contains(&l.result));
        let (pipe, stage, phase) = (ap.pipe.clone(), ap.stage.clone(), ap.phase.clone());
        if pipe.has_cp_async() {
            self.pipe_wait(pending);
        }
        if pipe.has_tma() {
            self.tma_wait(&pipe, &stage, &phase);
        }
        if to_wgmma {
            self.fence_proxy_async();
        }
        self.barrier();
    }

    /// After [`Self::pipe_sync`] (at once for `mma.sync`, once a `wgmma` dot's instructions are issued,
    /// at the latest at the end of the body): issue iteration `i + distance`'s copies into its stage.
    pub(super) fn pipe_prefetch(&mut self) -> Result<(), CodegenError> {
        let Some(ap) = self.active.as_mut() else { return Ok(()) };
        if !ap.synced || ap.prefetched {
            return Ok(());
        }
        ap.prefetched = true;
        let (stages, distance, body, iv_reg, step, hi, it, signed, stage) =
            (ap.pipe.stages, ap.pipe.distance, ap.body, ap.iv_reg.clone(), ap.step.clone(), ap.hi.clone(), ap.it, ap.signed, ap.stage.clone());
        let slice = ap.pipe.slice.clone();
        let loc = self.loc;
        let ahead = self.f.inst(format!("mul {it} {step}, {distance}"));
        let next = self.f.inst(format!("add {it} {iv_reg}, {ahead}"));
        let guard = self.iteration_exists(it, signed, &iv_reg, &step, distance, &hi);
        let s1 = self.f.inst(format!("add i32 {stage}, {distance}"));
        let ws = self.f.inst(format!("urem i32 {s1}, {stages}"));
        // The slice's values for this iteration stay what the body computed.
        let saved: Vec<(usize, Option<Val>)> = slice
            .iter()
            .flat_map(|&i| body.ops[i].results.iter().map(|r| (r.0 as usize, self.vals[r.0 as usize].clone())))
            .collect();
        self.pipe_issue(body, &next, &guard, &ws, super::tma::TmaFrom::Carried(distance))?;
        for (i, v) in saved {
            self.vals[i] = v;
        }
        self.set(body.args[0], Val::Tile(vec![iv_reg]));
        self.loc = loc;
        Ok(())
    }
}

/// Every op of `b` (nested branches included) is pure, a branch or a yield: no memory access, no
/// barrier, no loop.
fn only_computes(b: &Block) -> bool {
    b.ops.iter().all(|o| {
        let ok = matches!(o.kind, OpKind::Yield { .. } | OpKind::If { .. }) || o.kind.effect() == Effect::Pure;
        ok && o.kind.blocks().iter().all(|nb| only_computes(nb))
    })
}

/// Bodies of innermost loops, outermost first.
fn collect_loops<'k>(b: &'k Block, out: &mut Vec<&'k Block>) {
    for op in &b.ops {
        if let OpKind::For { body, .. } = &op.kind {
            out.push(body);
        }
        for nb in op.kind.blocks() {
            collect_loops(nb, out);
        }
    }
}

/// Adds to `deps` the body ops `v` depends on; false when it depends on a carried value or on an op that
/// is not a pure computation.
fn slice_of(body: &Block, index: &HashMap<ValueId, usize>, v: ValueId, deps: &mut BTreeSet<usize>) -> bool {
    use OpKind::*;
    if body.args[1..].contains(&v) {
        return false;
    }
    let Some(&i) = index.get(&v) else { return true };
    if deps.contains(&i) {
        return true;
    }
    let k = &body.ops[i].kind;
    // Only pure ops are recomputed ahead (the op table, `OpKind::effect`, says which are); of those, the
    // costly ones and block pointers (structured values the slice does not rebuild) stay out.
    if k.effect() != Effect::Pure || matches!(k, Dot { .. } | Reduce { .. } | MakeBlockPtr { .. } | AdvanceBlockPtr { .. }) {
        return false;
    }
    deps.insert(i);
    k.operands().into_iter().all(|o| slice_of(body, index, o, deps))
}

impl Lowerer<'_> {
    /// True when `load` (a load's result) is pipelined in the loop being lowered: its elements are
    /// already on their way to the stage buffer (recorded for the `dot` that reads them), so the load
    /// itself emits nothing.
    pub(super) fn pipelined(&mut self, load: ValueId) -> bool {
        let Some(ap) = &self.active else { return false };
        let Some(pl) = ap.pipe.loads.iter().find(|l| l.result == load) else { return false };
        let (stage, bytes, offset) = (ap.stage.clone(), ap.pipe.stage_bytes, pl.offset);
        let s = self.f.inst(format!("mul i32 {stage}, {bytes}"));
        let at = self.f.inst(format!("add i32 {s}, {offset}"));
        self.active.as_mut().expect("active").at.insert(load, at);
        true
    }

    /// True when `load` is pipelined in the loop being lowered and read back into registers
    /// ([`PipeLoad::readback`]).
    pub(super) fn read_back(&self, load: ValueId) -> bool {
        self.active.as_ref().is_some_and(|ap| ap.pipe.loads.iter().any(|l| l.result == load && l.readback))
    }

    /// The read-back load ([`PipeLoad::readback`]) whose conversion `v` is, if it is one.
    pub(super) fn read_back_source(&self, v: ValueId) -> Option<ValueId> {
        let Some(OpKind::Cast { src, .. }) = self.defs[v.0 as usize].map(|o| &o.kind) else { return None };
        self.pipes.values().flat_map(|p| &p.loads).any(|l| l.result == *src && l.readback).then_some(*src)
    }

    /// The elements of a read-back load ([`PipeLoad::readback`]) from this iteration's stage, in the
    /// load's layout: each thread reads the vectors its own `cp.async`s wrote (at the offsets
    /// [`Self::pipe_issue`] gave them; masked-off elements were zero-filled by the copy). Syncs the
    /// pipeline first and prefetches after: the values are in registers, so the stage of the
    /// iteration `distance` ahead may be refilled at once.
    pub(super) fn pipe_readback(&mut self, load: ValueId) -> Result<Vec<String>, CodegenError> {
        self.pipe_sync();
        let ap = self.active.as_ref().expect("a pipelined loop");
        let pl = ap.pipe.loads.iter().find(|l| l.result == load).expect("a pipelined load").clone();
        let (stage, stage_bytes) = (ap.stage.clone(), ap.pipe.stage_bytes);
        let l = self.layout(pl.ptr)?;
        let row_len = self.ty(load).shape[1];
        let d = self.dtype(load);
        let es = d.size_bytes();
        let words = pl.width * es / 4;
        let n = self.regs(pl.ptr).len();
        let stage_off = self.f.inst(format!("mul i32 {stage}, {stage_bytes}"));
        let mut out = Vec::with_capacity(n);
        for g in (0..n).step_by(pl.width) {
            let at = self.stage_slot(l, g, row_len, es, None, &stage_off, pl.offset);
            let v = self.f.inst(format!("load <{words} x i32>, ptr addrspace(3) {at}, align {}", pl.width * es));
            for w in 0..words {
                let word = self.f.inst(format!("extractelement <{words} x i32> {v}, i32 {w}"));
                self.word_elements(&word, d, &mut out);
            }
        }
        self.pipe_prefetch()?;
        Ok(out)
    }

    /// The stage-buffer byte offset of a pipelined operand of the `dot` being lowered (after syncing the
    /// pipeline; the caller prefetches), or `None` when the operand is in registers.
    pub(super) fn pipelined_operand(&mut self, v: ValueId) -> Option<String> {
        let at = self.active.as_ref().and_then(|a| a.at.get(&v)).cloned()?;
        self.pipe_sync();
        Some(at)
    }
}
