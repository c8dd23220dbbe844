//! The expansion of one `#[patchable]` function, in pieces that free functions
//! and `impl` blocks place differently.

use crate::asyncfn;
use crate::names::Names;
use crate::refuse;
use crate::sig::{SlotSig, body_fingerprint};
use crate::wrapper::{Wrapper, forwarding};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Attribute, Block, Signature, Type, Visibility};

/// Where the function lives.
pub struct Owner<'a> {
    /// The concrete `Self` type, for methods.
    pub self_ty: Option<&'a Type>,
    /// The trait, for trait impl methods.
    pub trait_: Option<&'a syn::Path>,
}

/// Options of the attribute.
#[derive(Default, Clone, Copy)]
pub struct Options {
    /// `#[patchable(?Send)]`: an `async fn` whose future is not `Send`.
    pub not_send: bool,
}

/// The function as the user wrote it.
pub struct UserFn<'a> {
    pub attrs: &'a [Attribute],
    pub vis: &'a Visibility,
    pub sig: &'a Signature,
    pub block: &'a Block,
    /// Signature and body exactly as written in the source (a trait impl's
    /// method is rewritten before expansion): what the body fingerprint
    /// covers, so `hotfix build` can compute it from the base revision's file.
    pub written: (&'a Signature, &'a Block),
}

/// The generated pieces.
pub struct Pieces {
    /// Replaces the user's function: loads the slot and calls what it holds.
    pub wrapper: TokenStream,
    /// The original body, and the hidden constants a patch names
    /// (`__HOTFIX_META_*`, `__HOTFIX_SIG_*`). Free functions: module items;
    /// methods: items of an inherent impl of the type.
    pub companions: TokenStream,
    /// Module-level items beside the function: the slot, entry and thunks.
    pub module_block: TokenStream,
}

/// Expands one function.
pub fn expand(user: UserFn<'_>, owner: Owner<'_>, opts: Options) -> syn::Result<Pieces> {
    refuse::check_signature(user.sig)?;
    let names = Names::new(&user.sig.ident, owner.trait_);
    let in_patch_mode = |e: String| {
        syn::Error::new_spanned(&user.sig.ident, format!("hotfix build (patch mode): {e}"))
    };
    // `hotfix build`: a function the plan replaces keeps the base revision's
    // body fingerprint (the running host's), and gets a replacement.
    let fix = crate::patch_mode::fix_of(&user.sig.ident).map_err(in_patch_mode)?;
    let body_fp = match fix {
        Some(plan) => {
            crate::patch_mode::base_body_fp(plan, &user.sig.ident, owner.self_ty, owner.trait_)
                .map_err(in_patch_mode)?
        }
        None => body_fingerprint(user.written.0, user.written.1),
    };

    let is_async = user.sig.asyncness.is_some();
    // The slot's function: the original as written, or for an `async fn` a
    // function that boxes the original's future.
    // With lifetime bounds in `where` (`#[async_trait]`), the slot's function
    // calls the original with one lifetime for all.
    let shimmed = !is_async && user.sig.generics.where_clause.is_some();
    let orig_sig = if is_async {
        forwarding(&asyncfn::boxed_sig(user.sig, opts.not_send)).0
    } else if shimmed {
        forwarding(&asyncfn::unified_sig(user.sig)).0
    } else {
        user.sig.clone()
    };
    let slot = SlotSig::new(&orig_sig, owner.self_ty, owner.trait_)?;
    let fn_ty = slot.fn_ptr_type();
    let sig_text = slot.text();
    let layouts = slot.layouts();
    let generics = slot.generics();
    let params = slot.params();
    let tuple_ty = slot.tuple_type();
    let tuple_expr = slot.tuple_expr();
    let ret = &slot.ret;
    let unsafety = &slot.unsafety;
    let abi = &slot.abi;

    let orig_ident = &names.original;
    let meta_ident = &names.meta;
    let sig_ident = &names.sig;
    let entry_sym = names.entry_symbol(&sig_text);
    let inner_ident = &names.inner;
    let (owner_prefix, meta_path, path_expr) = match owner.self_ty {
        None => {
            let fn_name = user.sig.ident.to_string();
            (
                quote!(),
                quote!(#meta_ident),
                quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
            )
        }
        Some(ty) => {
            let ty_text = crate::sig::normalize(&quote!(#ty).to_string());
            let fn_name = user.sig.ident.to_string();
            let owner_text = match owner.trait_ {
                None => ty_text,
                Some(t) => format!(
                    "<{} as {}>",
                    ty_text,
                    crate::sig::normalize(&quote!(#t).to_string())
                ),
            };
            (
                quote!(<#ty>::),
                quote!(<#ty>::#meta_ident),
                quote!(::core::concat!(::core::module_path!(), "::", #owner_text, "::", #fn_name)),
            )
        }
    };

    let orig_path = quote!(#owner_prefix #orig_ident);
    let inner_path = quote!(#owner_prefix #inner_ident);

    // Original body under a hidden name; for an `async fn`, the `async fn` as
    // written (`inner`) and the slot's function that boxes its future.
    let orig_attrs: Vec<_> = user
        .attrs
        .iter()
        .filter(|a| {
            ["allow", "expect", "inline", "cold"]
                .iter()
                .any(|n| a.path().is_ident(n))
        })
        .collect();
    let hidden = quote!(#[doc(hidden)] #[allow(non_snake_case, clippy::all, clippy::pedantic)]);
    let call_unsafe = unsafety.map(|_| quote!(unsafe));
    let originals = if is_async || shimmed {
        let mut inner = user.sig.clone();
        inner.ident = inner_ident.clone();
        let block = user.block;
        let mut boxing = orig_sig.clone();
        boxing.ident = orig_ident.clone();
        let fwd = forwarding(&orig_sig).1;
        let wrap_box = if is_async {
            quote!(::std::boxed::Box::pin)
        } else {
            quote!()
        };
        quote! {
            #hidden
            #(#orig_attrs)*
            #inner #block

            #hidden
            #boxing {
                // SAFETY: forwards this function's own contract unchanged.
                #wrap_box(#call_unsafe { #inner_path(#(#fwd),*) })
            }
        }
    } else {
        let mut orig = user.sig.clone();
        orig.ident = orig_ident.clone();
        let block = user.block;
        quote! {
            #hidden
            #(#orig_attrs)*
            #orig #block
        }
    };
    let krate = crate::identity::tokens();
    let companions = quote! {
        #originals

        #hidden
        #[allow(non_upper_case_globals)]
        pub const #meta_ident: ::hotfix_core::__private::FnMeta = ::hotfix_core::__private::FnMeta {
            path: #path_expr,
            signature: #sig_text,
            sig_fp: ::hotfix_core::__private::sig_fp(#sig_text, #layouts),
            body_fp: #body_fp,
            krate: #krate,
        };

        #hidden
        #[allow(non_upper_case_globals)]
        pub const #sig_ident: #fn_ty = #orig_path;
    };

    // The slot, the NOP-padded entry, and the two thunks.

    let tuple = format_ident!("__hotfix_args");
    let fields = slot.tuple_fields(&tuple);
    let safe_kw = if unsafety.is_some() {
        quote!()
    } else {
        quote!(safe)
    };
    let extern_abi = match abi {
        Some(a) => quote!(#a),
        None => quote!(extern "Rust"),
    };
    // Every generated item sits beside the function, under a name unique to it
    // (no child module: a `use super::*` per function makes name resolution,
    // and the compiler's memory, grow with the square of the functions).
    let uniq = entry_sym.trim_start_matches("__hotfix_entry_").to_owned();
    let desc = format_ident!("__HOTFIX_DESC_{}", uniq);
    let entry = format_ident!("__hotfix_entry_{}", uniq);
    let fn_alias = format_ident!("__HotfixFn_{}", uniq);
    let call = format_ident!("__hotfix_call_{}", uniq);
    let catching = format_ident!("__hotfix_catching_{}", uniq);
    let cross = format_ident!("__hotfix_cross_{}", uniq);
    let allow = quote!(#[doc(hidden)] #[allow(non_snake_case, non_camel_case_types, non_upper_case_globals, improper_ctypes, improper_ctypes_definitions, clippy::all)]);
    let asm = entry_asm(&entry_sym, &orig_path);
    // An unpatched slot: the original, or for an `async fn` the entry; the
    // wrapper compares the slot with it and calls the original directly.
    let unpatched = if is_async {
        quote!(#entry)
    } else {
        orig_path.clone()
    };
    let module_block = quote! {
            #[::hotfix_core::__private::linkme::distributed_slice(::hotfix_core::__private::FNS)]
            #[linkme(crate = ::hotfix_core::__private::linkme)]
            #allow static #desc: ::hotfix_core::__private::FnDesc = ::hotfix_core::__private::FnDesc {
                slot: ::hotfix_core::__private::AtomicPtr::new(#unpatched as *mut ()),
                unpatched: #unpatched as *const (),
                meta: &#meta_path,
                original: #orig_path as *const (),
                entry: #entry as *const (),
                catching: #catching as *const (),
                cross: #cross as *const (),
                cross_catching: ::hotfix_core::__private::AtomicPtr::new(::core::ptr::null_mut()),
                cross_src: ::hotfix_core::__private::AtomicPtr::new(::core::ptr::null_mut()),
            };

            #asm

            #allow
            unsafe #extern_abi {
                #[link_name = #entry_sym]
                #safe_kw fn #entry #generics (#params) -> #ret;
            }

            #allow type #fn_alias = #fn_ty;

            #allow unsafe fn #call #generics (__hotfix_f: *const (), #tuple: #tuple_ty) -> #ret {
                // SAFETY: __hotfix_f was read from this function's slot or a
                // replacement's `prev` cell, which only ever hold functions of
                // this type (fingerprints checked by the runtime).
                let __hotfix_f: #fn_alias = unsafe { ::core::mem::transmute(__hotfix_f) };
                #call_unsafe { __hotfix_f(#fields) }
            }

            #allow unsafe fn #catching #generics (
                __hotfix_src: *const ::hotfix_core::__private::AtomicPtr<()>,
                __hotfix_in: *mut #tuple_ty,
                __hotfix_out: *mut #ret,
            ) -> ::core::option::Option<::hotfix_core::__private::PanicMsg> {
                // SAFETY: forwarded from cross_call with its contract.
                unsafe { ::hotfix_core::__private::catching(__hotfix_src, __hotfix_in, __hotfix_out, #call) }
            }

            #allow #unsafety #abi fn #cross #generics (#params) -> #ret {
                // SAFETY: the runtime wrote both cells (the host's catching thunk
                // of this very function, and the host's slot) before any code of
                // this build could call through them.
                unsafe {
                    ::hotfix_core::__private::cross_call::<#tuple_ty, #ret>(
                        ::hotfix_core::__private::load(&#desc.cross_catching),
                        #desc.cross_src.load(::hotfix_core::__private::Ordering::Acquire),
                        #tuple_expr,
                    )
                }
            }
    };

    let fix_tokens = match fix {
        Some(plan) => {
            let replacement = fix_replacement(
                &user,
                &owner,
                opts,
                &slot,
                &format_ident!("__hotfix_fix_{}", uniq),
                (&orig_path, &inner_path),
            )?;
            let registry = crate::patch_mode::registry_once(plan);
            quote!(#replacement #registry)
        }
        None => match crate::patch_mode::active() {
            Ok(Some(plan)) => crate::patch_mode::registry_once(plan),
            _ => quote!(),
        },
    };
    let module_block = quote!(#module_block #fix_tokens);

    let fn_alias_ty = quote!(#fn_alias);
    let wrapper = Wrapper {
        user: &user,
        fn_ty: &fn_alias_ty,
        desc: &desc,
        entry: &entry,
        original: &orig_path,
        inner: &inner_path,
        not_send: opts.not_send,
    }
    .expand();
    Ok(Pieces {
        wrapper,
        companions,
        module_block,
    })
}

/// `hotfix build`'s replacement of a function whose body the fix changed: a
/// `#[patch]` of the function itself, calling the fixed body compiled here
/// (so it reaches private items as the original does).
fn fix_replacement(
    user: &UserFn<'_>,
    owner: &Owner<'_>,
    opts: Options,
    slot: &SlotSig,
    fix_ident: &syn::Ident,
    (orig_path, inner_path): (&TokenStream, &TokenStream),
) -> syn::Result<TokenStream> {
    let id = &user.sig.ident;
    let target: syn::ExprPath = match (owner.self_ty, owner.trait_) {
        (None, _) => syn::parse_quote!(#id),
        (Some(ty), Some(tr)) => syn::parse_quote!(<#ty as #tr>::#id),
        (Some(ty), None) => syn::parse_quote!(<#ty>::#id),
    };
    let item: syn::ItemFn = if user.sig.asyncness.is_some() {
        // The `async fn` as written, its receiver a first argument and `Self`
        // the concrete type, awaiting the fixed body.
        let named = crate::lifetimes::name_elided(user.sig);
        let (mut sig, mut fwd) = forwarding(&named);
        if let Some(ty) = owner.self_ty {
            use syn::visit_mut::VisitMut;
            let mut replace = crate::sig::ReplaceSelf(ty, owner.trait_);
            for (input, fwd) in sig.inputs.iter_mut().zip(fwd.iter_mut()) {
                if let syn::FnArg::Receiver(r) = input {
                    let mut rty = (*r.ty).clone();
                    replace.visit_type_mut(&mut rty);
                    *input = syn::parse_quote!(__hotfix_this: #rty);
                    *fwd = quote!(__hotfix_this);
                } else if let syn::FnArg::Typed(t) = input {
                    replace.visit_type_mut(&mut t.ty);
                }
            }
            replace.visit_return_type_mut(&mut sig.output);
        }
        sig.ident = fix_ident.clone();
        syn::parse_quote!(#sig { #inner_path(#(#fwd),*).await })
    } else {
        let (generics, params, names) = (slot.generics(), slot.params(), slot.names());
        let (ret, unsafety, abi) = (&slot.ret, &slot.unsafety, &slot.abi);
        let call_unsafe = unsafety.map(|_| quote!(unsafe));
        syn::parse_quote! {
            #unsafety #abi fn #fix_ident #generics (#params) -> #ret {
                #call_unsafe { #orig_path(#names) }
            }
        }
    };
    crate::patch_attr::expand(
        crate::patch_attr::PatchArgs::new(target, opts.not_send),
        item,
    )
}

/// The NOP-padded entry (libpulp's layout): 14 bytes of NOP before the entry,
/// a 2-byte NOP at the entry, then a direct jump to the original. The slot
/// holds the entry until a replacement is live.
fn entry_asm(sym: &str, original: &TokenStream) -> TokenStream {
    let lines = [
        format!(".pushsection .text.{sym},\"ax\",@progbits"),
        ".p2align 4".to_owned(),
        format!(".globl {sym}"),
        format!(".hidden {sym}"),
        format!(".type {sym},@function"),
        ".skip 14, 0x90".to_owned(),
        format!("{sym}:"),
        ".byte 0x66, 0x90".to_owned(),
        "jmp {original}".to_owned(),
        format!(".size {sym}, . - {sym}"),
        ".popsection".to_owned(),
    ];
    quote! {
        ::core::arch::global_asm! { #(#lines),*, original = sym #original }
    }
}
