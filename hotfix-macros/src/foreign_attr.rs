//! Replacements of foreign (C/C++) functions, named by symbol.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, ItemFn, LitStr, Token};

fn entry(symbol: &LitStr, replacement: TokenStream) -> TokenStream {
    quote! {
        const _: () = {
            #[::hotfix_core::__private::linkme::distributed_slice(::hotfix_core::__private::FOREIGN_ENTRIES)]
            #[linkme(crate = ::hotfix_core::__private::linkme)]
            static __HOTFIX_FOREIGN: ::hotfix_core::__private::ForeignEntry = ::hotfix_core::__private::ForeignEntry {
                symbol: #symbol,
                replacement: #replacement as *const (),
                location: ::core::concat!(::core::file!(), ":", ::core::line!()),
            };
        };
    }
}

/// `#[patch_foreign("symbol")] extern "C" fn ...`
pub fn expand_attr(symbol: LitStr, item: ItemFn) -> syn::Result<TokenStream> {
    let is_c = item
        .sig
        .abi
        .as_ref()
        .and_then(|a| a.name.as_ref())
        .is_some_and(|n| n.value() == "C" || n.value() == "C-unwind");
    if !is_c {
        return Err(syn::Error::new_spanned(
            item.sig.fn_token,
            "a replacement of a foreign function must be `extern \"C\"` (its machine-level \
             calling convention must be the C one of the function it replaces)",
        ));
    }
    if symbol.value().trim().is_empty() {
        return Err(syn::Error::new_spanned(&symbol, "the symbol is empty"));
    }
    let ident = &item.sig.ident;
    let e = entry(&symbol, quote!(#ident));
    Ok(quote!(#item #e))
}

/// `patch_foreign!("symbol" => c_function)`: a replacement written in C or C++
/// and compiled into the patch (e.g. with the `cc` crate), by its link name.
pub struct ForeignDecl {
    symbol: LitStr,
    with: Ident,
}

impl Parse for ForeignDecl {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let symbol: LitStr = input.parse()?;
        input.parse::<Token![=>]>()?;
        let with: Ident = input.parse()?;
        let _ = input.parse::<Option<Token![,]>>()?;
        Ok(Self { symbol, with })
    }
}

pub fn expand_decl(d: ForeignDecl) -> TokenStream {
    let name = d.with.to_string();
    let e = entry(&d.symbol, quote!(__hotfix_foreign_replacement));
    quote! {
        const _: () = {
            unsafe extern "C" {
                #[link_name = #name]
                fn __hotfix_foreign_replacement();
            }
            #e
        };
    }
}
