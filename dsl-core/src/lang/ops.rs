//! Operators (`+ - * / % & | ^ << >> ! -`) and methods on tiles and pointer tiles.

use super::*;
use crate::ir::{BinaryOp, CmpOp, OpKind, UnaryOp};
use crate::types::Int;
use std::ops;

/// `lhs op rhs` computed in `O`, with both operands converted and broadcast.
#[track_caller]
fn binary<O: Elem>(op: BinaryOp, lhs: ValueId, rhs: ValueId) -> Tile<O> {
    let loc = Loc::caller();
    let (a, b) = builder::broadcast_pair(lhs, rhs, &format!("{op:?}"), loc);
    let shape = builder::ty(a).shape;
    emit_tile(OpKind::Binary { op, lhs: a, rhs: b }, loc, shape)
}

/// `lhs op rhs` on two values of one dtype, broadcast together.
pub(crate) fn binary_at(op: BinaryOp, lhs: ValueId, rhs: ValueId, loc: Loc) -> ValueId {
    let (a, b) = builder::broadcast_pair(lhs, rhs, &format!("{op:?}"), loc);
    let t = builder::ty(a);
    builder::emit(OpKind::Binary { op, lhs: a, rhs: b }, loc, t)
}

macro_rules! arith_op {
    ($($tr:ident, $m:ident, $atr:ident, $am:ident, $op:ident, $promote:ident);*) => {$(
        impl<T: Elem, R: Operand> ops::$tr<R> for Tile<T>
        where
            T: $promote<R::Kind>,
        {
            type Output = Tile<<T as $promote<R::Kind>>::Out>;
            #[track_caller]
            fn $m(self, rhs: R) -> Self::Output {
                let loc = Loc::caller();
                let d = <<T as $promote<R::Kind>>::Out as Elem>::DTYPE;
                binary(BinaryOp::$op, builder::cast_to(self.id, d, loc), rhs.value_as(d, loc))
            }
        }
        impl<T: Elem, R: Operand> ops::$atr<R> for Tile<T>
        where
            T: $promote<R::Kind, Out = T>,
        {
            #[track_caller]
            fn $am(&mut self, rhs: R) {
                let loc = Loc::caller();
                *self = binary(BinaryOp::$op, self.id, rhs.value_as(T::DTYPE, loc));
            }
        }
    )*};
}
arith_op!(
    Add, add, AddAssign, add_assign, Add, Promote;
    Sub, sub, SubAssign, sub_assign, Sub, Promote;
    Mul, mul, MulAssign, mul_assign, Mul, Promote;
    Div, div, DivAssign, div_assign, Div, Promote;
    Rem, rem, RemAssign, rem_assign, Rem, Promote;
    BitAnd, bitand, BitAndAssign, bitand_assign, And, BitPromote;
    BitOr, bitor, BitOrAssign, bitor_assign, Or, BitPromote;
    BitXor, bitxor, BitXorAssign, bitxor_assign, Xor, BitPromote
);

macro_rules! shift_op {
    ($($tr:ident, $m:ident, $op:ident);*) => {$(
        impl<T: Int, R: Operand> ops::$tr<R> for Tile<T>
        where
            T: BitPromote<R::Kind, Out = T>,
        {
            type Output = Tile<T>;
            #[track_caller]
            fn $m(self, rhs: R) -> Tile<T> {
                let loc = Loc::caller();
                binary(BinaryOp::$op, self.id, rhs.value_as(T::DTYPE, loc))
            }
        }
    )*};
}
shift_op!(Shl, shl, Shl; Shr, shr, Shr);

// A Rust literal on the left: `2.0 * x`, `1 - x`.
macro_rules! literal_lhs {
    ($($lit:ty),*) => {$(
        literal_lhs!(@ops $lit: Add, add, Add; Sub, sub, Sub; Mul, mul, Mul; Div, div, Div; Rem, rem, Rem);
    )*};
    (@ops $lit:ty: $($tr:ident, $m:ident, $op:ident);*) => {$(
        impl<T: Elem> ops::$tr<Tile<T>> for $lit
        where
            T: Promote<<$lit as Operand>::Kind>,
        {
            type Output = Tile<<T as Promote<<$lit as Operand>::Kind>>::Out>;
            #[track_caller]
            fn $m(self, rhs: Tile<T>) -> Self::Output {
                let loc = Loc::caller();
                let d = <<T as Promote<<$lit as Operand>::Kind>>::Out as Elem>::DTYPE;
                binary(BinaryOp::$op, self.value_as(d, loc), builder::cast_to(rhs.id, d, loc))
            }
        }
    )*};
}
literal_lhs!(f64, f32, i32, i64, u32);
literal_lhs!(crate::types::f16, crate::types::bf16, crate::types::e4m3, crate::types::e5m2, i8, i16, u8);

impl<T: Elem> ops::Neg for Tile<T>
where
    T: Promote<T, Out = T>,
{
    type Output = Tile<T>;
    #[track_caller]
    fn neg(self) -> Tile<T> {
        unary(UnaryOp::Neg, self)
    }
}

impl<T: Elem> ops::Not for Tile<T>
where
    T: BitPromote<T, Out = T>,
{
    type Output = Tile<T>;
    /// Bitwise not of integers, logical not of bools.
    #[track_caller]
    fn not(self) -> Tile<T> {
        unary(UnaryOp::Not, self)
    }
}

#[track_caller]
pub(crate) fn unary<T: Elem>(op: UnaryOp, x: Tile<T>) -> Tile<T> {
    emit_tile(OpKind::Unary { op, src: x.id }, Loc::caller(), x.shape())
}

#[track_caller]
fn compare<T: Elem, R: Operand>(op: CmpOp, lhs: Tile<T>, rhs: R) -> Tile<bool>
where
    T: CmpPromote<R::Kind>,
{
    compare_at(op, lhs, rhs, Loc::caller())
}

/// `lhs op rhs` elementwise, in the promoted type, operands broadcast together.
pub(crate) fn compare_at<T: Elem, R: Operand>(op: CmpOp, lhs: Tile<T>, rhs: R, loc: Loc) -> Tile<bool>
where
    T: CmpPromote<R::Kind>,
{
    let d = <<T as CmpPromote<R::Kind>>::Out as Elem>::DTYPE;
    let (a, b) = builder::broadcast_pair(builder::cast_to(lhs.id, d, loc), rhs.value_as(d, loc), "comparison", loc);
    let shape = builder::ty(a).shape;
    emit_tile(OpKind::Compare { op, lhs: a, rhs: b }, loc, shape)
}

impl<T: Elem> Tile<T> {
    /// Converts to element type `U` (see `scalar::cast` for the exact semantics: floats round to nearest
    /// even, fp8 saturates to its largest finite value, float→int truncates and saturates).
    #[track_caller]
    pub fn to<U: Elem>(self) -> Tile<U> {
        Tile::from_id(builder::cast_to(self.id, U::DTYPE, Loc::caller()))
    }

    /// Reinterprets the bits as element type `U` of the same width (`f32` ↔ `u32`, `f16` ↔ `i16`...).
    #[track_caller]
    pub fn bitcast<U: Elem>(self) -> Tile<U> {
        emit_tile(OpKind::Bitcast { src: self.id, to: U::DTYPE }, Loc::caller(), self.shape())
    }

    /// The same elements (row-major) in a new shape with as many elements.
    #[track_caller]
    pub fn reshape(self, shape: impl Shape) -> Tile<T> {
        let loc = Loc::caller();
        let shape = shape_dims(&shape, loc);
        emit_tile(OpKind::Reshape { src: self.id, shape: shape.clone() }, loc, shape)
    }

    /// Inserts a dimension of size 1 at `axis` (Triton's `x[:, None]` is `x.expand_dims(1)`).
    #[track_caller]
    pub fn expand_dims(self, axis: usize) -> Tile<T> {
        let mut s = self.shape();
        s.insert(axis.min(s.len()), 1);
        emit_tile(OpKind::ExpandDims { src: self.id, axis }, Loc::caller(), s)
    }

    /// Broadcasts to `shape` (dims of size 1 stretch; a scalar splats).
    #[track_caller]
    pub fn broadcast_to(self, shape: impl Shape) -> Tile<T> {
        let loc = Loc::caller();
        let shape = shape_dims(&shape, loc);
        Tile::from_id(builder::broadcast_to(self.id, &shape, loc))
    }

    /// Transposes a 2-D tile.
    #[track_caller]
    pub fn trans(self) -> Tile<T> {
        let loc = Loc::caller();
        let s = self.shape();
        if s.len() != 2 {
            builder::error(loc, format!("trans needs a 2-D tile, got shape {}", crate::types::shape_str(&s)));
            return self;
        }
        emit_tile(OpKind::Permute { src: self.id, perm: vec![1, 0] }, loc, vec![s[1], s[0]])
    }

    /// Reorders dimensions: result dim `i` is dim `perm[i]` of `self`.
    #[track_caller]
    pub fn permute(self, perm: impl Shape) -> Tile<T> {
        let loc = Loc::caller();
        let perm = shape_dims(&perm, loc);
        let s = self.shape();
        let out = perm.iter().map(|&p| s.get(p).copied().unwrap_or(1)).collect();
        emit_tile(OpKind::Permute { src: self.id, perm }, loc, out)
    }

    /// `self < rhs`, elementwise (inside a kernel, `a < b` means the same).
    #[track_caller]
    pub fn lt<R: Operand>(self, rhs: R) -> Tile<bool>
    where
        T: CmpPromote<R::Kind>,
    {
        compare(CmpOp::Lt, self, rhs)
    }
    /// `self <= rhs`, elementwise.
    #[track_caller]
    pub fn le<R: Operand>(self, rhs: R) -> Tile<bool>
    where
        T: CmpPromote<R::Kind>,
    {
        compare(CmpOp::Le, self, rhs)
    }
    /// `self > rhs`, elementwise.
    #[track_caller]
    pub fn gt<R: Operand>(self, rhs: R) -> Tile<bool>
    where
        T: CmpPromote<R::Kind>,
    {
        compare(CmpOp::Gt, self, rhs)
    }
    /// `self >= rhs`, elementwise.
    #[track_caller]
    pub fn ge<R: Operand>(self, rhs: R) -> Tile<bool>
    where
        T: CmpPromote<R::Kind>,
    {
        compare(CmpOp::Ge, self, rhs)
    }
    /// `self == rhs`, elementwise.
    #[track_caller]
    pub fn eq<R: Operand>(self, rhs: R) -> Tile<bool>
    where
        T: CmpPromote<R::Kind>,
    {
        compare(CmpOp::Eq, self, rhs)
    }
    /// `self != rhs`, elementwise (true where either is NaN).
    #[track_caller]
    pub fn ne<R: Operand>(self, rhs: R) -> Tile<bool>
    where
        T: CmpPromote<R::Kind>,
    {
        compare(CmpOp::Ne, self, rhs)
    }
}

/// An integer offset for pointer arithmetic: an integer tile or a Rust integer.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a pointer offset",
    note = "pointers move by integer tiles (`Tile<i32>`, `Tile<i64>`...) or integer literals"
)]
pub trait Offset: Copy {
    #[doc(hidden)]
    fn offset_value(self, loc: Loc) -> ValueId;
}
impl<T: Int> Offset for Tile<T> {
    fn offset_value(self, _loc: Loc) -> ValueId {
        self.id
    }
}
#[diagnostic::do_not_recommend]
impl<C: Constexpr> Offset for C {
    fn offset_value(self, loc: Loc) -> ValueId {
        builder::constant(crate::ir::Const::I(self.to_i64()), DType::I32, loc)
    }
}

#[track_caller]
fn add_ptr(ptr: ValueId, offset: ValueId) -> ValueId {
    let loc = Loc::caller();
    let (p, o) = builder::broadcast_pair(ptr, offset, "pointer arithmetic", loc);
    let t = builder::ty(p);
    builder::emit(OpKind::AddPtr { ptr: p, offset: o }, loc, t)
}

macro_rules! ptr_impls {
    ($($p:ident),*) => {$(
        impl<T: Elem, O: Offset> ops::Add<O> for $p<T> {
            type Output = $p<T>;
            /// Moves each pointer by `offset` elements (not bytes); shapes broadcast.
            #[track_caller]
            fn add(self, offset: O) -> $p<T> {
                $p::from_id(add_ptr(self.id, offset.offset_value(Loc::caller())))
            }
        }
        impl<T: Elem, O: Offset> ops::AddAssign<O> for $p<T> {
            #[track_caller]
            fn add_assign(&mut self, offset: O) {
                *self = $p::from_id(add_ptr(self.id, offset.offset_value(Loc::caller())));
            }
        }
        impl<T: Elem> $p<T> {
            /// Reinterprets the pointers as pointing to `U`.
            #[track_caller]
            pub fn ptr_cast<U: Elem>(self) -> $p<U> {
                let t = builder::ty(self.id);
                let ElemTy::Ptr { mutable, .. } = t.elem else { unreachable!("pointer handle") };
                let nt = t.with_elem(ElemTy::Ptr { pointee: U::DTYPE, mutable });
                $p::from_id(builder::emit(OpKind::PtrCast { ptr: self.id, to: U::DTYPE }, Loc::caller(), nt))
            }
            /// Inserts a dimension of size 1 at `axis`.
            #[track_caller]
            pub fn expand_dims(self, axis: usize) -> $p<T> {
                let t = builder::ty(self.id);
                let mut s = t.shape.clone();
                s.insert(axis.min(s.len()), 1);
                $p::from_id(builder::emit(OpKind::ExpandDims { src: self.id, axis }, Loc::caller(), t.with_shape(s)))
            }
            /// Broadcasts to `shape`.
            #[track_caller]
            pub fn broadcast_to(self, shape: impl Shape) -> $p<T> {
                let loc = Loc::caller();
                let shape = shape_dims(&shape, loc);
                $p::from_id(builder::broadcast_to(self.id, &shape, loc))
            }
        }
    )*};
}
ptr_impls!(Ptr, MutPtr);

macro_rules! block_ptr_impls {
    ($($p:ident),*) => {$(
        impl<T: Elem> $p<T> {
            /// The same block pointer moved by `offsets` elements along each dimension.
            #[track_caller]
            pub fn advance(self, offsets: impl IndexList) -> $p<T> {
                let loc = Loc::caller();
                let offsets = offsets.values(loc);
                let t = builder::ty(self.id);
                $p::from_id(builder::emit(OpKind::AdvanceBlockPtr { ptr: self.id, offsets }, loc, t))
            }
        }
    )*};
}
block_ptr_impls!(BlockPtr, MutBlockPtr);
