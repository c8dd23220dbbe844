//! `#[shared]`: a host static that patches reach instead of a private copy.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemStatic;

pub fn expand(item: ItemStatic) -> syn::Result<TokenStream> {
    if let syn::StaticMutability::Mut(m) = &item.mutability {
        return Err(syn::Error::new_spanned(
            m,
            "`#[shared]` cannot share a `static mut`: patch and host would race on it \
             without synchronisation; use an atomic, a `Mutex` or a `OnceLock` instead",
        ));
    }
    let ItemStatic {
        attrs,
        vis,
        ident,
        ty,
        expr,
        ..
    } = item;
    let name = ident.to_string();
    let ty_text = crate::sig::normalize(&quote!(#ty).to_string());
    let krate = crate::identity::tokens();
    Ok(quote! {
        #(#attrs)*
        #vis static #ident: ::hotfix_core::Shared<#ty> = {
            static __HOTFIX_STORAGE: #ty = #expr;
            #[::hotfix_core::__private::linkme::distributed_slice(::hotfix_core::__private::SHARED)]
            #[linkme(crate = ::hotfix_core::__private::linkme)]
            static __HOTFIX_SHARED_DESC: ::hotfix_core::__private::SharedDesc = ::hotfix_core::__private::SharedDesc {
                path: ::core::concat!(::core::module_path!(), "::", #name),
                type_name: #ty_text,
                type_fp: ::hotfix_core::__private::type_fp(
                    #ty_text,
                    ::core::mem::size_of::<#ty>(),
                    ::core::mem::align_of::<#ty>(),
                ),
                cell: &#ident as *const ::hotfix_core::Shared<#ty> as *const ::hotfix_core::__private::AtomicPtr<()>,
                storage: &__HOTFIX_STORAGE as *const #ty as *const (),
                krate: #krate,
            };
            ::hotfix_core::Shared::__new(&__HOTFIX_STORAGE, &__HOTFIX_SHARED_DESC)
        };
    })
}
