//! `async fn`: the slot holds a function that creates a boxed future, so every
//! implementation has the same type. The original's future itself is not
//! boxed while the original is live (see `hotfix_core::__private::AsyncCall`).

use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{ReturnType, Signature};

/// The lifetime every borrowed argument of a boxed async function is tied to.
/// Every lifetime of the signature becomes this one, and the items declaring it
/// (the slot's function, thunks, type aliases) have no other lifetime in
/// scope, so the plain name cannot clash; it is the name messages show.
const HF: &str = "'a";

/// Gives every lifetime in the arguments (elided or named) one name, [`HF`],
/// and remembers whether there was any.
#[derive(Default)]
struct OneLifetime {
    found: bool,
}

impl VisitMut for OneLifetime {
    fn visit_lifetime_mut(&mut self, lt: &mut syn::Lifetime) {
        if lt.ident != "static" {
            *lt = syn::Lifetime::new(HF, lt.span());
            self.found = true;
        }
    }
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(syn::Lifetime::new(HF, proc_macro2::Span::call_site()));
            self.found = true;
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }
    fn visit_receiver_mut(&mut self, r: &mut syn::Receiver) {
        if let Some((_, lt @ None)) = &mut r.reference {
            *lt = Some(syn::Lifetime::new(HF, proc_macro2::Span::call_site()));
            self.found = true;
        }
        syn::visit_mut::visit_receiver_mut(self, r);
    }
}

/// The declared output of an `async fn`: `()` when omitted.
pub fn output(sig: &Signature) -> proc_macro2::TokenStream {
    match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, t) => quote!(#t),
    }
}

/// The slot's signature of `async fn f(x: &T) -> R`:
/// `fn f<'f>(x: &'f T) -> Pin<Box<dyn Future<Output = R> + Send + 'f>>`, or,
/// when no argument borrows, `fn f(x: T) -> Pin<Box<dyn Future<Output = R> +
/// Send + 'static>>` (a lifetime only the result names would not be
/// constrained by the arguments).
pub fn boxed_sig(sig: &Signature, not_send: bool) -> Signature {
    let mut s = sig.clone();
    s.asyncness = None;
    let mut one = OneLifetime::default();
    for input in s.inputs.iter_mut() {
        one.visit_fn_arg_mut(input);
    }
    let borrows = one.found;
    let out = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, t) => {
            let mut t = (**t).clone();
            one.visit_type_mut(&mut t);
            quote!(#t)
        }
    };
    let send = if not_send {
        quote!()
    } else {
        quote!(+ ::core::marker::Send)
    };
    if borrows {
        let hf = syn::Lifetime::new(HF, proc_macro2::Span::call_site());
        s.generics = syn::parse_quote!(<#hf>);
        s.output = syn::parse_quote!(
            -> ::core::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = #out> #send + #hf>>
        );
    } else {
        s.generics = syn::Generics::default();
        s.output = syn::parse_quote!(
            -> ::core::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = #out> #send + 'static>>
        );
    }
    s
}

/// The slot's signature of a function with lifetime bounds in `where` (what
/// `#[async_trait]` writes: `fn f<'life0, 'async_trait>(&'life0 self) ->
/// Pin<Box<dyn Future + 'async_trait>> where 'life0: 'async_trait, Self:
/// 'async_trait`): every lifetime becomes one, and the bounds go, so the slot
/// has a higher-ranked function-pointer type.
pub fn unified_sig(sig: &Signature) -> Signature {
    let mut s = sig.clone();
    let mut one = OneLifetime::default();
    for input in s.inputs.iter_mut() {
        one.visit_fn_arg_mut(input);
    }
    let borrows = one.found;
    if let ReturnType::Type(_, t) = &mut s.output {
        one.visit_type_mut(t);
    }
    s.generics = if borrows {
        let hf = syn::Lifetime::new(HF, proc_macro2::Span::call_site());
        syn::parse_quote!(<#hf>)
    } else {
        syn::Generics::default()
    };
    s
}
