//! `#[patch(path::to::target)]`: a replacement in a patch crate.

use crate::asyncfn;
use crate::sig::SlotSig;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{ExprPath, ItemFn, Token};

/// The attribute's arguments: the target, then optionally `?Send`.
pub struct PatchArgs {
    target: ExprPath,
    not_send: bool,
}

impl PatchArgs {
    /// The arguments `#[patch(target)]` (`?Send` when `not_send`) would give.
    pub fn new(target: ExprPath, not_send: bool) -> Self {
        Self { target, not_send }
    }
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

pub fn expand(args: PatchArgs, mut item: ItemFn) -> syn::Result<TokenStream> {
    if let Some(syn::FnArg::Receiver(r)) = item.sig.inputs.first() {
        return Err(syn::Error::new_spanned(
            r,
            "a replacement is a free function: write the receiver as its first argument, \
             for example `this: &Player`",
        ));
    }
    crate::refuse::check_signature(&item.sig)?;
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

    let target = crate::target::Target::new(&args.target)?;
    let meta_const = format_ident!("__HOTFIX_TARGET_{}", ident);
    let checks = target.checks(&crate::target::Replacement {
        sig: &item.sig,
        fn_ty: &fn_ty,
        function: &repl,
    });
    let meta_lookup = target.meta_lookup();
    Ok(quote! {
        #item

        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        const #meta_const: &'static ::hotfix_core::__private::FnMeta = #meta_lookup;

        #checks

        #[allow(non_upper_case_globals)]
        #[::hotfix_core::__private::linkme::distributed_slice(::hotfix_core::__private::PATCH_ENTRIES)]
        #[linkme(crate = ::hotfix_core::__private::linkme)]
        static #entry: ::hotfix_core::__private::PatchEntry = ::hotfix_core::__private::PatchEntry {
            meta: #meta_const,
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
