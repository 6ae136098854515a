//! The typing rule of every op: given the operand types, the result types, or why the op is ill-typed.
//!
//! The builder calls [`infer`] to type each op it creates (turning an `Err` into an error at the user's
//! source line), and the verifier calls it again to check a finished kernel, so the two cannot disagree.

use super::{AtomicOp, BinaryOp, Block, CmpOp, Const, OpKind, Padding, ReduceOp, UnaryOp, ValueId};
use crate::types::{shape_str, DType, ElemTy, Type};

/// The largest number of elements one tile may have (as in Triton).
pub const MAX_TILE_ELEMS: usize = 1 << 20;

/// Result types of an op whose operand types `ty` gives.
pub fn infer(kind: &OpKind, ty: &dyn Fn(ValueId) -> Type) -> Result<Vec<Type>, String> {
    use OpKind::*;
    let one = |t: Type| Ok(vec![t]);
    match kind {
        ProgramId { axis } | NumPrograms { axis } => {
            if *axis > 2 {
                return Err(format!("grid axis must be 0, 1 or 2, got {axis}"));
            }
            one(Type::scalar(DType::I32))
        }
        Arange { start, end } => {
            if end <= start {
                return Err(format!("arange({start}, {end}) is empty: end must be greater than start"));
            }
            let n = (*end as i64 - *start as i64) as usize;
            if !n.is_power_of_two() {
                return Err(format!("arange({start}, {end}) has {n} elements; the length must be a power of two"));
            }
            check_numel(&[n])?;
            one(Type::tile(DType::I32, vec![n]))
        }
        Constant { value, dtype } => {
            let ok = match value {
                Const::F(_) => dtype.is_float(),
                Const::I(_) => dtype.is_int(),
                Const::B(_) => dtype.is_bool(),
            };
            if !ok {
                return Err(format!("constant {value:?} cannot have type {dtype}"));
            }
            one(Type::scalar(*dtype))
        }
        Broadcast { src, shape } => {
            let t = ty(*src);
            if matches!(t.elem, ElemTy::BlockPtr { .. }) {
                return Err("a block pointer cannot be broadcast".into());
            }
            check_numel(shape)?;
            if !broadcastable(&t.shape, shape) {
                return Err(format!("cannot broadcast shape {} to {}", shape_str(&t.shape), shape_str(shape)));
            }
            one(t.with_shape(shape.clone()))
        }
        Reshape { src, shape } => {
            let t = ty(*src);
            let n: usize = shape.iter().product();
            if n != t.numel() {
                return Err(format!(
                    "cannot reshape {} ({} elements) to {} ({n} elements)",
                    shape_str(&t.shape),
                    t.numel(),
                    shape_str(shape)
                ));
            }
            not_block_ptr(&t)?;
            one(t.with_shape(shape.clone()))
        }
        ExpandDims { src, axis } => {
            let t = ty(*src);
            not_block_ptr(&t)?;
            if *axis > t.shape.len() {
                return Err(format!("expand_dims axis {axis} is out of range for a tile of rank {}", t.shape.len()));
            }
            let mut s = t.shape.clone();
            s.insert(*axis, 1);
            one(t.with_shape(s))
        }
        Permute { src, perm } => {
            let t = ty(*src);
            not_block_ptr(&t)?;
            let mut seen = vec![false; t.shape.len()];
            if perm.len() != t.shape.len() || perm.iter().any(|&p| p >= seen.len() || std::mem::replace(&mut seen[p], true)) {
                return Err(format!("{perm:?} is not a permutation of the {} dims of {}", t.shape.len(), shape_str(&t.shape)));
            }
            one(t.with_shape(perm.iter().map(|&p| t.shape[p]).collect()))
        }
        Cast { src, to } => {
            let t = ty(*src);
            scalar_of(&t, "cast")?;
            one(t.with_elem(ElemTy::Scalar(*to)))
        }
        Bitcast { src, to } => {
            let t = ty(*src);
            let d = scalar_of(&t, "bitcast")?;
            if d.bits() != to.bits() {
                return Err(format!("bitcast needs types of one width: {d} has {} bits, {to} has {}", d.bits(), to.bits()));
            }
            one(t.with_elem(ElemTy::Scalar(*to)))
        }
        Unary { op, src } => {
            let t = ty(*src);
            let d = scalar_of(&t, "a unary op")?;
            let ok = match op {
                UnaryOp::Neg | UnaryOp::Abs => is_arith(d),
                UnaryOp::Not => d.is_int() || d.is_bool(),
                _ => is_arith(d) && d.is_float(),
            };
            if !ok {
                return Err(format!("{op:?} does not take {d}{}", fp8_hint(d)));
            }
            one(t)
        }
        Binary { op, lhs, rhs } => {
            let (a, b) = (ty(*lhs), ty(*rhs));
            same_type(&a, &b, &format!("{op:?}"))?;
            let d = scalar_of(&a, "a binary op")?;
            let ok = match op {
                BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => d.is_int() || d.is_bool(),
                BinaryOp::Shl | BinaryOp::Shr => d.is_int(),
                _ => is_arith(d),
            };
            if !ok {
                return Err(format!("{op:?} does not take {d}{}", fp8_hint(d)));
            }
            one(a)
        }
        Compare { op, lhs, rhs } => {
            let (a, b) = (ty(*lhs), ty(*rhs));
            same_type(&a, &b, "a comparison")?;
            let d = scalar_of(&a, "a comparison")?;
            let ok = is_arith(d) || (d.is_bool() && matches!(op, CmpOp::Eq | CmpOp::Ne));
            if !ok {
                return Err(format!("{op:?} does not take {d}{}", fp8_hint(d)));
            }
            one(a.with_elem(ElemTy::Scalar(DType::Bool)))
        }
        Select { cond, on_true, on_false } => {
            let (c, a, b) = (ty(*cond), ty(*on_true), ty(*on_false));
            same_type(&a, &b, "where")?;
            if c.elem != ElemTy::Scalar(DType::Bool) || c.shape != a.shape {
                return Err(format!("the condition of where must be bool{}, got {c}", shape_str(&a.shape)));
            }
            not_block_ptr(&a)?;
            one(a)
        }
        Fma { a, b, c } => {
            let (ta, tb, tc) = (ty(*a), ty(*b), ty(*c));
            same_type(&ta, &tb, "fma")?;
            same_type(&ta, &tc, "fma")?;
            let d = scalar_of(&ta, "fma")?;
            if !(d.is_float() && is_arith(d)) {
                return Err(format!("fma takes f32, f16 or bf16, got {d}"));
            }
            one(ta)
        }
        Reduce { op, src, axis, keep_dims } => {
            let t = ty(*src);
            let d = scalar_of(&t, "a reduction")?;
            if !is_arith(d) {
                return Err(format!("cannot reduce {d}{}", fp8_hint(d)));
            }
            if *axis >= t.shape.len() {
                return Err(format!("reduction axis {axis} is out of range for shape {}", shape_str(&t.shape)));
            }
            let mut s = t.shape.clone();
            if *keep_dims {
                s[*axis] = 1;
            } else {
                s.remove(*axis);
            }
            let out = match op {
                ReduceOp::ArgMax | ReduceOp::ArgMin => DType::I32,
                _ => d,
            };
            one(Type::tile(out, s))
        }
        Dot { a, b, acc } => {
            let (ta, tb, tc) = (ty(*a), ty(*b), ty(*acc));
            let (da, db) = (scalar_of(&ta, "dot")?, scalar_of(&tb, "dot")?);
            if ta.shape.len() != 2 || tb.shape.len() != 2 {
                return Err(format!(
                    "dot takes 2-D tiles, got {} and {}",
                    shape_str(&ta.shape),
                    shape_str(&tb.shape)
                ));
            }
            let (m, k, k2, n) = (ta.shape[0], ta.shape[1], tb.shape[0], tb.shape[1]);
            if k != k2 {
                return Err(format!(
                    "dot of {} and {}: the inner dimensions differ ({k} vs {k2})",
                    shape_str(&ta.shape),
                    shape_str(&tb.shape)
                ));
            }
            let pair_ok = (da == db && matches!(da, DType::F32 | DType::F16 | DType::BF16))
                || (da.is_fp8() && db.is_fp8());
            if !pair_ok {
                return Err(format!(
                    "dot takes f32 x f32, f16 x f16, bf16 x bf16 or fp8 x fp8 (e4m3/e5m2, mixed allowed), got {da} x {db}"
                ));
            }
            if tc != Type::tile(DType::F32, vec![m, n]) {
                return Err(format!("the dot accumulator must be f32[{m}x{n}], got {tc}"));
            }
            one(tc)
        }
        AddPtr { ptr, offset } => {
            let (p, o) = (ty(*ptr), ty(*offset));
            if !matches!(p.elem, ElemTy::Ptr { .. }) {
                return Err(format!("pointer arithmetic needs a pointer, got {p}"));
            }
            match o.dtype() {
                Some(d) if d.is_int() => {}
                _ => return Err(format!("a pointer offset must be an integer tile, got {o}")),
            }
            if p.shape != o.shape {
                return Err(format!("pointer shape {} and offset shape {} differ", shape_str(&p.shape), shape_str(&o.shape)));
            }
            one(p)
        }
        PtrCast { ptr, to } => {
            let p = ty(*ptr);
            match p.elem {
                ElemTy::Ptr { mutable, .. } => one(p.with_elem(ElemTy::Ptr { pointee: *to, mutable })),
                _ => Err(format!("ptr cast needs a pointer, got {p}")),
            }
        }
        Load { ptr, mask, other, .. } => {
            let p = ty(*ptr);
            let pointee = pointee_of(&p, false, "load")?;
            check_mask(*mask, &p.shape, ty)?;
            if let Some(o) = other {
                if mask.is_none() {
                    return Err("`other` is only meaningful with a mask".into());
                }
                let t = ty(*o);
                if t != Type::tile(pointee, p.shape.clone()) {
                    return Err(format!("load's `other` must be {pointee}{}, got {t}", shape_str(&p.shape)));
                }
            }
            one(Type::tile(pointee, p.shape))
        }
        Store { ptr, value, mask, .. } => {
            let p = ty(*ptr);
            let pointee = pointee_of(&p, true, "store")?;
            check_mask(*mask, &p.shape, ty)?;
            let v = ty(*value);
            if v != Type::tile(pointee, p.shape.clone()) {
                return Err(format!("store of {v} through {p}: the value must be {pointee}{}", shape_str(&p.shape)));
            }
            Ok(vec![])
        }
        Atomic { op, ptr, value, mask } => {
            let p = ty(*ptr);
            let pointee = pointee_of(&p, true, "an atomic")?;
            check_mask(*mask, &p.shape, ty)?;
            let v = ty(*value);
            if v != Type::tile(pointee, p.shape.clone()) {
                return Err(format!("atomic value {v} does not match pointer {p}"));
            }
            let allowed: &[DType] = match op {
                AtomicOp::Add => &[DType::F32, DType::F16, DType::BF16, DType::I32, DType::U32, DType::I64],
                AtomicOp::Max | AtomicOp::Min => &[DType::F32, DType::I32, DType::U32, DType::I64],
                AtomicOp::Xchg => &[DType::F32, DType::I32, DType::U32, DType::I64],
            };
            if !allowed.contains(&pointee) {
                return Err(format!("atomic {op:?} does not take {pointee}; it takes {allowed:?}"));
            }
            one(v)
        }
        AtomicCas { ptr, cmp, value, mask } => {
            let p = ty(*ptr);
            let pointee = pointee_of(&p, true, "atomic_cas")?;
            check_mask(*mask, &p.shape, ty)?;
            let want = Type::tile(pointee, p.shape.clone());
            if ty(*cmp) != want || ty(*value) != want {
                return Err(format!("atomic_cas operands must be {want}"));
            }
            if !matches!(pointee, DType::I32 | DType::U32 | DType::I64) {
                return Err(format!("atomic_cas takes i32, u32 or i64, got {pointee}"));
            }
            one(want)
        }
        MakeBlockPtr { base, shape, strides, offsets, block_shape, order } => {
            let b = ty(*base);
            let (pointee, mutable) = match b.elem {
                ElemTy::Ptr { pointee, mutable } if b.shape.is_empty() => (pointee, mutable),
                _ => return Err(format!("a block pointer's base must be a scalar pointer, got {b}")),
            };
            let r = block_shape.len();
            if r == 0 || shape.len() != r || strides.len() != r || offsets.len() != r || order.len() != r {
                return Err(format!(
                    "make_block_ptr needs shape, strides, offsets, block shape and order of one rank; got {}, {}, {}, {}, {}",
                    shape.len(),
                    strides.len(),
                    offsets.len(),
                    r,
                    order.len()
                ));
            }
            for v in shape.iter().chain(strides).chain(offsets) {
                scalar_int(&ty(*v), "make_block_ptr")?;
            }
            check_numel(block_shape)?;
            let mut sorted = order.clone();
            sorted.sort();
            if sorted != (0..r).collect::<Vec<_>>() {
                return Err(format!("order {order:?} is not a permutation of 0..{r}"));
            }
            one(Type::new(ElemTy::BlockPtr { pointee, mutable, block_shape: block_shape.clone() }, vec![]))
        }
        AdvanceBlockPtr { ptr, offsets } => {
            let p = ty(*ptr);
            match &p.elem {
                ElemTy::BlockPtr { block_shape, .. } if block_shape.len() == offsets.len() => {}
                _ => return Err(format!("advance needs a block pointer and one offset per dim, got {p}")),
            }
            for v in offsets {
                scalar_int(&ty(*v), "advance")?;
            }
            one(p)
        }
        LoadBlock { ptr, padding, .. } => {
            let p = ty(*ptr);
            match p.elem {
                ElemTy::BlockPtr { pointee, block_shape, .. } => {
                    if *padding == Padding::Nan && !pointee.is_float() {
                        return Err(format!("NaN padding needs a float block, got {pointee}"));
                    }
                    one(Type::tile(pointee, block_shape))
                }
                _ => Err(format!("load_block needs a block pointer, got {p}")),
            }
        }
        StoreBlock { ptr, value, .. } => {
            let p = ty(*ptr);
            match p.elem {
                ElemTy::BlockPtr { pointee, mutable, block_shape } => {
                    if !mutable {
                        return Err("cannot store through a read-only block pointer".into());
                    }
                    let v = ty(*value);
                    if v != Type::tile(pointee, block_shape.clone()) {
                        return Err(format!("store_block of {v}: the value must be {pointee}{}", shape_str(&block_shape)));
                    }
                    Ok(vec![])
                }
                _ => Err(format!("store_block needs a block pointer, got {p}")),
            }
        }
        For { lo, hi, step, init, .. } => {
            let (a, b, c) = (ty(*lo), ty(*hi), ty(*step));
            let d = scalar_int(&a, "a for loop's bounds")?;
            if b != a || c != a {
                return Err(format!("a for loop's start, end and step must have one integer type, got {a}, {b}, {c}"));
            }
            let _ = d;
            Ok(init.iter().map(|v| ty(*v)).collect())
        }
        If { cond, then_block, else_block } => {
            let c = ty(*cond);
            if c != Type::scalar(DType::Bool) {
                return Err(format!("an `if` condition must be a bool scalar, got {c}"));
            }
            let t = yield_types(then_block, ty)?;
            let e = yield_types(else_block, ty)?;
            if t != e {
                let names = |v: &[Type]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
                return Err(format!(
                    "the branches of `if` produce different types: ({}) vs ({})",
                    names(&t),
                    names(&e)
                ));
            }
            Ok(t)
        }
        PrefetchL2 { ptr, mask } => {
            let p = ty(*ptr);
            pointee_of(&p, false, "prefetch_l2")?;
            check_mask(Some(*mask), &p.shape, ty)?;
            Ok(vec![])
        }
        GridDepWait | GridDepLaunch | Fence => Ok(vec![]),
        Yield { .. } => Ok(vec![]),
        Print { .. } => Ok(vec![]),
        Assert { cond, .. } => {
            let c = ty(*cond);
            if c.elem != ElemTy::Scalar(DType::Bool) {
                return Err(format!("device_assert needs a bool condition, got {c}"));
            }
            Ok(vec![])
        }
    }
}

/// The types a block yields (its last op must be `Yield`).
pub fn yield_types(block: &Block, ty: &dyn Fn(ValueId) -> Type) -> Result<Vec<Type>, String> {
    match block.ops.last().map(|o| &o.kind) {
        Some(OpKind::Yield { values }) => Ok(values.iter().map(|v| ty(*v)).collect()),
        _ => Err("a nested block must end with yield".into()),
    }
}

/// Numpy/Triton broadcasting: align right; each source dim equals the target's or is 1.
pub fn broadcastable(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len() && from.iter().rev().zip(to.iter().rev()).all(|(&f, &t)| f == t || f == 1)
}

/// The shape two operands broadcast to, if any.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i < n - a.len() { 1 } else { a[i - (n - a.len())] };
        let db = if i < n - b.len() { 1 } else { b[i - (n - b.len())] };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

fn check_numel(shape: &[usize]) -> Result<(), String> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) if n <= MAX_TILE_ELEMS => Ok(()),
        _ => Err(format!("tile shape {} has more than {MAX_TILE_ELEMS} elements", shape_str(shape))),
    }
}

fn is_arith(d: DType) -> bool {
    (d.is_float() && !d.is_fp8()) || d.is_int()
}

fn fp8_hint(d: DType) -> &'static str {
    if d.is_fp8() {
        "; fp8 tiles only load, store, cast and feed dot: convert with .to::<f32>() first"
    } else {
        ""
    }
}

fn scalar_of(t: &Type, what: &str) -> Result<DType, String> {
    t.dtype().ok_or_else(|| format!("{what} needs a numeric tile, got {t}"))
}

fn scalar_int(t: &Type, what: &str) -> Result<DType, String> {
    match t.dtype() {
        Some(d) if d.is_int() && t.shape.is_empty() => Ok(d),
        _ => Err(format!("{what} needs an integer scalar, got {t}")),
    }
}

fn not_block_ptr(t: &Type) -> Result<(), String> {
    if matches!(t.elem, ElemTy::BlockPtr { .. }) {
        Err("block pointers cannot be reshaped or selected".into())
    } else {
        Ok(())
    }
}

fn same_type(a: &Type, b: &Type, what: &str) -> Result<(), String> {
    if a != b {
        Err(format!("{what} needs operands of one type and shape, got {a} and {b}"))
    } else {
        Ok(())
    }
}

fn pointee_of(p: &Type, need_mut: bool, what: &str) -> Result<DType, String> {
    match p.elem {
        ElemTy::Ptr { pointee, mutable } => {
            if need_mut && !mutable {
                Err(format!("{what} through a read-only pointer {p}"))
            } else {
                Ok(pointee)
            }
        }
        _ => Err(format!("{what} needs a pointer tile, got {p}")),
    }
}

fn check_mask(mask: Option<ValueId>, shape: &[usize], ty: &dyn Fn(ValueId) -> Type) -> Result<(), String> {
    if let Some(m) = mask {
        let t = ty(m);
        if t != Type::tile(DType::Bool, shape.to_vec()) {
            return Err(format!("the mask must be bool{}, got {t}", shape_str(shape)));
        }
    }
    Ok(())
}
