//! `#[patch(path::to::target)]`: a replacement in a patch crate.

use crate::asyncfn;
use crate::sig::SlotSig;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{ExprPath, ItemFn, Token};

/// The attribute's arguments: the target, then optionally `?Send`.
pub struct PatchArgs {
    target: ExprPath,
    not_send: bool,
}

impl Parse for PatchArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(input.error(
                "`#[patch]` needs the path of the function it replaces, for example \
                 `#[patch(my_server::handlers::sum)]`",
            ));
        }
        let target: ExprPath = input.parse()?;
        let mut not_send = false;
        if input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            input.parse::<Token![?]>()?;
            let id: syn::Ident = input.parse()?;
            if id != "Send" {
                return Err(syn::Error::new_spanned(id, "expected `?Send`"));
            }
            not_send = true;
        }
        Ok(Self { target, not_send })
    }
}

/// Paths of the target's hidden constants: `(meta, sig)`.
fn companion_paths(target: &ExprPath) -> syn::Result<(TokenStream, TokenStream)> {
    let last = target
        .path
        .segments
        .last()
        .ok_or_else(|| syn::Error::new_spanned(target, "empty path"))?;
    let name = &last.ident;
    match &target.qself {
        Some(q) => {
            // <Type as Trait>::method
            let ty = &q.ty;
            let trait_seg = target
                .path
                .segments
                .iter()
                .nth(q.position.saturating_sub(1))
                .ok_or_else(|| {
                    syn::Error::new_spanned(target, "expected `<Type as Trait>::method`")
                })?;
            let stem = format!("{}_{}", trait_seg.ident, name);
            let meta = format_ident!("__HOTFIX_META_{}", stem);
            let sig = format_ident!("__HOTFIX_SIG_{}", stem);
            Ok((quote!(<#ty>::#meta), quote!(<#ty>::#sig)))
        }
        None => {
            let mut meta = target.path.clone();
            let mut sig = target.path.clone();
            meta.segments.last_mut().expect("non-empty").ident =
                format_ident!("__HOTFIX_META_{}", name);
            sig.segments.last_mut().expect("non-empty").ident =
                format_ident!("__HOTFIX_SIG_{}", name);
            Ok((quote!(#meta), quote!(#sig)))
        }
    }
}

pub fn expand(args: PatchArgs, mut item: ItemFn) -> syn::Result<TokenStream> {
    if let Some(syn::FnArg::Receiver(r)) = item.sig.inputs.first() {
        return Err(syn::Error::new_spanned(
            r,
            "a replacement is a free function: write the receiver as its first argument, \
             for example `this: &Player`",
        ));
    }
    crate::refuse::check_signature(&item.sig)?;
    let (meta_path, sig_path) = companion_paths(&args.target)?;
    let ident = item.sig.ident.clone();
    let is_async = item.sig.asyncness.is_some();
    let slot_sig = if is_async {
        asyncfn::boxed_sig(&item.sig, args.not_send)
    } else {
        item.sig.clone()
    };
    let slot = SlotSig::new(&slot_sig, None, None)?;
    let fn_ty = slot.fn_ptr_type();
    let generics = slot.generics();
    let params = slot.params();
    let names = slot.names();
    let tuple_ty = slot.tuple_type();
    let tuple_expr = slot.tuple_expr();
    let ret = &slot.ret;
    let unsafety = &slot.unsafety;
    let abi = &slot.abi;
    let entry = format_ident!("__HOTFIX_PATCH_{}", ident);
    let repl = format_ident!("__hotfix_replacement_{}", ident);
    let call_unsafe = unsafety.map(|_| quote!(unsafe));
    let body_call = if is_async {
        quote!(::std::boxed::Box::pin(::hotfix_core::__private::GuardedFuture::new(#ident(#names))))
    } else {
        quote!(#call_unsafe { #ident(#names) })
    };

    // `original(..)`: the implementation that was live below this replacement.
    let original: syn::Stmt = syn::parse_quote! {
        #[allow(dead_code, clippy::all)]
        fn original #generics (#params) -> #ret {
            // SAFETY: the runtime wrote `host_catching` (the host's catching thunk of
            // the target, whose signature the fingerprints proved equal) and keeps
            // `prev` pointing at the implementation below this one, before any
            // call can reach this replacement.
            unsafe {
                ::hotfix_core::__private::cross_call::<#tuple_ty, #ret>(
                    ::hotfix_core::__private::load(&#entry.host_catching),
                    &#entry.prev,
                    #tuple_expr,
                )
            }
        }
    };
    item.block.stmts.insert(0, original);

    // Both sides of the check carry the replacement's span, so a mismatch is
    // reported at the user's signature.
    let check_span = item.sig.span();
    let check_ty = respan(quote_spanned!(check_span=> #fn_ty), check_span);
    let sig_path = respan(sig_path, check_span);
    Ok(quote! {
        #item

        // The build fails here if the signature differs from the target's.
        #[allow(non_upper_case_globals, clippy::all)]
        const _: () = {
            let _: #check_ty = #sig_path;
        };

        #[allow(non_upper_case_globals)]
        #[::hotfix_core::__private::linkme::distributed_slice(::hotfix_core::__private::PATCH_ENTRIES)]
        #[linkme(crate = ::hotfix_core::__private::linkme)]
        static #entry: ::hotfix_core::__private::PatchEntry = ::hotfix_core::__private::PatchEntry {
            meta: &#meta_path,
            replacement: #repl as *const (),
            prev: ::hotfix_core::__private::AtomicPtr::new(::core::ptr::null_mut()),
            host_catching: ::hotfix_core::__private::AtomicPtr::new(::core::ptr::null_mut()),
            location: ::core::concat!(::core::file!(), ":", ::core::line!()),
        };

        #[doc(hidden)]
        #[allow(non_snake_case, clippy::all)]
        #unsafety #abi fn #repl #generics (#params) -> #ret {
            ::hotfix_core::__private::guard(|| #body_call)
        }
    })
}

/// Gives every token the span `span`.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut t| {
            if let proc_macro2::TokenTree::Group(g) = &t {
                let mut ng = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                ng.set_span(span);
                t = proc_macro2::TokenTree::Group(ng);
            } else {
                t.set_span(span);
            }
            t
        })
        .collect()
}
