//! The stable text form of the IR, used in snapshot tests and error messages.
//!
//! ```text
//! kernel add<BLOCK=64>(%0: ptr<f32>, %1: mut_ptr<f32>, %2: i32) {
//!   %3 = program_id 0 : i32
//!   %4 = arange 0, 64 : i32[64]
//!   ...
//! }
//! ```

use super::{Block, Const, Kernel, Op, OpKind, ValueId};
use std::fmt::Write;

/// Prints `k`; with `locs`, every op line ends with `// file:line:col` of the user's source.
pub fn print(k: &Kernel, locs: bool) -> String {
    let mut s = String::new();
    let cx: Vec<String> = k.constexprs.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let params: Vec<String> = k.params.iter().map(|p| format!("{}: {} /*{}*/", p.value, k.ty(p.value), p.name)).collect();
    let generics = if cx.is_empty() { String::new() } else { format!("<{}>", cx.join(", ")) };
    let _ = writeln!(s, "kernel {}{}({}) {{", k.name, generics, params.join(", "));
    block(k, &k.body, 1, locs, &mut s);
    s.push_str("}\n");
    s
}

fn list(vs: &[ValueId]) -> String {
    vs.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
}

fn block(k: &Kernel, b: &Block, depth: usize, locs: bool, s: &mut String) {
    for op in &b.ops {
        self::op(k, op, depth, locs, s);
    }
}

fn op(k: &Kernel, op: &Op, depth: usize, locs: bool, s: &mut String) {
    use OpKind::*;
    let pad = "  ".repeat(depth);
    let lhs = if op.results.is_empty() { String::new() } else { format!("{} = ", list(&op.results)) };
    let opt = |m: &Option<ValueId>| m.map(|v| v.to_string()).unwrap_or_else(|| "_".into());
    let body = match &op.kind {
        ProgramId { axis } => format!("program_id {axis}"),
        NumPrograms { axis } => format!("num_programs {axis}"),
        Arange { start, end } => format!("arange {start}, {end}"),
        Constant { value, dtype: _ } => match value {
            Const::F(x) => format!("const {x:?}"),
            Const::I(i) => format!("const {i}"),
            Const::B(b) => format!("const {b}"),
        },
        Broadcast { src, shape } => format!("broadcast {src} to {shape:?}"),
        Reshape { src, shape } => format!("reshape {src} to {shape:?}"),
        ExpandDims { src, axis } => format!("expand_dims {src}, axis {axis}"),
        Permute { src, perm } => format!("permute {src}, {perm:?}"),
        Cast { src, to } => format!("cast {src} to {to}"),
        Bitcast { src, to } => format!("bitcast {src} to {to}"),
        Unary { op, src } => format!("{} {src}", format!("{op:?}").to_lowercase()),
        Binary { op, lhs, rhs } => format!("{} {lhs}, {rhs}", format!("{op:?}").to_lowercase()),
        Compare { op, lhs, rhs } => format!("cmp {} {lhs}, {rhs}", format!("{op:?}").to_lowercase()),
        Select { cond, on_true, on_false } => format!("where {cond}, {on_true}, {on_false}"),
        Fma { a, b, c } => format!("fma {a}, {b}, {c}"),
        Reduce { op, src, axis, keep_dims } => {
            format!("reduce {} {src}, axis {axis}{}", format!("{op:?}").to_lowercase(), if *keep_dims { ", keep_dims" } else { "" })
        }
        Dot { a, b, acc } => format!("dot {a}, {b}, {acc}"),
        AddPtr { ptr, offset } => format!("addptr {ptr}, {offset}"),
        PtrCast { ptr, to } => format!("ptr_cast {ptr} to {to}"),
        Load { ptr, mask, other, hints } => format!("load {ptr}, mask {}, other {}{}", opt(mask), opt(other), hint_str(hints)),
        Store { ptr, value, mask, hints } => format!("store {ptr}, {value}, mask {}{}", opt(mask), hint_str(hints)),
        Atomic { op, ptr, value, mask } => {
            format!("atomic_{} {ptr}, {value}, mask {}", format!("{op:?}").to_lowercase(), opt(mask))
        }
        AtomicCas { ptr, cmp, value, mask } => format!("atomic_cas {ptr}, {cmp}, {value}, mask {}", opt(mask)),
        MakeBlockPtr { base, shape, strides, offsets, block_shape, order } => format!(
            "make_block_ptr {base}, shape [{}], strides [{}], offsets [{}], block {block_shape:?}, order {order:?}",
            list(shape),
            list(strides),
            list(offsets)
        ),
        AdvanceBlockPtr { ptr, offsets } => format!("advance {ptr}, [{}]", list(offsets)),
        LoadBlock { ptr, padding, hints } => format!("load_block {ptr}, padding {padding:?}{}", hint_str(hints)),
        StoreBlock { ptr, value, hints } => format!("store_block {ptr}, {value}{}", hint_str(hints)),
        PrefetchL2 { ptr, mask } => format!("prefetch_l2 {ptr}, mask {mask}"),
        GridDepWait => "gdc_wait".to_string(),
        GridDepLaunch => "gdc_launch_dependents".to_string(),
        Fence => "fence".to_string(),
        For { lo, hi, step, init, .. } => format!("for {lo}..{hi} step {step} iter_args({})", list(init)),
        If { cond, .. } => format!("if {cond}"),
        Yield { values } => format!("yield {}", list(values)),
        Print { prefix, args } => format!("print {prefix:?}, {}", list(args)),
        Assert { cond, msg } => format!("assert {cond}, {msg:?}"),
    };
    let tys: Vec<String> = op.results.iter().map(|r| k.ty(*r).to_string()).collect();
    let ty = if tys.is_empty() { String::new() } else { format!(" : {}", tys.join(", ")) };
    let loc = if locs { format!("  // {}", op.loc) } else { String::new() };
    let _ = writeln!(s, "{pad}{lhs}{body}{ty}{loc}");
    match &op.kind {
        For { body, .. } => {
            let _ = writeln!(s, "{pad}  ^({}):", list(&body.args));
            block(k, body, depth + 1, locs, s);
            let _ = writeln!(s, "{pad}end");
        }
        If { then_block, else_block, .. } => {
            block(k, then_block, depth + 1, locs, s);
            let _ = writeln!(s, "{pad}else");
            block(k, else_block, depth + 1, locs, s);
            let _ = writeln!(s, "{pad}end");
        }
        _ => {}
    }
}

fn hint_str(h: &super::MemHints) -> String {
    if *h == super::MemHints::default() {
        String::new()
    } else {
        format!(", cache {:?}, evict {:?}", h.cache, h.eviction)
    }
}
