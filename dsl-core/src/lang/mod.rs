//! The kernel language: the tile types and builtins a `#[kernel]` function is written with.
//!
//! Inside a kernel every value is a tile handle: [`Tile<T>`] (numbers; a scalar is a tile of shape `[]`),
//! [`Ptr<T>`] / [`MutPtr<T>`] (tiles of pointers into global memory, read-only or writable), and
//! [`BlockPtr<T>`] / [`MutBlockPtr<T>`] (Triton's block pointers). Element types are static (Rust types:
//! a wrong dtype is a rustc error at your call site); shapes are static once the kernel's constexprs are
//! bound and are checked when the kernel is specialized, with errors that name your source line.
//!
//! # Broadcasting
//! Binary ops, `where_`, and masked memory ops broadcast their operands as numpy and Triton do: shapes
//! align on the right and a dimension of size 1 (or a missing leading one) stretches.
//!
//! # Type promotion
//! An arithmetic or comparison op on two tiles computes in the promoted type:
//! - same type: that type;
//! - float with float: the wider one; `f16` with `bf16` gives `f32`;
//! - float with integer: the float;
//! - integers of one signedness: the wider; mixed signedness: the unsigned type if it is at least as wide
//!   as the signed one, else the signed type (C's rule, as in Triton).
//!
//! A Rust literal takes the tile's type (`x * 2` and `x * 0.5` keep `x`'s dtype), except that a float
//! literal with an integer tile gives `f32`. fp8 tiles do no arithmetic (load, store, cast them, or feed
//! them to [`dot`]); `bool` tiles do logic (`&`, `|`, `^`, `!`) and `==`/`!=`. Bitwise ops and shifts take
//! two integer tiles of one type (or a literal). Casts are explicit: [`Tile::to`].
//!
//! # Integer semantics (as the GPU computes them)
//! Arithmetic wraps. `/` truncates toward zero and `%` takes the dividend's sign (PTX `div`/`rem`);
//! `x / 0` is all ones (-1 signed, MAX unsigned) and `x % 0` is `x`. Shifts by at least the bit width give
//! 0, or the sign fill for a signed `>>`.

mod builtins;
mod control;
mod ops;
mod promote;

pub use builtins::*;
pub use ops::Offset;
#[doc(hidden)]
pub use control::*;

use crate::builder;
use crate::ir::{Const, Loc, OpKind, ValueId};
use crate::types::{DType, Elem, ElemTy, Type};
use std::marker::PhantomData;

/// A tile of numbers of element type `T` (a scalar is a tile of shape `[]`).
///
/// Tiles are cheap handles (`Copy`) to values of the kernel being traced.
pub struct Tile<T: Elem> {
    pub(crate) id: ValueId,
    _t: PhantomData<T>,
}

/// A tile of read-only pointers to `T` in global memory.
pub struct Ptr<T: Elem> {
    pub(crate) id: ValueId,
    _t: PhantomData<T>,
}

/// A tile of writable pointers to `T` in global memory.
pub struct MutPtr<T: Elem> {
    pub(crate) id: ValueId,
    _t: PhantomData<T>,
}

/// A read-only block pointer: a bounds-checked window into a strided tensor ([`make_block_ptr`]).
pub struct BlockPtr<T: Elem> {
    pub(crate) id: ValueId,
    _t: PhantomData<T>,
}

/// A writable block pointer ([`make_block_ptr`] on a [`MutPtr`]).
pub struct MutBlockPtr<T: Elem> {
    pub(crate) id: ValueId,
    _t: PhantomData<T>,
}

macro_rules! handle {
    ($($h:ident),*) => {$(
        impl<T: Elem> Clone for $h<T> {
            fn clone(&self) -> Self { *self }
        }
        impl<T: Elem> Copy for $h<T> {}
        impl<T: Elem> std::fmt::Debug for $h<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($h), self.id)
            }
        }
        impl<T: Elem> $h<T> {
            #[doc(hidden)]
            pub fn from_id(id: ValueId) -> Self { $h { id, _t: PhantomData } }
            #[doc(hidden)]
            pub fn id(self) -> ValueId { self.id }
            /// The tile's shape (known while the kernel is traced).
            pub fn shape(self) -> Vec<usize> { builder::ty(self.id).shape }
        }
    )*};
}
handle!(Tile, Ptr, MutPtr, BlockPtr, MutBlockPtr);

/// A float literal operand (`0.5`); see the module docs on type promotion.
#[doc(hidden)]
pub struct FloatLit;
/// An integer literal operand (`2`).
#[doc(hidden)]
pub struct IntLit;
/// A `bool` literal operand.
#[doc(hidden)]
pub struct BoolLit;

/// The type an arithmetic op on `Self` and `Rhs` computes in (module docs: "Type promotion").
#[diagnostic::on_unimplemented(
    message = "no arithmetic between `{Self}` and `{Rhs}` tiles",
    label = "this op needs numeric operands",
    note = "fp8 tiles must be converted first (`x.to::<f32>()`); bool tiles only do logic (&, |, ^, !)"
)]
pub trait Promote<Rhs> {
    type Out: Elem;
}

/// The type a comparison of `Self` and `Rhs` compares in.
#[diagnostic::on_unimplemented(
    message = "cannot compare `{Self}` with `{Rhs}`",
    note = "fp8 tiles must be converted first (`x.to::<f32>()`); bool compares only with bool"
)]
pub trait CmpPromote<Rhs> {
    type Out: Elem;
}

/// The type of a bitwise op or shift on `Self` and `Rhs`.
#[diagnostic::on_unimplemented(
    message = "no bitwise op between `{Self}` and `{Rhs}`",
    note = "bitwise ops and shifts take two integer tiles of one type (or bools for &, |, ^); convert with `.to::<T>()`"
)]
pub trait BitPromote<Rhs> {
    type Out: Elem;
}

/// Something usable as the right-hand operand of a tile op: a tile or a Rust number or bool.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an operand of a tile op",
    note = "operands are tiles (`Tile<T>`) or Rust numbers and bools"
)]
pub trait Operand: Copy {
    /// The element type, or a literal marker, used for type promotion.
    type Kind;
    #[doc(hidden)]
    fn value_as(self, d: DType, loc: Loc) -> ValueId;
}

impl<T: Elem> Operand for Tile<T> {
    type Kind = T;
    fn value_as(self, d: DType, loc: Loc) -> ValueId {
        builder::cast_to(self.id, d, loc)
    }
}

macro_rules! literal_operand {
    ($($t:ty => $kind:ident, $c:ident, $conv:ty),*) => {$(
        impl Operand for $t {
            type Kind = $kind;
            fn value_as(self, d: DType, loc: Loc) -> ValueId {
                builder::constant(Const::$c(self as $conv), d, loc)
            }
        }
    )*};
}
literal_operand!(f64 => FloatLit, F, f64, f32 => FloatLit, F, f64, i32 => IntLit, I, i64, i64 => IntLit, I, i64,
    u32 => IntLit, I, i64, usize => IntLit, I, i64);
impl Operand for bool {
    type Kind = BoolLit;
    fn value_as(self, d: DType, loc: Loc) -> ValueId {
        builder::constant(Const::B(self), d, loc)
    }
}

/// Element types other than `bool` (a number literal converts to any of them).
pub trait Numeric: Elem {}
impl Numeric for f32 {}
impl Numeric for crate::types::f16 {}
impl Numeric for crate::types::bf16 {}
impl Numeric for crate::types::e4m3 {}
impl Numeric for crate::types::e5m2 {}
impl Numeric for i8 {}
impl Numeric for i16 {}
impl Numeric for i32 {}
impl Numeric for i64 {}
impl Numeric for u8 {}
impl Numeric for u32 {}

/// A value that converts exactly to a tile of `T`: a `Tile<T>`, or a Rust literal.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a tile of `{T}`",
    label = "expected a `Tile<{T}>` here",
    note = "tiles change dtype only explicitly: use `.to::<{T}>()`"
)]
pub trait IntoTile<T: Elem> {
    #[doc(hidden)]
    fn into_value(self, loc: Loc) -> ValueId;
}

impl<T: Elem> IntoTile<T> for Tile<T> {
    fn into_value(self, _loc: Loc) -> ValueId {
        self.id
    }
}
macro_rules! literal_into_tile {
    ($bound:ident: $($t:ty => $c:ident, $conv:ty),*) => {$(
        impl<T: $bound> IntoTile<T> for $t {
            fn into_value(self, loc: Loc) -> ValueId {
                builder::constant(Const::$c(self as $conv), T::DTYPE, loc)
            }
        }
    )*};
}
literal_into_tile!(Float: f64 => F, f64, f32 => F, f64);
literal_into_tile!(Numeric: i32 => I, i64, i64 => I, i64, u32 => I, i64);
/// An element value of a type with no Rust literal (`f16::ZERO`, `bf16::from_f32(0.5)`, `e4m3::MAX`,
/// `-1i8`) works wherever a literal does: as a tile of its own type (`other`, `full`, `where_`), and as
/// an operand of arithmetic (`x * f16::ONE`, `f16::ONE - x`). The value is exact in its type.
macro_rules! element_value {
    ($($t:ty),*) => {$(
        impl IntoTile<$t> for $t {
            fn into_value(self, loc: Loc) -> ValueId {
                element_constant(self, <$t as Elem>::DTYPE, loc)
            }
        }
        impl Operand for $t {
            type Kind = $t;
            fn value_as(self, d: DType, loc: Loc) -> ValueId {
                let v = element_constant(self, <$t as Elem>::DTYPE, loc);
                builder::cast_to(v, d, loc)
            }
        }
    )*};
}
element_value!(crate::types::f16, crate::types::bf16, crate::types::e4m3, crate::types::e5m2, i8, i16, u8);

/// The constant `v` of dtype `d` (the exact value, read back from its memory encoding).
fn element_constant<T: Elem>(v: T, d: DType, loc: Loc) -> ValueId {
    let mut bytes = [0u8; 8];
    let n = d.size_bytes();
    v.write_le(&mut bytes[..n]);
    let c = match crate::scalar::read_mem(d, &bytes[..n]) {
        crate::scalar::Scalar::F(x) => Const::F(x),
        crate::scalar::Scalar::I(x) => Const::I(x),
        crate::scalar::Scalar::B(x) => Const::B(x),
    };
    builder::constant(c, d, loc)
}

impl IntoTile<bool> for bool {
    fn into_value(self, loc: Loc) -> ValueId {
        builder::constant(Const::B(self), DType::Bool, loc)
    }
}
use crate::types::Float;

/// A mask: a `Tile<bool>`, or a constexpr `bool` (`true` masks nothing off).
#[diagnostic::on_unimplemented(message = "`{Self}` is not a mask", note = "a mask is a `Tile<bool>` (from a comparison) or a `bool`")]
pub trait IntoMask {
    #[doc(hidden)]
    fn mask_value(self, loc: Loc) -> ValueId;
}
impl IntoMask for Tile<bool> {
    fn mask_value(self, _loc: Loc) -> ValueId {
        self.id
    }
}
impl IntoMask for bool {
    fn mask_value(self, loc: Loc) -> ValueId {
        builder::constant(Const::B(self), DType::Bool, loc)
    }
}

/// A value known when the kernel is specialized: a const generic parameter or a literal.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a runtime value, but a constexpr is required here",
    label = "must be known when the kernel is specialized",
    note = "use a const generic parameter (`const BLOCK: i32`) or a literal"
)]
pub trait Constexpr: Copy {
    #[doc(hidden)]
    fn to_i64(self) -> i64;
}
macro_rules! constexpr_int {
    ($($t:ty),*) => {$( impl Constexpr for $t { fn to_i64(self) -> i64 { self as i64 } } )*};
}
constexpr_int!(i32, i64, u32, usize);

/// A tile shape known when the kernel is specialized: an array of constexprs such as `[BLOCK_M, BLOCK_N]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a constexpr shape",
    label = "a tile shape must be known when the kernel is specialized",
    note = "write the shape as an array of const generic parameters or literals, e.g. `[BLOCK_M, BLOCK_N]`"
)]
pub trait Shape {
    #[doc(hidden)]
    fn dims(&self) -> Vec<i64>;
}
/// `()` is the shape of a scalar: `full::<i32>((), 0)`.
impl Shape for () {
    fn dims(&self) -> Vec<i64> {
        vec![]
    }
}
impl<C: Constexpr, const N: usize> Shape for [C; N] {
    fn dims(&self) -> Vec<i64> {
        self.iter().map(|c| c.to_i64()).collect()
    }
}

/// Checks constexpr dims are non-negative and converts them to `usize`.
pub(crate) fn shape_dims(s: &impl Shape, loc: Loc) -> Vec<usize> {
    let d = s.dims();
    if let Some(bad) = d.iter().find(|&&x| x < 0) {
        builder::error(loc, format!("a tile dimension cannot be negative, got {bad}"));
        return vec![1; d.len()];
    }
    d.into_iter().map(|x| x as usize).collect()
}

/// A list of runtime integer scalars (block-pointer shapes, strides and offsets): an array or a tuple of
/// `Tile<i32>`/`Tile<i64>` scalars and integer literals, such as `[M, K]` or `(pid_m * BLOCK_M, 0)`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a list of integer scalars",
    note = "write an array or tuple of integer scalars, e.g. `[m, k]` or `(row0, 0)`"
)]
pub trait IndexList {
    #[doc(hidden)]
    fn values(self, loc: Loc) -> Vec<ValueId>;
}

/// An integer scalar for an [`IndexList`]: becomes an `i64` scalar.
#[diagnostic::on_unimplemented(message = "`{Self}` is not an integer scalar")]
pub trait IndexValue: Copy {
    #[doc(hidden)]
    fn index_value(self, loc: Loc) -> ValueId;
}
impl<T: crate::types::Int> IndexValue for Tile<T> {
    fn index_value(self, loc: Loc) -> ValueId {
        builder::cast_to(self.id, DType::I64, loc)
    }
}
impl<C: Constexpr> IndexValue for C {
    fn index_value(self, loc: Loc) -> ValueId {
        builder::constant(Const::I(self.to_i64()), DType::I64, loc)
    }
}
impl<V: IndexValue, const N: usize> IndexList for [V; N] {
    fn values(self, loc: Loc) -> Vec<ValueId> {
        self.iter().map(|v| v.index_value(loc)).collect()
    }
}
macro_rules! index_tuple {
    ($(($($n:ident),*)),*) => {$(
        #[allow(non_snake_case)]
        impl<$($n: IndexValue),*> IndexList for ($($n,)*) {
            fn values(self, loc: Loc) -> Vec<ValueId> {
                let ($($n,)*) = self;
                vec![$($n.index_value(loc)),*]
            }
        }
    )*};
}
index_tuple!((A), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, E));

/// The pointer tiles that can be loaded from: [`Ptr`] and [`MutPtr`].
#[diagnostic::on_unimplemented(message = "`{Self}` is not a pointer tile", note = "load takes a `Ptr<T>` or `MutPtr<T>` tile, e.g. `x + offsets`")]
pub trait Pointer: Copy {
    type Elem: Elem;
    #[doc(hidden)]
    fn ptr_id(self) -> ValueId;
    #[doc(hidden)]
    fn from_ptr_id(id: ValueId) -> Self;
}

/// The pointer tiles that can be stored through: [`MutPtr`] only.
#[diagnostic::on_unimplemented(
    message = "cannot store through `{Self}`: it is read-only",
    label = "read-only pointer",
    note = "declare the kernel parameter as `MutPtr<T>` to write through it"
)]
pub trait Writable: Pointer {}

impl<T: Elem> Pointer for Ptr<T> {
    type Elem = T;
    fn ptr_id(self) -> ValueId {
        self.id
    }
    fn from_ptr_id(id: ValueId) -> Self {
        Ptr::from_id(id)
    }
}
impl<T: Elem> Pointer for MutPtr<T> {
    type Elem = T;
    fn ptr_id(self) -> ValueId {
        self.id
    }
    fn from_ptr_id(id: ValueId) -> Self {
        MutPtr::from_id(id)
    }
}
impl<T: Elem> Writable for MutPtr<T> {}

/// A kernel parameter type: how it appears in the IR signature.
#[doc(hidden)]
pub trait KernelParam {
    fn param_type() -> Type;
    fn from_param(id: ValueId) -> Self;
}
impl<T: Elem> KernelParam for Ptr<T> {
    fn param_type() -> Type {
        Type::new(ElemTy::Ptr { pointee: T::DTYPE, mutable: false }, vec![])
    }
    fn from_param(id: ValueId) -> Self {
        Ptr::from_id(id)
    }
}
impl<T: Elem> KernelParam for MutPtr<T> {
    fn param_type() -> Type {
        Type::new(ElemTy::Ptr { pointee: T::DTYPE, mutable: true }, vec![])
    }
    fn from_param(id: ValueId) -> Self {
        MutPtr::from_id(id)
    }
}
impl<T: Elem> KernelParam for Tile<T> {
    fn param_type() -> Type {
        Type::scalar(T::DTYPE)
    }
    fn from_param(id: ValueId) -> Self {
        Tile::from_id(id)
    }
}

pub(crate) fn emit_tile<T: Elem>(kind: OpKind, loc: Loc, shape: Vec<usize>) -> Tile<T> {
    Tile::from_id(builder::emit(kind, loc, Type::tile(T::DTYPE, shape)))
}
