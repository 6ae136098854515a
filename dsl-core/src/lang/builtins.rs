//! The builtins of the kernel language, one documented function each (as `triton.language`).

use super::ops::unary;
use super::*;
use crate::ir::{AtomicOp, BinaryOp, MemHints, Padding, ReduceOp, UnaryOp};
use crate::types::{shape_str, Float};

// ---------------------------------------------------------------- program ids and tile creation

/// This program's index along grid `axis` (0, 1 or 2), as an `i32` scalar. Triton: `tl.program_id`.
#[track_caller]
pub fn program_id(axis: u32) -> Tile<i32> {
    emit_tile(OpKind::ProgramId { axis: axis.min(255) as u8 }, Loc::caller(), vec![])
}

/// The number of programs along grid `axis`, as an `i32` scalar. Triton: `tl.num_programs`.
#[track_caller]
pub fn num_programs(axis: u32) -> Tile<i32> {
    emit_tile(OpKind::NumPrograms { axis: axis.min(255) as u8 }, Loc::caller(), vec![])
}

/// `[start, start + 1, ..., end - 1]` as an `i32` tile. `end - start` must be a power of two, and both
/// bounds constexprs. Triton: `tl.arange`.
#[track_caller]
pub fn arange(start: impl Constexpr, end: impl Constexpr) -> Tile<i32> {
    let loc = Loc::caller();
    let (s, e) = (start.to_i64(), end.to_i64());
    let (Ok(s32), Ok(e32)) = (i32::try_from(s), i32::try_from(e)) else {
        builder::error(loc, format!("arange bounds must fit in i32, got {s}..{e}"));
        return emit_tile(OpKind::Arange { start: 0, end: 1 }, loc, vec![1]);
    };
    let n = (e - s).max(1) as usize;
    emit_tile(OpKind::Arange { start: s32, end: e32 }, loc, vec![n])
}

/// A tile of `shape` filled with `value` (a literal or a scalar tile). Triton: `tl.full`.
#[track_caller]
pub fn full<T: Elem>(shape: impl Shape, value: impl IntoTile<T>) -> Tile<T> {
    let loc = Loc::caller();
    let shape = shape_dims(&shape, loc);
    let v = value.into_value(loc);
    let vs = builder::ty(v).shape;
    if !vs.is_empty() {
        builder::error(loc, format!("full takes a scalar value, got a tile of shape {}", shape_str(&vs)));
    }
    Tile::from_id(builder::broadcast_to(v, &shape, loc))
}

/// A tile of `shape` filled with zeros. Triton: `tl.zeros`.
#[track_caller]
pub fn zeros<T: Numeric>(shape: impl Shape) -> Tile<T> {
    full(shape, 0i32)
}

/// A Rust range for loops unrolled while the kernel is traced: in `for i in static_range(0, 4)`, `i` is a
/// plain `i32` constexpr. Triton: `tl.static_range`.
pub fn static_range(start: i32, end: i32) -> std::ops::Range<i32> {
    start..end
}

// ---------------------------------------------------------------- elementwise

/// Picks `a` where `cond` is true, else `b`; the three broadcast together. Triton: `tl.where`.
#[track_caller]
pub fn where_<T: Elem>(cond: impl IntoMask, a: impl IntoTile<T>, b: impl IntoTile<T>) -> Tile<T> {
    let loc = Loc::caller();
    let (c, a, b) = (cond.mask_value(loc), a.into_value(loc), b.into_value(loc));
    let (a, b) = builder::broadcast_pair(a, b, "where", loc);
    let (c, a) = builder::broadcast_pair(c, a, "where", loc);
    let (c, b) = builder::broadcast_pair(c, b, "where", loc);
    let shape = builder::ty(a).shape;
    emit_tile(OpKind::Select { cond: c, on_true: a, on_false: b }, loc, shape)
}

/// Elementwise minimum in the promoted type. NaN if either operand is NaN; `-0.0 < +0.0`.
/// Triton: `tl.minimum(propagate_nan=ALL)`.
#[track_caller]
pub fn minimum<T: Elem, R: Operand>(a: Tile<T>, b: R) -> Tile<<T as Promote<R::Kind>>::Out>
where
    T: Promote<R::Kind>,
{
    min_max(BinaryOp::Min, a, b)
}

/// Elementwise maximum in the promoted type. NaN if either operand is NaN; `-0.0 < +0.0`.
/// Triton: `tl.maximum(propagate_nan=ALL)`.
#[track_caller]
pub fn maximum<T: Elem, R: Operand>(a: Tile<T>, b: R) -> Tile<<T as Promote<R::Kind>>::Out>
where
    T: Promote<R::Kind>,
{
    min_max(BinaryOp::Max, a, b)
}

#[track_caller]
fn min_max<T: Elem, R: Operand>(op: BinaryOp, a: Tile<T>, b: R) -> Tile<<T as Promote<R::Kind>>::Out>
where
    T: Promote<R::Kind>,
{
    let loc = Loc::caller();
    let d = <<T as Promote<R::Kind>>::Out as Elem>::DTYPE;
    let (x, y) = builder::broadcast_pair(builder::cast_to(a.id, d, loc), b.value_as(d, loc), "minimum/maximum", loc);
    let shape = builder::ty(x).shape;
    emit_tile(OpKind::Binary { op, lhs: x, rhs: y }, loc, shape)
}

/// Ceiling division `(a + b - 1) / b` for positive integers: on tiles it emits IR; on two constexprs
/// (`cdiv(N, BLOCK)` with Rust integers) it is computed while tracing. Triton: `tl.cdiv`.
#[track_caller]
pub fn cdiv<A: CDiv<B>, B>(a: A, b: B) -> A::Out {
    a.cdiv(b)
}

/// The operand pairs [`cdiv`] takes.
#[diagnostic::on_unimplemented(message = "cdiv takes two integers, got `{Self}` and `{B}`")]
pub trait CDiv<B> {
    type Out;
    #[doc(hidden)]
    fn cdiv(self, b: B) -> Self::Out;
}
macro_rules! cdiv_const {
    ($($t:ty),*) => {$(
        impl CDiv<$t> for $t {
            type Out = $t;
            fn cdiv(self, b: $t) -> $t { (self + b - 1) / b }
        }
    )*};
}
cdiv_const!(i32, i64, u32, usize);
impl<T: crate::types::Int, R: Operand> CDiv<R> for Tile<T>
where
    T: Promote<R::Kind, Out = T>,
{
    type Out = Tile<T>;
    #[track_caller]
    fn cdiv(self, b: R) -> Tile<T> {
        let loc = Loc::caller();
        let b = b.value_as(T::DTYPE, loc);
        let one = builder::constant(crate::ir::Const::I(1), T::DTYPE, loc);
        let sum = super::ops::binary_at(BinaryOp::Add, self.id, b, loc);
        let num = super::ops::binary_at(BinaryOp::Sub, sum, one, loc);
        Tile::from_id(super::ops::binary_at(BinaryOp::Div, num, b, loc))
    }
}

/// `a * b + c` with a single rounding. Triton: `tl.fma`.
#[track_caller]
pub fn fma<T: Float>(a: Tile<T>, b: impl IntoTile<T>, c: impl IntoTile<T>) -> Tile<T> {
    let loc = Loc::caller();
    let (x, y, z) = (a.id, b.into_value(loc), c.into_value(loc));
    let (x, y) = builder::broadcast_pair(x, y, "fma", loc);
    let (x, z) = builder::broadcast_pair(x, z, "fma", loc);
    let (y, z) = builder::broadcast_pair(y, z, "fma", loc);
    let shape = builder::ty(x).shape;
    emit_tile(OpKind::Fma { a: x, b: y, c: z }, loc, shape)
}

macro_rules! float_fn {
    ($($name:ident, $op:ident, $doc:literal);*) => {$(
        #[doc = $doc]
        ///
        /// Takes f32, f16 or bf16 tiles. The interpreter computes the exact function and rounds once;
        /// GPU backends may use hardware approximations (their error bounds are documented there).
        #[track_caller]
        pub fn $name<T: Float>(x: Tile<T>) -> Tile<T> {
            unary(UnaryOp::$op, x)
        }
    )*};
}
float_fn!(
    exp, Exp, "`e^x`, elementwise. Triton: `tl.exp`.";
    exp2, Exp2, "`2^x`, elementwise. Triton: `tl.exp2`.";
    log, Log, "Natural logarithm, elementwise. Triton: `tl.log`.";
    log2, Log2, "Base-2 logarithm, elementwise. Triton: `tl.log2`.";
    sqrt, Sqrt, "Square root (correctly rounded), elementwise. Triton: `tl.sqrt_rn`.";
    rsqrt, Rsqrt, "`1 / sqrt(x)`, elementwise. Triton: `tl.rsqrt`.";
    sin, Sin, "Sine, elementwise. Triton: `tl.sin`.";
    cos, Cos, "Cosine, elementwise. Triton: `tl.cos`.";
    tanh, Tanh, "Hyperbolic tangent, elementwise.";
    sigmoid, Sigmoid, "`1 / (1 + e^-x)`, elementwise. Triton: `tl.sigmoid`.";
    floor, Floor, "Largest integer value not above `x`, elementwise. Triton: `tl.floor`.";
    ceil, Ceil, "Smallest integer value not below `x`, elementwise. Triton: `tl.ceil`."
);

/// Absolute value, elementwise (integers wrap: `abs(i32::MIN) == i32::MIN`). Triton: `tl.abs`.
#[track_caller]
pub fn abs<T: Elem>(x: Tile<T>) -> Tile<T>
where
    T: Promote<T, Out = T>,
{
    unary(UnaryOp::Abs, x)
}

// ---------------------------------------------------------------- reductions and dot

/// Reduces `x` along `axis` with `op`; with `keep_dims` the axis stays with size 1. Sums of floats are
/// computed exactly and rounded once in the interpreter (GPU backends sum in a tree, within a documented
/// tolerance); integer sums wrap; `Max`/`Min` propagate NaN; `ArgMax`/`ArgMin` give the first index of the
/// extreme value as `i32` (NaN counts as extreme). Triton: `tl.reduce`.
#[track_caller]
pub fn reduce<T: Elem, O: Elem>(x: Tile<T>, op: ReduceOp, axis: usize, keep_dims: bool) -> Tile<O> {
    let loc = Loc::caller();
    let mut s = x.shape();
    if axis < s.len() {
        if keep_dims {
            s[axis] = 1;
        } else {
            s.remove(axis);
        }
    }
    let out = O::DTYPE;
    let want = match op {
        ReduceOp::ArgMax | ReduceOp::ArgMin => DType::I32,
        _ => T::DTYPE,
    };
    if out != want {
        builder::error(loc, format!("reduce {op:?} of a {} tile gives {want}, not {out}", T::DTYPE));
    }
    emit_tile(OpKind::Reduce { op, src: x.id, axis, keep_dims }, loc, s)
}

/// Sum along `axis` (the axis is removed). Triton: `tl.sum`.
#[track_caller]
pub fn sum<T: Elem>(x: Tile<T>, axis: usize) -> Tile<T> {
    reduce(x, ReduceOp::Sum, axis, false)
}

/// Maximum along `axis` (NaN propagates). Triton: `tl.max`.
#[track_caller]
pub fn max<T: Elem>(x: Tile<T>, axis: usize) -> Tile<T> {
    reduce(x, ReduceOp::Max, axis, false)
}

/// Minimum along `axis` (NaN propagates). Triton: `tl.min`.
#[track_caller]
pub fn min<T: Elem>(x: Tile<T>, axis: usize) -> Tile<T> {
    reduce(x, ReduceOp::Min, axis, false)
}

/// Index of the first maximum along `axis`, as `i32`. Triton: `tl.argmax`.
#[track_caller]
pub fn argmax<T: Elem>(x: Tile<T>, axis: usize) -> Tile<i32> {
    reduce(x, ReduceOp::ArgMax, axis, false)
}

/// Index of the first minimum along `axis`, as `i32`. Triton: `tl.argmin`.
#[track_caller]
pub fn argmin<T: Elem>(x: Tile<T>, axis: usize) -> Tile<i32> {
    reduce(x, ReduceOp::ArgMin, axis, false)
}

/// The operand pairs `dot` takes.
#[diagnostic::on_unimplemented(
    message = "dot does not take `{Self}` x `{B}`",
    note = "dot takes f32 x f32, f16 x f16, bf16 x bf16, or fp8 x fp8 (e4m3/e5m2, mixed allowed)"
)]
pub trait DotOperands<B> {}
impl DotOperands<f32> for f32 {}
impl DotOperands<crate::types::f16> for crate::types::f16 {}
impl DotOperands<crate::types::bf16> for crate::types::bf16 {}
impl DotOperands<crate::types::e4m3> for crate::types::e4m3 {}
impl DotOperands<crate::types::e5m2> for crate::types::e5m2 {}
impl DotOperands<crate::types::e5m2> for crate::types::e4m3 {}
impl DotOperands<crate::types::e4m3> for crate::types::e5m2 {}
/// A second impl for every type, so rustc reports an unsupported pair through `DotOperands`'s message
/// instead of inferring the right operand's type from a single impl.
#[doc(hidden)]
pub enum NoDotOperand {}
impl DotOperands<NoDotOperand> for f32 {}
impl DotOperands<NoDotOperand> for crate::types::f16 {}
impl DotOperands<NoDotOperand> for crate::types::bf16 {}

/// Matrix product `acc + a · b` for `a: [M, K]`, `b: [K, N]`, `acc: f32[M, N]`, accumulated in f32.
///
/// Defined accumulation order (the interpreter's): for each output, starting from `acc`, add
/// `a[m, k] * b[k, n]` for `k = 0, 1, ...` with one f32 fused multiply-add each. The GPU's tensor cores
/// add in another order; results agree within f32 rounding of that sum. Triton: `tl.dot`.
#[track_caller]
pub fn dot<A: Elem + DotOperands<B>, B: Elem>(a: Tile<A>, b: Tile<B>, acc: Tile<f32>) -> Tile<f32> {
    emit_tile(OpKind::Dot { a: a.id, b: b.id, acc: acc.id }, Loc::caller(), acc.shape())
}

// ---------------------------------------------------------------- memory

/// Broadcasts a pointer tile with its mask and value operands to their common shape.
fn mem_operands(ptr: ValueId, rest: &mut [&mut ValueId], loc: Loc) -> ValueId {
    let mut p = ptr;
    for v in rest.iter_mut() {
        let (np, nv) = builder::broadcast_pair(p, **v, "memory access", loc);
        p = np;
        **v = nv;
    }
    let shape = builder::ty(p).shape;
    for v in rest.iter_mut() {
        **v = builder::broadcast_to(**v, &shape, loc);
    }
    p
}

/// Loads every pointer of `ptr`. Every address must be in bounds (the interpreter checks). Triton: `tl.load`.
#[track_caller]
pub fn load<P: Pointer>(ptr: P) -> Tile<P::Elem> {
    let shape = builder::ty(ptr.ptr_id()).shape;
    emit_tile(OpKind::Load { ptr: ptr.ptr_id(), mask: None, other: None, hints: MemHints::default() }, Loc::caller(), shape)
}

/// Loads where `mask` is true; elsewhere the result is `other` and memory is not touched. `ptr`, `mask`
/// and `other` broadcast together. Triton: `tl.load(ptr, mask, other)`.
#[track_caller]
pub fn load_masked<P: Pointer>(ptr: P, mask: impl IntoMask, other: impl IntoTile<P::Elem>) -> Tile<P::Elem> {
    load_with(ptr, mask, other, MemHints::default())
}

/// [`load_masked`] with cache and eviction hints (they never change the result).
#[track_caller]
pub fn load_with<P: Pointer>(ptr: P, mask: impl IntoMask, other: impl IntoTile<P::Elem>, hints: MemHints) -> Tile<P::Elem> {
    let loc = Loc::caller();
    let (mut m, mut o) = (mask.mask_value(loc), other.into_value(loc));
    let p = mem_operands(ptr.ptr_id(), &mut [&mut m, &mut o], loc);
    let shape = builder::ty(p).shape;
    emit_tile(OpKind::Load { ptr: p, mask: Some(m), other: Some(o), hints }, loc, shape)
}

/// Stores `value` through every pointer of `ptr` (they broadcast together). Triton: `tl.store`.
#[track_caller]
pub fn store<P: Writable>(ptr: P, value: impl IntoTile<P::Elem>) {
    let loc = Loc::caller();
    let mut v = value.into_value(loc);
    let p = mem_operands(ptr.ptr_id(), &mut [&mut v], loc);
    builder::emit_effect(OpKind::Store { ptr: p, value: v, mask: None, hints: MemHints::default() }, loc);
}

/// Stores where `mask` is true; elsewhere memory is not touched. Triton: `tl.store(ptr, value, mask)`.
#[track_caller]
pub fn store_masked<P: Writable>(ptr: P, value: impl IntoTile<P::Elem>, mask: impl IntoMask) {
    store_with(ptr, value, mask, MemHints::default())
}

/// [`store_masked`] with cache and eviction hints.
#[track_caller]
pub fn store_with<P: Writable>(ptr: P, value: impl IntoTile<P::Elem>, mask: impl IntoMask, hints: MemHints) {
    let loc = Loc::caller();
    let (mut v, mut m) = (value.into_value(loc), mask.mask_value(loc));
    let p = mem_operands(ptr.ptr_id(), &mut [&mut v, &mut m], loc);
    builder::emit_effect(OpKind::Store { ptr: p, value: v, mask: Some(m), hints }, loc);
}

/// Brings the 128-byte lines holding the elements of `ptr` where `mask` is true into the L2 cache, for a
/// later load; reads no values and changes no result (the addresses must still be in bounds: the
/// interpreter checks). One element per line is enough. Before [`gdc_wait`], it starts streaming data
/// that the kernels ahead of this one do not write (weights) while they finish.
#[track_caller]
pub fn prefetch_l2<P: Pointer>(ptr: P, mask: impl IntoMask) {
    let loc = Loc::caller();
    let mut m = mask.mask_value(loc);
    let p = mem_operands(ptr.ptr_id(), &mut [&mut m], loc);
    builder::emit_effect(OpKind::PrefetchL2 { ptr: p, mask: m }, loc);
}

#[track_caller]
fn atomic<P: Writable>(op: AtomicOp, ptr: P, value: impl IntoTile<P::Elem>, mask: impl IntoMask) -> Tile<P::Elem> {
    let loc = Loc::caller();
    let (mut v, mut m) = (value.into_value(loc), mask.mask_value(loc));
    let p = mem_operands(ptr.ptr_id(), &mut [&mut v, &mut m], loc);
    let shape = builder::ty(p).shape;
    emit_tile(OpKind::Atomic { op, ptr: p, value: v, mask: Some(m) }, loc, shape)
}

/// Atomically adds `value` where `mask` is true; returns the old values (relaxed, device scope).
/// Takes f32, f16, bf16, i32, u32, i64. Triton: `tl.atomic_add`.
#[track_caller]
pub fn atomic_add<P: Writable>(ptr: P, value: impl IntoTile<P::Elem>, mask: impl IntoMask) -> Tile<P::Elem> {
    atomic(AtomicOp::Add, ptr, value, mask)
}

/// Atomic maximum; returns the old values. Takes f32, i32, u32, i64 (a NaN value never wins).
/// Triton: `tl.atomic_max`.
#[track_caller]
pub fn atomic_max<P: Writable>(ptr: P, value: impl IntoTile<P::Elem>, mask: impl IntoMask) -> Tile<P::Elem> {
    atomic(AtomicOp::Max, ptr, value, mask)
}

/// Atomic minimum; returns the old values. Takes f32, i32, u32, i64 (a NaN value never wins).
/// Triton: `tl.atomic_min`.
#[track_caller]
pub fn atomic_min<P: Writable>(ptr: P, value: impl IntoTile<P::Elem>, mask: impl IntoMask) -> Tile<P::Elem> {
    atomic(AtomicOp::Min, ptr, value, mask)
}

/// Atomically replaces the values; returns the old ones. Takes f32, i32, u32, i64. Triton: `tl.atomic_xchg`.
#[track_caller]
pub fn atomic_xchg<P: Writable>(ptr: P, value: impl IntoTile<P::Elem>, mask: impl IntoMask) -> Tile<P::Elem> {
    atomic(AtomicOp::Xchg, ptr, value, mask)
}

/// Atomically stores `value` where memory equals `cmp`; returns the old values. Takes i32, u32, i64.
/// Triton: `tl.atomic_cas`.
#[track_caller]
pub fn atomic_cas<P: Writable>(
    ptr: P,
    cmp: impl IntoTile<P::Elem>,
    value: impl IntoTile<P::Elem>,
    mask: impl IntoMask,
) -> Tile<P::Elem> {
    let loc = Loc::caller();
    let (mut c, mut v, mut m) = (cmp.into_value(loc), value.into_value(loc), mask.mask_value(loc));
    let p = mem_operands(ptr.ptr_id(), &mut [&mut c, &mut v, &mut m], loc);
    let shape = builder::ty(p).shape;
    emit_tile(OpKind::AtomicCas { ptr: p, cmp: c, value: v, mask: Some(m) }, loc, shape)
}

/// The pointer kinds a block pointer can be made from, and the block pointer each gives.
#[diagnostic::on_unimplemented(message = "`{Self}` cannot be the base of a block pointer", note = "the base is a `Ptr<T>` or `MutPtr<T>` scalar (a kernel parameter)")]
pub trait BlockBase: Pointer {
    type Block;
    #[doc(hidden)]
    fn block_from_id(id: ValueId) -> Self::Block;
}
impl<T: Elem> BlockBase for Ptr<T> {
    type Block = BlockPtr<T>;
    fn block_from_id(id: ValueId) -> BlockPtr<T> {
        BlockPtr::from_id(id)
    }
}
impl<T: Elem> BlockBase for MutPtr<T> {
    type Block = MutBlockPtr<T>;
    fn block_from_id(id: ValueId) -> MutBlockPtr<T> {
        MutBlockPtr::from_id(id)
    }
}

/// A block pointer: the `block_shape` window at `offsets` of the tensor at `base` with `shape` and
/// `strides` (in elements). Loads and stores through it are bounds-checked against `shape`: elements
/// outside read as padding and are not written. `order` lists the dims from fastest-varying in memory
/// (a layout hint for backends; `[1, 0]` is row-major). Triton: `tl.make_block_ptr`.
#[track_caller]
pub fn make_block_ptr<P: BlockBase>(
    base: P,
    shape: impl IndexList,
    strides: impl IndexList,
    offsets: impl IndexList,
    block_shape: impl Shape,
    order: impl Shape,
) -> P::Block {
    let loc = Loc::caller();
    let block_shape = shape_dims(&block_shape, loc);
    let order = shape_dims(&order, loc);
    let kind = OpKind::MakeBlockPtr {
        base: base.ptr_id(),
        shape: shape.values(loc),
        strides: strides.values(loc),
        offsets: offsets.values(loc),
        block_shape: block_shape.clone(),
        order,
    };
    let fallback = Type::new(ElemTy::BlockPtr { pointee: P::Elem::DTYPE, mutable: false, block_shape }, vec![]);
    P::block_from_id(builder::emit(kind, loc, fallback))
}

/// Block pointers that can be loaded from.
pub trait ReadBlock: Copy {
    type Elem: Elem;
    #[doc(hidden)]
    fn block_id(self) -> ValueId;
}
impl<T: Elem> ReadBlock for BlockPtr<T> {
    type Elem = T;
    fn block_id(self) -> ValueId {
        self.id
    }
}
impl<T: Elem> ReadBlock for MutBlockPtr<T> {
    type Elem = T;
    fn block_id(self) -> ValueId {
        self.id
    }
}

/// Loads the block; elements outside the tensor read as zero. Triton:
/// `tl.load(block_ptr, boundary_check=(all dims), padding_option="zero")`.
#[track_caller]
pub fn load_block<B: ReadBlock>(block: B) -> Tile<B::Elem> {
    load_block_padded(block, Padding::Zero)
}

/// Loads the block; elements outside the tensor read as `padding` (zero, or NaN for float blocks).
#[track_caller]
pub fn load_block_padded<B: ReadBlock>(block: B, padding: Padding) -> Tile<B::Elem> {
    let loc = Loc::caller();
    let shape = match builder::ty(block.block_id()).elem {
        ElemTy::BlockPtr { block_shape, .. } => block_shape,
        _ => vec![],
    };
    emit_tile(OpKind::LoadBlock { ptr: block.block_id(), padding, hints: MemHints::default() }, loc, shape)
}

/// Stores `value` (of the block's shape) through the block pointer; elements outside the tensor are
/// skipped. Triton: `tl.store(block_ptr, value, boundary_check=(all dims))`.
#[track_caller]
pub fn store_block<T: Elem>(block: MutBlockPtr<T>, value: impl IntoTile<T>) {
    let loc = Loc::caller();
    let v = value.into_value(loc);
    builder::emit_effect(OpKind::StoreBlock { ptr: block.id, value: v, hints: MemHints::default() }, loc);
}

// ---------------------------------------------------------------- grid dependency control

/// Waits until the kernels launched before this one on the stream have completed and their writes are
/// visible. With programmatic dependent launch (Hopper; `CudaRuntime::set_programmatic_launch`
/// turns it on for every kernel that calls `gdc_wait`), a kernel's programs may start while the kernel
/// ahead of it is still running, once that one calls [`gdc_launch_dependents`] or its programs end; what
/// comes before `gdc_wait` overlaps it.
///
/// Before `gdc_wait` a kernel may compute, [`prefetch_l2`] and load only memory that the kernels ahead of
/// it do not write (weights, not activations), and may write nothing (the verifier rejects a store or an
/// atomic before it). At most once, at the top level of the kernel. Elsewhere (the interpreter, other
/// targets than sm_90a, a launch without programmatic launch) it does nothing. Triton: `tl.extra.cuda.gdc_wait`.
#[track_caller]
pub fn gdc_wait() {
    builder::emit_effect(OpKind::GridDepWait, Loc::caller());
}

/// Lets the next kernel on the stream (if it uses [`gdc_wait`]) start its programs before this one ends;
/// it still waits at its `gdc_wait` for this kernel to complete. Calling it early hides the next
/// kernel's launch and start-up behind this one's last programs. No effect on results.
/// Triton: `tl.extra.cuda.gdc_launch_dependents`.
#[track_caller]
pub fn gdc_launch_dependents() {
    builder::emit_effect(OpKind::GridDepLaunch, Loc::caller());
}

// ---------------------------------------------------------------- memory ordering between programs

/// A device-scope acquire-release fence for the whole program. Every access that any thread of this
/// program made before the fence is ordered before every access any of them makes after it, as seen by
/// the programs that synchronize with this one through an atomic:
/// - *release*: stores, then `fence()`, then an atomic (e.g. `atomic_add` on a counter);
/// - *acquire*: an atomic that reads what a release wrote, then `fence()`, then loads, which see
///   everything the releasing program stored before its fence.
///
/// This is how the last program to finish a piece of work (an atomic ticket) can read what the others
/// wrote in the same launch. On the GPU: a barrier of the program's threads, `fence.acq_rel.gpu`, and
/// another barrier. The interpreter checks it: a load of what another program stored in this launch is
/// a data race unless such a release and acquire order them. Triton: atomics' `sem="acq_rel"`.
#[track_caller]
pub fn fence() {
    builder::emit_effect(OpKind::Fence, Loc::caller());
}

// ---------------------------------------------------------------- debugging

/// Prints `prefix` and the values of `x` from every program (the interpreter prints to stdout with the
/// program id). Triton: `tl.device_print`.
#[track_caller]
pub fn device_print<T: Elem>(prefix: &str, x: Tile<T>) {
    builder::emit_effect(OpKind::Print { prefix: prefix.to_string(), args: vec![x.id] }, Loc::caller());
}

/// Fails the launch with `msg` and this source line if any element of `cond` is false.
/// Triton: `tl.device_assert`.
#[track_caller]
pub fn device_assert(cond: Tile<bool>, msg: &str) {
    builder::emit_effect(OpKind::Assert { cond: cond.id, msg: msg.to_string() }, Loc::caller());
}
