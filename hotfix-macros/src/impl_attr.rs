//! `#[patchable]` on an `impl` block: every method (or only those marked
//! `#[patchable]` inside it) becomes patchable.

use crate::expand::{Options, Owner, UserFn, expand};
use proc_macro2::TokenStream;
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{ImplItem, ItemImpl};

fn is_marker(a: &syn::Attribute) -> bool {
    a.path().is_ident("patchable")
        || a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "patchable")
}

/// In a trait impl's original (now an inherent method), `Self::Assoc` must name
/// the trait: `<Self as Trait>::Assoc`.
struct QualifyAssoc<'a> {
    trait_: &'a syn::Path,
    assoc: &'a [syn::Ident],
}

impl VisitMut for QualifyAssoc<'_> {
    fn visit_type_path_mut(&mut self, p: &mut syn::TypePath) {
        let segs = &p.path.segments;
        if p.qself.is_none()
            && segs.len() == 2
            && segs[0].ident == "Self"
            && self.assoc.contains(&segs[1].ident)
        {
            let name = &segs[1].ident;
            let tr = self.trait_;
            *p = syn::parse_quote!(<Self as #tr>::#name);
            return;
        }
        syn::visit_mut::visit_type_path_mut(self, p);
    }
}

pub fn expand_impl(mut item: ItemImpl, opts: Options) -> syn::Result<TokenStream> {
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.generics,
            "`#[patchable]` cannot patch the methods of a generic `impl`: each type argument \
             has its own instance; put `#[patchable]` on an `impl` for a concrete type",
        ));
    }
    let self_ty = (*item.self_ty).clone();
    let trait_ = item.trait_.as_ref().map(|(_, p, _)| p.clone());
    let assoc: Vec<syn::Ident> = item
        .items
        .iter()
        .filter_map(|i| match i {
            ImplItem::Type(t) => Some(t.ident.clone()),
            _ => None,
        })
        .collect();
    let any_marked = item.items.iter().any(|i| match i {
        ImplItem::Fn(f) => f.attrs.iter().any(is_marker),
        _ => false,
    });
    let mut companions = Vec::new();
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    for it in item.items.iter_mut() {
        let ImplItem::Fn(f) = it else { continue };
        let marked = f.attrs.iter().any(is_marker);
        f.attrs.retain(|a| !is_marker(a));
        if any_marked && !marked {
            continue;
        }
        let mut orig_sig = f.sig.clone();
        let mut orig_block = f.block.clone();
        if let Some(tr) = &trait_ {
            let mut q = QualifyAssoc {
                trait_: tr,
                assoc: &assoc,
            };
            q.visit_signature_mut(&mut orig_sig);
            q.visit_block_mut(&mut orig_block);
            // Trait methods called on `self` need the trait in scope.
            let mut use_path = tr.clone();
            for seg in use_path.segments.iter_mut() {
                seg.arguments = syn::PathArguments::None;
            }
            orig_block.stmts.insert(
                0,
                syn::parse_quote!(#[allow(unused_imports)] use #use_path as _;),
            );
        }
        let expanded = expand(
            UserFn {
                attrs: &f.attrs,
                vis: &f.vis,
                sig: &orig_sig,
                block: &orig_block,
                written: (&f.sig, &f.block),
            },
            Owner {
                self_ty: Some(&self_ty),
                trait_: trait_.as_ref(),
            },
            opts,
        )
        .and_then(|p| Ok((syn::parse2::<syn::ImplItemFn>(p.wrapper.clone())?, p)));
        let (mut wrapper, pieces) = match expanded {
            Ok(w) => w,
            Err(e) => {
                // Refused alone: the method stays as written (not patchable),
                // so the rest of the block, and every use of it, still compiles.
                errors.push(e.to_compile_error());
                continue;
            }
        };
        // A sync wrapper keeps the user's signature (a trait impl must match
        // the trait); an async one returns `impl Future` instead.
        if f.sig.asyncness.is_none() {
            wrapper.sig.output = f.sig.output.clone();
        }
        *f = wrapper;
        companions.push(pieces.companions);
        blocks.push(pieces.module_block);
    }
    Ok(quote! {
        #(#errors)*
        #item
        #[doc(hidden)]
        impl #self_ty {
            #(#companions)*
        }
        #(#blocks)*
    })
}
