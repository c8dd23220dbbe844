//! The target a `#[patch(...)]` names, and the checks that report a missing
//! target or a signature mismatch in the user's words.
//!
//! A `#[patchable]` function `f` leaves two hidden constants beside it
//! (`__HOTFIX_META_f`, `__HOTFIX_SIG_f`; inherent associated constants for a
//! method). A patch finds them through a lookup that falls back to local
//! stand-ins when they do not exist, so a wrong path never surfaces as
//! "cannot find `__HOTFIX_SIG_...`": a free function's module is glob-imported
//! in an inner block (its items shadow the stand-ins of the outer block), and
//! a method's type is searched with a blanket trait whose constants inherent
//! ones take precedence over. The checks then say what is wrong: the path
//! itself (so the compiler suggests a close match), a panic in constant
//! evaluation naming the target when it is no `#[patchable]` function, and a
//! trait bound whose message names the target and both signatures.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ExprPath, Ident, Signature};

/// Where the hidden constants are.
enum Place {
    /// Items of a module: `module::__HOTFIX_*_name`.
    Module { module: TokenStream, name: Ident },
    /// Inherent associated constants of a type: `<Type>::__HOTFIX_*_stem`.
    Type { ty: TokenStream, stem: String },
}

/// A target path as the user wrote it.
pub struct Target {
    path: ExprPath,
    text: String,
    span: Span,
    place: Place,
}

/// What a replacement brings to the checks.
pub struct Replacement<'a> {
    /// The replacement's signature as written.
    pub sig: &'a Signature,
    /// Its slot's function-pointer type.
    pub fn_ty: &'a TokenStream,
    /// The generated function of that type.
    pub function: &'a Ident,
}

/// Whether a path segment names a type (by Rust's naming convention).
fn is_type_name(seg: &syn::PathSegment) -> bool {
    seg.ident
        .to_string()
        .trim_start_matches("r#")
        .starts_with(|c: char| c.is_ascii_uppercase())
}

impl Target {
    pub fn new(path: &ExprPath) -> syn::Result<Self> {
        let last = path
            .path
            .segments
            .last()
            .ok_or_else(|| syn::Error::new_spanned(path, "empty path"))?;
        let name = last.ident.clone();
        let text = crate::sig::normalize(&quote!(#path).to_string());
        let place = match &path.qself {
            // `<Type>::method`: an inherent method of any type.
            Some(q) if q.position == 0 => {
                let ty = &q.ty;
                Place::Type {
                    ty: quote!(#ty),
                    stem: name.to_string(),
                }
            }
            Some(q) => {
                let trait_seg = path
                    .path
                    .segments
                    .iter()
                    .nth(q.position.saturating_sub(1))
                    .ok_or_else(|| {
                        syn::Error::new_spanned(path, "expected `<Type as Trait>::method`")
                    })?;
                let ty = &q.ty;
                Place::Type {
                    ty: quote!(#ty),
                    stem: format!("{}_{}", trait_seg.ident, name),
                }
            }
            None => {
                let mut owner = path.path.clone();
                owner.segments.pop();
                owner.segments.pop_punct();
                match owner.segments.last() {
                    None => Place::Module {
                        module: quote!(self),
                        name,
                    },
                    Some(seg) if is_type_name(seg) => Place::Type {
                        ty: quote!(#owner),
                        stem: name.to_string(),
                    },
                    Some(_) => Place::Module {
                        module: quote!(#owner),
                        name,
                    },
                }
            }
        };
        Ok(Self {
            span: path.span(),
            path: path.clone(),
            text,
            place,
        })
    }

    /// An expression of type `ty`: the hidden constant `prefix_name` of the
    /// target, or `fallback` when there is none.
    fn lookup(&self, prefix: &str, ty: &TokenStream, fallback: &TokenStream) -> TokenStream {
        match &self.place {
            Place::Module { module, name } => {
                let c = format_ident!("{}{}", prefix, name);
                quote!({
                    #[allow(non_upper_case_globals, dead_code)]
                    const #c: #ty = #fallback;
                    {
                        #[allow(unused_imports)]
                        use #module::*;
                        #c
                    }
                })
            }
            Place::Type { ty: owner, stem } => {
                let c = format_ident!("{}{}", prefix, stem);
                quote!({
                    #[allow(non_upper_case_globals, dead_code)]
                    trait NotPatchable {
                        const #c: #ty = #fallback;
                    }
                    impl<T: ?Sized> NotPatchable for T {}
                    <#owner>::#c
                })
            }
        }
    }

    /// The target's metadata (`&'static FnMeta`), or `FnMeta::MISSING`.
    pub fn meta_lookup(&self) -> TokenStream {
        let found = self.lookup(
            "__HOTFIX_META_",
            &quote!(::hotfix_core::__private::FnMeta),
            &quote!(::hotfix_core::__private::FnMeta::MISSING),
        );
        quote!(&#found)
    }

    /// The checks, each reported at the user's tokens.
    pub fn checks(&self, r: &Replacement<'_>) -> TokenStream {
        let path = &self.path;
        let (fn_ty, function) = (r.fn_ty, r.function);
        let sig = self.lookup("__HOTFIX_SIG_", fn_ty, &quote!(#function));
        let found = self.lookup(
            "__HOTFIX_META_",
            &quote!(::hotfix_core::__private::NotPatchable),
            &quote!(::hotfix_core::__private::NotPatchable),
        );
        let esc = |s: String| s.replace('{', "{{").replace('}', "}}");
        let user_sig = r.sig;
        let message = esc(format!(
            "`{}` cannot replace `{}`: the signatures differ",
            crate::pretty::pretty(&quote!(#user_sig)),
            self.text
        ));
        let label = "the target's signature is `{Self}`";
        let note = esc(format!(
            "the replacement's signature is `{}`; write it with the target's",
            crate::pretty::pretty(fn_ty)
        ));
        let missing = esc(format!("no `#[patchable]` function `{}`", self.text));
        let missing_label = "not a `#[patchable]` function of the host";
        let missing_note = "a patch names a function of the host marked `#[patchable]` (or a \
             method of an `impl` marked `#[patchable]`) by its path: \
             `my_crate::module::function`, `my_crate::Type::method`, or \
             `<my_crate::Type as my_crate::Trait>::method`";
        let span = self.span;
        let name_check = quote_spanned!(span=> let _ = #path;);
        // `&` at the first token and the name at the last: the compiler
        // underlines everything between them.
        let (first, last) = first_last(quote!(#path));
        let (amp, name) = (quote_spanned!(first=> &), quote_spanned!(last=> target));
        let found_check = quote!(target_is_patchable(#amp #name));
        let (first, last) = first_last(quote!(#user_sig));
        let (amp, name) = (quote_spanned!(first=> &), quote_spanned!(last=> target_fn));
        let sig_check = quote!(replacement_has_the_signature_of_the_target(#amp #name));
        quote! {
            #[allow(non_upper_case_globals, non_camel_case_types, dead_code, clippy::all)]
            const _: () = {
                // The path as written: a typo gets the compiler's suggestion.
                #name_check
            };

            #[allow(non_upper_case_globals, non_camel_case_types, dead_code, clippy::all)]
            const _: () = {
                #[diagnostic::on_unimplemented(message = #missing, label = #missing_label, note = #missing_note)]
                trait IsPatchable {}
                impl IsPatchable for ::hotfix_core::__private::FnMeta {}
                const fn target_is_patchable<T: IsPatchable>(_: &T) {}
                let target = #found;
                #found_check;
            };

            #[allow(non_upper_case_globals, non_camel_case_types, dead_code, clippy::all)]
            const _: () = {
                #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
                trait SignatureOfTheTarget {}
                impl SignatureOfTheTarget for #fn_ty {}
                const fn replacement_has_the_signature_of_the_target<T: SignatureOfTheTarget>(_: &T) {}
                let target_fn = #sig;
                #sig_check;
            };
        }
    }
}

/// The spans of the first and last token of `tokens`.
fn first_last(tokens: TokenStream) -> (Span, Span) {
    let mut spans = tokens.into_iter().map(|t| match t {
        proc_macro2::TokenTree::Group(g) => (g.span_open(), g.span_close()),
        t => (t.span(), t.span()),
    });
    let first = spans
        .next()
        .unwrap_or((Span::call_site(), Span::call_site()));
    let last = spans.last().unwrap_or(first);
    (first.0, last.1)
}
