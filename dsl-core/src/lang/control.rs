//! What `#[kernel]` rewrites control flow and comparisons into. Not called by hand.
//!
//! A runtime `for` loop becomes [`for_range`]: the variables the loop assigns are carried through it
//! (passed in, yielded by the body, returned). An `if` becomes [`if_else`]: with a constexpr `bool`
//! condition it runs one branch while tracing; with a `Tile<bool>` scalar it emits an IR `if`.

use super::*;
use crate::ir::{CmpOp, OpKind};
use crate::types::shape_str;

/// Values that can be carried through a runtime loop or `if`: tile handles and tuples of them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be assigned inside a runtime `for` or `if`",
    label = "assigned inside a runtime loop or branch",
    note = "only tiles (`Tile<T>`, pointers, block pointers) can change inside runtime control flow; \
            a Rust value such as a literal integer cannot: make it a tile, e.g. `let mut x = full::<i32>((), 0);`"
)]
pub trait Carry: Sized {
    fn flatten(&self, out: &mut Vec<ValueId>);
    fn rebuild(ids: &mut std::slice::Iter<'_, ValueId>) -> Self;
}

macro_rules! carry_handle {
    ($($h:ident),*) => {$(
        impl<T: Elem> Carry for $h<T> {
            fn flatten(&self, out: &mut Vec<ValueId>) { out.push(self.id) }
            fn rebuild(ids: &mut std::slice::Iter<'_, ValueId>) -> Self {
                $h::from_id(*ids.next().expect("carried value"))
            }
        }
    )*};
}
carry_handle!(Tile, Ptr, MutPtr, BlockPtr, MutBlockPtr);

macro_rules! carry_tuple {
    ($(($($n:ident),*)),*) => {$(
        #[allow(non_snake_case, unused_variables)]
        impl<$($n: Carry),*> Carry for ($($n,)*) {
            fn flatten(&self, out: &mut Vec<ValueId>) {
                let ($($n,)*) = self;
                $($n.flatten(out);)*
            }
            fn rebuild(ids: &mut std::slice::Iter<'_, ValueId>) -> Self {
                ($($n::rebuild(ids),)*)
            }
        }
    )*};
}
carry_tuple!((), (A), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, E), (A, B, C, D, E, F), (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H), (A, B, C, D, E, F, G, H, I), (A, B, C, D, E, F, G, H, I, J),
    (A, B, C, D, E, F, G, H, I, J, K), (A, B, C, D, E, F, G, H, I, J, K, L));

fn flat<V: Carry>(v: &V) -> Vec<ValueId> {
    let mut out = vec![];
    v.flatten(&mut out);
    out
}

/// Checks that each carried value kept its type; names the variable that changed.
fn check_carried(before: &[ValueId], after: &[ValueId], names: &[&str], what: &str, loc: Loc) -> bool {
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        let (tb, ta) = (builder::ty(*b), builder::ty(*a));
        if tb != ta {
            let name = names.get(i).copied().unwrap_or("a value");
            let detail = if tb.elem == ta.elem {
                format!("shape {} to {}", shape_str(&tb.shape), shape_str(&ta.shape))
            } else {
                format!("{tb} to {ta}")
            };
            builder::error(loc, format!("`{name}` changes from {detail} inside {what}; a value assigned in {what} must keep its type and shape"));
            return false;
        }
    }
    true
}

/// `for iv in (lo..hi).step_by(step)`, carrying `init` (the variables named `names`) through `body`.
/// `iv` takes `lo, lo + step, ...` while below `hi`; `step` must be positive.
#[track_caller]
pub fn for_range<V: Carry>(
    lo: impl IntoTile<i32>,
    hi: impl IntoTile<i32>,
    step: impl IntoTile<i32>,
    init: V,
    names: &[&str],
    body: impl FnOnce(Tile<i32>, V) -> V,
) -> V {
    let loc = Loc::caller();
    let (lo, hi, step) = (lo.into_value(loc), hi.into_value(loc), step.into_value(loc));
    for (v, what) in [(lo, "start"), (hi, "end"), (step, "step")] {
        let s = builder::ty(v).shape;
        if !s.is_empty() {
            builder::error(loc, format!("a loop's {what} must be a scalar, got a tile of shape {}", shape_str(&s)));
        }
    }
    let init_ids = flat(&init);
    let mut arg_types = vec![Type::scalar(DType::I32)];
    arg_types.extend(init_ids.iter().map(|v| builder::ty(*v)));
    let args = builder::open_block(arg_types);
    let carried = V::rebuild(&mut args[1..].iter());
    let next = body(Tile::from_id(args[0]), carried);
    let next_ids = flat(&next);
    check_carried(&init_ids, &next_ids, names, "this loop", loc);
    let body = builder::close_block(next_ids, loc);
    let fallback: Vec<Type> = init_ids.iter().map(|v| builder::ty(*v)).collect();
    let n = fallback.len();
    let results = builder::emit_n(
        OpKind::For { lo, hi, step, init: init_ids, body },
        loc,
        fallback.first().cloned().unwrap_or(Type::scalar(DType::I32)),
        n,
    );
    V::rebuild(&mut results.iter())
}

/// What an `if` carries: anything for a constexpr `bool` condition (the branch runs while tracing), and
/// [`Carry`] values for a runtime `Tile<bool>` condition.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be assigned or produced inside a runtime `if`",
    label = "assigned or produced inside a runtime branch",
    note = "only tiles (`Tile<T>`, pointers, block pointers) can change inside runtime control flow; \
            a Rust value such as a literal integer cannot: make it a tile, e.g. `let mut x = full::<i32>((), 0);`"
)]
pub trait Branch<C>: Sized {
    #[doc(hidden)]
    fn flatten_b(&self, out: &mut Vec<ValueId>);
    #[doc(hidden)]
    fn rebuild_b(ids: &mut std::slice::Iter<'_, ValueId>) -> Self;
}
impl<T> Branch<bool> for T {
    fn flatten_b(&self, _out: &mut Vec<ValueId>) {}
    fn rebuild_b(_ids: &mut std::slice::Iter<'_, ValueId>) -> Self {
        unreachable!("a constexpr `if` runs one branch and carries nothing")
    }
}
impl<T: Carry> Branch<Tile<bool>> for T {
    fn flatten_b(&self, out: &mut Vec<ValueId>) {
        self.flatten(out)
    }
    fn rebuild_b(ids: &mut std::slice::Iter<'_, ValueId>) -> Self {
        T::rebuild(ids)
    }
}

/// An `if` condition: a constexpr `bool` (resolved while tracing) or a `Tile<bool>` scalar (runtime).
#[diagnostic::on_unimplemented(message = "`{Self}` cannot be an `if` condition", note = "conditions are `bool` constexprs or `Tile<bool>` scalars (e.g. `x < n`)")]
pub trait Condition: Sized {
    /// `bool` for a constexpr condition, `Tile<bool>` for a runtime one: what the branches must carry.
    #[doc(hidden)]
    type Mode;
    #[doc(hidden)]
    fn branch<V: Branch<Self::Mode>, R: Branch<Self::Mode>>(
        self,
        vals: V,
        names: &[&str],
        then: impl FnOnce(V) -> (R, V),
        els: impl FnOnce(V) -> (R, V),
        loc: Loc,
    ) -> (R, V);
}

impl Condition for bool {
    type Mode = bool;
    fn branch<V: Branch<bool>, R: Branch<bool>>(
        self,
        vals: V,
        _names: &[&str],
        then: impl FnOnce(V) -> (R, V),
        els: impl FnOnce(V) -> (R, V),
        _loc: Loc,
    ) -> (R, V) {
        if self {
            then(vals)
        } else {
            els(vals)
        }
    }
}

impl Condition for Tile<bool> {
    type Mode = Tile<bool>;
    fn branch<V: Branch<Tile<bool>>, R: Branch<Tile<bool>>>(
        self,
        vals: V,
        names: &[&str],
        then: impl FnOnce(V) -> (R, V),
        els: impl FnOnce(V) -> (R, V),
        loc: Loc,
    ) -> (R, V) {
        let s = self.shape();
        if !s.is_empty() {
            builder::error(loc, format!("an `if` condition must be a scalar, got a tile of shape {}; use where_ for elementwise choice", shape_str(&s)));
        }
        let mut before = vec![];
        vals.flatten_b(&mut before);
        let vals2 = V::rebuild_b(&mut before.iter());
        let (then_block, then_ids) = run_branch(then, vals, &before, names, loc);
        let (else_block, _) = run_branch(els, vals2, &before, names, loc);
        let fallback: Vec<Type> = then_ids.iter().map(|v| builder::ty(*v)).collect();
        let n = fallback.len();
        let results = builder::emit_n(
            OpKind::If { cond: self.id, then_block, else_block },
            loc,
            fallback.first().cloned().unwrap_or(Type::scalar(DType::I32)),
            n,
        );
        let mut it = results.iter();
        let r = R::rebuild_b(&mut it);
        let v = V::rebuild_b(&mut it);
        (r, v)
    }
}

/// Traces one branch of a runtime `if` into a block yielding its value and the carried variables.
fn run_branch<V: Branch<Tile<bool>>, R: Branch<Tile<bool>>>(
    f: impl FnOnce(V) -> (R, V),
    vals: V,
    before: &[ValueId],
    names: &[&str],
    loc: Loc,
) -> (crate::ir::Block, Vec<ValueId>) {
    builder::open_block(vec![]);
    let (r, v) = f(vals);
    let mut ids = vec![];
    r.flatten_b(&mut ids);
    let mut vids = vec![];
    v.flatten_b(&mut vids);
    check_carried(before, &vids, names, "this `if`", loc);
    ids.extend(vids);
    (builder::close_block(ids.clone(), loc), ids)
}

/// `if cond { then } else { els }`, carrying `vals` (the variables named `names`) through both branches;
/// each branch returns its value and the carried variables.
#[track_caller]
pub fn if_else<C: Condition, V: Branch<C::Mode>, R: Branch<C::Mode>>(
    cond: C,
    vals: V,
    names: &[&str],
    then: impl FnOnce(V) -> (R, V),
    els: impl FnOnce(V) -> (R, V),
) -> (R, V) {
    cond.branch(vals, names, then, els, Loc::caller())
}

/// Comparison as `#[kernel]` writes `a < b` etc.: on tiles it emits IR, on two constexprs it computes.
#[diagnostic::on_unimplemented(message = "cannot compare `{Self}` with `{B}`")]
pub trait Compare<B> {
    type Out;
    #[doc(hidden)]
    fn compare(self, op: CmpOp, b: B, loc: Loc) -> Self::Out;
}

impl<T: Elem, R: Operand> Compare<R> for Tile<T>
where
    T: CmpPromote<R::Kind>,
{
    type Out = Tile<bool>;
    fn compare(self, op: CmpOp, b: R, loc: Loc) -> Tile<bool> {
        super::ops::compare_at(op, self, b, loc)
    }
}

macro_rules! const_compare {
    ($($t:ty),*) => {$(
        impl Compare<$t> for $t {
            type Out = bool;
            fn compare(self, op: CmpOp, b: $t, _loc: Loc) -> bool {
                match op {
                    CmpOp::Lt => self < b,
                    CmpOp::Le => self <= b,
                    CmpOp::Gt => self > b,
                    CmpOp::Ge => self >= b,
                    CmpOp::Eq => self == b,
                    CmpOp::Ne => self != b,
                }
            }
        }
        impl<T: Elem> Compare<Tile<T>> for $t
        where
            T: CmpPromote<<$t as Operand>::Kind>,
        {
            type Out = Tile<bool>;
            fn compare(self, op: CmpOp, b: Tile<T>, loc: Loc) -> Tile<bool> {
                let flipped = match op {
                    CmpOp::Lt => CmpOp::Gt,
                    CmpOp::Le => CmpOp::Ge,
                    CmpOp::Gt => CmpOp::Lt,
                    CmpOp::Ge => CmpOp::Le,
                    o => o,
                };
                b.compare(flipped, self, loc)
            }
        }
    )*};
}
const_compare!(i32, i64, u32, usize, f32, f64, bool);

#[track_caller]
pub fn __cmp<A: Compare<B>, B>(op: CmpOp, a: A, b: B) -> A::Out {
    a.compare(op, b, Loc::caller())
}

/// `&&` and `||` as `#[kernel]` writes them: logical ops on bool tiles, or on constexpr bools.
#[diagnostic::on_unimplemented(message = "`&&` and `||` take bools or `Tile<bool>`s, got `{Self}` and `{B}`")]
pub trait Logic<B> {
    type Out;
    #[doc(hidden)]
    fn logic(self, and: bool, b: B, loc: Loc) -> Self::Out;
}
impl Logic<bool> for bool {
    type Out = bool;
    fn logic(self, and: bool, b: bool, _loc: Loc) -> bool {
        if and {
            self && b
        } else {
            self || b
        }
    }
}
impl<B: IntoMask> Logic<B> for Tile<bool> {
    type Out = Tile<bool>;
    fn logic(self, and: bool, b: B, loc: Loc) -> Tile<bool> {
        let op = if and { crate::ir::BinaryOp::And } else { crate::ir::BinaryOp::Or };
        let (x, y) = builder::broadcast_pair(self.id, b.mask_value(loc), "logical op", loc);
        let shape = builder::ty(x).shape;
        emit_tile(OpKind::Binary { op, lhs: x, rhs: y }, loc, shape)
    }
}
impl Logic<Tile<bool>> for bool {
    type Out = Tile<bool>;
    fn logic(self, and: bool, b: Tile<bool>, loc: Loc) -> Tile<bool> {
        b.logic(and, self, loc)
    }
}

#[track_caller]
pub fn __logic<A: Logic<B>, B>(and: bool, a: A, b: B) -> A::Out {
    a.logic(and, b, Loc::caller())
}

/// A short name for a type parameter in kernel names (`f16`, `F8E4M3`).
pub fn __type_label<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full).to_string()
}
