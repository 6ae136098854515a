//! IR → LLVM IR text for the NVPTX backend: one `ptx_kernel` function per kernel, per-thread (SIMT) code.
//!
//! Each tile value becomes, in every thread, the registers its [`Layout`] gives that thread; each op is
//! lowered in the module named for its kind:
//! - [`elementwise`]: casts, unary/binary math, comparisons, select, fma (register by register);
//! - [`memory`]: pointer arithmetic, loads and stores (vectorized, predicated), atomics, block pointers;
//! - [`exchange`]: ops that move elements between threads through shared memory (broadcast, permute,
//!   reductions, dot);
//! - [`mma`]: `dot` on tensor cores (`mma.sync`, sm_80 and up) where the operand types and shapes fit;
//! - [`wgmma`]: `dot` on Hopper's warpgroup tensor cores (`wgmma.mma_async`, sm_90a) where the tile fits
//!   warpgroups (else [`mma`]);
//! - [`place`]: where each value lives (blocked, an mma accumulator, its rows), decided before lowering;
//! - [`pipeline`] and [`resident`]: `dot` operands in shared memory (`cp.async` stages, loop invariants);
//! - [`tma`]: block-pointer loads in those stages through Hopper's TMA and `mbarrier`s (sm_90a);
//! - [`remat`]: index and mask tiles recomputed in their user's layout;
//! - [`math`]: transcendental functions and fp8 conversions with their documented accuracy;
//! - [`explain`]: the decisions above, printed before code is emitted ([`explain()`], `DSL_DUMP_PLAN=1`);
//! - this file: the kernel signature, constants, program ids, structured control flow, asserts.
//!
//! The parameters and the bounds-check error record follow [`crate::abi`] (shared with the runtime).

mod elementwise;
mod exchange;
mod explain;
pub use explain::explain;
mod math;
mod memory;
mod mma;
mod pipeline;
mod place;
mod remat;
mod resident;
mod text;
mod tma;
mod wgmma;

use crate::abi;
use crate::axis::AxisAnalysis;
use crate::error::CodegenError;
use crate::layout::Layout;
use crate::target::{ArgFact, CompileOptions, Specialization};
use dsl_core::ir::{Block, Const, Kernel, Loc, Op, OpKind, ValueId};
use dsl_core::scalar::{self, Scalar};
use dsl_core::types::{DType, ElemTy, Type};
use std::collections::BTreeSet;
use text::FnText;

/// A kernel lowered to LLVM IR text.
pub struct Lowered {
    pub ir: String,
    pub entry: String,
    pub shared_bytes: u32,
    /// The tensor maps the kernel takes after its own parameters (see [`crate::abi`]).
    pub tensor_maps: Vec<abi::TensorMapSpec>,
}

/// The tensor maps a kernel compiled with `opts` and `spec` takes (what [`lower_kernel`] would give in
/// [`Lowered::tensor_maps`], from its plan alone: the runtime reads them for PTX it did not compile).
pub fn tensor_maps(k: &Kernel, spec: &Specialization, opts: &CompileOptions) -> Vec<abi::TensorMapSpec> {
    if !(opts.tma && opts.wgmma && opts.target.has_wgmma()) {
        return vec![];
    }
    planned(k, spec, opts).tma_maps
}

/// A lowered value in one thread.
#[derive(Clone, Debug)]
enum Val {
    /// The thread's registers of a tile (see [`Layout`]), as LLVM operands of the element's type.
    Tile(Vec<String>),
    /// A block pointer: the base pointer and per dimension `[shape, stride, offset]` as i64.
    Block { base: String, dims: Vec<[String; 3]> },
}

impl Val {
    fn regs(&self) -> &[String] {
        match self {
            Val::Tile(r) => r,
            Val::Block { .. } => panic!("verified IR: tile expected"),
        }
    }

    /// Every register with its LLVM type (for phis).
    fn flat(&self, ty: &Type) -> Vec<(String, String)> {
        match self {
            Val::Tile(regs) => regs.iter().map(|r| (lty(&ty.elem).to_string(), r.clone())).collect(),
            Val::Block { base, dims } => {
                let mut v = vec![(PTR.to_string(), base.clone())];
                for d in dims {
                    v.extend(d.iter().map(|x| ("i64".to_string(), x.clone())));
                }
                v
            }
        }
    }

    fn unflat(ty: &Type, mut regs: Vec<String>) -> Val {
        match &ty.elem {
            ElemTy::BlockPtr { block_shape, .. } => {
                let base = regs.remove(0);
                let dims = regs.chunks(3).take(block_shape.len()).map(|c| [c[0].clone(), c[1].clone(), c[2].clone()]).collect();
                Val::Block { base, dims }
            }
            _ => Val::Tile(regs),
        }
    }
}

/// The LLVM type of a global pointer.
const PTR: &str = "ptr addrspace(1)";

/// The LLVM register type of an element.
fn lty(e: &ElemTy) -> &'static str {
    match e {
        ElemTy::Scalar(d) => dtype_lty(*d),
        ElemTy::Ptr { .. } => PTR,
        ElemTy::BlockPtr { .. } => panic!("a block pointer has no single register type"),
    }
}

/// The LLVM register type of a dtype (fp8 lives in `i8` as its bits; `bool` in `i1`).
fn dtype_lty(d: DType) -> &'static str {
    match d {
        DType::F32 => "float",
        DType::F16 => "half",
        DType::BF16 => "bfloat",
        DType::F8E4M3 | DType::F8E5M2 | DType::I8 | DType::U8 => "i8",
        DType::I16 => "i16",
        DType::I32 | DType::U32 => "i32",
        DType::I64 => "i64",
        DType::Bool => "i1",
    }
}

/// An LLVM constant of type `d` holding `v` (converted as `scalar::cast` would).
fn const_of(d: DType, v: Scalar) -> String {
    let v = scalar::normalize(d, v);
    match d {
        DType::F32 => format!("0x{:016X}", (scalar::from_bits(DType::F32, scalar::to_bits(DType::F32, v)).as_f64()).to_bits()),
        DType::F16 => format!("0xH{:04X}", scalar::to_bits(d, v)),
        DType::BF16 => format!("0xR{:04X}", scalar::to_bits(d, v)),
        DType::F8E4M3 | DType::F8E5M2 => format!("{}", scalar::to_bits(d, v) as u8 as i8),
        DType::Bool => if v.as_bool() { "true" } else { "false" }.into(),
        DType::I8 | DType::U8 => format!("{}", v.as_i64() as i8),
        DType::I16 => format!("{}", v.as_i64() as i16),
        DType::I32 | DType::U32 => format!("{}", v.as_i64() as i32),
        DType::I64 => format!("{}", v.as_i64()),
    }
}

fn const_scalar(c: Const) -> Scalar {
    match c {
        Const::F(x) => Scalar::F(x),
        Const::I(i) => Scalar::I(i),
        Const::B(b) => Scalar::B(b),
    }
}

/// The entry name: the kernel's name with anything PTX does not allow replaced.
fn entry_name(k: &Kernel) -> String {
    let mut s: String = k.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

pub(crate) struct Lowerer<'k> {
    k: &'k Kernel,
    f: FnText,
    vals: Vec<Option<Val>>,
    axis: AxisAnalysis,
    threads: usize,
    /// How many times each value is read (results nobody reads need no cross-thread broadcast).
    uses: Vec<u32>,
    /// Bytes of dynamic shared memory needed (the largest exchange).
    smem_bytes: usize,
    /// Module-level declarations and definitions this function needs.
    decls: BTreeSet<String>,
    /// Private constant strings (assert messages): name → bytes.
    strings: Vec<(String, Vec<u8>)>,
    /// Where the op being lowered comes from (for errors).
    loc: Loc,
    /// The register type the next `counted_loop` carries.
    loop_ty: String,
    target: crate::target::Target,
    /// `tid.x`, once read (see [`Lowerer::tid`]).
    tid_reg: Option<String>,
    /// With bounds checks: each pointer parameter's length operand (`None` for scalars).
    lens: Option<Vec<Option<String>>>,
    /// Which pointer parameter each pointer value derives from (bounds checks).
    prov: Vec<Option<usize>>,
    /// Where each value lives (see [`place`]).
    plan: place::Plan,
    /// The op that defines each value (none for parameters and block arguments).
    defs: Vec<Option<&'k Op>>,
    /// Software pipelines by loop body address (see [`pipeline`]).
    pipes: std::collections::HashMap<usize, pipeline::PipeLoop>,
    /// The pipelined loop whose body is being lowered.
    active: Option<pipeline::ActivePipe<'k>>,
    /// Where the scratch area of exchanges starts in shared memory: after the pipeline stage buffers and
    /// resident operands, or at 0 in the ops after the last loop ([`loop_free_tail`]).
    smem_base: usize,
    /// The cap on consecutive elements per thread for every tile of this kernel (see [`Layout`]).
    max_vec: usize,
    /// Transposes feeding a tensor-core `dot` as its B operand, by result: their source tile, which the
    /// `dot` stages as it is (k-major) instead of the transpose being lowered.
    kmajor: std::collections::HashMap<ValueId, ValueId>,
    /// Bytes loaded as part of a 32-bit word: byte register → (word register, byte index), so that
    /// conversions of two neighbours can take them as one 16-bit piece of the word.
    byte_of: std::collections::HashMap<String, (String, usize)>,
    /// Loop-invariant `dot` operands kept in shared memory, by value: their region's byte offset (see
    /// [`resident`]).
    resident: std::collections::HashMap<ValueId, usize>,
    /// Whether fitting `dot`s lower to `wgmma` (the option, on a target that has it).
    wgmma: bool,
    /// Whether block-pointer loads feeding them may use TMA (see [`tma`]).
    tma: bool,
    /// The launch facts the kernel is specialized on.
    facts: Specialization,
    /// The tensor maps its TMA loads read, in parameter order.
    tma_maps: Vec<abi::TensorMapSpec>,
    /// The `dot`s that do, by result (see [`wgmma`]).
    wgmma_dots: std::collections::HashSet<ValueId>,
    /// Their shared-memory operands (pipelined, resident or staged), which take the wgmma layout.
    wg_operands: std::collections::HashSet<ValueId>,
    /// The `wgmma` dots that leave their group in flight into the next loop iteration (see [`wgmma`]).
    lagged: std::collections::HashSet<ValueId>,
    /// The running (unwaited) fp8 sum of each lagged fp8 dot of the loop being lowered: a hidden carried
    /// tile, set to the loop header's registers before the body and to the new group's after its `dot`.
    pending: std::collections::HashMap<ValueId, Vec<String>>,
}

/// The lowerer of `k` with every decision taken before code is emitted (printed by [`explain`]):
/// where each value lives, which `dot`s run on which tensor-core instructions, the pipelines and the
/// shared-memory operands.
fn planned<'k>(k: &'k Kernel, spec: &Specialization, opts: &CompileOptions) -> Lowerer<'k> {
    let threads = 32 * opts.num_warps as usize;
    let wgmma = opts.wgmma && opts.target.has_wgmma();
    let mut uses = vec![0u32; k.types.len()];
    count_uses(&k.body, &mut uses);
    let mut l = Lowerer {
        k,
        f: FnText::new(),
        vals: vec![None; k.types.len()],
        axis: AxisAnalysis::run(k, spec),
        threads,
        uses,
        smem_bytes: 0,
        decls: BTreeSet::new(),
        strings: vec![],
        loc: Loc::UNKNOWN,
        loop_ty: String::new(),
        target: opts.target,
        tid_reg: None,
        lens: None,
        prov: vec![None; k.types.len()],
        plan: place::plan(k, threads / 32, opts.target, wgmma),
        defs: vec![None; k.types.len()],
        pipes: Default::default(),
        active: None,
        smem_base: 0,
        max_vec: if touches_bytes(k) { crate::layout::MAX_VEC_BYTES } else { crate::layout::MAX_VEC },
        kmajor: Default::default(),
        byte_of: Default::default(),
        resident: Default::default(),
        wgmma,
        tma: wgmma && opts.tma && !opts.bounds_check,
        facts: spec.clone(),
        tma_maps: vec![],
        wgmma_dots: Default::default(),
        wg_operands: Default::default(),
        lagged: Default::default(),
        pending: Default::default(),
    };
    record_defs(&k.body, &mut l.defs);
    l.find_kmajor_operands();
    l.find_wgmma_dots();
    if opts.num_stages >= 2 && !opts.bounds_check {
        l.smem_base = l.plan_pipelines(opts.num_stages as usize);
        l.smem_bytes = l.smem_base;
    }
    l.smem_base = l.plan_resident(l.smem_base);
    l.smem_bytes = l.smem_base;
    l
}

/// Lowers a verified kernel to one LLVM module with one `ptx_kernel` function.
pub fn lower_kernel(k: &Kernel, spec: &Specialization, opts: &CompileOptions) -> Result<Lowered, CodegenError> {
    let mut l = planned(k, spec, opts);
    let threads = l.threads;
    let entry = entry_name(k);
    let mut params = vec![];
    for (i, p) in k.params.iter().enumerate() {
        let ty = k.ty(p.value);
        let name = format!("%p{i}");
        let val = match &ty.elem {
            ElemTy::Ptr { .. } => {
                params.push(format!("{PTR} noalias {name}"));
                l.prov[p.value.0 as usize] = Some(i);
                name
            }
            ElemTy::Scalar(DType::Bool) => {
                params.push(format!("i8 {name}"));
                l.f.inst(format!("icmp ne i8 {name}, 0"))
            }
            ElemTy::Scalar(d) => {
                params.push(format!("{} {name}", dtype_lty(*d)));
                if d.is_int() && spec.fact(i) == ArgFact::One {
                    const_of(*d, Scalar::I(1))
                } else {
                    name
                }
            }
            ElemTy::BlockPtr { .. } => {
                return Err(l.unsupported("a block pointer cannot be a kernel parameter"));
            }
        };
        l.vals[p.value.0 as usize] = Some(Val::Tile(vec![val]));
    }
    let is_pointer = k.params.iter().map(|p| matches!(k.ty(p.value).elem, ElemTy::Ptr { .. }));
    let mut lens = vec![None; k.params.len()];
    for h in abi::hidden_params(is_pointer, opts.bounds_check, l.tma_maps.len()) {
        match h {
            // By value in the parameter space, read there by the TMA unit (LLVM lowers a `grid_constant`
            // byval parameter's address to `cvta.param` instead of copying it to local memory).
            abi::Hidden::TensorMap { map } => params.push(format!(
                "ptr byval([{n} x i8]) align 64 \"nvvm.grid_constant\" %tm{map}",
                n = abi::TENSOR_MAP_BYTES
            )),
            abi::Hidden::BufferLen { param } => {
                params.push(format!("i64 %len{param}"));
                lens[param] = Some(format!("%len{param}"));
            }
            abi::Hidden::ErrorRecord => params.push(format!("{PTR} %err")),
        }
    }
    if opts.bounds_check {
        l.lens = Some(lens);
    }
    // The ops after the last loop and the last read of a resident operand: every pipeline stage and
    // resident operand is dead there, so their exchanges take shared memory from byte 0 (see
    // [`loop_free_tail`]).
    let tail = loop_free_tail(&k.body, &l.resident);
    l.ops(&k.body.ops[..tail])?;
    l.smem_base = 0;
    l.ops(&k.body.ops[tail..])?;
    l.f.emit("ret void");
    let body = std::mem::replace(&mut l.f, FnText::new()).finish();

    let mut ir = String::new();
    ir.push_str("target triple = \"nvptx64-nvidia-cuda\"\n\n");
    // wgmma operands sit at multiples of 1024 bytes from here (their swizzle is computed from addresses).
    let smem_align = if l.wgmma_dots.is_empty() { 16 } else { 1024 };
    ir.push_str(&format!("@__smem = external addrspace(3) global [0 x i8], align {smem_align}\n"));
    for (name, bytes) in &l.strings {
        let esc: String = bytes.iter().map(|b| format!("\\{b:02X}")).collect();
        ir.push_str(&format!(
            "{name} = private unnamed_addr addrspace(1) constant [{} x i8] c\"{esc}\\00\", align 1\n",
            bytes.len() + 1
        ));
    }
    for d in &l.decls {
        ir.push_str(d);
        ir.push('\n');
    }
    ir.push_str(&format!(
        "\ndefine ptx_kernel void @{entry}({}) #0 {{\n{body}}}\n\nattributes #0 = {{ \"nvvm.maxntid\"=\"{threads}\" }}\nattributes #1 = {{ convergent }}\n",
        params.join(", ")
    ));
    Ok(Lowered { ir, entry, shared_bytes: l.smem_bytes as u32, tensor_maps: l.tma_maps })
}

/// Index of the first op of the kernel body after the last one that holds a loop or reads a resident
/// operand (0 when none does). Shared memory is allocated by lifetime this far: pipeline stages live
/// only inside loops, and a pipelined loop's exit waits for every copy it issued (`cp.async.wait_group
/// 0`, then a barrier: copies past the end land too, zero-filled) and for its lagged `wgmma` groups;
/// a resident operand is read by `dot`s in loops and, possibly, by some after them (a peeled last
/// step). Once the tail runs, those bytes are free for its exchanges, each of which starts with a
/// barrier (every warp has left the loops).
fn loop_free_tail(b: &Block, resident: &std::collections::HashMap<ValueId, usize>) -> usize {
    fn holds(op: &Op, resident: &std::collections::HashMap<ValueId, usize>) -> bool {
        matches!(op.kind, OpKind::For { .. })
            || op.kind.operands().iter().any(|v| resident.contains_key(v))
            || op.kind.blocks().iter().any(|nb| nb.ops.iter().any(|o| holds(o, resident)))
    }
    b.ops.iter().rposition(|op| holds(op, resident)).map_or(0, |i| i + 1)
}

/// True when the kernel loads or stores 1-byte elements (then its chunks are 16 elements: 16-byte accesses).
fn touches_bytes(k: &Kernel) -> bool {
    fn walk(k: &Kernel, b: &Block) -> bool {
        b.ops.iter().any(|op| {
            let byte = match &op.kind {
                OpKind::Load { .. } => op.results.first().is_some_and(|r| k.ty(*r).dtype().is_some_and(|d| d.size_bytes() == 1 && d != DType::Bool)),
                OpKind::Store { value, .. } => k.ty(*value).dtype().is_some_and(|d| d.size_bytes() == 1 && d != DType::Bool),
                _ => false,
            };
            byte || op.kind.blocks().iter().any(|nb| walk(k, nb))
        })
    }
    walk(k, &k.body)
}

fn record_defs<'k>(b: &'k Block, defs: &mut [Option<&'k Op>]) {
    for op in &b.ops {
        for r in &op.results {
            defs[r.0 as usize] = Some(op);
        }
        for nb in op.kind.blocks() {
            record_defs(nb, defs);
        }
    }
}

fn count_uses(b: &Block, uses: &mut [u32]) {
    for op in &b.ops {
        for v in op.kind.operands() {
            uses[v.0 as usize] += 1;
        }
        for nb in op.kind.blocks() {
            count_uses(nb, uses);
        }
    }
}

impl<'k> Lowerer<'k> {
    fn unsupported(&self, what: impl Into<String>) -> CodegenError {
        CodegenError::Unsupported { kernel: self.k.display_name(), loc: self.loc, what: what.into() }
    }

    fn ty(&self, v: ValueId) -> &'k Type {
        self.k.ty(v)
    }

    fn dtype(&self, v: ValueId) -> DType {
        self.ty(v).dtype().expect("verified IR: numeric value")
    }

    fn val(&self, v: ValueId) -> &Val {
        self.vals[v.0 as usize].as_ref().expect("verified IR: value defined before use")
    }

    /// `v`'s registers in the blocked layout (converted if it lives in an mma layout).
    fn regs(&mut self, v: ValueId) -> Vec<String> {
        self.regs_in(v, None)
    }

    /// A loop-carried or branch-merged value in place `want` (block pointers as they are).
    fn carried(&mut self, v: ValueId, want: Option<place::Place>) -> Val {
        match self.val(v) {
            Val::Block { .. } => self.val(v).clone(),
            Val::Tile(_) => Val::Tile(self.regs_in(v, want)),
        }
    }

    /// Where `v` lives (`None`: the blocked layout).
    fn place_of(&self, v: ValueId) -> Option<place::Place> {
        self.plan.layout[v.0 as usize]
    }

    fn set(&mut self, v: ValueId, val: Val) {
        self.vals[v.0 as usize] = Some(val);
    }

    fn layout_of(&self, numel: usize) -> Result<Layout, CodegenError> {
        Layout::with_max_vec(numel.max(1), self.threads, self.max_vec).ok_or_else(|| {
            self.unsupported(format!(
                "a tile of {numel} elements does not fit {} threads evenly: use a power-of-two size or fewer warps",
                self.threads
            ))
        })
    }

    fn layout(&self, v: ValueId) -> Result<Layout, CodegenError> {
        self.layout_of(self.ty(v).numel())
    }

    fn declare(&mut self, d: impl Into<String>) {
        self.decls.insert(d.into());
    }

    /// The thread index within the program (`tid.x`).
    /// Read once, at the top of the entry block (which dominates every use).
    fn tid(&mut self) -> String {
        if let Some(t) = &self.tid_reg {
            return t.clone();
        }
        self.declare("declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()");
        let t = self.f.tmp();
        self.f.prepend(0, format!("{t} = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()"));
        self.tid_reg = Some(t.clone());
        t
    }

    /// The flat element index (i32) of register `r` of a tile with layout `l` in this thread.
    fn elem_index(&mut self, l: Layout, r: usize) -> String {
        if l.numel == 1 {
            return "0".into();
        }
        let t = self.tid();
        if l.replicated() {
            return self.f.inst(format!("urem i32 {t}, {}", l.numel));
        }
        let (mul, add) = l.element_affine(r);
        let m = self.f.inst(format!("mul i32 {t}, {mul}"));
        self.f.inst(format!("add i32 {m}, {add}"))
    }

    /// `true` in threads that own their elements of layout `l` (see [`Layout`]).
    fn owner(&mut self, l: Layout) -> String {
        if !l.replicated() {
            return "true".into();
        }
        let t = self.tid();
        self.f.inst(format!("icmp ult i32 {t}, {}", l.numel))
    }

    fn and(&mut self, a: &str, b: &str) -> String {
        match (a, b) {
            ("true", x) | (x, "true") => x.to_string(),
            _ => self.f.inst(format!("and i1 {a}, {b}")),
        }
    }

    /// A global constant string; returns a generic pointer to it.
    fn string(&mut self, s: &str) -> String {
        let name = format!("@.str{}", self.strings.len());
        self.strings.push((name.clone(), s.as_bytes().to_vec()));
        self.f.inst(format!("addrspacecast ptr addrspace(1) {name} to ptr"))
    }

    /// Stops the kernel with a device-side assertion failure when `ok` is false.
    fn assert_true(&mut self, ok: &str, msg: &str) {
        if ok == "true" {
            return;
        }
        let fail = self.f.block("assert_fail");
        let cont = self.f.block("assert_ok");
        self.f.emit(format!("br i1 {ok}, label {}, label {}", self.f.label(cont), self.f.label(fail)));
        self.f.switch_to(fail);
        self.declare("declare void @__assertfail(ptr, ptr, i32, ptr, i64)");
        let m = self.string(msg);
        let file = self.string(self.loc.file);
        let func = self.string(&self.k.name);
        self.f.emit(format!("call void @__assertfail(ptr {m}, ptr {file}, i32 {}, ptr {func}, i64 1)", self.loc.line));
        self.f.emit("call void asm sideeffect \"trap;\", \"\"()");
        self.f.emit("unreachable");
        self.f.switch_to(cont);
    }

    /// Lowers a block's ops; returns the values it yields.
    fn block(&mut self, b: &'k Block) -> Result<Vec<ValueId>, CodegenError> {
        self.ops(&b.ops)
    }

    /// Lowers `ops` in order, up to a yield; returns the values it yields.
    fn ops(&mut self, ops: &'k [Op]) -> Result<Vec<ValueId>, CodegenError> {
        for op in ops {
            self.loc = op.loc;
            if let OpKind::Yield { values } = &op.kind {
                return Ok(values.clone());
            }
            self.op(op)?;
        }
        Ok(vec![])
    }

    fn op(&mut self, op: &'k Op) -> Result<(), CodegenError> {
        use OpKind::*;
        let r0 = op.results.first().copied();
        // Elementwise ops produce (and read their operands in) the layout the plan chose for the result.
        let want = r0.and_then(|r| self.place_of(r));
        let out: Option<Val> = match &op.kind {
            ProgramId { axis } => Some(Val::Tile(vec![self.sreg("ctaid", *axis)])),
            NumPrograms { axis } => Some(Val::Tile(vec![self.sreg("nctaid", *axis)])),
            Arange { start, .. } => {
                let l = self.layout(r0.expect("result"))?;
                let regs = (0..l.regs())
                    .map(|r| {
                        let i = self.elem_index(l, r);
                        self.f.inst(format!("add i32 {i}, {start}"))
                    })
                    .collect();
                Some(Val::Tile(regs))
            }
            Constant { value, dtype } => Some(Val::Tile(vec![const_of(*dtype, const_scalar(*value))])),
            // A row vector keeps its rows through a reshape or `expand_dims`, and a broadcast of it over
            // columns is held as those rows (read by mma tiles for free, see `place`).
            Reshape { src, .. } | ExpandDims { src, .. } => Some(Val::Tile(self.regs_in(*src, want))),
            Broadcast { src, .. } => Some(Val::Tile(match want {
                Some(place::Place::RowsBcast(rl)) => self.regs_in(*src, Some(place::Place::Rows(rl))),
                _ => self.broadcast(*src, r0.expect("result"))?,
            })),
            Permute { .. } if self.kmajor.contains_key(&r0.expect("result")) => Some(Val::Tile(vec![])),
            Permute { src, perm } => Some(Val::Tile(self.permute(*src, perm, r0.expect("result"))?)),
            Cast { src, to } => {
                let from = self.dtype(*src);
                let xs = self.regs_in(*src, want);
                let wide = matches!(to, DType::F16 | DType::BF16 | DType::F32);
                let regs = if from == DType::F8E4M3 && wide && self.target.has_fp8_cvt() && xs.len() % 2 == 0 {
                    // e4m3 in pairs: one conversion instruction per two values.
                    let mut out = vec![];
                    for p in xs.chunks(2) {
                        let (a, b) = self.e4m3x2_to_f32(&p[0], &p[1]);
                        out.push(self.cast(DType::F32, *to, &a));
                        out.push(self.cast(DType::F32, *to, &b));
                    }
                    out
                } else {
                    xs.iter().map(|x| self.cast(from, *to, x)).collect()
                };
                Some(Val::Tile(regs))
            }
            Bitcast { src, to } => {
                let from = self.dtype(*src);
                let regs = self.regs_in(*src, want).iter().map(|x| self.bitcast(from, *to, x)).collect();
                Some(Val::Tile(regs))
            }
            Unary { op: u, src } => {
                let d = self.dtype(*src);
                let regs = self.regs_in(*src, want).iter().map(|x| self.unary(*u, d, x)).collect();
                Some(Val::Tile(regs))
            }
            Binary { op: b, lhs, rhs } => {
                let d = self.dtype(*lhs);
                let (x, y) = (self.regs_in(*lhs, want), self.regs_in(*rhs, want));
                let regs = x.iter().zip(&y).map(|(a, c)| self.binary(*b, d, a, c)).collect();
                Some(Val::Tile(regs))
            }
            Compare { op: c, lhs, rhs } => {
                let d = self.dtype(*lhs);
                let (x, y) = (self.regs_in(*lhs, want), self.regs_in(*rhs, want));
                let regs = x.iter().zip(&y).map(|(a, b)| self.compare(*c, d, a, b)).collect();
                Some(Val::Tile(regs))
            }
            Select { cond, on_true, on_false } => {
                let t = lty(&self.ty(*on_true).elem);
                let (c, a, b) = (self.regs_in(*cond, want), self.regs_in(*on_true, want), self.regs_in(*on_false, want));
                let regs = (0..c.len()).map(|i| self.f.inst(format!("select i1 {}, {t} {}, {t} {}", c[i], a[i], b[i]))).collect();
                Some(Val::Tile(regs))
            }
            Fma { a, b, c } => {
                let d = self.dtype(*a);
                let (x, y, z) = (self.regs_in(*a, want), self.regs_in(*b, want), self.regs_in(*c, want));
                let regs = (0..x.len()).map(|i| self.fma(d, &x[i], &y[i], &z[i])).collect();
                Some(Val::Tile(regs))
            }
            Reduce { op: ro, src, axis, .. } => Some(Val::Tile(self.reduce(*ro, *src, *axis, r0.expect("result"))?)),
            Dot { a, b, acc } => Some(Val::Tile(match want.and_then(|p| p.mma()) {
                Some(l) if self.wgmma_dots.contains(&r0.expect("result")) => self.dot_wgmma(r0.expect("result"), *a, *b, *acc, l)?,
                Some(l) => self.dot_tc(*a, *b, *acc, l)?,
                None => self.dot(*a, *b, *acc)?,
            })),
            AddPtr { ptr, offset } => Some(Val::Tile(self.add_ptr(*ptr, *offset))),
            PtrCast { ptr, .. } => Some(self.val(*ptr).clone()),
            Load { .. } if self.read_back(r0.expect("result")) => Some(Val::Tile(self.pipe_readback(r0.expect("result"))?)),
            Load { .. } if self.pipelined(r0.expect("result")) => Some(Val::Tile(vec![])),
            Load { ptr, mask, other, hints } => Some(Val::Tile(self.load(*ptr, *mask, *other, *hints)?)),
            Store { ptr, value, mask, hints } => {
                self.store(*ptr, *value, *mask, *hints)?;
                None
            }
            Atomic { op: a, ptr, value, mask } => {
                Some(Val::Tile(self.atomic(*a, *ptr, *value, *mask, r0.expect("result"))?))
            }
            AtomicCas { ptr, cmp, value, mask } => {
                Some(Val::Tile(self.atomic_cas(*ptr, *cmp, *value, *mask, r0.expect("result"))?))
            }
            MakeBlockPtr { base, shape, strides, offsets, .. } => {
                let base = self.regs(*base)[0].clone();
                let mut dims = vec![];
                for i in 0..shape.len() {
                    let [s, st, o] = [shape[i], strides[i], offsets[i]].map(|v| {
                        let d = self.dtype(v);
                        let x = self.regs(v)[0].clone();
                        self.cast(d, DType::I64, &x)
                    });
                    dims.push([s, st, o]);
                }
                Some(Val::Block { base, dims })
            }
            AdvanceBlockPtr { ptr, offsets } => {
                let Val::Block { base, mut dims } = self.val(*ptr).clone() else { panic!("verified IR: block pointer") };
                for (dim, v) in dims.iter_mut().zip(offsets) {
                    let d = self.dtype(*v);
                    let x = self.regs(*v)[0].clone();
                    let x = self.cast(d, DType::I64, &x);
                    dim[2] = self.f.inst(format!("add i64 {}, {x}", dim[2]));
                }
                Some(Val::Block { base, dims })
            }
            LoadBlock { .. } if self.pipelined(r0.expect("result")) => Some(Val::Tile(vec![])),
            LoadBlock { ptr, padding, hints } => Some(Val::Tile(self.load_block(*ptr, *padding, *hints, r0.expect("result"))?)),
            StoreBlock { ptr, value, hints } => {
                self.store_block(*ptr, *value, *hints)?;
                None
            }
            For { lo, hi, step, init, body } => {
                let vals = self.lower_for(*lo, *hi, *step, init, body)?;
                for (r, v) in op.results.iter().zip(vals) {
                    self.set(*r, v);
                }
                None
            }
            If { cond, then_block, else_block } => {
                let vals = self.lower_if(*cond, then_block, else_block, &op.results)?;
                for (r, v) in op.results.iter().zip(vals) {
                    self.set(*r, v);
                }
                None
            }
            Yield { .. } => unreachable!("handled by block()"),
            PrefetchL2 { ptr, mask } => {
                self.prefetch_l2(*ptr, *mask)?;
                None
            }
            // Programmatic dependent launch exists from sm_90 on; elsewhere kernels run one after another
            // and there is nothing to wait for or to release.
            GridDepWait | GridDepLaunch => {
                if self.target == crate::target::Target::Sm90a {
                    let inst = if matches!(op.kind, GridDepWait) { "wait" } else { "launch_dependents" };
                    self.f.emit(format!("call void asm sideeffect \"griddepcontrol.{inst};\", \"~{{memory}}\"()"));
                }
                None
            }
            // Every thread's earlier accesses reach the barrier, the fence orders them at device scope
            // before what follows (an owner thread's atomic: a release), and the second barrier keeps the
            // other threads' later loads behind the fence (after an owner's atomic: an acquire).
            Fence => {
                self.barrier();
                self.f.emit("call void asm sideeffect \"fence.acq_rel.gpu;\", \"~{memory}\"()");
                self.barrier();
                None
            }
            Print { prefix, args } => {
                self.print(prefix, args)?;
                None
            }
            Assert { cond, msg } => {
                let l = self.layout(*cond)?;
                let owner = self.owner(l);
                let mut ok = "true".to_string();
                for c in self.regs(*cond) {
                    ok = self.and(&ok, &c);
                }
                let not_owner = if owner == "true" { "false".to_string() } else { self.f.inst(format!("xor i1 {owner}, true")) };
                let ok = if not_owner == "false" { ok } else { self.f.inst(format!("or i1 {ok}, {not_owner}")) };
                self.assert_true(&ok, &format!("device_assert failed: {msg}"));
                None
            }
        };
        if let (Some(v), Some(r)) = (out, r0) {
            self.set(r, v);
            self.write_resident(r);
        }
        self.track_provenance(op);
        Ok(())
    }

    /// Records which pointer parameter each pointer result derives from (for bounds checks).
    fn track_provenance(&mut self, op: &Op) {
        use OpKind::*;
        let from = |s: &Self, v: &ValueId| s.prov[v.0 as usize];
        let p = match &op.kind {
            AddPtr { ptr, .. } | PtrCast { ptr, .. } | AdvanceBlockPtr { ptr, .. } => from(self, ptr),
            Broadcast { src, .. } | Reshape { src, .. } | ExpandDims { src, .. } | Permute { src, .. } => from(self, src),
            MakeBlockPtr { base, .. } => from(self, base),
            Select { on_true, on_false, .. } if from(self, on_true) == from(self, on_false) => from(self, on_true),
            For { init, body, .. } => {
                for (i, v) in init.iter().enumerate() {
                    let pv = from(self, v);
                    self.prov[body.args[i + 1].0 as usize] = pv;
                    self.prov[op.results[i].0 as usize] = pv;
                }
                return;
            }
            _ => None,
        };
        if let Some(&r) = op.results.first() {
            self.prov[r.0 as usize] = p;
        }
    }

    /// With bounds checks on: `true` where `width` elements at `addr` (derived from `ptr`) lie inside
    /// their buffer; where an `active` access does not, records the first such access in the error
    /// record. Without bounds checks (or without a known buffer): `"true"`.
    fn in_bounds(&mut self, ptr: ValueId, addr: &str, width: usize, size: usize, active: &str) -> String {
        let Some(lens) = &self.lens else { return "true".into() };
        let Some(param) = self.prov[ptr.0 as usize] else { return "true".into() };
        let Some(len) = lens[param].clone() else { return "true".into() };
        let a = self.f.inst(format!("ptrtoint {PTR} {addr} to i64"));
        let b = self.f.inst(format!("ptrtoint {PTR} %p{param} to i64"));
        let d = self.f.inst(format!("sub i64 {a}, {b}"));
        let e = self.f.inst(format!("sdiv i64 {d}, {size}"));
        let ge0 = self.f.inst(format!("icmp sge i64 {e}, 0"));
        let end = self.f.inst(format!("add i64 {e}, {width}"));
        let le = self.f.inst(format!("icmp sle i64 {end}, {len}"));
        let ok = self.f.inst(format!("and i1 {ge0}, {le}"));
        let not_ok = self.f.inst(format!("xor i1 {ok}, true"));
        let bad = self.and(active, &not_ok);
        let report = self.f.block("oob");
        let cont = self.f.block("inb");
        self.f.emit(format!("br i1 {bad}, label {}, label {}", self.f.label(report), self.f.label(cont)));
        self.f.switch_to(report);
        let pair = self.f.inst(format!("cmpxchg {PTR} %err, i32 0, i32 1 monotonic monotonic"));
        let won = self.f.inst(format!("extractvalue {{ i32, i1 }} {pair}, 1"));
        let write = self.f.block("oob_first");
        self.f.emit(format!("br i1 {won}, label {}, label {}", self.f.label(write), self.f.label(cont)));
        self.f.switch_to(write);
        let lo = self.f.inst(format!("trunc i64 {e} to i32"));
        let hi = self.f.inst(format!("lshr i64 {e}, 32"));
        let hi = self.f.inst(format!("trunc i64 {hi} to i32"));
        let (px, py) = (self.sreg("ctaid", 0), self.sreg("ctaid", 1));
        for field in abi::RecordField::ALL {
            let v = match field {
                abi::RecordField::Line => self.loc.line.to_string(),
                abi::RecordField::Column => self.loc.col.to_string(),
                abi::RecordField::Param => param.to_string(),
                abi::RecordField::IndexLo => lo.clone(),
                abi::RecordField::IndexHi => hi.clone(),
                abi::RecordField::ProgramX => px.clone(),
                abi::RecordField::ProgramY => py.clone(),
            };
            let slot = self.f.inst(format!("getelementptr i32, {PTR} %err, i32 {}", field.word()));
            self.f.emit(format!("store volatile i32 {v}, {PTR} {slot}"));
        }
        self.f.emit(format!("br label {}", self.f.label(cont)));
        self.f.switch_to(cont);
        ok
    }

    fn sreg(&mut self, name: &str, axis: u8) -> String {
        let a = ["x", "y", "z"][axis as usize];
        self.declare(format!("declare i32 @llvm.nvvm.read.ptx.sreg.{name}.{a}()"));
        self.f.inst(format!("call i32 @llvm.nvvm.read.ptx.sreg.{name}.{a}()"))
    }

    fn lower_for(
        &mut self,
        lo: ValueId,
        hi: ValueId,
        step: ValueId,
        init: &[ValueId],
        body: &'k Block,
    ) -> Result<Vec<Val>, CodegenError> {
        let it = dtype_lty(self.dtype(lo));
        let signed = self.dtype(lo).is_signed_int();
        let (lo_r, hi_r, step_r) = (self.regs(lo)[0].clone(), self.regs(hi)[0].clone(), self.regs(step)[0].clone());
        // Carried values enter the loop in the layout the plan chose for them (converted before the loop).
        let carried_tys: Vec<&Type> = init.iter().map(|v| self.ty(*v)).collect();
        let wants: Vec<Option<place::Place>> = body.args[1..].iter().map(|a| self.place_of(*a)).collect();
        let init_flat: Vec<Vec<(String, String)>> =
            init.iter().zip(&carried_tys).zip(&wants).map(|((v, t), w)| self.carried(*v, *w).flat(t)).collect();
        if step_r.parse::<i64>().map_or(true, |s| s <= 0) {
            let ok = self.f.inst(format!("icmp {} {it} {step_r}, 0", if signed { "sgt" } else { "ugt" }));
            self.assert_true(&ok, "a loop step must be positive");
        }
        let pipe = self.pipes.get(&(body as *const Block as usize)).cloned();
        if let Some(p) = &pipe {
            if p.has_tma() {
                self.tma_init(p);
            }
            // Prologue: the first `distance` iterations' copies in flight before the loop.
            for s in 0..p.distance {
                let ivs = match step_r.parse::<i64>() {
                    Ok(c) => self.f.inst(format!("add {it} {lo_r}, {}", s as i64 * c)),
                    Err(_) => {
                        let m = self.f.inst(format!("mul {it} {step_r}, {s}"));
                        self.f.inst(format!("add {it} {lo_r}, {m}"))
                    }
                };
                let guard = self.iteration_exists(it, signed, &lo_r, &step_r, s, &hi_r);
                self.pipe_issue(body, &ivs, &guard, &s.to_string(), tma::TmaFrom::Init(init, s))?;
            }
        }
        let pre = self.f.current();
        let header = self.f.block("loop");
        let body_b = self.f.block("body");
        let exit = self.f.block("done");
        self.f.emit(format!("br label {}", self.f.label(header)));

        // Header: phis for the induction variable and every carried register (incoming edges added below).
        self.f.switch_to(header);
        let iv = self.f.tmp();
        let phi_names: Vec<Vec<String>> = init_flat.iter().map(|f| f.iter().map(|_| self.f.tmp()).collect()).collect();
        let cond = self.f.inst(format!("icmp {} {it} {iv}, {hi_r}", if signed { "slt" } else { "ult" }));
        self.f.emit(format!("br i1 {cond}, label {}, label {}", self.f.label(body_b), self.f.label(exit)));

        self.f.switch_to(body_b);
        self.set(body.args[0], Val::Tile(vec![iv.clone()]));
        let stage = self.f.tmp();
        let phase = self.f.tmp();
        if let Some(p) = &pipe {
            self.active = Some(pipeline::ActivePipe {
                pipe: p.clone(),
                body,
                iv_reg: iv.clone(),
                step: step_r.clone(),
                hi: hi_r.clone(),
                it,
                signed,
                stage: stage.clone(),
                phase: phase.clone(),
                synced: false,
                prefetched: false,
                at: Default::default(),
            });
        }
        for (i, a) in body.args[1..].iter().enumerate() {
            self.set(*a, Val::unflat(carried_tys[i], phi_names[i].clone()));
        }
        // Lagged fp8 dots carry their running sum, one register per accumulator register.
        let fp8_lagged: Vec<(usize, ValueId)> =
            place::yields(body).iter().copied().enumerate().filter(|(_, v)| self.lagged.contains(v) && self.is_fp8_dot(*v)).collect();
        let running: Vec<(usize, ValueId, Vec<String>)> =
            fp8_lagged.into_iter().map(|(j, v)| (j, v, phi_names[j].iter().map(|_| self.f.tmp()).collect())).collect();
        for (_, v, names) in &running {
            self.pending.insert(*v, names.clone());
        }
        let next_ids = self.block(body)?;
        self.pipe_prefetch()?;
        let next_vals: Vec<Val> = next_ids.iter().zip(&wants).map(|(v, w)| self.carried(*v, *w)).collect();
        let next_iv = self.f.inst(format!("add {it} {iv}, {step_r}"));
        let (next_stage, next_phase) = match &pipe {
            Some(p) => {
                self.active = None;
                let s1 = self.f.inst(format!("add i32 {stage}, 1"));
                let wrap = self.f.inst(format!("icmp eq i32 {s1}, {}", p.stages));
                let flipped = self.f.inst(format!("xor i32 {phase}, 1"));
                let next_phase = self.f.inst(format!("select i1 {wrap}, i32 {flipped}, i32 {phase}"));
                (self.f.inst(format!("select i1 {wrap}, i32 0, i32 {s1}")), next_phase)
            }
            None => (String::new(), String::new()),
        };
        let latch = self.f.current();
        self.f.emit(format!("br label {}", self.f.label(header)));

        let (pre_l, latch_l) = (self.f.label(pre), self.f.label(latch));
        self.f.prepend(header, format!("{iv} = phi {it} [ {lo_r}, {pre_l} ], [ {next_iv}, {latch_l} ]"));
        if pipe.is_some() {
            self.f.prepend(header, format!("{stage} = phi i32 [ 0, {pre_l} ], [ {next_stage}, {latch_l} ]"));
            self.f.prepend(header, format!("{phase} = phi i32 [ 0, {pre_l} ], [ {next_phase}, {latch_l} ]"));
        }
        for (_, v, names) in &running {
            let new = self.pending.remove(v).expect("the dot left its running sum");
            for (name, x) in names.iter().zip(new) {
                self.f.prepend(header, format!("{name} = phi float [ 0.0, {pre_l} ], [ {x}, {latch_l} ]"));
            }
        }
        for (i, nv) in next_vals.iter().enumerate() {
            let next_flat = nv.flat(carried_tys[i]);
            for (j, (t, init_r)) in init_flat[i].iter().enumerate() {
                self.f.prepend(
                    header,
                    format!("{} = phi {t} [ {init_r}, {pre_l} ], [ {}, {latch_l} ]", phi_names[i][j], next_flat[j].1),
                );
            }
        }
        self.f.switch_to(exit);
        let mut results = phi_names;
        for (j, v) in next_ids.iter().enumerate() {
            if !self.lagged.contains(v) {
                continue;
            }
            // A lagged dot's last group is still running (see `wgmma`): wait for it; an fp8 one's is
            // the running sum, still to be added.
            match running.iter().find(|r| r.0 == j) {
                Some((_, _, names)) => {
                    let sum = self.wait_wgmma(names.clone(), 0);
                    results[j] = self.add_sums(&results[j], &sum);
                }
                None => results[j] = self.wait_wgmma(std::mem::take(&mut results[j]), 0),
            }
        }
        if let Some(p) = &pipe {
            // No copy may land in a stage buffer after the loop (a later pipeline reuses them).
            self.pipe_wait(0);
            self.barrier();
            if p.has_tma() {
                self.tma_release(p);
            }
        }
        Ok(carried_tys.iter().zip(results).map(|(t, names)| Val::unflat(t, names)).collect())
    }

    fn lower_if(
        &mut self,
        cond: ValueId,
        then_block: &'k Block,
        else_block: &'k Block,
        results: &[ValueId],
    ) -> Result<Vec<Val>, CodegenError> {
        let c = self.regs(cond)[0].clone();
        let tb = self.f.block("then");
        let eb = self.f.block("else");
        let merge = self.f.block("endif");
        self.f.emit(format!("br i1 {c}, label {}, label {}", self.f.label(tb), self.f.label(eb)));
        self.f.switch_to(tb);
        // Each result in its planned place (both branches' values already live there, or convert).
        let want: Vec<_> = results.iter().map(|r| self.place_of(*r)).collect();
        let tv = self.block(then_block)?;
        let tv: Vec<Val> = tv.iter().zip(&want).map(|(v, w)| self.carried(*v, *w)).collect();
        let t_end = self.f.current();
        self.f.emit(format!("br label {}", self.f.label(merge)));
        self.f.switch_to(eb);
        let ev = self.block(else_block)?;
        let ev: Vec<Val> = ev.iter().zip(&want).map(|(v, w)| self.carried(*v, *w)).collect();
        let e_end = self.f.current();
        self.f.emit(format!("br label {}", self.f.label(merge)));
        self.f.switch_to(merge);
        let (tl, el) = (self.f.label(t_end), self.f.label(e_end));
        let mut out = vec![];
        for (i, r) in results.iter().enumerate() {
            let ty = self.ty(*r);
            let (a, b) = (tv[i].flat(ty), ev[i].flat(ty));
            let names: Vec<String> = a
                .iter()
                .zip(&b)
                .map(|((t, x), (_, y))| self.f.inst(format!("phi {t} [ {x}, {tl} ], [ {y}, {el} ]")))
                .collect();
            out.push(Val::unflat(ty, names));
        }
        Ok(out)
    }

    fn print(&mut self, prefix: &str, args: &[ValueId]) -> Result<(), CodegenError> {
        // Each owner thread prints its elements: `pid (x, y, z) prefix [i] value`.
        self.declare("declare i32 @vprintf(ptr, ptr)");
        let pids: Vec<String> = (0..3).map(|a| self.sreg("ctaid", a)).collect();
        for a in args {
            let d = self.dtype(*a);
            let l = self.layout(*a)?;
            let owner = self.owner(l);
            // Floats print as %g of a double, integers and bools as %lld of an i64.
            let (fmt_spec, vt) = if d.is_float() { ("%g", "double") } else { ("%lld", "i64") };
            let fmt = self.string(&format!("pid (%d, %d, %d) {prefix} [%d] {fmt_spec}: {d}\n"));
            for (r, x) in self.regs(*a).into_iter().enumerate() {
                let idx = self.elem_index(l, r);
                let v = if d.is_float() {
                    let f = self.cast(d, DType::F32, &x);
                    self.f.inst(format!("fpext float {f} to double"))
                } else {
                    self.cast(d, DType::I64, &x)
                };
                // In the entry block: an alloca in a loop would grow the stack each iteration.
                let buf = self.f.tmp();
                self.f.prepend(0, format!("{buf} = alloca {{ i32, i32, i32, i32, {vt} }}, align 8"));
                let vals = [(0, "i32", pids[0].clone()), (1, "i32", pids[1].clone()), (2, "i32", pids[2].clone()), (3, "i32", idx)];
                for (i, t, v) in vals {
                    let p = self.f.inst(format!("getelementptr {{ i32, i32, i32, i32, {vt} }}, ptr {buf}, i32 0, i32 {i}"));
                    self.f.emit(format!("store {t} {v}, ptr {p}"));
                }
                let p = self.f.inst(format!("getelementptr {{ i32, i32, i32, i32, {vt} }}, ptr {buf}, i32 0, i32 4"));
                self.f.emit(format!("store {vt} {v}, ptr {p}"));
                let go = self.f.block("print");
                let after = self.f.block("printed");
                self.f.emit(format!("br i1 {owner}, label {}, label {}", self.f.label(go), self.f.label(after)));
                self.f.switch_to(go);
                self.f.inst(format!("call i32 @vprintf(ptr {fmt}, ptr {buf})"));
                self.f.emit(format!("br label {}", self.f.label(after)));
                self.f.switch_to(after);
            }
        }
        Ok(())
    }
}
