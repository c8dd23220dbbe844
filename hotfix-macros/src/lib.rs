//! Attributes of [hotfix](https://docs.rs/hotfix-core): use them through
//! `hotfix_core`, which re-exports them.
//!
//! - `#[patchable]` on a function or an `impl` block: the function gets an
//!   atomic slot, a NOP-padded entry and a registration.
//! - `#[patch(path::to::target)]` in a patch crate: a replacement.
//! - `#[shared]` on a host static: patches reach the host's instance.
//! - `#[patch_foreign("symbol")]` / `patch_foreign!("symbol" => c_fn)` in a
//!   patch crate: a replacement of a C or C++ function.
//! - `patch_library!()` once in a patch crate: its registry and allocator.

mod asyncfn;
mod expand;
mod foreign_attr;
mod identity;
mod impl_attr;
mod library;
mod lifetimes;
mod names;
mod patch_attr;
mod patch_mode;
mod pretty;
mod refuse;
mod shared_attr;
mod sig;
mod target;
mod wrapper;

use proc_macro::TokenStream;
use syn::parse_macro_input;

fn options(attr: TokenStream) -> syn::Result<expand::Options> {
    let attr = proc_macro2::TokenStream::from(attr);
    if attr.is_empty() {
        return Ok(expand::Options::default());
    }
    let text = attr.to_string().replace(' ', "");
    if text == "?Send" {
        Ok(expand::Options { not_send: true })
    } else {
        Err(syn::Error::new_spanned(
            attr,
            "unknown option: `#[patchable]` takes no arguments, or `?Send` for an `async fn` \
             whose future is not `Send`",
        ))
    }
}

/// Makes a function (or every method of an `impl` block) patchable at run time.
///
/// A call loads the function's slot and, while it holds the original, calls
/// the original directly (the compiler may inline it there as it would a
/// plain function: `#[inline]`, `#[inline(never)]` and `#[cold]` written on the
/// function apply to the original); otherwise it calls what the slot holds.
#[proc_macro_attribute]
pub fn patchable(attr: TokenStream, item: TokenStream) -> TokenStream {
    let opts = match options(attr) {
        Ok(o) => o,
        Err(e) => return e.to_compile_error().into(),
    };
    let item2 = proc_macro2::TokenStream::from(item.clone());
    let result = match syn::parse2::<syn::Item>(item2.clone()) {
        Ok(syn::Item::Fn(f)) => expand::expand(
            expand::UserFn {
                attrs: &f.attrs,
                vis: &f.vis,
                sig: &f.sig,
                block: &f.block,
                written: (&f.sig, &f.block),
            },
            expand::Owner {
                self_ty: None,
                trait_: None,
            },
            opts,
        )
        .map(|p| {
            let (w, c, m) = (p.wrapper, p.companions, p.module_block);
            quote::quote!(#c #m #w)
        }),
        Ok(syn::Item::Impl(i)) => impl_attr::expand_impl(i, opts),
        Ok(other) => Err(syn::Error::new_spanned(
            other,
            "`#[patchable]` applies to functions and `impl` blocks",
        )),
        // A method alone (inside an impl without the attribute).
        Err(_) => match syn::parse2::<syn::ImplItemFn>(item2) {
            Ok(m) => Err(syn::Error::new_spanned(
                &m.sig.ident,
                "`#[patchable]` on a method needs the type it belongs to: put `#[patchable]` \
                 on the enclosing `impl` block (then mark methods with `#[patchable]` to \
                 choose some, or leave them unmarked to make all of them patchable)",
            )),
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(|e| e.to_compile_error()).into()
}

/// Marks a function of a patch crate as the replacement of a `#[patchable]`
/// function of the host, named by path.
#[proc_macro_attribute]
pub fn patch(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as patch_attr::PatchArgs);
    let item = parse_macro_input!(item as syn::ItemFn);
    patch_attr::expand(args, item)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Shares a host static with patches: patch code reaches the host's instance.
#[proc_macro_attribute]
pub fn shared(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "`#[shared]` takes no arguments",
        )
        .to_compile_error()
        .into();
    }
    let item = match syn::parse::<syn::ItemStatic>(item) {
        Ok(i) => i,
        Err(e) => {
            return syn::Error::new(e.span(), "`#[shared]` applies to `static` items")
                .to_compile_error()
                .into();
        }
    };
    shared_attr::expand(item)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Declares a crate as a patch library: exports its registry and makes the
/// host's allocator its global allocator.
#[proc_macro]
pub fn patch_library(input: TokenStream) -> TokenStream {
    let args = parse_macro_input!(input as library::LibraryArgs);
    library::expand(args).into()
}

/// Marks an `extern "C"` function of a patch crate as the replacement of a
/// foreign (C or C++) function of the host, named by its symbol, mangled
/// (`_ZN4Role12getClassNameB5cxx11Ev`) or demangled
/// (`Role::getClassName[abi:cxx11]()`).
#[proc_macro_attribute]
pub fn patch_foreign(attr: TokenStream, item: TokenStream) -> TokenStream {
    let symbol = parse_macro_input!(attr as syn::LitStr);
    let item = parse_macro_input!(item as syn::ItemFn);
    foreign_attr::expand_attr(symbol, item)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Declares a replacement written in C or C++ and compiled into the patch:
/// `patch_foreign_c!("Role::getClassName[abi:cxx11]()" => fixed_get_class_name);`
/// where `fixed_get_class_name` is the replacement's link name.
#[proc_macro]
pub fn patch_foreign_c(input: TokenStream) -> TokenStream {
    let decl = parse_macro_input!(input as foreign_attr::ForeignDecl);
    foreign_attr::expand_decl(decl).into()
}

/// The versions of the named dependencies of the crate being compiled, as one
/// `name=version;...` string literal (hotfix-core's build fingerprint uses it
/// for the crates whose types cross between host and patch).
#[doc(hidden)]
#[proc_macro]
pub fn __dependency_versions(input: TokenStream) -> TokenStream {
    let names = parse_macro_input!(
        input with syn::punctuated::Punctuated::<syn::Ident, syn::Token![,]>::parse_terminated
    );
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let text = identity::dependency_versions(&names);
    quote::quote!(#text).into()
}
