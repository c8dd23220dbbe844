//! `patch_library!`: the registry symbol and allocator of a patch crate.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, Path, Token};

#[derive(Default)]
pub struct LibraryArgs {
    name: Option<Expr>,
    version: Option<Expr>,
    on_apply: Option<Path>,
    on_revert: Option<Path>,
}

impl Parse for LibraryArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = LibraryArgs::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "name" => args.name = Some(input.parse()?),
                "version" => args.version = Some(input.parse()?),
                "on_apply" => args.on_apply = Some(input.parse()?),
                "on_revert" => args.on_revert = Some(input.parse()?),
                _ => {
                    return Err(syn::Error::new_spanned(
                        key,
                        "unknown key: expected `name`, `version`, `on_apply` or `on_revert`",
                    ));
                }
            }
            if input.parse::<Option<Token![,]>>()?.is_none() {
                break;
            }
        }
        Ok(args)
    }
}

fn hook(path: Option<Path>, name: &str) -> (TokenStream, TokenStream) {
    match path {
        None => (quote!(::core::option::Option::None), quote!()),
        Some(p) => {
            let f = Ident::new(name, proc_macro2::Span::call_site());
            (
                quote!(::core::option::Option::Some(#f)),
                quote! {
                    fn #f() -> ::hotfix_core::__private::HookResult {
                        ::hotfix_core::__private::guard_hook(#p)
                    }
                },
            )
        }
    }
}

pub fn expand(args: LibraryArgs) -> TokenStream {
    let name = args
        .name
        .map(|e| quote!(#e))
        .unwrap_or_else(|| quote!(::core::env!("CARGO_PKG_NAME")));
    let version = args
        .version
        .map(|e| quote!(#e))
        .unwrap_or_else(|| quote!(::core::env!("CARGO_PKG_VERSION")));
    let (apply, apply_fn) = hook(args.on_apply, "__hotfix_on_apply");
    let (revert, revert_fn) = hook(args.on_revert, "__hotfix_on_revert");
    let crates = crate::identity::dependency_tokens();
    let registry = registry_with(name, version, apply, revert, crates);
    quote! {
        #apply_fn
        #revert_fn
        #registry
    }
}

/// The allocator and registry of a patch library without hooks, whose
/// `crates` are `crates` (`hotfix build`'s patch mode).
pub fn registry(name: TokenStream, version: TokenStream, crates: TokenStream) -> TokenStream {
    let none = quote!(::core::option::Option::None);
    registry_with(name, version, none.clone(), none, crates)
}

fn registry_with(
    name: TokenStream,
    version: TokenStream,
    apply: TokenStream,
    revert: TokenStream,
    crates: TokenStream,
) -> TokenStream {
    quote! {
        /// Every allocation of the patch goes through the host's allocator.
        #[global_allocator]
        static __HOTFIX_ALLOC: ::hotfix_core::__private::HostAlloc = ::hotfix_core::__private::HostAlloc;

        /// The registry the hotfix runtime reads.
        #[unsafe(no_mangle)]
        pub static HOTFIX_REGISTRY_V1: ::hotfix_core::__private::RegistryV1 = ::hotfix_core::__private::RegistryV1 {
            magic: ::hotfix_core::__private::REGISTRY_MAGIC,
            format_version: ::hotfix_core::__private::REGISTRY_FORMAT,
            size: ::core::mem::size_of::<::hotfix_core::__private::RegistryV1>() as u32,
            build: ::hotfix_core::__private::BuildFingerprint::CURRENT,
            name: ::hotfix_core::__private::RawStr::new(#name),
            version: ::hotfix_core::__private::RawStr::new(#version),
            entries: ::hotfix_core::__private::entries,
            foreign: ::hotfix_core::__private::foreign,
            host_fns: ::hotfix_core::__private::host_fns,
            shared: ::hotfix_core::__private::shared,
            bind: ::hotfix_core::__private::bind,
            on_apply: #apply,
            on_revert: #revert,
            crates: #crates,
        };
    }
}
