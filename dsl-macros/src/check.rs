//! Rejects what the kernel language cannot express, with an error at the offending token that says what
//! to write instead.

use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Expr, Pat, Stmt};

/// Every builtin of the language: kernels may not shadow these names.
pub const BUILTINS: &[&str] = &[
    "program_id", "num_programs", "arange", "full", "zeros", "static_range", "where_", "minimum", "maximum", "cdiv",
    "fma", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "floor", "ceil", "abs",
    "reduce", "sum", "max", "min", "argmax", "argmin", "dot", "load", "load_masked", "load_with", "store",
    "store_masked", "store_with", "atomic_add", "atomic_max", "atomic_min", "atomic_xchg", "atomic_cas",
    "make_block_ptr", "load_block", "load_block_padded", "store_block", "device_print", "device_assert",
    "prefetch_l2", "gdc_wait", "gdc_launch_dependents", "fence",
];

/// The methods of tiles, pointers and block pointers.
pub const METHODS: &[&str] = &[
    "to", "bitcast", "reshape", "expand_dims", "broadcast_to", "trans", "permute", "shape", "lt", "le", "gt", "ge",
    "eq", "ne", "ptr_cast", "advance",
];

pub struct Checker {
    pub errors: Vec<syn::Error>,
}

impl Checker {
    pub fn new() -> Self {
        Checker { errors: vec![] }
    }

    fn err(&mut self, span: proc_macro2::Span, msg: impl std::fmt::Display) {
        self.errors.push(syn::Error::new(span, msg));
    }

    /// An error underlining all of `tokens` (on stable, a node's `span()` is only its first token).
    fn err_tokens(&mut self, tokens: impl quote::ToTokens, msg: impl std::fmt::Display) {
        self.errors.push(syn::Error::new_spanned(tokens, msg));
    }

    /// The combined error, if any.
    pub fn finish(self) -> Result<(), syn::Error> {
        let mut it = self.errors.into_iter();
        match it.next() {
            None => Ok(()),
            Some(mut first) => {
                for e in it {
                    first.combine(e);
                }
                Err(first)
            }
        }
    }

    /// Rejects a binding that would shadow a builtin.
    pub fn check_binding(&mut self, ident: &syn::Ident) {
        let name = ident.to_string();
        if BUILTINS.contains(&name.as_str()) {
            self.err(
                ident.span(),
                format!("`{name}` is a builtin of the kernel language and cannot be redefined here; choose another name"),
            );
        }
    }

    fn check_pat(&mut self, p: &Pat) {
        match p {
            Pat::Ident(pi) => {
                if pi.by_ref.is_some() {
                    self.err(pi.span(), "`ref` bindings are not in the kernel language: tiles are `Copy` values");
                }
                if let Some((_, sub)) = &pi.subpat {
                    self.err(sub.span(), "`@` patterns are not in the kernel language");
                }
                self.check_binding(&pi.ident);
            }
            Pat::Tuple(t) => t.elems.iter().for_each(|e| self.check_pat(e)),
            Pat::Type(t) => self.check_pat(&t.pat),
            Pat::Wild(_) => {}
            other => self.err(
                other.span(),
                "this pattern is not in the kernel language: bind a name (`let x = ...`) or a tuple of names (`let (a, b) = ...`)",
            ),
        }
    }
}

impl<'ast> Visit<'ast> for Checker {
    fn visit_stmt(&mut self, s: &'ast Stmt) {
        match s {
            Stmt::Local(l) => {
                self.check_pat(&l.pat);
                match &l.init {
                    None => self.err(l.pat.span(), "a `let` in a kernel needs a value: `let x = ...;`"),
                    Some(init) => {
                        if let Some((_, d)) = &init.diverge {
                            self.err(d.span(), "`let ... else` is not in the kernel language");
                        }
                    }
                }
                syn::visit::visit_local(self, l);
            }
            Stmt::Item(i) => self.err_tokens(item_head(i), "items (fn, struct, use...) cannot be declared inside a kernel: declare helpers outside with `#[kernel_fn]`"),
            Stmt::Macro(m) => self.err(m.span(), "macros are not allowed in kernels: use `device_print(\"x\", x)` to print and `device_assert(cond, \"msg\")` to check"),
            Stmt::Expr(e, _) => self.visit_expr(e),
        }
    }

    fn visit_expr(&mut self, e: &'ast Expr) {
        let msg = match e {
            Expr::While(w) => Some((w.while_token.span, "`while` loops are not in the kernel language: use `for i in (lo..hi).step_by(step)`, whose trip count is known when the loop starts")),
            Expr::Loop(l) => Some((l.loop_token.span, "`loop` is not in the kernel language: use `for i in (lo..hi).step_by(step)`")),
            Expr::Reference(r) => Some((r.and_token.span, "references are not in the kernel language: tiles and pointers are `Copy` values, pass them directly")),
            Expr::Match(m) => Some((m.match_token.span, "`match` is not in the kernel language: use `if`/`else` on a scalar, or `where_(cond, a, b)` to choose elementwise")),
            Expr::Struct(s) => {
                self.err_tokens(&s.path, "struct literals are not in the kernel language: pass tiles and pointers as separate values");
                return;
            }
            Expr::Closure(c) => {
                let head = (&c.or1_token, &c.inputs, &c.or2_token);
                let (a, b, c2) = head;
                self.err_tokens(quote::quote!(#a #b #c2), "closures are not in the kernel language: write a helper function marked `#[kernel_fn]`");
                return;
            }
            Expr::Range(r) => {
                self.err_tokens(r, "ranges only appear in `for` loops: `for i in lo..hi` or `for i in (lo..hi).step_by(step)`");
                return;
            }
            Expr::Cast(c) => Some((c.as_token.span, "`as` casts are not in the kernel language: use `.to::<T>()` to convert values or `.bitcast::<T>()` to reinterpret bits")),
            Expr::Index(i) => Some((i.bracket_token.span.join(), "indexing is not in the kernel language: move pointers (`ptr + offsets`) and `load` them, or use `where_`/reductions on tiles")),
            Expr::Field(f) => Some((f.dot_token.span, "field access is not in the kernel language: destructure with `let (a, b) = ...`")),
            Expr::Macro(m) => Some((m.span(), "macros are not allowed in kernels: use `device_print(\"x\", x)` to print and `device_assert(cond, \"msg\")` to check")),
            Expr::Return(r) => Some((r.return_token.span, "`return` is not in the kernel language: kernels write results with `store` and end at their last statement; helpers return their last expression")),
            Expr::Break(b) => Some((b.break_token.span, "`break` is not in the kernel language: compute a mask and use it in `load_masked`/`store_masked`")),
            Expr::Continue(c) => Some((c.continue_token.span, "`continue` is not in the kernel language: compute a mask and use it in `load_masked`/`store_masked`")),
            Expr::Unsafe(u) => Some((u.unsafe_token.span, "`unsafe` is not in the kernel language: every access is checked")),
            Expr::Let(l) => Some((l.let_token.span, "`if let` is not in the kernel language: conditions are `bool` constexprs or `Tile<bool>` scalars")),
            Expr::Async(a) => Some((a.async_token.span, "`async` is not in the kernel language")),
            Expr::Await(a) => Some((a.await_token.span, "`.await` is not in the kernel language")),
            Expr::Try(t) => Some((t.question_token.span, "`?` is not in the kernel language: builtins do not fail at run time")),
            Expr::Repeat(r) => Some((r.span(), "`[x; N]` arrays are not in the kernel language: use `full([N], x)`")),
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => Some((u.span(), "`*` dereference is not in the kernel language: use `load(ptr)`")),
            Expr::Block(b) if b.label.is_some() => Some((b.span(), "labeled blocks are not in the kernel language")),
            Expr::ForLoop(f) if f.label.is_some() => Some((f.span(), "loop labels are not in the kernel language")),
            _ => None,
        };
        if let Some((span, m)) = msg {
            self.err(span, m);
            return;
        }
        match e {
            Expr::MethodCall(m) => {
                let name = m.method.to_string();
                if !METHODS.contains(&name.as_str()) {
                    self.err(
                        m.method.span(),
                        format!(
                            "`.{name}()` is not a method of the kernel language; tiles have: {}",
                            METHODS.iter().map(|m| format!(".{m}()")).collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
                syn::visit::visit_expr_method_call(self, m);
            }
            Expr::ForLoop(f) => {
                self.check_pat(&f.pat);
                // The iterator: `lo..hi`, `(lo..hi).step_by(s)` or `static_range(lo, hi)`.
                match &*f.expr {
                    Expr::Range(r) => self.check_range(r),
                    Expr::MethodCall(m) if m.method == "step_by" && m.args.len() == 1 => {
                        match strip_parens(&m.receiver) {
                            Expr::Range(r) => self.check_range(r),
                            other => self.err(other.span(), "`step_by` applies to a range: `(lo..hi).step_by(step)`"),
                        }
                        m.args.iter().for_each(|a| self.visit_expr(a));
                    }
                    Expr::Call(c) if is_path(&c.func, "static_range") => self.visit_expr(&f.expr),
                    other => self.err_tokens(
                        other,
                        "a kernel `for` loop iterates over `lo..hi`, `(lo..hi).step_by(step)`, or `static_range(lo, hi)` (unrolled while tracing)",
                    ),
                }
                self.visit_block(&f.body);
            }
            _ => syn::visit::visit_expr(self, e),
        }
    }
}

impl Checker {
    fn check_range(&mut self, r: &syn::ExprRange) {
        match (&r.start, &r.end, &r.limits) {
            (Some(a), Some(b), syn::RangeLimits::HalfOpen(_)) => {
                self.visit_expr(a);
                self.visit_expr(b);
            }
            (_, _, syn::RangeLimits::Closed(dots)) => {
                self.err(dots.spans[0], "a kernel loop range is half-open: write `lo..hi` (or `lo..hi + 1`)")
            }
            _ => self.err_tokens(r, "a kernel loop range has both ends: `lo..hi`"),
        }
    }
}

pub fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        Expr::Group(g) => strip_parens(&g.expr),
        other => other,
    }
}

pub fn is_path(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Path(p) if p.path.is_ident(name))
}

/// The tokens that head an item (its signature for a fn), for underlining.
fn item_head(i: &syn::Item) -> proc_macro2::TokenStream {
    match i {
        syn::Item::Fn(f) => quote::ToTokens::to_token_stream(&f.sig),
        other => {
            let t = quote::ToTokens::to_token_stream(other);
            t.into_iter().take(2).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    /// The builtins kernels may not shadow are exactly the functions the prelude exports from
    /// `dsl_core::lang` (a proc-macro crate cannot import dsl-core, so this test ties the two lists).
    #[test]
    fn builtins_are_the_preludes_functions() {
        let lib = include_str!("../../dsl-core/src/lib.rs");
        let start = lib.find("pub use crate::lang::{").expect("the prelude's lang list") + "pub use crate::lang::{".len();
        let list = &lib[start..start + lib[start..].find('}').expect("end of the list")];
        let mut prelude: Vec<&str> =
            list.split(',').map(str::trim).filter(|n| n.starts_with(|c: char| c.is_ascii_lowercase())).collect();
        let mut builtins = super::BUILTINS.to_vec();
        prelude.sort_unstable();
        builtins.sort_unstable();
        assert_eq!(builtins, prelude, "dsl-macros' BUILTINS vs the prelude's functions");
    }
}
