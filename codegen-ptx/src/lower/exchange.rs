//! Ops that need elements other threads hold, exchanged through shared memory: broadcast of a
//! non-scalar, permute, reductions, dot, and sharing atomic results with replica threads.
//!
//! Every exchange uses the one dynamic shared buffer `@__smem` from offset 0 and starts with a barrier
//! (earlier readers are done) and writes, then a barrier, then reads. Barriers are safe because every
//! exchange runs in uniform control flow: `if` conditions and loop bounds are scalars, and scalars are
//! the same in every thread.

use super::place::Place;
use super::{dtype_lty, lty, Lowerer};
use crate::error::CodegenError;
use crate::layout::{strides, Layout, MmaLayout};
use dsl_core::ir::{ReduceOp, ValueId};
use dsl_core::types::{DType, ElemTy};

impl Lowerer<'_> {
    pub(super) fn barrier(&mut self) {
        self.f.emit("call void asm sideeffect \"bar.sync 0;\", \"~{memory}\"() #1");
    }

    /// Makes the scratch area (after the pipeline stage buffers) at least `bytes` long.
    pub(super) fn need_smem(&mut self, bytes: usize) {
        self.smem_bytes = self.smem_bytes.max(self.smem_base + bytes);
    }

    /// Address of byte offset `base + index * size` of the scratch area (index: an i32 operand).
    pub(super) fn smem_addr(&mut self, base: usize, index: &str, size: usize) -> String {
        let b = self.f.inst(format!("mul i32 {index}, {size}"));
        let b = self.f.inst(format!("add i32 {b}, {}", self.smem_base + base));
        self.f.inst(format!("getelementptr i8, ptr addrspace(3) @__smem, i32 {b}"))
    }

    /// Emits `body` so that it runs only where `pred` (an i1 operand) holds; `"true"` needs no branch.
    pub(super) fn only_where(&mut self, pred: &str, hint: &str, body: impl FnOnce(&mut Self)) {
        if pred == "true" {
            return body(self);
        }
        let go = self.f.block(hint);
        let after = self.f.block(&format!("{hint}_done"));
        self.f.emit(format!("br i1 {pred}, label {}, label {}", self.f.label(go), self.f.label(after)));
        self.f.switch_to(go);
        body(self);
        self.f.emit(format!("br label {}", self.f.label(after)));
        self.f.switch_to(after);
    }

    /// Writes this thread's registers of a tile (layout `l`, register type `t` of `size` bytes) to
    /// shared memory at `base`, indexed by flat element; replicas do not write.
    pub(super) fn smem_write(&mut self, regs: &[String], l: Layout, t: &str, size: usize, base: usize) {
        let owner = self.owner(l);
        self.only_where(&owner, "smem_write", |s| {
            for (r, x) in regs.iter().enumerate() {
                let i = s.elem_index(l, r);
                let a = s.smem_addr(base, &i, size);
                s.f.emit(format!("store {t} {x}, ptr addrspace(3) {a}"));
            }
        });
    }

    pub(super) fn smem_read(&mut self, base: usize, index: &str, t: &str, size: usize) -> String {
        let a = self.smem_addr(base, index, size);
        self.f.inst(format!("load {t}, ptr addrspace(3) {a}"))
    }

    /// The type a tile's registers are stored as in shared memory, and its size.
    pub(super) fn smem_type(&self, e: &ElemTy) -> (&'static str, usize) {
        match e {
            ElemTy::Scalar(DType::Bool) => ("i8", 1),
            ElemTy::Scalar(d) => (dtype_lty(*d), d.size_bytes()),
            ElemTy::Ptr { .. } => (lty(e), 8),
            ElemTy::BlockPtr { .. } => panic!("block pointers are never exchanged"),
        }
    }

    /// Gathers `dst[i] = src[index(dst coords of i)]` for every register of `dst` through shared memory.
    fn gather(
        &mut self,
        src: ValueId,
        dst: ValueId,
        src_index: impl Fn(&mut Self, &[String]) -> String,
    ) -> Result<Vec<String>, CodegenError> {
        let (sl, dl) = (self.layout(src)?, self.layout(dst)?);
        let elem = self.ty(src).elem.clone();
        let (t, size) = self.smem_type(&elem);
        let is_bool = elem == ElemTy::Scalar(DType::Bool);
        let mut regs = self.regs(src);
        if is_bool {
            regs = regs.iter().map(|x| self.f.inst(format!("zext i1 {x} to i8"))).collect();
        }
        self.need_smem(sl.numel * size);
        self.barrier();
        self.smem_write(&regs, sl, t, size, 0);
        self.barrier();
        let shape = self.ty(dst).shape.clone();
        let mut out = vec![];
        for r in 0..dl.regs() {
            let i = self.elem_index(dl, r);
            let coords = self.coords(&i, &shape);
            let j = src_index(self, &coords);
            let x = self.smem_read(0, &j, t, size);
            out.push(if is_bool { self.f.inst(format!("icmp ne i8 {x}, 0")) } else { x });
        }
        Ok(out)
    }

    /// The coordinates (i32 operands) of flat row-major index `i` in `shape`.
    pub(super) fn coords(&mut self, i: &str, shape: &[usize]) -> Vec<String> {
        let st = strides(shape);
        (0..shape.len())
            .map(|d| {
                let c = self.f.inst(format!("udiv i32 {i}, {}", st[d]));
                self.f.inst(format!("urem i32 {c}, {}", shape[d]))
            })
            .collect()
    }

    /// `sum(coords[i] * strides[i])` as i32.
    pub(super) fn linear(&mut self, terms: &[(String, usize)]) -> String {
        let mut acc = "0".to_string();
        for (c, s) in terms {
            if *s == 0 {
                continue;
            }
            let p = self.f.inst(format!("mul i32 {c}, {s}"));
            acc = self.f.inst(format!("add i32 {acc}, {p}"));
        }
        acc
    }

    pub(super) fn broadcast(&mut self, src: ValueId, dst: ValueId) -> Result<Vec<String>, CodegenError> {
        let (sn, dn) = (self.ty(src).numel(), self.ty(dst).numel());
        let dl = self.layout(dst)?;
        if sn <= 1 {
            let x = self.regs(src)[0].clone();
            return Ok(vec![x; dl.regs()]);
        }
        if sn == dn {
            // Only size-1 dims were added: the same elements in the same order.
            return Ok(self.regs(src));
        }
        // Each thread already holds the elements its registers copy (a row vector over rows as wide as
        // its chunks): a register copy, no exchange.
        let (src_shape, dst_shape) = (self.ty(src).shape.clone(), self.ty(dst).shape.clone());
        if let Some(at) = crate::layout::local_broadcast(self.layout(src)?, &src_shape, dl, &dst_shape) {
            let regs = self.regs(src);
            return Ok(at.into_iter().map(|r| regs[r].clone()).collect());
        }
        // Offsets and masks built from aranges and scalars: recompute each element instead of exchanging.
        if self.can_remat(src) {
            return Ok((0..dl.regs())
                .map(|r| {
                    let i = self.elem_index(dl, r);
                    let j = self.broadcast_source_index(src, dst, &i);
                    self.remat_at(src, &j)
                })
                .collect());
        }
        self.gather(src, dst, |s, coords| s.broadcast_source_linear(&src_shape, dst_shape.len(), coords))
    }

    /// The flat index in `src` of flat element `i` (an i32 operand) of its broadcast `dst`.
    pub(super) fn broadcast_source_index(&mut self, src: ValueId, dst: ValueId, i: &str) -> String {
        let (src_shape, dst_shape) = (self.ty(src).shape.clone(), self.ty(dst).shape.clone());
        let coords = self.coords(i, &dst_shape);
        self.broadcast_source_linear(&src_shape, dst_shape.len(), &coords)
    }

    /// The flat index in a source of shape `src_shape` of the element at `coords` of a rank-`dst_rank`
    /// broadcast (leading dims added, size-1 dims stretched).
    fn broadcast_source_linear(&mut self, src_shape: &[usize], dst_rank: usize, coords: &[String]) -> String {
        let pad = dst_rank - src_shape.len();
        let sst = strides(src_shape);
        let terms: Vec<(String, usize)> =
            (0..src_shape.len()).filter(|&d| src_shape[d] != 1).map(|d| (coords[pad + d].clone(), sst[d])).collect();
        self.linear(&terms)
    }

    pub(super) fn permute(&mut self, src: ValueId, perm: &[usize], dst: ValueId) -> Result<Vec<String>, CodegenError> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) || self.ty(src).numel() <= 1 {
            return Ok(self.regs(src));
        }
        let sst = strides(&self.ty(src).shape);
        let perm = perm.to_vec();
        self.gather(src, dst, |s, coords| {
            // dst dim i is src dim perm[i].
            let terms: Vec<(String, usize)> = (0..perm.len()).map(|i| (coords[i].clone(), sst[perm[i]])).collect();
            s.linear(&terms)
        })
    }

    /// Shares results computed by owner threads (atomics) with the replicas that hold the same elements,
    /// when the result is used.
    pub(super) fn share_from_owners(
        &mut self,
        l: Layout,
        d: DType,
        regs: Vec<String>,
        result: ValueId,
    ) -> Result<Vec<String>, CodegenError> {
        if !l.replicated() && l.numel > 1 || self.uses[result.0 as usize] == 0 {
            return Ok(regs);
        }
        let (t, size) = (dtype_lty(d), d.size_bytes());
        self.need_smem(l.numel * size);
        self.barrier();
        self.smem_write(&regs, l, t, size, 0);
        self.barrier();
        let i = self.elem_index(l, 0);
        Ok(vec![self.smem_read(0, &i, t, size)])
    }

    // ---- reductions

    /// The type reductions of `d` accumulate in: f32 for floats (rounded once at the end), the type
    /// itself for integers.
    fn acc_type(d: DType) -> DType {
        if d.is_float() {
            DType::F32
        } else {
            d
        }
    }

    fn identity(op: ReduceOp, a: DType) -> String {
        match (op, a.is_float()) {
            (ReduceOp::Sum, true) => "0.0".into(),
            (ReduceOp::Sum, false) => "0".into(),
            (ReduceOp::Max | ReduceOp::ArgMax, true) => "0xFFF0000000000000".into(),
            (ReduceOp::Min | ReduceOp::ArgMin, true) => "0x7FF0000000000000".into(),
            (ReduceOp::Max | ReduceOp::ArgMax, false) => {
                if a.is_signed_int() {
                    format!("{}", i64::MIN >> (64 - a.bits()))
                } else {
                    "0".into()
                }
            }
            (ReduceOp::Min | ReduceOp::ArgMin, false) => {
                if a.is_signed_int() {
                    format!("{}", i64::MAX >> (64 - a.bits()))
                } else {
                    "-1".into()
                }
            }
        }
    }

    /// Combines accumulator `(a, ai)` with candidate `(b, bi)` (indices only for arg reductions).
    /// Arg rule (the interpreter's): NaN beats everything, then the larger (smaller) value, then the
    /// smaller index.
    fn combine(&mut self, op: ReduceOp, t: DType, a: &str, ai: &str, b: &str, bi: &str) -> (String, String) {
        use dsl_core::ir::BinaryOp;
        match op {
            ReduceOp::Sum => (self.binary(BinaryOp::Add, t, a, b), String::new()),
            ReduceOp::Max => (self.binary(BinaryOp::Max, t, a, b), String::new()),
            ReduceOp::Min => (self.binary(BinaryOp::Min, t, a, b), String::new()),
            ReduceOp::ArgMax | ReduceOp::ArgMin => {
                let ty = dtype_lty(t);
                let max = op == ReduceOp::ArgMax;
                let better = if t.is_float() {
                    let bn = self.f.inst(format!("fcmp uno {ty} {b}, 0.0"));
                    let an = self.f.inst(format!("fcmp uno {ty} {a}, 0.0"));
                    let gt = self.f.inst(format!("fcmp {} {ty} {b}, {a}", if max { "ogt" } else { "olt" }));
                    let eq = self.f.inst(format!("fcmp oeq {ty} {b}, {a}"));
                    let both_nan = self.f.inst(format!("and i1 {bn}, {an}"));
                    let tie = self.f.inst(format!("or i1 {eq}, {both_nan}"));
                    let first = self.f.inst(format!("icmp slt i32 {bi}, {ai}"));
                    let tie_win = self.f.inst(format!("and i1 {tie}, {first}"));
                    let not_an = self.f.inst(format!("xor i1 {an}, true"));
                    let nan_win = self.f.inst(format!("and i1 {bn}, {not_an}"));
                    let w = self.f.inst(format!("or i1 {gt}, {tie_win}"));
                    let w = self.f.inst(format!("and i1 {w}, {not_an}"));
                    let w2 = self.f.inst(format!("or i1 {w}, {nan_win}"));
                    let tie_nan = self.f.inst(format!("and i1 {both_nan}, {first}"));
                    self.f.inst(format!("or i1 {w2}, {tie_nan}"))
                } else {
                    let s = t.is_signed_int();
                    let p = match (max, s) {
                        (true, true) => "sgt",
                        (true, false) => "ugt",
                        (false, true) => "slt",
                        (false, false) => "ult",
                    };
                    let gt = self.f.inst(format!("icmp {p} {ty} {b}, {a}"));
                    let eq = self.f.inst(format!("icmp eq {ty} {b}, {a}"));
                    let first = self.f.inst(format!("icmp slt i32 {bi}, {ai}"));
                    let tie_win = self.f.inst(format!("and i1 {eq}, {first}"));
                    self.f.inst(format!("or i1 {gt}, {tie_win}"))
                };
                let v = self.f.inst(format!("select i1 {better}, {ty} {b}, {ty} {a}"));
                let i = self.f.inst(format!("select i1 {better}, i32 {bi}, i32 {ai}"));
                (v, i)
            }
        }
    }

    pub(super) fn reduce(&mut self, op: ReduceOp, src: ValueId, axis: usize, result: ValueId) -> Result<Vec<String>, CodegenError> {
        if let (Some(Place::Mma(l)), Some(Place::Rows(_))) = (self.place_of(src), self.place_of(result)) {
            return Ok(self.reduce_mma_rows(op, src, l));
        }
        let d = self.dtype(src);
        let a = Self::acc_type(d);
        let arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
        let sl = self.layout(src)?;
        let regs: Vec<String> = self.regs(src).iter().map(|x| self.cast(d, a, x)).collect();
        let finish = |s: &mut Self, (v, i): (String, String)| if arg { i } else { s.cast(a, d, &v) };
        if self.ty(result).numel() == 1 {
            let r = self.reduce_all(op, a, sl, &regs)?;
            return Ok(vec![finish(self, r)]);
        }
        let shape = self.ty(src).shape.clone();
        let (n, post) = (shape[axis], shape[axis + 1..].iter().product::<usize>());
        let dl = self.layout(result)?;
        // Along the last axis, when each row is a power-of-two group of lanes of one warp: shuffles.
        let lanes = n / sl.vec;
        if post == 1 && !sl.replicated() && n % sl.vec == 0 && lanes.is_power_of_two() && lanes <= 32 {
            let rows = self.reduce_rows(op, a, sl, &regs, n, dl)?;
            return Ok(rows.into_iter().map(|r| finish(self, r)).collect());
        }
        // Otherwise every thread folds its output elements sequentially from shared memory.
        let (t, size) = (dtype_lty(a), a.size_bytes());
        self.need_smem(sl.numel * size);
        self.barrier();
        self.smem_write(&regs, sl, t, size, 0);
        self.barrier();
        // base index of each output element: p * n * post + q.
        let bases: Vec<String> = (0..dl.regs())
            .map(|r| {
                let o = self.elem_index(dl, r);
                let p = self.f.inst(format!("udiv i32 {o}, {post}"));
                let q = self.f.inst(format!("urem i32 {o}, {post}"));
                let pb = self.f.inst(format!("mul i32 {p}, {}", n * post));
                self.f.inst(format!("add i32 {pb}, {q}"))
            })
            .collect();
        let init: Vec<(String, String)> = vec![(Self::identity(op, a), "2147483647".to_string()); dl.regs()];
        self.loop_ty = t.to_string();
        let out = self.counted_loop(n, init, |s, k, accs| {
            let kp = s.f.inst(format!("mul i32 {k}, {post}"));
            accs.iter()
                .zip(&bases)
                .map(|((v, i), b)| {
                    let j = s.f.inst(format!("add i32 {b}, {kp}"));
                    let x = s.smem_read(0, &j, t, size);
                    s.combine(op, a, v, i, &x, k)
                })
                .collect()
        });
        Ok(out.into_iter().map(|r| finish(self, r)).collect())
    }

    /// Reduces each row of an mma tile whose rows each lie in one warp (`l.wn == 1`), into the row
    /// layout: in-thread over the thread's columns of each of its rows, then across the lane quad that
    /// holds the row's other columns (two butterfly shuffles). No shared memory, no barrier.
    fn reduce_mma_rows(&mut self, op: ReduceOp, src: ValueId, l: MmaLayout) -> Vec<String> {
        let d = self.dtype(src);
        let a = Self::acc_type(d);
        let regs: Vec<String> = self.val(src).regs().to_vec().iter().map(|x| self.cast(d, a, x)).collect();
        let mut out = vec![];
        for i in 0..l.tm() {
            for h in 0..2 {
                let mut v: Option<String> = None;
                for j in 0..l.tn() {
                    for c in 0..2 {
                        let x = &regs[(i * l.tn() + j) * 4 + 2 * h + c];
                        v = Some(match v {
                            None => x.clone(),
                            Some(y) => self.combine(op, a, &y, "", x, "").0,
                        });
                    }
                }
                let mut v = v.expect("a tile has columns");
                for off in [1, 2] {
                    let o = self.shfl_xor(a, &v, off);
                    v = self.combine(op, a, &v, "", &o, "").0;
                }
                out.push(self.cast(a, d, &v));
            }
        }
        out
    }

    /// Reduces each row (the last axis, `n` elements) of a blocked tile whose rows each lie in an aligned
    /// group of `n / vec` lanes of one warp: in-thread over each chunk of `vec` elements, then butterfly
    /// shuffles within the group; group leaders publish row results through shared memory to the
    /// threads that hold them in the result layout `dl`. Returns (value, index) pairs like `combine`.
    fn reduce_rows(
        &mut self,
        op: ReduceOp,
        a: DType,
        sl: Layout,
        regs: &[String],
        n: usize,
        dl: Layout,
    ) -> Result<Vec<(String, String)>, CodegenError> {
        let arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
        let lanes = n / sl.vec;
        let chunks = sl.regs() / sl.vec;
        let mut per_chunk = vec![];
        for c in 0..chunks {
            let mut acc = (String::new(), String::new());
            for v in 0..sl.vec {
                let r = c * sl.vec + v;
                let idx = if arg {
                    let i = self.elem_index(sl, r);
                    self.f.inst(format!("urem i32 {i}, {n}"))
                } else {
                    String::new()
                };
                acc = if v == 0 { (regs[r].clone(), idx) } else { self.combine(op, a, &acc.0, &acc.1, &regs[r], &idx) };
            }
            let mut off = lanes / 2;
            while off >= 1 {
                let ov = self.shfl_xor(a, &acc.0, off as u32);
                let oi = if arg { self.shfl_xor(DType::I32, &acc.1, off as u32) } else { String::new() };
                acc = self.combine(op, a, &acc.0, &acc.1, &ov, &oi);
                off /= 2;
            }
            per_chunk.push(acc);
        }
        // Publish: the first lane of each group writes its rows' results (indices for arg reductions).
        let (t, size) = if arg { ("i32", 4) } else { (dtype_lty(a), a.size_bytes()) };
        self.need_smem(dl.numel * size);
        self.barrier();
        let tid = self.tid();
        let lane_in_group = self.f.inst(format!("and i32 {tid}, {}", lanes - 1));
        let leader = self.f.inst(format!("icmp eq i32 {lane_in_group}, 0"));
        let go = self.f.block("rows_publish");
        let after = self.f.block("rows_published");
        self.f.emit(format!("br i1 {leader}, label {}, label {}", self.f.label(go), self.f.label(after)));
        self.f.switch_to(go);
        for (c, (v, i)) in per_chunk.iter().enumerate() {
            // Row of chunk c in this thread: (c * threads * vec + tid * vec) / n.
            let group = self.f.inst(format!("udiv i32 {tid}, {lanes}"));
            let row = self.f.inst(format!("add i32 {group}, {}", c * sl.threads * sl.vec / n));
            let addr = self.smem_addr(0, &row, size);
            let x = if arg { i } else { v };
            self.f.emit(format!("store {t} {x}, ptr addrspace(3) {addr}"));
        }
        self.f.emit(format!("br label {}", self.f.label(after)));
        self.f.switch_to(after);
        self.barrier();
        Ok((0..dl.regs())
            .map(|r| {
                let o = self.elem_index(dl, r);
                let x = self.smem_read(0, &o, t, size);
                if arg {
                    (String::new(), x)
                } else {
                    (x, String::new())
                }
            })
            .collect())
    }

    /// A loop `for k in 0..n` (k: i32) carrying pairs of registers (value, index) of the accumulator type.
    pub(super) fn counted_loop(
        &mut self,
        n: usize,
        init: Vec<(String, String)>,
        body: impl FnOnce(&mut Self, &str, &[(String, String)]) -> Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        // Types: the value registers' type is inferred from their use; we pass them through phis of
        // `self.loop_ty`, which callers set.
        let t = self.loop_ty.clone();
        let pre = self.f.current();
        let header = self.f.block("rloop");
        let exit = self.f.block("rdone");
        self.f.emit(format!("br label {}", self.f.label(header)));
        self.f.switch_to(header);
        let k = self.f.tmp();
        let names: Vec<(String, String)> = init.iter().map(|_| (self.f.tmp(), self.f.tmp())).collect();
        let next = body(self, &k, &names);
        let k1 = self.f.inst(format!("add i32 {k}, 1"));
        let more = self.f.inst(format!("icmp ult i32 {k1}, {n}"));
        let latch = self.f.current();
        self.f.emit(format!("br i1 {more}, label {}, label {}", self.f.label(header), self.f.label(exit)));
        let (pl, ll) = (self.f.label(pre), self.f.label(latch));
        self.f.prepend(header, format!("{k} = phi i32 [ 0, {pl} ], [ {k1}, {ll} ]"));
        let mut out = vec![];
        for ((v, i), ((iv, ii), (nv, ni))) in names.iter().zip(init.iter().zip(&next)) {
            self.f.prepend(header, format!("{v} = phi {t} [ {iv}, {pl} ], [ {nv}, {ll} ]"));
            let ni = if ni.is_empty() { ii } else { ni };
            self.f.prepend(header, format!("{i} = phi i32 [ {ii}, {pl} ], [ {ni}, {ll} ]"));
            // The loop runs at least once (n >= 1); after it, the last iteration's values.
            out.push((nv.clone(), ni.clone()));
        }
        self.f.switch_to(exit);
        out
    }

    /// Reduces a whole tile to one value held by every thread: in-thread, then across the warp with
    /// butterfly shuffles, then across warps through shared memory.
    fn reduce_all(&mut self, op: ReduceOp, a: DType, l: Layout, regs: &[String]) -> Result<(String, String), CodegenError> {
        let t = dtype_lty(a);
        let arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
        let id = Self::identity(op, a);
        let owner = self.owner(l);
        let mut acc = (id.clone(), "2147483647".to_string());
        for (r, x) in regs.iter().enumerate() {
            let xi = if arg { self.elem_index(l, r) } else { String::new() };
            let x = if owner == "true" { x.clone() } else { self.f.inst(format!("select i1 {owner}, {t} {x}, {t} {id}")) };
            acc = if r == 0 && owner == "true" { (x, xi) } else { self.combine(op, a, &acc.0, &acc.1, &x, &xi) };
        }
        if l.numel == 1 {
            return Ok(acc);
        }
        for off in [16, 8, 4, 2, 1] {
            let ov = self.shfl_xor(a, &acc.0, off);
            let oi = if arg { self.shfl_xor(DType::I32, &acc.1, off) } else { String::new() };
            acc = self.combine(op, a, &acc.0, &acc.1, &ov, &oi);
        }
        let warps = self.threads / 32;
        if warps == 1 {
            return Ok(acc);
        }
        // Lane 0 of each warp publishes; everyone folds the warps' values in the same order.
        let idx_base = warps * 8;
        self.need_smem(idx_base + warps * 4);
        self.barrier();
        let tid = self.tid();
        let lane = self.f.inst(format!("and i32 {tid}, 31"));
        let warp = self.f.inst(format!("lshr i32 {tid}, 5"));
        let lane0 = self.f.inst(format!("icmp eq i32 {lane}, 0"));
        let go = self.f.block("publish");
        let after = self.f.block("published");
        self.f.emit(format!("br i1 {lane0}, label {}, label {}", self.f.label(go), self.f.label(after)));
        self.f.switch_to(go);
        let addr = self.smem_addr(0, &warp, 8);
        self.f.emit(format!("store {t} {}, ptr addrspace(3) {addr}", acc.0));
        if arg {
            let ia = self.smem_addr(idx_base, &warp, 4);
            self.f.emit(format!("store i32 {}, ptr addrspace(3) {ia}", acc.1));
        }
        self.f.emit(format!("br label {}", self.f.label(after)));
        self.f.switch_to(after);
        self.barrier();
        let mut total = (String::new(), String::new());
        for w in 0..warps {
            let wv = self.smem_read(0, &w.to_string(), t, 8);
            let wi = if arg { self.smem_read(idx_base, &w.to_string(), "i32", 4) } else { String::new() };
            total = if w == 0 { (wv, wi) } else { self.combine(op, a, &total.0, &total.1, &wv, &wi) };
        }
        Ok(total)
    }

    /// `shfl.sync.bfly` of a 32- or 64-bit register.
    fn shfl_xor(&mut self, d: DType, x: &str, off: u32) -> String {
        let t = dtype_lty(d);
        let shfl = |s: &mut Self, v: &str| {
            s.f.inst(format!(
                "call i32 asm sideeffect \"shfl.sync.bfly.b32 $0, $1, {off}, 0x1f, 0xffffffff;\", \"=r,r\"(i32 {v}) #1"
            ))
        };
        match d.bits() {
            64 => {
                let lo = self.f.inst(format!("trunc i64 {x} to i32"));
                let hi = self.f.inst(format!("lshr i64 {x}, 32"));
                let hi = self.f.inst(format!("trunc i64 {hi} to i32"));
                let (lo, hi) = (shfl(self, &lo), shfl(self, &hi));
                let lo = self.f.inst(format!("zext i32 {lo} to i64"));
                let hi = self.f.inst(format!("zext i32 {hi} to i64"));
                let hi = self.f.inst(format!("shl i64 {hi}, 32"));
                self.f.inst(format!("or i64 {hi}, {lo}"))
            }
            32 => {
                let b = if t == "i32" { x.to_string() } else { self.f.inst(format!("bitcast {t} {x} to i32")) };
                let r = shfl(self, &b);
                if t == "i32" {
                    r
                } else {
                    self.f.inst(format!("bitcast i32 {r} to {t}"))
                }
            }
            _ => {
                let s = d.is_signed_int();
                let b = self.f.inst(format!("{} {t} {x} to i32", if s { "sext" } else { "zext" }));
                let r = shfl(self, &b);
                self.f.inst(format!("trunc i32 {r} to {t}"))
            }
        }
    }

    // ---- dot

    /// `acc + a · b`: on tensor cores where [`Self::mma_fits`] (see `mma.rs`), else on CUDA cores: both operands go to shared memory as f32, every thread computes its
    /// accumulator elements with one fma per k in order (the interpreter's order: bit-equal results).
    pub(super) fn dot(&mut self, a: ValueId, b: ValueId, acc: ValueId) -> Result<Vec<String>, CodegenError> {
        let (sa, sb) = (self.ty(a).shape.clone(), self.ty(b).shape.clone());
        let (m, k, n) = (sa[0], sa[1], sb[1]);
        let (da, db) = (self.dtype(a), self.dtype(b));
        if Self::mma_fits(self.target, da, db, m, k, n) && da.size_bytes() == 2 {
            return self.dot_mma(a, b, acc);
        }
        let (la, lb, lc) = (self.layout(a)?, self.layout(b)?, self.layout(acc)?);
        let ra: Vec<String> = self.regs(a).iter().map(|x| self.widen_f32(da, x)).collect();
        let rb: Vec<String> = self.regs(b).iter().map(|x| self.widen_f32(db, x)).collect();
        let b_base = m * k * 4;
        self.need_smem(b_base + k * n * 4);
        self.barrier();
        self.smem_write(&ra, la, "float", 4, 0);
        self.smem_write(&rb, lb, "float", 4, b_base);
        self.barrier();
        let rows_cols: Vec<(String, String)> = (0..lc.regs())
            .map(|r| {
                let o = self.elem_index(lc, r);
                let i = self.f.inst(format!("udiv i32 {o}, {n}"));
                let j = self.f.inst(format!("urem i32 {o}, {n}"));
                let ik = self.f.inst(format!("mul i32 {i}, {k}"));
                (ik, j)
            })
            .collect();
        let init: Vec<(String, String)> = self.regs(acc).into_iter().map(|c| (c, "0".to_string())).collect();
        self.loop_ty = "float".into();
        let out = self.counted_loop(k, init, |s, kk, accs| {
            let kn = s.f.inst(format!("mul i32 {kk}, {n}"));
            accs.iter()
                .zip(&rows_cols)
                .map(|((c, _), (ik, j))| {
                    let ai = s.f.inst(format!("add i32 {ik}, {kk}"));
                    let x = s.smem_read(0, &ai, "float", 4);
                    let bi = s.f.inst(format!("add i32 {kn}, {j}"));
                    let y = s.smem_read(b_base, &bi, "float", 4);
                    (s.fma(DType::F32, &x, &y, c), String::new())
                })
                .collect()
        });
        Ok(out.into_iter().map(|(v, _)| v).collect())
    }
}
