//! The tile IR: typed, shaped SSA with structured control flow.
//!
//! A [`Kernel`] is produced by tracing a `#[kernel]` function once its constexprs are bound, so every shape
//! is static. Values live in one arena (`Kernel::types`, indexed by [`ValueId`]); ops live in nested
//! [`Block`]s (the kernel body, loop bodies and `if` branches). Every op carries the user's source
//! location. Where things are:
//! - an op is *defined* here ([`OpKind`]) with its typing rule in [`infer`],
//! - *checked* by [`verify`],
//! - *interpreted* in `crate::interp::exec`,
//! - *lowered* to LLVM in the `codegen-ptx` crate.

pub mod infer;
pub mod print;
pub mod verify;

use crate::types::{DType, Type};
use std::fmt;

/// An SSA value: an index into [`Kernel::types`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// A place in the user's kernel source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: &'static str,
    pub line: u32,
    pub col: u32,
}

impl Loc {
    pub const UNKNOWN: Loc = Loc { file: "<unknown>", line: 0, col: 0 };

    /// The location of the caller of a `#[track_caller]` function: the user's kernel code.
    #[track_caller]
    pub fn caller() -> Loc {
        let l = std::panic::Location::caller();
        Loc { file: l.file(), line: l.line(), col: l.column() }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A specialized kernel: the unit every backend consumes.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub name: String,
    /// The constexpr bindings this kernel was specialized with, as `(name, value)` text.
    pub constexprs: Vec<(String, String)>,
    pub params: Vec<Param>,
    /// The type of every value, indexed by `ValueId`.
    pub types: Vec<Type>,
    pub body: Block,
}

impl Kernel {
    pub fn ty(&self, v: ValueId) -> &Type {
        &self.types[v.0 as usize]
    }

    /// The name with its constexprs, as errors show it: `add<BLOCK=64>`.
    pub fn display_name(&self) -> String {
        display_name(&self.name, &self.constexprs)
    }
}

/// `name<A=1, B=2>` (or just `name` without constexprs).
pub fn display_name(name: &str, constexprs: &[(String, String)]) -> String {
    if constexprs.is_empty() {
        name.to_string()
    } else {
        let cx: Vec<String> = constexprs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        format!("{name}<{}>", cx.join(", "))
    }
}

/// A kernel parameter: a pointer or a scalar passed at launch.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub value: ValueId,
}

/// A sequence of ops with block arguments (a loop body's induction variable and carried values).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Block {
    pub args: Vec<ValueId>,
    pub ops: Vec<Op>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub kind: OpKind,
    pub results: Vec<ValueId>,
    pub loc: Loc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// Arithmetic negation (wrapping for integers).
    Neg,
    /// Bitwise not for integers, logical not for bool.
    Not,
    Abs,
    Exp,
    Exp2,
    Log,
    Log2,
    Sqrt,
    Rsqrt,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// Float: IEEE division. Integer: truncating division as the GPU's `div` (see `interp` for /0).
    Div,
    /// Integer: remainder with the dividend's sign (`rem`). Float: `fmod`.
    Rem,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    /// Elementwise minimum; NaN if either operand is NaN; -0 < +0.
    Min,
    /// Elementwise maximum; NaN if either operand is NaN; -0 < +0.
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    /// Index (i32) of the first maximum; NaN counts as the maximum.
    ArgMax,
    /// Index (i32) of the first minimum; NaN counts as the minimum.
    ArgMin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Add,
    Max,
    Min,
    Xchg,
}

/// Cache behaviour of a load (PTX `ld` qualifiers); hints never change results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CacheHint {
    #[default]
    Normal,
    /// Cache at all levels, likely to be reused (`.ca`).
    CacheAll,
    /// Cache in L2 only (`.cg`).
    CacheGlobal,
    /// Streaming, likely used once (`.cs`).
    Streaming,
}

/// L2 eviction priority of an access.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Eviction {
    #[default]
    Normal,
    First,
    Last,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemHints {
    pub cache: CacheHint,
    pub eviction: Eviction,
}

/// What a block load reads where the block leaves the tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Padding {
    #[default]
    Zero,
    Nan,
}

/// A constant scalar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Const {
    F(f64),
    I(i64),
    B(bool),
}

/// What an op does besides computing its result ([`OpKind::effect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A function of its operands alone: may be removed when unused, recomputed or moved freely.
    Pure,
    /// Reads global memory: its result depends on when it runs relative to writes.
    ReadsMemory,
    /// Writes memory, synchronizes or is observable (prints, asserts, prefetches, grid-dependency
    /// control): never removed, duplicated or reordered.
    Writes,
    /// Control flow (loops, branches, their yields).
    Control,
}

/// Every operation of the language. Operands are `ValueId`s; result types follow [`infer::infer`].
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    // ---- sources
    /// This program's index along `axis` (0..3) of the launch grid; `i32`.
    ProgramId { axis: u8 },
    /// The grid's size along `axis`; `i32`.
    NumPrograms { axis: u8 },
    /// `[start, start+1, ..., end-1]` as `i32[end-start]`; `end - start` is a power of two.
    Arange { start: i32, end: i32 },
    /// A scalar constant of type `dtype`.
    Constant { value: Const, dtype: DType },
    // ---- shape
    /// Broadcasts `src` to `shape` (size-1 dims stretch; a scalar splats; leading dims may be added).
    Broadcast { src: ValueId, shape: Vec<usize> },
    /// Same elements in row-major order, new shape.
    Reshape { src: ValueId, shape: Vec<usize> },
    /// Inserts a size-1 dimension at `axis`.
    ExpandDims { src: ValueId, axis: usize },
    /// Result dim `i` is `src` dim `perm[i]`.
    Permute { src: ValueId, perm: Vec<usize> },
    // ---- elementwise
    /// Value conversion, see `scalar::cast`.
    Cast { src: ValueId, to: DType },
    /// Bit reinterpretation between types of one width.
    Bitcast { src: ValueId, to: DType },
    Unary { op: UnaryOp, src: ValueId },
    /// Both operands of one type and shape.
    Binary { op: BinaryOp, lhs: ValueId, rhs: ValueId },
    /// Both operands of one type and shape; result `bool`.
    Compare { op: CmpOp, lhs: ValueId, rhs: ValueId },
    Select { cond: ValueId, on_true: ValueId, on_false: ValueId },
    /// `a * b + c` with one rounding.
    Fma { a: ValueId, b: ValueId, c: ValueId },
    // ---- reductions and matrix product
    Reduce { op: ReduceOp, src: ValueId, axis: usize, keep_dims: bool },
    /// `acc + a · b` for `a: [M, K]`, `b: [K, N]`, `acc: f32[M, N]`.
    Dot { a: ValueId, b: ValueId, acc: ValueId },
    // ---- memory
    /// `ptr + offset` elements (not bytes).
    AddPtr { ptr: ValueId, offset: ValueId },
    /// Reinterprets a pointer tile as pointing to another element type.
    PtrCast { ptr: ValueId, to: DType },
    Load { ptr: ValueId, mask: Option<ValueId>, other: Option<ValueId>, hints: MemHints },
    Store { ptr: ValueId, value: ValueId, mask: Option<ValueId>, hints: MemHints },
    /// Relaxed, device-scope read-modify-write; returns the old values.
    Atomic { op: AtomicOp, ptr: ValueId, value: ValueId, mask: Option<ValueId> },
    /// Relaxed, device-scope compare-and-swap; returns the old values.
    AtomicCas { ptr: ValueId, cmp: ValueId, value: ValueId, mask: Option<ValueId> },
    MakeBlockPtr {
        base: ValueId,
        shape: Vec<ValueId>,
        strides: Vec<ValueId>,
        offsets: Vec<ValueId>,
        block_shape: Vec<usize>,
        order: Vec<usize>,
    },
    AdvanceBlockPtr { ptr: ValueId, offsets: Vec<ValueId> },
    /// Loads the block; elements outside the tensor read as `padding`.
    LoadBlock { ptr: ValueId, padding: Padding, hints: MemHints },
    /// Stores the block; elements outside the tensor are skipped.
    StoreBlock { ptr: ValueId, value: ValueId, hints: MemHints },
    /// Asks for the 128-byte lines holding the elements of `ptr` where `mask` holds to be brought into L2;
    /// reads no values (a hint: no effect on results).
    PrefetchL2 { ptr: ValueId, mask: ValueId },
    // ---- grid dependency control (programmatic dependent launch)
    /// Waits until the kernels launched before this one on the stream have completed and their writes are
    /// visible. At most once, at the top level of the kernel, after no store or atomic.
    GridDepWait,
    /// Lets the next kernel on the stream start its programs (up to its `GridDepWait`) before this one ends.
    GridDepLaunch,
    // ---- memory ordering between programs
    /// A device-scope acquire-release fence for the whole program: every access any of its threads made
    /// before it is ordered before every access any of them makes after it, as seen by the other
    /// programs that synchronize with this one through an atomic (a fence then an atomic releases; an
    /// atomic then a fence acquires).
    Fence,
    // ---- control flow
    /// `for iv in (lo..hi).step_by(step)` carrying `init` through `body`; `body.args` = `[iv, carried..]`;
    /// the body ends with `Yield` of the next carried values; results are the final carried values.
    For { lo: ValueId, hi: ValueId, step: ValueId, init: Vec<ValueId>, body: Block },
    /// Both blocks end with `Yield` of values of the same types: the results.
    If { cond: ValueId, then_block: Block, else_block: Block },
    Yield { values: Vec<ValueId> },
    // ---- debugging
    Print { prefix: String, args: Vec<ValueId> },
    Assert { cond: ValueId, msg: String },
}

impl OpKind {
    /// The values this op reads (not counting values used inside its nested blocks).
    pub fn operands(&self) -> Vec<ValueId> {
        use OpKind::*;
        match self {
            ProgramId { .. } | NumPrograms { .. } | Arange { .. } | Constant { .. } => vec![],
            Broadcast { src, .. }
            | Reshape { src, .. }
            | ExpandDims { src, .. }
            | Permute { src, .. }
            | Cast { src, .. }
            | Bitcast { src, .. }
            | Unary { src, .. }
            | Reduce { src, .. } => vec![*src],
            Binary { lhs, rhs, .. } | Compare { lhs, rhs, .. } => vec![*lhs, *rhs],
            Select { cond, on_true, on_false } => vec![*cond, *on_true, *on_false],
            Fma { a, b, c } => vec![*a, *b, *c],
            Dot { a, b, acc } => vec![*a, *b, *acc],
            AddPtr { ptr, offset } => vec![*ptr, *offset],
            PtrCast { ptr, .. } => vec![*ptr],
            Load { ptr, mask, other, .. } => [Some(*ptr), *mask, *other].into_iter().flatten().collect(),
            Store { ptr, value, mask, .. } => [Some(*ptr), Some(*value), *mask].into_iter().flatten().collect(),
            Atomic { ptr, value, mask, .. } => [Some(*ptr), Some(*value), *mask].into_iter().flatten().collect(),
            AtomicCas { ptr, cmp, value, mask } => {
                [Some(*ptr), Some(*cmp), Some(*value), *mask].into_iter().flatten().collect()
            }
            MakeBlockPtr { base, shape, strides, offsets, .. } => {
                let mut v = vec![*base];
                v.extend(shape.iter().chain(strides).chain(offsets));
                v
            }
            AdvanceBlockPtr { ptr, offsets } => {
                let mut v = vec![*ptr];
                v.extend(offsets);
                v
            }
            LoadBlock { ptr, .. } => vec![*ptr],
            StoreBlock { ptr, value, .. } => vec![*ptr, *value],
            PrefetchL2 { ptr, mask } => vec![*ptr, *mask],
            GridDepWait | GridDepLaunch | Fence => vec![],
            For { lo, hi, step, init, .. } => {
                let mut v = vec![*lo, *hi, *step];
                v.extend(init);
                v
            }
            If { cond, .. } => vec![*cond],
            Yield { values } => values.clone(),
            Print { args, .. } => args.clone(),
            Assert { cond, .. } => vec![*cond],
        }
    }

    /// The blocks nested in this op.
    pub fn blocks(&self) -> Vec<&Block> {
        match self {
            OpKind::For { body, .. } => vec![body],
            OpKind::If { then_block, else_block, .. } => vec![then_block, else_block],
            _ => vec![],
        }
    }

    /// What this op does besides computing its result: the one place every pass that removes,
    /// duplicates or moves ops (the pipeliner's prefetch slice, rematerialization) asks. The match is
    /// exhaustive on purpose: a new op gets no default, so it cannot be taken for pure by omission.
    pub fn effect(&self) -> Effect {
        use OpKind::*;
        match self {
            ProgramId { .. } | NumPrograms { .. } | Arange { .. } | Constant { .. } => Effect::Pure,
            Broadcast { .. } | Reshape { .. } | ExpandDims { .. } | Permute { .. } => Effect::Pure,
            Cast { .. } | Bitcast { .. } | Unary { .. } | Binary { .. } | Compare { .. } | Select { .. } | Fma { .. } => Effect::Pure,
            Reduce { .. } | Dot { .. } => Effect::Pure,
            AddPtr { .. } | PtrCast { .. } | MakeBlockPtr { .. } | AdvanceBlockPtr { .. } => Effect::Pure,
            Load { .. } | LoadBlock { .. } => Effect::ReadsMemory,
            Store { .. } | Atomic { .. } | AtomicCas { .. } | StoreBlock { .. } => Effect::Writes,
            // A prefetch reads no value but asks the memory system for lines; the grid-dependency ops
            // synchronize with other kernels, a fence with other programs; printing and asserting are observable.
            PrefetchL2 { .. } | GridDepWait | GridDepLaunch | Fence | Print { .. } | Assert { .. } => Effect::Writes,
            For { .. } | If { .. } | Yield { .. } => Effect::Control,
        }
    }

    /// True for ops computed element by element from operands of the result's shape (casts, math,
    /// comparisons, selects): any layout of the operands gives the result in that layout.
    pub fn is_elementwise(&self) -> bool {
        use OpKind::*;
        matches!(self, Cast { .. } | Bitcast { .. } | Unary { .. } | Binary { .. } | Compare { .. } | Select { .. } | Fma { .. })
    }

    /// True for ops that write memory, have another effect, or steer control flow, so that they are
    /// never removed or duplicated.
    pub fn has_effect(&self) -> bool {
        matches!(self.effect(), Effect::Writes | Effect::Control)
    }
}
