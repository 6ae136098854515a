//! The verifier: a finished kernel is well-formed SSA and every op is well-typed, so backends can trust it.

use super::infer::{infer, yield_types};
use super::{Block, Kernel, Loc, Op, OpKind, ValueId};
use crate::types::Type;
use std::collections::HashSet;

/// Why a kernel failed verification, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyError {
    pub loc: Loc,
    pub message: String,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: invalid IR: {}", self.loc, self.message)
    }
}

/// Checks SSA form (each value defined once, before use, in an enclosing scope), the typing rule of every
/// op, block arguments and yields.
pub fn verify(k: &Kernel) -> Result<(), VerifyError> {
    let mut v = Verifier { k, defined: HashSet::new(), scopes: vec![] };
    v.scopes.push(vec![]);
    for p in &k.params {
        v.define(p.value, Loc::UNKNOWN)?;
    }
    v.block(&k.body, false)?;
    grid_dep_rules(&k.body)
}

/// `gdc_wait` (see `lang::gdc_wait`): at most once, at the top level, and after no write, since the
/// kernels it waits for may still read or write whatever this one writes before it.
pub fn grid_dep_rules(body: &Block) -> Result<(), VerifyError> {
    /// Where `op`, or an op nested in it, first does what `hit` matches.
    fn find(op: &Op, hit: &dyn Fn(&OpKind) -> bool) -> Option<Loc> {
        if hit(&op.kind) {
            return Some(op.loc);
        }
        op.kind.blocks().into_iter().flat_map(|b| &b.ops).find_map(|o| find(o, hit))
    }
    let is_write = |k: &OpKind| matches!(k, OpKind::Store { .. } | OpKind::Atomic { .. } | OpKind::AtomicCas { .. } | OpKind::StoreBlock { .. });
    let is_wait = |k: &OpKind| matches!(k, OpKind::GridDepWait);
    let err = |loc, message: String| Err(VerifyError { loc, message });
    let (mut waited, mut wrote): (Option<Loc>, Option<Loc>) = (None, None);
    for op in &body.ops {
        if is_wait(&op.kind) {
            if let Some(first) = waited {
                return err(op.loc, format!("gdc_wait appears twice (first at {first})"));
            }
            if let Some(w) = wrote {
                return err(
                    op.loc,
                    format!("gdc_wait after a write to memory (at {w}): the kernels it waits for may still use that memory; write after gdc_wait"),
                );
            }
            waited = Some(op.loc);
        } else if let Some(loc) = op.kind.blocks().into_iter().flat_map(|b| &b.ops).find_map(|o| find(o, &is_wait)) {
            return err(loc, "gdc_wait must be at the top level of the kernel, not in a loop or branch".into());
        }
        wrote = wrote.or_else(|| find(op, &is_write));
    }
    Ok(())
}

struct Verifier<'a> {
    k: &'a Kernel,
    /// Every value defined so far anywhere (to catch double definitions).
    defined: HashSet<ValueId>,
    /// Values visible in each open scope.
    scopes: Vec<Vec<ValueId>>,
}

impl Verifier<'_> {
    fn err<T>(&self, loc: Loc, message: String) -> Result<T, VerifyError> {
        Err(VerifyError { loc, message })
    }

    fn define(&mut self, v: ValueId, loc: Loc) -> Result<(), VerifyError> {
        if v.0 as usize >= self.k.types.len() {
            return self.err(loc, format!("{v} has no type"));
        }
        if !self.defined.insert(v) {
            return self.err(loc, format!("{v} is defined twice"));
        }
        self.scopes.last_mut().expect("scope").push(v);
        Ok(())
    }

    fn visible(&self, v: ValueId) -> bool {
        self.scopes.iter().any(|s| s.contains(&v))
    }

    fn ty(&self, v: ValueId) -> Type {
        self.k.types[v.0 as usize].clone()
    }

    fn block(&mut self, b: &Block, nested: bool) -> Result<(), VerifyError> {
        for (i, op) in b.ops.iter().enumerate() {
            let is_last = i + 1 == b.ops.len();
            if matches!(op.kind, OpKind::Yield { .. }) && !(nested && is_last) {
                return self.err(op.loc, "yield may only end a loop body or an if branch".into());
            }
            for o in op.kind.operands() {
                if !self.visible(o) {
                    return self.err(op.loc, format!("{o} is used where it is not defined"));
                }
            }
            let ty = |v: ValueId| self.ty(v);
            let want = match infer(&op.kind, &ty) {
                Ok(t) => t,
                Err(e) => return self.err(op.loc, e),
            };
            let got: Vec<Type> = op.results.iter().map(|r| self.ty(*r)).collect();
            if want != got {
                return self.err(op.loc, format!("result types {got:?} should be {want:?}"));
            }
            match &op.kind {
                OpKind::For { lo, init, body, .. } => {
                    self.scopes.push(vec![]);
                    if body.args.len() != init.len() + 1 {
                        return self.err(op.loc, "a loop body takes the induction variable and each carried value".into());
                    }
                    let mut want_args = vec![self.ty(*lo)];
                    want_args.extend(init.iter().map(|v| self.ty(*v)));
                    for (a, w) in body.args.iter().zip(&want_args) {
                        self.define(*a, op.loc)?;
                        if &self.ty(*a) != w {
                            return self.err(op.loc, format!("loop argument {a} should be {w}"));
                        }
                    }
                    self.block(body, true)?;
                    let ty = |v: ValueId| self.ty(v);
                    let yields = yield_types(body, &ty).or_else(|e| self.err(op.loc, e))?;
                    if yields != want_args[1..] {
                        return self.err(op.loc, "a loop body must yield values of its carried types".into());
                    }
                    self.scopes.pop();
                }
                OpKind::If { then_block, else_block, .. } => {
                    for blk in [then_block, else_block] {
                        if !blk.args.is_empty() {
                            return self.err(op.loc, "if branches take no arguments".into());
                        }
                        self.scopes.push(vec![]);
                        self.block(blk, true)?;
                        self.scopes.pop();
                    }
                }
                _ => {}
            }
            for r in &op.results {
                self.define(*r, op.loc)?;
            }
        }
        if nested && !matches!(b.ops.last().map(|o| &o.kind), Some(OpKind::Yield { .. })) {
            return self.err(Loc::UNKNOWN, "a nested block must end with yield".into());
        }
        Ok(())
    }
}
