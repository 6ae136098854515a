//! The tracing builder: a `#[kernel]` function, run with its constexprs bound, calls the language's
//! builtins, and each builtin appends an op here. The first error is kept (with the user's source line)
//! and later ops are ignored, so tracing never panics on a bad kernel and reports the root cause.

use crate::error::CompileError;
use crate::ir::infer::{broadcast_shapes, infer};
use crate::ir::verify::verify;
use crate::ir::{display_name, Block, Const, Kernel, Loc, Op, OpKind, Param, ValueId};
use crate::types::{shape_str, DType, ElemTy, Type};
use std::cell::RefCell;

struct Builder {
    kernel: Kernel,
    /// Open blocks: the kernel body at the bottom, then nested loop bodies and branches.
    blocks: Vec<Block>,
    error: Option<(Loc, String)>,
}

thread_local! {
    static CURRENT: RefCell<Option<Builder>> = const { RefCell::new(None) };
}

fn with<R>(f: impl FnOnce(&mut Builder) -> R) -> R {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        let b = c
            .as_mut()
            .expect("kernel-language builtins can only run while a #[kernel] is being specialized");
        f(b)
    })
}

/// Traces a kernel: creates its parameters, runs `body` on them, verifies the result.
pub fn trace(
    name: &str,
    constexprs: Vec<(String, String)>,
    params: Vec<(String, Type)>,
    body: impl FnOnce(&[ValueId]),
) -> Result<Kernel, CompileError> {
    let display = display_name(name, &constexprs);
    let mut kernel = Kernel { name: name.to_string(), constexprs, params: vec![], types: vec![], body: Block::default() };
    let mut ids = vec![];
    for (pname, ty) in params {
        let id = ValueId(kernel.types.len() as u32);
        kernel.types.push(ty);
        kernel.params.push(Param { name: pname, value: id });
        ids.push(id);
    }
    let nested = CURRENT.with(|c| c.borrow().is_some());
    if nested {
        return Err(CompileError {
            kernel: display,
            loc: Loc::UNKNOWN,
            message: "a kernel cannot be specialized while another is being traced".into(),
        });
    }
    CURRENT.with(|c| *c.borrow_mut() = Some(Builder { kernel, blocks: vec![Block::default()], error: None }));
    // Restore the thread's state even if user code panics inside the trace.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| c.borrow_mut().take());
        }
    }
    let reset = Reset;
    body(&ids);
    let b = CURRENT.with(|c| c.borrow_mut().take()).expect("builder");
    drop(reset);
    if let Some((loc, message)) = b.error {
        return Err(CompileError { kernel: display, loc, message });
    }
    let mut kernel = b.kernel;
    let mut blocks = b.blocks;
    kernel.body = blocks.pop().expect("body block");
    // A misplaced gdc_wait is the user's error (the verifier repeats the check for backends).
    if let Err(e) = crate::ir::verify::grid_dep_rules(&kernel.body) {
        return Err(CompileError { kernel: display, loc: e.loc, message: e.message });
    }
    if let Err(e) = verify(&kernel) {
        return Err(CompileError { kernel: display, loc: e.loc, message: format!("internal error: {}", e.message) });
    }
    Ok(kernel)
}

/// Records an error at `loc` unless one is already recorded.
pub fn error(loc: Loc, message: impl Into<String>) {
    with(|b| {
        if b.error.is_none() {
            b.error = Some((loc, message.into()));
        }
    })
}

/// True once an error was recorded: values built after it are placeholders.
pub fn failed() -> bool {
    with(|b| b.error.is_some())
}

/// The type of a value.
pub fn ty(v: ValueId) -> Type {
    with(|b| b.kernel.types[v.0 as usize].clone())
}

fn new_value(b: &mut Builder, t: Type) -> ValueId {
    let id = ValueId(b.kernel.types.len() as u32);
    b.kernel.types.push(t);
    id
}

/// Appends an op; returns its results. On a typing error, records it and returns `n_fallback`
/// placeholder values of type `fallback` so tracing can continue.
pub fn emit_n(kind: OpKind, loc: Loc, fallback: Type, n_fallback: usize) -> Vec<ValueId> {
    with(|b| {
        let result = if b.error.is_some() {
            Err(String::new())
        } else {
            let types = &b.kernel.types;
            infer(&kind, &|v| types[v.0 as usize].clone())
        };
        match result {
            Ok(tys) => {
                let results: Vec<ValueId> = tys.into_iter().map(|t| new_value(b, t)).collect();
                b.blocks.last_mut().expect("block").ops.push(Op { kind, results: results.clone(), loc });
                results
            }
            Err(msg) => {
                if b.error.is_none() {
                    b.error = Some((loc, msg));
                }
                (0..n_fallback).map(|_| new_value(b, fallback.clone())).collect()
            }
        }
    })
}

/// Appends an op with one result; `fallback` is the placeholder type if the op is ill-typed.
pub fn emit(kind: OpKind, loc: Loc, fallback: Type) -> ValueId {
    emit_n(kind, loc, fallback, 1)[0]
}

/// Appends an op with no results.
pub fn emit_effect(kind: OpKind, loc: Loc) {
    emit_n(kind, loc, Type::scalar(DType::I32), 0);
}

/// Opens a nested block whose arguments have the given types; returns the arguments.
pub fn open_block(arg_types: Vec<Type>) -> Vec<ValueId> {
    with(|b| {
        let args: Vec<ValueId> = arg_types.into_iter().map(|t| new_value(b, t)).collect();
        b.blocks.push(Block { args: args.clone(), ops: vec![] });
        args
    })
}

/// Closes the innermost block, ending it with `yield values`.
pub fn close_block(values: Vec<ValueId>, loc: Loc) -> Block {
    with(|b| {
        let mut blk = b.blocks.pop().expect("open block");
        blk.ops.push(Op { kind: OpKind::Yield { values }, results: vec![], loc });
        blk
    })
}

// ---- semantic helpers shared by the builtins ----

/// A scalar constant of type `d` (the value is converted to `d`'s exact semantics by the interpreter).
pub fn constant(value: Const, d: DType, loc: Loc) -> ValueId {
    let value = match (value, d.is_float(), d.is_int()) {
        (Const::F(x), true, _) => Const::F(crate::scalar::round_float(d, x)),
        (Const::I(i), true, _) => Const::F(crate::scalar::round_float(d, i as f64)),
        (Const::B(b), true, _) => Const::F(b as u8 as f64),
        (c, _, true) => Const::I(crate::scalar::wrap_int(d, match c {
            Const::F(x) => x as i64,
            Const::I(i) => i,
            Const::B(b) => b as i64,
        })),
        (c, _, _) => Const::B(match c {
            Const::F(x) => x != 0.0,
            Const::I(i) => i != 0,
            Const::B(b) => b,
        }),
    };
    emit(OpKind::Constant { value, dtype: d }, loc, Type::scalar(d))
}

/// Converts `v` to element type `d` (no-op if it already is).
pub fn cast_to(v: ValueId, d: DType, loc: Loc) -> ValueId {
    let t = ty(v);
    if t.dtype() == Some(d) {
        return v;
    }
    emit(OpKind::Cast { src: v, to: d }, loc, t.with_elem(ElemTy::Scalar(d)))
}

/// Broadcasts `v` to `shape` (no-op if it already has it).
pub fn broadcast_to(v: ValueId, shape: &[usize], loc: Loc) -> ValueId {
    let t = ty(v);
    if t.shape == shape {
        return v;
    }
    emit(OpKind::Broadcast { src: v, shape: shape.to_vec() }, loc, t.with_shape(shape.to_vec()))
}

/// Broadcasts two values to their common shape, or records an error naming both shapes.
pub fn broadcast_pair(a: ValueId, b: ValueId, what: &str, loc: Loc) -> (ValueId, ValueId) {
    let (sa, sb) = (ty(a).shape, ty(b).shape);
    match broadcast_shapes(&sa, &sb) {
        Some(s) => (broadcast_to(a, &s, loc), broadcast_to(b, &s, loc)),
        None => {
            error(loc, format!("{what}: shapes {} and {} do not broadcast together", shape_str(&sa), shape_str(&sb)));
            (a, a)
        }
    }
}
