//! `#[kernel]` and `#[kernel_fn]`: parse a kernel written in Rust syntax, reject what the language cannot
//! express (with errors at the user's tokens), and emit
//! - a specialization type `name<constexprs..>` whose `build()` traces the body into IR,
//! - a typed launcher `name::<..>::launch(&runtime, grid, args..)`, so wrong argument types are rustc
//!   errors at the call site.
//!
//! parse (syn) → check (`check.rs`, spanned errors) → rewrite control flow (`transform.rs`) → quote.

mod check;
mod instances;
mod transform;

use check::Checker;
use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{FnArg, GenericParam, ItemFn, Pat, ReturnType, Type};

/// Turns a function into a kernel of the language.
///
/// ```text
/// #[kernel]
/// fn add<const BLOCK: i32>(x: Ptr<f32>, y: Ptr<f32>, out: MutPtr<f32>, n: i32) {
///     let offs = program_id(0) * BLOCK + arange(0, BLOCK);
///     let mask = offs < n;
///     store_masked(out + offs, load_masked(x + offs, mask, 0.0) + load_masked(y + offs, mask, 0.0), mask);
/// }
/// // add::<1024>::launch(&rt, grid, &x, &y, &mut out, n)?
/// ```
///
/// Parameters are pointers (`Ptr<T>` read-only, `MutPtr<T>` writable) or scalars (`i32`, `f32`, ...; a
/// scalar is a `Tile<T>` of shape `[]` inside the body). Const generics are constexprs; type generics name
/// element types. A kernel returns nothing.
#[proc_macro_attribute]
pub fn kernel(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, Kind::Kernel)
}

/// A helper function callable from kernels (inlined into them while tracing). It takes and returns tiles.
#[proc_macro_attribute]
pub fn kernel_fn(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, Kind::Helper)
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Kernel,
    Helper,
}

fn expand(attr: TokenStream, item: TokenStream, kind: Kind) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let result = if kind == Kind::Helper && !attr.is_empty() {
        Err(syn::Error::new(attr.span(), "`#[kernel_fn]` takes no arguments"))
    } else {
        instances::parse_attr(attr).and_then(|declared| {
            syn::parse::<ItemFn>(item).and_then(|f| match kind {
                Kind::Kernel => expand_kernel(f, declared),
                Kind::Helper => expand_helper(f),
            })
        })
    };
    match result {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Checks what both kernels and helpers share: the qualifiers, generics, parameter names and the body.
fn check_common(f: &ItemFn, what: &str, checker: &mut Checker) {
    let sig = &f.sig;
    if let Some(c) = &sig.constness {
        checker.errors.push(syn::Error::new(c.span, format!("a {what} cannot be `const`")));
    }
    if let Some(a) = &sig.asyncness {
        checker.errors.push(syn::Error::new(a.span, format!("a {what} cannot be `async`")));
    }
    if let Some(u) = &sig.unsafety {
        checker.errors.push(syn::Error::new(u.span, format!("a {what} cannot be `unsafe`: every access is checked")));
    }
    if let Some(v) = &sig.variadic {
        checker.errors.push(syn::Error::new(v.span(), format!("a {what} cannot be variadic")));
    }
    for g in &sig.generics.params {
        if let GenericParam::Lifetime(l) = g {
            checker
                .errors
                .push(syn::Error::new(l.span(), format!("a {what} has no lifetimes: tiles and pointers are values")));
        }
    }
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => checker.errors.push(syn::Error::new(
                r.span(),
                format!("a {what} cannot take `self`: write a free function"),
            )),
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => checker.check_binding(&pi.ident),
                other => checker
                    .errors
                    .push(syn::Error::new(other.span(), "a parameter is a plain name: `x: Ptr<f32>`")),
            },
        }
    }
    checker.visit_block(&f.block);
}

fn expand_helper(mut f: ItemFn) -> syn::Result<TokenStream2> {
    let mut checker = Checker::new();
    checker.check_binding(&f.sig.ident);
    check_common(&f, "kernel helper", &mut checker);
    checker.finish()?;
    transform::Rewriter.visit_block_mut(&mut f.block);
    // Ops traced inside a helper carry the helper's own source lines, so errors point at the exact op.
    Ok(quote!(#f))
}

/// What a kernel parameter is, from its declared type.
enum ParamKind {
    /// `Ptr<T>` or `MutPtr<T>`, with `T`.
    Pointer { mutable: bool, elem: Type },
    /// A scalar of element type `T`.
    Scalar,
}

fn param_kind(ty: &Type) -> syn::Result<ParamKind> {
    if let Type::Path(tp) = ty {
        if let Some(last) = tp.path.segments.last() {
            let name = last.ident.to_string();
            if name == "Ptr" || name == "MutPtr" {
                if let syn::PathArguments::AngleBracketed(a) = &last.arguments {
                    if let Some(syn::GenericArgument::Type(t)) = a.args.first() {
                        return Ok(ParamKind::Pointer { mutable: name == "MutPtr", elem: t.clone() });
                    }
                }
                return Err(syn::Error::new(ty.span(), format!("`{name}` needs its element type: `{name}<f32>`")));
            }
            if name == "Tile" || name == "BlockPtr" || name == "MutBlockPtr" {
                return Err(syn::Error::new_spanned(
                    ty,
                    "a kernel parameter is a pointer (`Ptr<T>`, `MutPtr<T>`) or a scalar (`i32`, `f32`, ...); tiles are made inside the kernel",
                ));
            }
            return Ok(ParamKind::Scalar);
        }
    }
    Err(syn::Error::new_spanned(
        ty,
        "a kernel parameter is a pointer (`Ptr<T>`, `MutPtr<T>`) or a scalar (`i32`, `f32`, ...), not a reference, slice or tuple",
    ))
}

fn expand_kernel(mut f: ItemFn, declared: Option<(Vec<instances::Assignment>, Span)>) -> syn::Result<TokenStream2> {
    let mut checker = Checker::new();
    check_common(&f, "kernel", &mut checker);
    if let ReturnType::Type(..) = &f.sig.output {
        checker.errors.push(syn::Error::new_spanned(
            &f.sig.output,
            "a kernel returns nothing: write its results through a `MutPtr<T>` parameter with `store`",
        ));
    }
    for g in &f.sig.generics.params {
        if let GenericParam::Const(c) = g {
            let ok = matches!(&c.ty, Type::Path(p) if ["i32", "u32", "i64", "usize", "bool"].iter().any(|t| p.path.is_ident(t)));
            if !ok {
                checker.errors.push(syn::Error::new(c.ty.span(), "a constexpr is an `i32`, `u32`, `i64`, `usize` or `bool`"));
            }
        }
    }
    let mut kinds = vec![];
    for arg in &f.sig.inputs {
        if let FnArg::Typed(pt) = arg {
            match param_kind(&pt.ty) {
                Ok(k) => kinds.push(k),
                Err(e) => checker.errors.push(e),
            }
        }
    }
    checker.finish()?;
    let consts: Vec<instances::Constexpr> = f
        .sig
        .generics
        .const_params()
        .map(|c| instances::Constexpr { ident: c.ident.clone(), ty: c.ty.clone(), is_bool: matches!(&c.ty, Type::Path(p) if p.path.is_ident("bool")) })
        .collect();
    let rows = match declared {
        Some((set, span)) => Some(instances::resolve(set, &consts, span)?),
        None => None,
    };
    transform::Rewriter.visit_block_mut(&mut f.block);

    let vis = &f.vis;
    let name = &f.sig.ident;
    let name_str = name.to_string();
    let docs: Vec<&syn::Attribute> = f.attrs.iter().filter(|a| a.path().is_ident("doc")).collect();
    let generics = &f.sig.generics;
    let (impl_g, ty_g, where_clause) = generics.split_for_impl();
    let type_params: Vec<&syn::Ident> = generics.type_params().map(|t| &t.ident).collect();
    let mut where_preds: Vec<TokenStream2> =
        where_clause.map(|w| w.predicates.iter().map(|p| quote!(#p)).collect()).unwrap_or_default();
    where_preds.extend(type_params.iter().map(|t| quote!(#t: 'static)));
    let constexprs: Vec<TokenStream2> = generics
        .params
        .iter()
        .filter_map(|g| match g {
            GenericParam::Const(c) => {
                let id = &c.ident;
                let s = id.to_string();
                Some(quote!((::std::string::String::from(#s), ::std::string::ToString::to_string(&#id))))
            }
            GenericParam::Type(t) => {
                let id = &t.ident;
                let s = id.to_string();
                Some(quote!((::std::string::String::from(#s), ::dsl_core::lang::__type_label::<#id>())))
            }
            GenericParam::Lifetime(_) => None,
        })
        .collect();

    let mut param_names = vec![];
    let mut body_params = vec![];
    let mut param_decls = vec![];
    let mut from_params = vec![];
    let mut launch_params = vec![];
    let mut launch_args = vec![];
    for (i, (arg, kind)) in f.sig.inputs.iter().zip(&kinds).enumerate() {
        let FnArg::Typed(pt) = arg else { continue };
        let Pat::Ident(pi) = &*pt.pat else { continue };
        let id = &pi.ident;
        let id_str = id.to_string();
        let ty = &pt.ty;
        let body_ty = match kind {
            ParamKind::Pointer { .. } => quote!(#ty),
            ParamKind::Scalar => quote_spanned!(ty.span()=> ::dsl_core::lang::Tile<#ty>),
        };
        body_params.push(quote!(#id: #body_ty));
        param_decls.push(quote!((::std::string::String::from(#id_str), <#body_ty as ::dsl_core::lang::KernelParam>::param_type())));
        from_params.push(quote!(<#body_ty as ::dsl_core::lang::KernelParam>::from_param(__params[#i])));
        match kind {
            ParamKind::Pointer { mutable: false, elem } => {
                launch_params.push(quote_spanned!(ty.span()=> #id: &__R::Buffer<#elem>));
                launch_args.push(quote!(::dsl_core::runtime::Arg::Buffer(#id)));
            }
            ParamKind::Pointer { mutable: true, elem } => {
                launch_params.push(quote_spanned!(ty.span()=> #id: &mut __R::Buffer<#elem>));
                launch_args.push(quote!(::dsl_core::runtime::Arg::BufferMut(#id)));
            }
            ParamKind::Scalar => {
                launch_params.push(quote_spanned!(ty.span()=> #id: #ty));
                launch_args.push(quote!(::dsl_core::runtime::Arg::scalar::<#ty>(#id)));
            }
        }
        param_names.push(id.clone());
    }
    let body = &f.block;
    let phantom = quote!(::core::marker::PhantomData<fn() -> (#(#type_params,)*)>);
    let body_fn = format_ident!("__{}_body", name, span = Span::mixed_site());
    let instance_code = rows.map(|rows| {
        let sig = instances::KernelSig {
            vis,
            name,
            type_params: generics.type_params().collect(),
            where_preds: &where_preds,
            launch_params: &launch_params,
            launch_args: &launch_args,
        };
        instances::generate(&sig, &consts, &rows)
    });
    let launch_doc = format!(
        "Launches `{name_str}` through runtime `rt` (the interpreter, or a GPU runtime) on a grid, with launch options if \
         given: `launch` is a grid (`n`, `(x, y)`, `(x, y, z)`) or a `Launch` (`Grid::with(options)`, `Launch::num_warps`...)."
    );

    Ok(quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #vis struct #name #impl_g (#phantom) #where_clause;

        #[allow(dead_code)]
        impl #impl_g #name #ty_g where #(#where_preds,)* {
            /// This specialization, as the runtimes see it.
            pub fn spec() -> ::dsl_core::runtime::KernelSpec {
                ::dsl_core::runtime::KernelSpec {
                    name: #name_str,
                    id: ::core::any::TypeId::of::<Self>(),
                    build: Self::build,
                }
            }

            /// Traces this specialization into verified IR.
            pub fn build() -> ::core::result::Result<::dsl_core::ir::Kernel, ::dsl_core::CompileError> {
                ::dsl_core::builder::trace(
                    #name_str,
                    ::std::vec![#(#constexprs),*],
                    ::std::vec![#(#param_decls),*],
                    |__params| Self::#body_fn(#(#from_params),*),
                )
            }

            #[doc = #launch_doc]
            #[allow(clippy::too_many_arguments)]
            pub fn launch<__R: ::dsl_core::runtime::Runtime>(
                rt: &__R,
                launch: impl ::core::convert::Into<::dsl_core::runtime::Launch>,
                #(#launch_params),*
            ) -> ::core::result::Result<(), __R::Error> {
                rt.launch(&Self::spec(), &launch.into(), &mut [#(#launch_args),*])
            }

            #[allow(unused_mut, clippy::all)]
            fn #body_fn(#(#body_params),*) #body
        }

        #instance_code
    })
}
