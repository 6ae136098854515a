//! Rewrites a checked kernel body into Rust that traces it: runtime `for` loops and `if`s become calls to
//! `dsl_core::lang::{for_range, if_else}` that carry the variables they assign, and comparisons and
//! `&&`/`||` become calls that work on tiles as well as on constexprs.

use crate::check::{is_path, strip_parens};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{BinOp, Block, Expr, Ident, Pat, Stmt};

/// The variables a region assigns (`x = ..`, `x += ..`) that it did not declare itself, in order of first
/// assignment: what a loop or branch must carry.
pub fn assigned_outer_vars<'a>(blocks: impl IntoIterator<Item = &'a Block>) -> Vec<Ident> {
    let mut f = AssignFinder { scopes: vec![vec![]], found: vec![] };
    for b in blocks {
        f.visit_block(b);
    }
    f.found
}

struct AssignFinder {
    /// Names declared by `let` (or loop patterns) in each open scope of the region.
    scopes: Vec<Vec<String>>,
    found: Vec<Ident>,
}

impl AssignFinder {
    fn declared(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.iter().any(|n| n == name))
    }
    fn declare_pat(&mut self, p: &Pat) {
        match p {
            Pat::Ident(pi) => self.scopes.last_mut().expect("scope").push(pi.ident.to_string()),
            Pat::Tuple(t) => t.elems.iter().for_each(|e| self.declare_pat(e)),
            Pat::Type(t) => self.declare_pat(&t.pat),
            _ => {}
        }
    }
    fn assigned(&mut self, target: &Expr) {
        if let Expr::Path(p) = strip_parens(target) {
            if let Some(id) = p.path.get_ident() {
                let name = id.to_string();
                if !self.declared(&name) && !self.found.iter().any(|f| *f == name) {
                    self.found.push(id.clone());
                }
            }
        }
        if let Expr::Tuple(t) = strip_parens(target) {
            t.elems.iter().for_each(|e| self.assigned(e));
        }
    }
}

impl<'ast> Visit<'ast> for AssignFinder {
    fn visit_block(&mut self, b: &'ast Block) {
        self.scopes.push(vec![]);
        for s in &b.stmts {
            self.visit_stmt(s);
        }
        self.scopes.pop();
    }
    fn visit_local(&mut self, l: &'ast syn::Local) {
        if let Some(init) = &l.init {
            self.visit_expr(&init.expr);
        }
        self.declare_pat(&l.pat);
    }
    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.visit_expr(&f.expr);
        self.scopes.push(vec![]);
        self.declare_pat(&f.pat);
        self.visit_block(&f.body);
        self.scopes.pop();
    }
    fn visit_expr_assign(&mut self, a: &'ast syn::ExprAssign) {
        self.assigned(&a.left);
        self.visit_expr(&a.right);
    }
    fn visit_expr_binary(&mut self, b: &'ast syn::ExprBinary) {
        if is_compound_assign(&b.op) {
            self.assigned(&b.left);
        }
        syn::visit::visit_expr_binary(self, b);
    }
}

fn is_compound_assign(op: &BinOp) -> bool {
    matches!(
        op,
        BinOp::AddAssign(_)
            | BinOp::SubAssign(_)
            | BinOp::MulAssign(_)
            | BinOp::DivAssign(_)
            | BinOp::RemAssign(_)
            | BinOp::BitAndAssign(_)
            | BinOp::BitOrAssign(_)
            | BinOp::BitXorAssign(_)
            | BinOp::ShlAssign(_)
            | BinOp::ShrAssign(_)
    )
}

/// Rewrites control flow and comparisons in place.
pub struct Rewriter;

impl VisitMut for Rewriter {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::ForLoop(f) => {
                // Analyse the original body before rewriting nested control flow.
                let carried = assigned_outer_vars([&f.body]);
                syn::visit_mut::visit_expr_for_loop_mut(self, f);
                *e = Expr::Verbatim(for_loop(f, &carried));
            }
            Expr::If(i) => {
                let mut blocks = vec![&i.then_branch];
                let else_block;
                if let Some((_, els)) = &i.else_branch {
                    else_block = as_block(els);
                    blocks.push(&else_block);
                }
                let carried = assigned_outer_vars(blocks);
                syn::visit_mut::visit_expr_if_mut(self, i);
                *e = Expr::Verbatim(if_expr(i, &carried));
            }
            Expr::Binary(b) => {
                syn::visit_mut::visit_expr_binary_mut(self, b);
                let (l, r) = (&b.left, &b.right);
                let span = b.op.span();
                let cmp = |op: &str| {
                    let op = Ident::new(op, span);
                    quote_spanned!(span=> ::dsl_core::lang::__cmp(::dsl_core::ir::CmpOp::#op, #l, #r))
                };
                let new = match b.op {
                    BinOp::Lt(_) => Some(cmp("Lt")),
                    BinOp::Le(_) => Some(cmp("Le")),
                    BinOp::Gt(_) => Some(cmp("Gt")),
                    BinOp::Ge(_) => Some(cmp("Ge")),
                    BinOp::Eq(_) => Some(cmp("Eq")),
                    BinOp::Ne(_) => Some(cmp("Ne")),
                    BinOp::And(_) => Some(quote_spanned!(span=> ::dsl_core::lang::__logic(true, #l, #r))),
                    BinOp::Or(_) => Some(quote_spanned!(span=> ::dsl_core::lang::__logic(false, #l, #r))),
                    _ => None,
                };
                if let Some(t) = new {
                    *e = Expr::Verbatim(t);
                }
            }
            _ => syn::visit_mut::visit_expr_mut(self, e),
        }
    }
}

/// An `else` branch as a block (`else if` becomes a block holding the inner `if`).
fn as_block(e: &Expr) -> Block {
    match e {
        Expr::Block(b) => b.block.clone(),
        other => Block { brace_token: Default::default(), stmts: vec![Stmt::Expr(other.clone(), None)] },
    }
}

fn tuple(vars: &[Ident]) -> TokenStream {
    quote!((#(#vars,)*))
}

fn mut_tuple(vars: &[Ident]) -> TokenStream {
    quote!((#(mut #vars,)*))
}

fn names(vars: &[Ident]) -> TokenStream {
    let n: Vec<String> = vars.iter().map(|v| v.to_string()).collect();
    quote!(&[#(#n),*])
}

/// Writes the carried results back: `a = __dsl_r.0; b = __dsl_r.1;`.
fn write_back(vars: &[Ident], from: TokenStream) -> TokenStream {
    let idx = (0..vars.len()).map(syn::Index::from);
    quote!(#(#vars = #from.#idx;)*)
}

fn for_loop(f: &syn::ExprForLoop, carried: &[Ident]) -> TokenStream {
    let span = f.for_token.span;
    let pat = &f.pat;
    let body = &f.body;
    let iter = strip_parens(&f.expr);
    // `static_range` loops are unrolled while tracing: a plain Rust loop.
    if let Expr::Call(c) = iter {
        if is_path(&c.func, "static_range") {
            return quote_spanned!(span=> for #pat in #iter #body);
        }
    }
    let (lo, hi, step) = match iter {
        Expr::Range(r) => (r.start.clone(), r.end.clone(), quote!(1i32)),
        Expr::MethodCall(m) => match strip_parens(&m.receiver) {
            Expr::Range(r) => {
                let s = &m.args[0];
                (r.start.clone(), r.end.clone(), quote!(#s))
            }
            _ => unreachable!("checked"),
        },
        _ => unreachable!("checked"),
    };
    let (lo, hi) = (lo.expect("checked"), hi.expect("checked"));
    let init = tuple(carried);
    let params = mut_tuple(carried);
    let out = tuple(carried);
    let names = names(carried);
    let r = Ident::new("__dsl_loop", Span::mixed_site());
    let back = write_back(carried, quote!(#r));
    quote_spanned! {span=>
        {
            #[allow(unused_mut, unused_variables, unused_parens)]
            let #r = ::dsl_core::lang::for_range(#lo, #hi, #step, #init, #names, |#pat, #params| {
                #body;
                #out
            });
            #back
        }
    }
}

fn if_expr(i: &syn::ExprIf, carried: &[Ident]) -> TokenStream {
    let span = i.if_token.span;
    let cond = &i.cond;
    let then = &i.then_branch;
    let els = match &i.else_branch {
        Some((_, e)) => quote!(#e),
        None => quote!({}),
    };
    let init = tuple(carried);
    let params = mut_tuple(carried);
    let out = tuple(carried);
    let names = names(carried);
    let r = Ident::new("__dsl_if", Span::mixed_site());
    let v = Ident::new("__dsl_value", Span::mixed_site());
    let back = write_back(carried, quote!((#r.1)));
    quote_spanned! {span=>
        {
            #[allow(unused_mut, unused_variables, unused_parens)]
            let #r = ::dsl_core::lang::if_else(
                #cond,
                #init,
                #names,
                |#params| { let #v = #then; (#v, #out) },
                |#params| { let #v = #els; (#v, #out) },
            );
            #back
            #r.0
        }
    }
}
