//! `#[kernel(instances(...))]`: the constexpr values a kernel may be launched with, declared once, and
//! what is generated from them — a value type naming one instance (`ScaledMmInstance` for `scaled_mm`)
//! whose `spec` / `launch` pick the specialization at run time, its list of every instance (`ALL`, for
//! autotune candidates and fingerprints), and its conversion from and to a tuning `Config`.
//!
//! Grammar (a product of factors; each factor a union of alternatives):
//!
//! ```text
//! instances(FACTOR, FACTOR, ...)
//! FACTOR := ALT | ALT | ...
//! ALT    := NAME in [v, v, ...]                 one constexpr, each value
//!         | NAME in bool                        false and true
//!         | NAME = v                            one value
//!         | (NAME, NAME, ...) in [(v, v, ...), ...]   constexprs that go together (tiles)
//!         | (NAME, NAME, ...) = (v, v, ...)
//!         | (FACTOR, FACTOR, ...)               a nested product (to union products)
//! ```
//!
//! Every instance must give every constexpr of the kernel exactly one value of its type.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{bracketed, parenthesized, Ident, Token};

/// A constexpr value in a declaration.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Bool(bool),
}

impl Value {
    fn tokens(&self) -> TokenStream2 {
        match self {
            Value::Int(v) => {
                let lit = proc_macro2::Literal::i64_unsuffixed(v.abs());
                if *v < 0 {
                    quote!(-#lit)
                } else {
                    quote!(#lit)
                }
            }
            Value::Bool(b) => quote!(#b),
        }
    }
}

/// One instance: a value for some constexprs (all of them, once the product is complete).
pub type Assignment = Vec<(Ident, Value, Span)>;

fn parse_value(input: ParseStream) -> syn::Result<(Value, Span)> {
    let neg: Option<Token![-]> = input.parse()?;
    let lit: syn::Lit = input.parse()?;
    let span = lit.span();
    let v = match (&lit, neg.is_some()) {
        (syn::Lit::Int(i), n) => {
            let v: i64 = i.base10_parse()?;
            Value::Int(if n { -v } else { v })
        }
        (syn::Lit::Bool(b), false) => Value::Bool(b.value),
        _ => return Err(syn::Error::new(span, "a constexpr value is an integer or `true` / `false`")),
    };
    Ok((v, span))
}

fn parse_values(input: ParseStream) -> syn::Result<Vec<(Value, Span)>> {
    if input.peek(Ident) {
        let id: Ident = input.parse()?;
        if id == "bool" {
            return Ok(vec![(Value::Bool(false), id.span()), (Value::Bool(true), id.span())]);
        }
        return Err(syn::Error::new(id.span(), "expected a list of values `[a, b, ...]` or `bool`"));
    }
    let content;
    bracketed!(content in input);
    let vals = content.parse_terminated(parse_value, Token![,])?;
    Ok(vals.into_iter().collect())
}

fn parse_alt(input: ParseStream) -> syn::Result<Vec<Assignment>> {
    if input.peek(syn::token::Paren) {
        let content;
        parenthesized!(content in input);
        if input.peek(Token![=]) {
            // (A, B) = (1, 2)
            let names: Vec<Ident> = content.parse_terminated(Ident::parse_any, Token![,])?.into_iter().collect();
            input.parse::<Token![=]>()?;
            let tuple;
            parenthesized!(tuple in input);
            let vals: Vec<(Value, Span)> = tuple.parse_terminated(parse_value, Token![,])?.into_iter().collect();
            if vals.len() != names.len() {
                return Err(syn::Error::new(tuple.span(), format!("{} values for the {} constexprs ({})", vals.len(), names.len(), join(&names))));
            }
            return Ok(vec![names.into_iter().zip(vals).map(|(n, (v, s))| (n, v, s)).collect()]);
        }
        if input.peek(Token![in]) {
            // (A, B, C) in [(1, 2, 3), ...]
            let names: Vec<Ident> = content.parse_terminated(Ident::parse_any, Token![,])?.into_iter().collect();
            input.parse::<Token![in]>()?;
            let list;
            bracketed!(list in input);
            let mut out = vec![];
            while !list.is_empty() {
                let tuple;
                parenthesized!(tuple in list);
                let span = tuple.span();
                let vals: Vec<(Value, Span)> = tuple.parse_terminated(parse_value, Token![,])?.into_iter().collect();
                if vals.len() != names.len() {
                    return Err(syn::Error::new(
                        span,
                        format!("{} values for the {} constexprs ({})", vals.len(), names.len(), join(&names)),
                    ));
                }
                out.push(names.iter().cloned().zip(vals).map(|(n, (v, s))| (n, v, s)).collect());
                if !list.is_empty() {
                    list.parse::<Token![,]>()?;
                }
            }
            return Ok(out);
        }
        return parse_product(&content);
    }
    let name: Ident = input.parse()?;
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        let (v, s) = parse_value(input)?;
        return Ok(vec![vec![(name, v, s)]]);
    }
    input.parse::<Token![in]>().map_err(|e| syn::Error::new(e.span(), format!("expected `{name} in [...]` or `{name} = value`")))?;
    Ok(parse_values(input)?.into_iter().map(|(v, s)| vec![(name.clone(), v, s)]).collect())
}

fn parse_factor(input: ParseStream) -> syn::Result<Vec<Assignment>> {
    let mut all = parse_alt(input)?;
    while input.peek(Token![|]) {
        input.parse::<Token![|]>()?;
        all.extend(parse_alt(input)?);
    }
    Ok(all)
}

fn parse_product(input: ParseStream) -> syn::Result<Vec<Assignment>> {
    let mut acc: Vec<Assignment> = vec![vec![]];
    while !input.is_empty() {
        let f = parse_factor(input)?;
        acc = acc.iter().flat_map(|a| f.iter().map(move |b| a.iter().chain(b).cloned().collect())).collect();
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }
    Ok(acc)
}

fn join(names: &[Ident]) -> String {
    names.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
}

use syn::ext::IdentExt;

/// The kernel attribute's arguments: nothing, or `instances(...)`.
pub fn parse_attr(attr: TokenStream2) -> syn::Result<Option<(Vec<Assignment>, Span)>> {
    if attr.is_empty() {
        return Ok(None);
    }
    let span = attr.span();
    let parser = |input: ParseStream| -> syn::Result<Vec<Assignment>> {
        let kw: Ident = input.parse()?;
        if kw != "instances" {
            return Err(syn::Error::new(
                kw.span(),
                "the only argument of `#[kernel]` is `instances(...)`; launch options (warps, stages) are given at launch",
            ));
        }
        let content;
        parenthesized!(content in input);
        let set = parse_product(&content)?;
        if !input.is_empty() {
            return Err(input.error("one `instances(...)` only: join alternatives with `|` inside it"));
        }
        Ok(set)
    };
    Ok(Some((parser.parse2(attr)?, span)))
}

/// A kernel's constexpr: its name and whether it is a `bool`.
pub struct Constexpr {
    pub ident: Ident,
    pub ty: syn::Type,
    pub is_bool: bool,
}

/// Orders each instance's values as the kernel's constexprs, checking that each is given exactly once
/// with a value of its type, and that no instance is declared twice.
pub fn resolve(set: Vec<Assignment>, consts: &[Constexpr], span: Span) -> syn::Result<Vec<Vec<Value>>> {
    if consts.is_empty() {
        return Err(syn::Error::new(span, "`instances(...)` declares values of constexprs, and this kernel has none"));
    }
    let mut out: Vec<Vec<Value>> = vec![];
    for inst in set {
        let mut row = vec![];
        for (n, _, _) in &inst {
            if !consts.iter().any(|c| c.ident == *n) {
                return Err(syn::Error::new(n.span(), format!("`{n}` is not a constexpr of this kernel (they are {})", names(consts))));
            }
            if inst.iter().filter(|(m, _, _)| m == n).count() > 1 {
                return Err(syn::Error::new(n.span(), format!("`{n}` is given twice in one instance")));
            }
        }
        for c in consts {
            let Some((_, v, s)) = inst.iter().find(|(n, _, _)| *n == c.ident) else {
                return Err(syn::Error::new(span, format!("an instance gives no value for constexpr `{}`", c.ident)));
            };
            match (v, c.is_bool) {
                (Value::Bool(_), true) | (Value::Int(_), false) => {}
                (Value::Int(_), true) => return Err(syn::Error::new(*s, format!("`{}` is a bool: write `true` or `false`", c.ident))),
                (Value::Bool(_), false) => return Err(syn::Error::new(*s, format!("`{}` is an integer", c.ident))),
            }
            row.push(v.clone());
        }
        if out.contains(&row) {
            return Err(syn::Error::new(span, format!("an instance is declared twice: {}", show(consts, &row))));
        }
        out.push(row);
    }
    Ok(out)
}

fn names(consts: &[Constexpr]) -> String {
    consts.iter().map(|c| c.ident.to_string()).collect::<Vec<_>>().join(", ")
}

fn show(consts: &[Constexpr], row: &[Value]) -> String {
    consts
        .iter()
        .zip(row)
        .map(|(c, v)| match v {
            Value::Int(i) => format!("{}={i}", c.ident),
            Value::Bool(b) => format!("{}={b}", c.ident),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `scaled_mm` -> `ScaledMmInstance`.
pub fn type_name(kernel: &Ident) -> Ident {
    let camel: String = kernel
        .to_string()
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    format_ident!("{}Instance", camel, span = kernel.span())
}

/// What the generated code needs to know of the kernel.
pub struct KernelSig<'a> {
    pub vis: &'a syn::Visibility,
    pub name: &'a Ident,
    /// `<A: Numeric, B, O>` as declared, without the constexprs.
    pub type_params: Vec<&'a syn::TypeParam>,
    pub where_preds: &'a [TokenStream2],
    pub launch_params: &'a [TokenStream2],
    pub launch_args: &'a [TokenStream2],
}

/// The instance type and its methods.
pub fn generate(sig: &KernelSig, consts: &[Constexpr], rows: &[Vec<Value>]) -> TokenStream2 {
    let KernelSig { vis, name, type_params, where_preds, launch_params, launch_args } = sig;
    let name_str = name.to_string();
    let ty = type_name(name);
    let fields: Vec<Ident> = consts.iter().map(|c| format_ident!("{}", c.ident.to_string().to_lowercase())).collect();
    let field_tys: Vec<&syn::Type> = consts.iter().map(|c| &c.ty).collect();
    let const_names: Vec<String> = consts.iter().map(|c| c.ident.to_string()).collect();
    let type_idents: Vec<&Ident> = type_params.iter().map(|t| &t.ident).collect();
    let all = rows.iter().map(|row| {
        let vals = row.iter().map(Value::tokens);
        quote!(#ty { #(#fields: #vals),* })
    });
    let arms = rows.iter().map(|row| {
        let vals: Vec<TokenStream2> = row.iter().map(Value::tokens).collect();
        quote!((#(#vals),*) => ::core::result::Result::Ok(#name::<#(#type_idents,)* #(#vals),*>::spec()),)
    });
    let from_config = consts.iter().zip(&fields).map(|(c, f)| {
        let n = c.ident.to_string();
        let t = &c.ty;
        if c.is_bool {
            quote!(#f: ::dsl_core::tune::__config_value(c, #name_str, #n, 0, 1)? == 1)
        } else {
            quote!(#f: ::dsl_core::tune::__config_value(
                c, #name_str, #n, <#t>::MIN as i64, i64::try_from(<#t>::MAX).unwrap_or(i64::MAX),
            )? as #t)
        }
    });
    let struct_doc = format!(
        "One declared instance of kernel [`{name_str}`]: a value for each of its constexprs. Made from plain \
         values (or a tuning `Config` with [`{ty}::from_config`]) and launched with [`{ty}::launch`], which picks \
         the specialization at run time; [`{ty}::ALL`] lists every instance the kernel declares."
    );
    let n_rows = rows.len();
    quote! {
        #[doc = #struct_doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #vis struct #ty {
            #(pub #fields: #field_tys,)*
        }

        #[allow(dead_code)]
        impl #ty {
            /// Every declared instance, in declaration order.
            pub const ALL: [#ty; #n_rows] = [#(#all),*];
            /// The constexprs' names, in the kernel's order (the keys of [`Self::config`]).
            pub const NAMES: &'static [&'static str] = &[#(#const_names),*];

            /// `Ok` for a declared instance; else an error listing the declared ones.
            pub fn check(&self) -> ::core::result::Result<(), ::dsl_core::CompileError> {
                if Self::ALL.contains(self) {
                    return ::core::result::Result::Ok(());
                }
                let declared: ::std::vec::Vec<::std::string::String> = Self::ALL.iter().map(|i| i.config().to_string()).collect();
                ::core::result::Result::Err(::dsl_core::tune::__undeclared(#name_str, &self.config().to_string(), &declared, file!(), line!()))
            }

            /// The instance a tuning config names (each constexpr by its name, a bool as 0 or 1; the
            /// config's other entries, such as `num_warps`, are ignored), checked against the declared ones.
            pub fn from_config(c: &::dsl_core::tune::Config) -> ::core::result::Result<#ty, ::dsl_core::CompileError> {
                let i = #ty { #(#from_config),* };
                i.check()?;
                ::core::result::Result::Ok(i)
            }

            /// This instance's constexprs as config entries (bools as 0 and 1).
            pub fn config(&self) -> ::dsl_core::tune::Config {
                ::dsl_core::tune::Config::new(&[#((#const_names, self.#fields as i64)),*])
            }

            /// The specialization of this instance, for the given element types.
            pub fn spec<#(#type_params),*>(&self) -> ::core::result::Result<::dsl_core::runtime::KernelSpec, ::dsl_core::CompileError>
            where #(#where_preds,)*
            {
                match (#(self.#fields),*) {
                    #(#arms)*
                    _ => ::core::result::Result::Err(self.check().expect_err("an instance without a specialization is undeclared")),
                }
            }

            /// Launches this instance (see the kernel's own `launch`); an undeclared instance is an error.
            #[allow(clippy::too_many_arguments)]
            pub fn launch<#(#type_params,)* __R: ::dsl_core::runtime::Runtime>(
                &self,
                rt: &__R,
                launch: impl ::core::convert::Into<::dsl_core::runtime::Launch>,
                #(#launch_params),*
            ) -> ::core::result::Result<(), __R::Error>
            where #(#where_preds,)*
            {
                let spec = self.spec::<#(#type_idents),*>()?;
                rt.launch(&spec, &launch.into(), &mut [#(#launch_args),*])
            }
        }

        impl ::core::fmt::Display for #ty {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.config(), f)
            }
        }
    }
}
