//! Analysis of a function signature shared by `#[patchable]` and `#[patch]`:
//! the slot's function-pointer type, argument names and layout expressions.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::visit_mut::VisitMut;
use syn::{FnArg, GenericParam, Ident, Pat, ReturnType, Signature, Type};

/// One argument of the slot's function type.
pub struct Arg {
    /// Name used by generated code (`__hotfix_a0`, ...).
    pub name: Ident,
    /// The type, with `Self` replaced by the concrete type.
    pub ty: Type,
}

/// A signature reduced to what the slot needs.
pub struct SlotSig {
    pub args: Vec<Arg>,
    /// The return type (`()` when omitted).
    pub ret: Type,
    /// Lifetime parameters, for a `for<...>` binder.
    pub lifetimes: Vec<syn::Lifetime>,
    pub unsafety: Option<syn::Token![unsafe]>,
    pub abi: Option<syn::Abi>,
}

/// Replaces `Self` (as a type or path head) with a concrete type; `Self::X`
/// becomes `<Type as Trait>::X` (or `<Type>::X` without a trait).
pub struct ReplaceSelf<'a>(pub &'a Type, pub Option<&'a syn::Path>);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(p) = ty {
            if p.qself.is_none() && p.path.is_ident("Self") {
                *ty = self.0.clone();
                return;
            }
            let head_is_self = p.path.segments.first().is_some_and(|s| s.ident == "Self");
            if p.qself.is_none() && head_is_self && p.path.segments.len() > 1 {
                let rest: Vec<_> = p.path.segments.iter().skip(1).cloned().collect();
                let self_ty = self.0;
                *ty = match self.1 {
                    Some(tr) => syn::parse_quote!(<#self_ty as #tr>::#(#rest)::*),
                    None => syn::parse_quote!(<#self_ty>::#(#rest)::*),
                };
                return;
            }
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// Replaces every lifetime with `'static` (for `size_of` in a constant).
struct StaticLifetimes;

impl VisitMut for StaticLifetimes {
    fn visit_lifetime_mut(&mut self, lt: &mut syn::Lifetime) {
        *lt = syn::Lifetime::new("'static", lt.span());
    }
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(syn::Lifetime::new("'static", Span::call_site()));
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }
}

impl SlotSig {
    /// Builds the slot signature. `self_ty` is the concrete type for methods.
    pub fn new(
        sig: &Signature,
        self_ty: Option<&Type>,
        trait_: Option<&syn::Path>,
    ) -> syn::Result<Self> {
        let named = crate::lifetimes::name_elided(sig);
        let sig = &named;
        let mut args = Vec::new();
        for (i, input) in sig.inputs.iter().enumerate() {
            let name = format_ident!("__hotfix_a{}", i);
            let ty = match input {
                FnArg::Receiver(r) => {
                    let Some(self_ty) = self_ty else {
                        return Err(syn::Error::new_spanned(
                            r,
                            "`#[patchable]` on a method needs the type it belongs to: \
                             put `#[patchable]` on the enclosing `impl` block",
                        ));
                    };
                    let mut ty = (*r.ty).clone();
                    ReplaceSelf(self_ty, trait_).visit_type_mut(&mut ty);
                    ty
                }
                FnArg::Typed(t) => {
                    let mut ty = (*t.ty).clone();
                    if let Some(self_ty) = self_ty {
                        ReplaceSelf(self_ty, trait_).visit_type_mut(&mut ty);
                    }
                    ty
                }
            };
            args.push(Arg { name, ty });
        }
        let mut ret = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, t) => (**t).clone(),
        };
        if let Some(self_ty) = self_ty {
            ReplaceSelf(self_ty, trait_).visit_type_mut(&mut ret);
        }
        let lifetimes = sig
            .generics
            .params
            .iter()
            .filter_map(|p| match p {
                GenericParam::Lifetime(l) => Some(l.lifetime.clone()),
                _ => None,
            })
            .collect();
        Ok(Self {
            args,
            ret,
            lifetimes,
            unsafety: sig.unsafety,
            abi: sig.abi.clone(),
        })
    }

    /// `for<'a> unsafe extern "C" fn(A, B) -> R`
    pub fn fn_ptr_type(&self) -> TokenStream {
        let tys = self.args.iter().map(|a| &a.ty);
        let ret = &self.ret;
        let unsafety = &self.unsafety;
        let abi = &self.abi;
        let binder = self.binder();
        quote!(#binder #unsafety #abi fn(#(#tys),*) -> #ret)
    }

    /// `for<'a, 'b>` or nothing.
    pub fn binder(&self) -> TokenStream {
        if self.lifetimes.is_empty() {
            quote!()
        } else {
            let l = &self.lifetimes;
            quote!(for<#(#l),*>)
        }
    }

    /// `<'a, 'b>` or nothing.
    pub fn generics(&self) -> TokenStream {
        if self.lifetimes.is_empty() {
            quote!()
        } else {
            let l = &self.lifetimes;
            quote!(<#(#l),*>)
        }
    }

    /// `__hotfix_a0: A, __hotfix_a1: B`
    pub fn params(&self) -> TokenStream {
        let p = self.args.iter().map(|a| {
            let (n, t) = (&a.name, &a.ty);
            quote!(#n: #t)
        });
        quote!(#(#p),*)
    }

    /// `__hotfix_a0, __hotfix_a1`
    pub fn names(&self) -> TokenStream {
        let n = self.args.iter().map(|a| &a.name);
        quote!(#(#n),*)
    }

    /// `(__hotfix_a0, __hotfix_a1,)` — the arguments as one tuple value.
    pub fn tuple_expr(&self) -> TokenStream {
        let n = self.args.iter().map(|a| &a.name);
        quote!((#(#n,)*))
    }

    /// `(A, B,)` — the arguments as one tuple type.
    pub fn tuple_type(&self) -> TokenStream {
        let t = self.args.iter().map(|a| &a.ty);
        quote!((#(#t,)*))
    }

    /// `__hotfix_args.0, __hotfix_args.1`
    pub fn tuple_fields(&self, tuple: &Ident) -> TokenStream {
        let f = (0..self.args.len()).map(syn::Index::from);
        quote!(#(#tuple.#f),*)
    }

    /// `&[(size_of::<A>(), align_of::<A>()), ...]` over arguments and result.
    pub fn layouts(&self) -> TokenStream {
        let items = self
            .args
            .iter()
            .map(|a| &a.ty)
            .chain(std::iter::once(&self.ret))
            .map(|t| {
                let mut t = t.clone();
                StaticLifetimes.visit_type_mut(&mut t);
                quote!((::core::mem::size_of::<#t>(), ::core::mem::align_of::<#t>()))
            });
        quote!(&[#(#items),*])
    }

    /// The signature text for messages and the fingerprint.
    pub fn text(&self) -> String {
        normalize(&self.fn_ptr_type().to_string())
    }
}

pub use hotfix_source::text::normalize;

/// Plain identifiers of the parameters, or `None` for patterns.
pub fn pat_ident(pat: &Pat) -> Option<&Ident> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(&p.ident),
        _ => None,
    }
}

/// FNV-1a, the same function the runtime uses, for fingerprints computed here.
pub fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Fingerprint of a body: the tokens of signature and block.
pub fn body_fingerprint(sig: &Signature, block: &impl ToTokens) -> u64 {
    fnv(&format!(
        "{} {}",
        sig.to_token_stream(),
        block.to_token_stream()
    ))
}
