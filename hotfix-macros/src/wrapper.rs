//! The function users call, under the name and signature they wrote: one
//! `Acquire` load of the slot, compared with what it holds while nothing
//! replaces the function; equal, a direct call of the original (for an
//! `async fn`, its future inline), otherwise a call of what the slot holds.

use crate::asyncfn;
use crate::expand::UserFn;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Signature;

/// A copy of `sig` whose arguments are all plain names (patterns and `mut`
/// become `__hotfix_aN`), and the expressions that forward them.
pub fn forwarding(sig: &Signature) -> (Signature, Vec<TokenStream>) {
    let mut sig = sig.clone();
    let mut forwarded: Vec<TokenStream> = Vec::new();
    for (i, input) in sig.inputs.iter_mut().enumerate() {
        match input {
            syn::FnArg::Receiver(_) => forwarded.push(quote!(self)),
            syn::FnArg::Typed(t) => {
                let name = match crate::sig::pat_ident(&t.pat) {
                    Some(id) => id.clone(),
                    None => format_ident!("__hotfix_a{}", i),
                };
                *t.pat = syn::Pat::Ident(syn::PatIdent {
                    attrs: vec![],
                    by_ref: None,
                    mutability: None,
                    ident: name.clone(),
                    subpat: None,
                });
                forwarded.push(quote!(#name));
            }
        }
    }
    (sig, forwarded)
}

/// The function users call, under the user's name and signature.
pub struct Wrapper<'a> {
    pub user: &'a UserFn<'a>,
    /// The slot's function-pointer type (an alias: a `for<'a>` written
    /// inside a function with a lifetime `'a` would shadow it).
    pub fn_ty: &'a TokenStream,
    pub desc: &'a syn::Ident,
    /// The NOP-padded entry (async only: an unpatched async slot holds it).
    pub entry: &'a syn::Ident,
    /// Path of the original (sync only).
    pub original: &'a TokenStream,
    /// Path of the original `async fn` (async only).
    pub inner: &'a TokenStream,
    pub not_send: bool,
}

impl Wrapper<'_> {
    /// One `Acquire` load of the slot, compared with what it holds while
    /// nothing replaces the function. Sync: the descriptor's `unpatched` (not
    /// the original's address as this code would take it: the compiler may
    /// merge identical functions and give one function two addresses, which
    /// would send every call the slow way). Async: the entry. Equal: sync,
    /// a direct call of the original (on x86-64 an indirect call costs a cycle
    /// more than a direct one even when predicted: BENCHMARKS.md); async, the
    /// original's future inline. Otherwise a call of what the slot holds (for
    /// an `async fn`, the future it boxes).
    pub fn expand(&self) -> TokenStream {
        let (mut sig, fwd) = forwarding(self.user.sig);
        let (fn_ty, desc, original, inner) = (self.fn_ty, self.desc, self.original, self.inner);
        let entry = self.entry;
        let vis = self.user.vis;
        let attrs = self
            .user
            .attrs
            .iter()
            .filter(|a| !a.path().is_ident("inline"));
        let call_unsafe = sig.unsafety.map(|_| quote!(unsafe));
        let load = quote! {
            // SAFETY: the slot holds this function's entry or a function of
            // exactly this type (the runtime checked the fingerprints).
            let __hotfix_f: #fn_ty = unsafe {
                ::core::mem::transmute::<*const (), #fn_ty>(__hotfix_p)
            };
        };
        let body = if sig.asyncness.is_some() {
            let out = asyncfn::output(&sig);
            let (send, erase) = if self.not_send {
                (quote!(), quote!(erase_local))
            } else {
                (quote!(+ ::core::marker::Send), quote!(erase_send))
            };
            sig.asyncness = None;
            // The user's span: `impl Trait` captures lifetimes by its edition.
            let span = sig.fn_token.span;
            sig.output = syn::parse_quote_spanned!(span=> -> impl ::core::future::Future<Output = #out> #send);
            quote! {
                let __hotfix_p = ::hotfix_core::__private::load(&#desc.slot);
                // The entry's address as a constant: an assembly symbol, which
                // the compiler never merges, and a constant the loop around a
                // call can keep in a register (loading `unpatched` instead
                // measured 28 instructions and 1.53x against 24 and 1.09x).
                if ::core::ptr::eq(__hotfix_p, #entry as *const ()) {
                    // SAFETY: forwards this function's own contract unchanged.
                    ::hotfix_core::__private::AsyncCall::Inline(#call_unsafe { #inner(#(#fwd),*) })
                } else {
                    ::hotfix_core::__private::patched_path();
                    #load
                    // SAFETY: forwards this function's own contract unchanged.
                    let __hotfix_b = #call_unsafe { __hotfix_f(#(#fwd),*) };
                    // SAFETY: the future is returned in this function's
                    // `impl Future`, which captures every argument lifetime.
                    ::hotfix_core::__private::AsyncCall::Boxed(unsafe {
                        ::hotfix_core::__private::#erase(__hotfix_b)
                    })
                }
            }
        } else {
            quote! {
                let __hotfix_p = ::hotfix_core::__private::load(&#desc.slot);
                if ::core::ptr::eq(__hotfix_p, #desc.unpatched) {
                    // SAFETY: forwards this function's own contract unchanged.
                    #call_unsafe { #original(#(#fwd),*) }
                } else {
                    ::hotfix_core::__private::patched_path();
                    #load
                    // SAFETY: forwards this function's own contract unchanged.
                    #call_unsafe { __hotfix_f(#(#fwd),*) }
                }
            }
        };
        quote! {
            #(#attrs)*
            #[inline]
            #[allow(refining_impl_trait)]
            #vis #sig {
                #body
            }
        }
    }
}
