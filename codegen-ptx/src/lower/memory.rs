//! Global memory: pointer arithmetic, loads and stores (16-byte vectorized where [`crate::axis`] proves
//! it, predicated by masks), atomics, and block pointers.
//!
//! Loads and stores are inline PTX (as Triton does): that is the one way to get predication, cache
//! hints and eviction priorities exactly as asked. They are `sideeffect` so LLVM keeps their order.

use super::{dtype_lty, Lowerer, Val, PTR};
use crate::error::CodegenError;
use crate::layout::Layout;
use dsl_core::ir::{AtomicOp, CacheHint, Eviction, MemHints, Padding, ValueId};
use dsl_core::scalar::Scalar;
use dsl_core::types::{DType, ElemTy};

fn pointee(e: &ElemTy) -> DType {
    match e {
        ElemTy::Ptr { pointee, .. } | ElemTy::BlockPtr { pointee, .. } => *pointee,
        ElemTy::Scalar(_) => panic!("verified IR: pointer expected"),
    }
}

/// The memory type of an element (`bool` is a byte).
fn mem_lty(d: DType) -> &'static str {
    if d == DType::Bool {
        "i8"
    } else {
        dtype_lty(d)
    }
}

fn load_qualifiers(h: MemHints) -> String {
    match (h.cache, h.eviction) {
        (CacheHint::CacheAll, _) => ".ca".into(),
        (CacheHint::CacheGlobal, _) => ".cg".into(),
        (CacheHint::Streaming, _) => ".cs".into(),
        (CacheHint::Normal, Eviction::First) => ".L1::evict_first".into(),
        (CacheHint::Normal, Eviction::Last) => ".L1::evict_last".into(),
        (CacheHint::Normal, Eviction::Normal) => String::new(),
    }
}

fn store_qualifiers(h: MemHints) -> String {
    match (h.cache, h.eviction) {
        (CacheHint::CacheGlobal, _) => ".cg".into(),
        (CacheHint::Streaming, _) => ".cs".into(),
        (_, Eviction::First) => ".L1::evict_first".into(),
        (_, Eviction::Last) => ".L1::evict_last".into(),
        _ => String::new(),
    }
}

impl Lowerer<'_> {
    pub(super) fn add_ptr(&mut self, ptr: ValueId, offset: ValueId) -> Vec<String> {
        let d = pointee(&self.ty(ptr).elem);
        let od = self.dtype(offset);
        let (p, o) = (self.regs(ptr), self.regs(offset));
        (0..p.len())
            .map(|i| {
                let off = self.cast(od, DType::I64, &o[i]);
                self.f.inst(format!("getelementptr {}, {PTR} {}, i64 {off}", mem_lty(d), p[i]))
            })
            .collect()
    }

    /// How many consecutive registers of `ptr` one access may cover (1, 2, 4, 8 elements; ≤ 16 bytes).
    pub(super) fn vector_width(&self, ptr: ValueId, mask: Option<ValueId>, l: Layout) -> usize {
        if l.replicated() || l.numel == 1 {
            return 1;
        }
        let size = pointee(&self.ty(ptr).elem).size_bytes() as u64;
        let info = self.axis.get(ptr);
        let mut w = (l.vec as u64).min(info.contig).min(16 / size);
        if let Some(m) = mask {
            w = w.min(self.axis.get(m).const_run);
        }
        while w > 1 && info.div % (w * size) != 0 {
            w /= 2;
        }
        w.max(1) as usize
    }

    /// One predicated load of `words` 32-bit words at `addr`, as i32 values.
    fn ld_words(&mut self, words: usize, addr: &str, pred: Option<&str>, q: &str) -> Vec<String> {
        self.ld_raw(words, ".b32", addr, pred, q)
    }

    /// The load instruction of [`Self::ld_vec`]: `words` 32-bit registers (`ptype` the access type of
    /// each), the i32 values.
    fn ld_raw(&mut self, words: usize, ptype: &str, addr: &str, pred: Option<&str>, q: &str) -> Vec<String> {
        let (wt, cons) = ("i32", "r");
        let outs: Vec<String> = (0..words).map(|i| format!("${i}")).collect();
        let dst = if words == 1 { outs[0].clone() } else { format!("{{{}}}", outs.join(", ")) };
        let v = if words == 1 { String::new() } else { format!(".v{words}") };
        let (pred_s, pred_c, pred_a) = match pred {
            Some(p) => (format!("@${} ", words + 1), ",b", format!(", i1 {p}")),
            None => (String::new(), "", String::new()),
        };
        let ret = if words == 1 { wt.to_string() } else { format!("{{ {} }}", vec![wt; words].join(", ")) };
        let constraints = format!("{},l{pred_c}", vec![format!("={cons}"); words].join(","));
        let call = self.f.inst(format!(
            "call {ret} asm sideeffect \"{pred_s}ld.global{q}{v}{ptype} {dst}, [${words}];\", \"{constraints}\"({PTR} {addr}{pred_a})"
        ));
        if words == 1 {
            vec![call]
        } else {
            (0..words).map(|i| self.f.inst(format!("extractvalue {ret} {call}, {i}"))).collect()
        }
    }

    /// The elements of type `d` (1, 2 or 4 bytes, not `bool`) a loaded 32-bit `word` holds, low bits
    /// first, appended to `out`; bytes are remembered as pieces of their word (`byte_of`) for
    /// conversions that take two at once.
    pub(super) fn word_elements(&mut self, word: &str, d: DType, out: &mut Vec<String>) {
        let (size, et) = (d.size_bytes(), mem_lty(d));
        if size == 4 {
            out.push(if et == "i32" { word.to_string() } else { self.f.inst(format!("bitcast i32 {word} to {et}")) });
            return;
        }
        let bits = 8 * size;
        for b in 0..4 / size {
            let s = self.f.inst(format!("lshr i32 {word}, {}", bits * b));
            let e = self.f.inst(format!("trunc i32 {s} to i{bits}"));
            if size == 1 {
                self.byte_of.insert(e.clone(), (word.to_string(), b));
                out.push(e);
            } else {
                out.push(if et == "i16" { e } else { self.f.inst(format!("bitcast i16 {e} to {et}")) });
            }
        }
    }

    /// One predicated load of `w` elements of type `d` at `addr`: the elements (as `mem_lty(d)`).
    fn ld_vec(&mut self, d: DType, w: usize, addr: &str, pred: Option<&str>, q: &str) -> Vec<String> {
        let et = mem_lty(d);
        let bytes = w * d.size_bytes();
        let (words, ptype) = if bytes >= 4 { (bytes / 4, ".b32") } else { (1, if bytes == 2 { ".b16" } else { ".b8" }) };
        let word_vals = self.ld_raw(words, ptype, addr, pred, q);
        if bytes < 4 {
            // One sub-word access: the low bits of the 32-bit register.
            let it = format!("i{}", bytes * 8);
            let t = self.f.inst(format!("trunc i32 {} to {it}", word_vals[0]));
            if w == 1 {
                return vec![if et == it { t } else { self.f.inst(format!("bitcast {it} {t} to {et}")) }];
            }
            let vec = self.f.inst(format!("bitcast {it} {t} to <{w} x {et}>"));
            return (0..w).map(|i| self.f.inst(format!("extractelement <{w} x {et}> {vec}, i32 {i}"))).collect();
        }
        // Reassemble the words into `w` elements.
        let mut acc = "undef".to_string();
        for (i, wv) in word_vals.iter().enumerate() {
            acc = self.f.inst(format!("insertelement <{words} x i32> {acc}, i32 {wv}, i32 {i}"));
        }
        let vec = self.f.inst(format!("bitcast <{words} x i32> {acc} to <{w} x {et}>"));
        (0..w).map(|i| self.f.inst(format!("extractelement <{w} x {et}> {vec}, i32 {i}"))).collect()
    }

    /// One predicated store of `w` elements (`mem_lty(d)` values) at `addr`.
    fn st_vec(&mut self, d: DType, vals: &[String], addr: &str, pred: &str, q: &str) {
        let et = mem_lty(d);
        let w = vals.len();
        let bytes = w * d.size_bytes();
        let mut vec = "undef".to_string();
        for (i, v) in vals.iter().enumerate() {
            vec = self.f.inst(format!("insertelement <{w} x {et}> {vec}, {et} {v}, i32 {i}"));
        }
        let (words, ptype) = if bytes >= 4 { (bytes / 4, ".b32") } else { (1, if bytes == 2 { ".b16" } else { ".b8" }) };
        let word_vals: Vec<String> = if bytes >= 4 {
            let wv = self.f.inst(format!("bitcast <{w} x {et}> {vec} to <{words} x i32>"));
            (0..words).map(|i| self.f.inst(format!("extractelement <{words} x i32> {wv}, i32 {i}"))).collect()
        } else {
            let it = format!("i{}", bytes * 8);
            let small = self.f.inst(format!("bitcast <{w} x {et}> {vec} to {it}"));
            vec![self.f.inst(format!("zext {it} {small} to i32"))]
        };
        let srcs: Vec<String> = (0..words).map(|i| format!("${}", i + 1)).collect();
        let src = if words == 1 { srcs[0].clone() } else { format!("{{{}}}", srcs.join(", ")) };
        let v = if words == 1 { String::new() } else { format!(".v{words}") };
        let (pred_s, pred_c, pred_a) = if pred == "true" {
            (String::new(), String::new(), String::new())
        } else {
            (format!("@${} ", words + 1), ",b".to_string(), format!(", i1 {pred}"))
        };
        let args: Vec<String> = word_vals.iter().map(|x| format!("i32 {x}")).collect();
        let constraints = format!("l,{}{pred_c},~{{memory}}", vec!["r"; words].join(","));
        self.f.emit(format!(
            "call void asm sideeffect \"{pred_s}st.global{q}{v}{ptype} [$0], {src};\", \"{constraints}\"({PTR} {addr}, {}{pred_a})",
            args.join(", ")
        ));
    }

    pub(super) fn load(
        &mut self,
        ptr: ValueId,
        mask: Option<ValueId>,
        other: Option<ValueId>,
        hints: MemHints,
    ) -> Result<Vec<String>, CodegenError> {
        let d = pointee(&self.ty(ptr).elem);
        let l = self.layout(ptr)?;
        let w = self.vector_width(ptr, mask, l);
        let q = load_qualifiers(hints);
        let p = self.regs(ptr);
        let m = mask.map(|m| self.regs(m));
        let o = other.map(|o| self.regs(o));
        let zero = super::const_of(d, Scalar::I(0));
        let mut out = Vec::with_capacity(p.len());
        let size = d.size_bytes();
        for g in (0..p.len()).step_by(w) {
            let active = m.as_ref().map_or("true".to_string(), |m| m[g].clone());
            let ok = self.in_bounds(ptr, &p[g], w, size, &active);
            let pred = match (&m, ok.as_str()) {
                (None, "true") => None,
                _ => Some(self.and(&active, &ok)),
            };
            // Whole words of 1- or 2-byte elements masked to zero: select the words (the mask is
            // uniform over the access), then take their pieces; bytes are remembered as pieces of
            // their word (`byte_of`) for conversions that take two at once.
            let zero_alt = o.as_ref().is_none_or(|o| o[g..g + w].iter().all(|x| *x == zero));
            if size <= 2 && w * size >= 4 && d != DType::Bool && zero_alt {
                for word in self.ld_words(w * size / 4, &p[g], pred.as_deref(), &q) {
                    let word = match &m {
                        Some(m) => self.f.inst(format!("select i1 {}, i32 {word}, i32 0", m[g])),
                        None => word,
                    };
                    self.word_elements(&word, d, &mut out);
                }
                continue;
            }
            let elems = self.ld_vec(d, w, &p[g], pred.as_deref(), &q);
            for (i, e) in elems.into_iter().enumerate() {
                let r = g + i;
                let e = if d == DType::Bool { self.f.inst(format!("icmp ne i8 {e}, 0")) } else { e };
                let e = match &m {
                    Some(m) => {
                        let alt = o.as_ref().map_or(zero.clone(), |o| o[r].clone());
                        self.f.inst(format!("select i1 {}, {} {e}, {} {alt}", m[r], dtype_lty(d), dtype_lty(d)))
                    }
                    None => e,
                };
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The store value registers in memory form (`bool` → byte).
    fn mem_value(&mut self, d: DType, x: &str) -> String {
        if d == DType::Bool {
            self.f.inst(format!("zext i1 {x} to i8"))
        } else {
            x.to_string()
        }
    }

    pub(super) fn store(&mut self, ptr: ValueId, value: ValueId, mask: Option<ValueId>, hints: MemHints) -> Result<(), CodegenError> {
        let d = pointee(&self.ty(ptr).elem);
        let l = self.layout(ptr)?;
        let w = self.vector_width(ptr, mask, l);
        let q = store_qualifiers(hints);
        let p = self.regs(ptr);
        let v = self.regs(value);
        let m = mask.map(|m| self.regs(m));
        let owner = self.owner(l);
        for g in (0..p.len()).step_by(w) {
            let pred = match &m {
                Some(m) => self.and(&m[g], &owner),
                None => owner.clone(),
            };
            let ok = self.in_bounds(ptr, &p[g], w, d.size_bytes(), &pred);
            let pred = self.and(&pred, &ok);
            let vals: Vec<String> = (g..g + w).map(|r| self.mem_value(d, &v[r])).collect();
            self.st_vec(d, &vals, &p[g], &pred, &q);
        }
        Ok(())
    }

    /// One `prefetch.global.L2` per element where `mask` holds (a replicated tile's owners only); the
    /// caller picks one element per 128-byte line.
    pub(super) fn prefetch_l2(&mut self, ptr: ValueId, mask: ValueId) -> Result<(), CodegenError> {
        let d = pointee(&self.ty(ptr).elem);
        let l = self.layout(ptr)?;
        let (p, m) = (self.regs(ptr), self.regs(mask));
        let owner = self.owner(l);
        for (addr, on) in p.iter().zip(&m) {
            let pred = self.and(on, &owner);
            let ok = self.in_bounds(ptr, addr, 1, d.size_bytes(), &pred);
            let pred = self.and(&pred, &ok);
            if pred == "true" {
                self.f.emit(format!("call void asm sideeffect \"prefetch.global.L2 [$0];\", \"l\"({PTR} {addr})"));
            } else {
                self.f.emit(format!("call void asm sideeffect \"@$1 prefetch.global.L2 [$0];\", \"l,b\"({PTR} {addr}, i1 {pred})"));
            }
        }
        Ok(())
    }

    /// Runs `body` (which emits code returning one value of type `t`) only where `pred` holds;
    /// elsewhere the result is `alt`.
    fn guarded(&mut self, pred: &str, t: &str, alt: &str, body: impl FnOnce(&mut Self) -> String) -> String {
        if pred == "true" {
            return body(self);
        }
        let go = self.f.block("guarded");
        let after = self.f.block("after");
        let from = self.f.current();
        self.f.emit(format!("br i1 {pred}, label {}, label {}", self.f.label(go), self.f.label(after)));
        self.f.switch_to(go);
        let r = body(self);
        let end = self.f.current();
        self.f.emit(format!("br label {}", self.f.label(after)));
        self.f.switch_to(after);
        let (fl, el) = (self.f.label(from), self.f.label(end));
        self.f.inst(format!("phi {t} [ {r}, {el} ], [ {alt}, {fl} ]"))
    }

    pub(super) fn atomic(
        &mut self,
        op: AtomicOp,
        ptr: ValueId,
        value: ValueId,
        mask: Option<ValueId>,
        result: ValueId,
    ) -> Result<Vec<String>, CodegenError> {
        let d = pointee(&self.ty(ptr).elem);
        let t = dtype_lty(d);
        let l = self.layout(ptr)?;
        let owner = self.owner(l);
        let (p, v) = (self.regs(ptr), self.regs(value));
        let m = mask.map(|m| self.regs(m));
        if self.packed_half_add(op, d, ptr, mask, result, l) {
            // Two adjacent halves per `red.global.add.noftz.{f16x2,bf16x2}`: half the atomics.
            let q = if d == DType::F16 { "f16x2" } else { "bf16x2" };
            for g in (0..p.len()).step_by(2) {
                let pred = m.as_ref().map_or("true".to_string(), |m| m[g].clone());
                let ok = self.in_bounds(ptr, &p[g], 2, 2, &pred);
                let pred = self.and(&pred, &ok);
                let pair = self.f.inst(format!("insertelement <2 x {t}> undef, {t} {}, i32 0", v[g]));
                let pair = self.f.inst(format!("insertelement <2 x {t}> {pair}, {t} {}, i32 1", v[g + 1]));
                let word = self.f.inst(format!("bitcast <2 x {t}> {pair} to i32"));
                let (ps, pc, pa) =
                    if pred == "true" { ("", "", String::new()) } else { ("@$2 ", ",b", format!(", i1 {pred}")) };
                self.f.emit(format!(
                    "call void asm sideeffect \"{ps}red.global.add.noftz.{q} [$0], $1;\", \"l,r{pc},~{{memory}}\"({PTR} {}, i32 {word}{pa})",
                    p[g]
                ));
            }
            // The result is unused (checked): no old values to return.
            return Ok(v);
        }
        let mut out = vec![];
        for r in 0..p.len() {
            let pred = match &m {
                Some(m) => self.and(&m[r], &owner),
                None => owner.clone(),
            };
            let (addr, x) = (p[r].clone(), v[r].clone());
            let ok = self.in_bounds(ptr, &addr, 1, d.size_bytes(), &pred);
            let pred = self.and(&pred, &ok);
            let old = self.guarded(&pred, t, &x, |s| s.atomic_rmw(op, d, &addr, &x));
            out.push(old);
        }
        self.share_from_owners(l, d, out, result)
    }

    /// True where an f16/bf16 `atomic_add` whose old values nobody reads can go two elements at a time:
    /// pairs of consecutive, 4-byte aligned elements under one mask value (bf16x2 needs sm_90).
    fn packed_half_add(&self, op: AtomicOp, d: DType, ptr: ValueId, mask: Option<ValueId>, result: ValueId, l: Layout) -> bool {
        let kind_ok = op == AtomicOp::Add
            && (d == DType::F16 || (d == DType::BF16 && self.target == crate::target::Target::Sm90a));
        kind_ok && self.uses[result.0 as usize] == 0 && !l.replicated() && self.vector_width(ptr, mask, l) >= 2
    }

    fn atomic_rmw(&mut self, op: AtomicOp, d: DType, addr: &str, x: &str) -> String {
        let t = dtype_lty(d);
        let rmw = |name: &str| format!("atomicrmw {name} {PTR} {addr}, {t} {x} syncscope(\"device\") monotonic");
        match (op, d.is_float()) {
            (AtomicOp::Add, true) => self.f.inst(rmw("fadd")),
            (AtomicOp::Add, false) => self.f.inst(rmw("add")),
            (AtomicOp::Xchg, _) => self.f.inst(rmw("xchg")),
            (AtomicOp::Max | AtomicOp::Min, false) => {
                let n = match (op == AtomicOp::Max, d.is_signed_int()) {
                    (true, true) => "max",
                    (true, false) => "umax",
                    (false, true) => "min",
                    (false, false) => "umin",
                };
                self.f.inst(rmw(n))
            }
            (AtomicOp::Max | AtomicOp::Min, true) => {
                // f32: a compare-and-swap loop with the interpreter's rule (`x > old` replaces for max).
                let pre = self.f.current();
                let lp = self.f.block("cas");
                let done = self.f.block("cas_done");
                let init = self.f.inst(format!("load atomic i32, {PTR} {addr} syncscope(\"device\") monotonic, align 4"));
                self.f.emit(format!("br label {}", self.f.label(lp)));
                self.f.switch_to(lp);
                let old = self.f.tmp();
                let of = self.f.inst(format!("bitcast i32 {old} to float"));
                let cmp = if op == AtomicOp::Max { "ogt" } else { "olt" };
                let better = self.f.inst(format!("fcmp {cmp} float {x}, {of}"));
                let new = self.f.inst(format!("select i1 {better}, float {x}, float {of}"));
                let ni = self.f.inst(format!("bitcast float {new} to i32"));
                let pair = self.f.inst(format!("cmpxchg {PTR} {addr}, i32 {old}, i32 {ni} syncscope(\"device\") monotonic monotonic"));
                let seen = self.f.inst(format!("extractvalue {{ i32, i1 }} {pair}, 0"));
                let ok = self.f.inst(format!("extractvalue {{ i32, i1 }} {pair}, 1"));
                self.f.emit(format!("br i1 {ok}, label {}, label {}", self.f.label(done), self.f.label(lp)));
                let (pl, ll) = (self.f.label(pre), self.f.label(lp));
                self.f.prepend(lp, format!("{old} = phi i32 [ {init}, {pl} ], [ {seen}, {ll} ]"));
                self.f.switch_to(done);
                of
            }
        }
    }

    pub(super) fn atomic_cas(
        &mut self,
        ptr: ValueId,
        cmp: ValueId,
        value: ValueId,
        mask: Option<ValueId>,
        result: ValueId,
    ) -> Result<Vec<String>, CodegenError> {
        let d = pointee(&self.ty(ptr).elem);
        let t = dtype_lty(d);
        let l = self.layout(ptr)?;
        let owner = self.owner(l);
        let (p, c, v) = (self.regs(ptr), self.regs(cmp), self.regs(value));
        let m = mask.map(|m| self.regs(m));
        let mut out = vec![];
        for r in 0..p.len() {
            let pred = match &m {
                Some(m) => self.and(&m[r], &owner),
                None => owner.clone(),
            };
            let (addr, cr, x) = (p[r].clone(), c[r].clone(), v[r].clone());
            let ok = self.in_bounds(ptr, &addr, 1, d.size_bytes(), &pred);
            let pred = self.and(&pred, &ok);
            let old = self.guarded(&pred, t, &x, |s| {
                let pair = s.f.inst(format!("cmpxchg {PTR} {addr}, {t} {cr}, {t} {x} syncscope(\"device\") monotonic monotonic"));
                s.f.inst(format!("extractvalue {{ {t}, i1 }} {pair}, 0"))
            });
            out.push(old);
        }
        self.share_from_owners(l, d, out, result)
    }

    /// Per-element addresses and in-bounds predicates of a block pointer's block (`shape` elements,
    /// distributed as layout `l`).
    fn block_addresses(&mut self, ptr: ValueId, l: Layout) -> Vec<(String, String)> {
        let Val::Block { base, dims } = self.val(ptr).clone() else { panic!("verified IR: block pointer") };
        let ElemTy::BlockPtr { pointee, block_shape, .. } = &self.ty(ptr).elem else { panic!("verified IR") };
        let (d, shape) = (*pointee, block_shape.clone());
        let strides: Vec<usize> = (0..shape.len()).map(|i| shape[i + 1..].iter().product()).collect();
        (0..l.regs())
            .map(|r| {
                let flat = self.elem_index(l, r);
                let mut inb = "true".to_string();
                let mut off = "0".to_string();
                for (dim, [size, stride, offset]) in dims.iter().enumerate() {
                    let c = self.f.inst(format!("udiv i32 {flat}, {}", strides[dim]));
                    let c = self.f.inst(format!("urem i32 {c}, {}", shape[dim]));
                    let c = self.f.inst(format!("zext i32 {c} to i64"));
                    let t = self.f.inst(format!("add i64 {offset}, {c}"));
                    let ge0 = self.f.inst(format!("icmp sge i64 {t}, 0"));
                    let lt = self.f.inst(format!("icmp slt i64 {t}, {size}"));
                    let ok = self.and(&ge0, &lt);
                    inb = self.and(&inb, &ok);
                    let e = self.f.inst(format!("mul i64 {t}, {stride}"));
                    off = self.f.inst(format!("add i64 {off}, {e}"));
                }
                let addr = self.f.inst(format!("getelementptr {}, {PTR} {base}, i64 {off}", mem_lty(d)));
                (addr, inb)
            })
            .collect()
    }

    pub(super) fn load_block(&mut self, ptr: ValueId, padding: Padding, hints: MemHints, result: ValueId) -> Result<Vec<String>, CodegenError> {
        let d = pointee(&self.ty(ptr).elem);
        let l = self.layout(result)?;
        let q = load_qualifiers(hints);
        let pad = match padding {
            Padding::Zero => super::const_of(d, Scalar::I(0)),
            Padding::Nan => super::const_of(d, Scalar::F(f64::NAN)),
        };
        let mut out = vec![];
        for (addr, inb) in self.block_addresses(ptr, l) {
            let ok = self.in_bounds(ptr, &addr, 1, d.size_bytes(), &inb);
            let pred = self.and(&inb, &ok);
            let e = self.ld_vec(d, 1, &addr, Some(&pred), &q).remove(0);
            let e = if d == DType::Bool { self.f.inst(format!("icmp ne i8 {e}, 0")) } else { e };
            let t = dtype_lty(d);
            out.push(self.f.inst(format!("select i1 {inb}, {t} {e}, {t} {pad}")));
        }
        Ok(out)
    }

    pub(super) fn store_block(&mut self, ptr: ValueId, value: ValueId, hints: MemHints) -> Result<(), CodegenError> {
        let d = pointee(&self.ty(ptr).elem);
        let l = self.layout(value)?;
        let q = store_qualifiers(hints);
        let owner = self.owner(l);
        let v = self.regs(value);
        for (r, (addr, inb)) in self.block_addresses(ptr, l).into_iter().enumerate() {
            let pred = self.and(&inb, &owner);
            let ok = self.in_bounds(ptr, &addr, 1, d.size_bytes(), &pred);
            let pred = self.and(&pred, &ok);
            let x = self.mem_value(d, &v[r]);
            self.st_vec(d, &[x], &addr, &pred, &q);
        }
        Ok(())
    }
}

