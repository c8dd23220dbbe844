//! `async fn`: the slot holds the function that creates the future, boxed so
//! every implementation has the same type. Futures already running keep the
//! code they were created with.

use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{Block, ReturnType, Signature};

/// The lifetime every borrowed argument of a boxed async function is tied to.
const HF: &str = "'__hotfix_fut";

/// Gives every lifetime in the arguments (elided or named) one name, [`HF`].
struct OneLifetime;

impl VisitMut for OneLifetime {
    fn visit_lifetime_mut(&mut self, lt: &mut syn::Lifetime) {
        if lt.ident != "static" {
            *lt = syn::Lifetime::new(HF, lt.span());
        }
    }
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(syn::Lifetime::new(HF, proc_macro2::Span::call_site()));
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }
    fn visit_receiver_mut(&mut self, r: &mut syn::Receiver) {
        if let Some((_, lt @ None)) = &mut r.reference {
            *lt = Some(syn::Lifetime::new(HF, proc_macro2::Span::call_site()));
        }
        syn::visit_mut::visit_receiver_mut(self, r);
    }
}

/// `async fn f(x: &T) -> R { body }` becomes
/// `fn f<'f>(x: &'f T) -> Pin<Box<dyn Future<Output = R> + Send + 'f>>`.
pub fn boxed(sig: &Signature, block: &Block, not_send: bool) -> (Signature, Block) {
    let mut s = sig.clone();
    s.asyncness = None;
    for input in s.inputs.iter_mut() {
        OneLifetime.visit_fn_arg_mut(input);
    }
    let out = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, t) => {
            let mut t = (**t).clone();
            OneLifetime.visit_type_mut(&mut t);
            quote!(#t)
        }
    };
    let hf = syn::Lifetime::new(HF, proc_macro2::Span::call_site());
    let send = if not_send {
        quote!()
    } else {
        quote!(+ ::core::marker::Send)
    };
    s.generics = syn::parse_quote!(<#hf>);
    s.output = syn::parse_quote!(
        -> ::core::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = #out> #send + #hf>>
    );
    let b: Block = syn::parse_quote!({ ::std::boxed::Box::pin(async move #block) });
    (s, b)
}
