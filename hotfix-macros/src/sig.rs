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

/// Names the elided lifetimes of the arguments (`&T`, `'_`) `'__hotfix_lN`,
/// and those of the result by the elision rules (the receiver's, or the only
/// one of the arguments), so that every generated item that restates the
/// types (the thunks take them apart into tuples) keeps the same relations.
struct NameElided {
    added: Vec<syn::Lifetime>,
    /// Names already used by the signature.
    taken: Vec<String>,
}

impl NameElided {
    /// `'a`, `'b`, ... (what the compiler prints for elided lifetimes), skipping
    /// names the signature uses.
    fn fresh(&mut self) -> syn::Lifetime {
        let name = (0..)
            .map(|i: usize| match i {
                0..26 => format!("'{}", (b'a' + i as u8) as char),
                _ => format!("'l{i}"),
            })
            .find(|n| !self.taken.contains(n))
            .expect("an unused lifetime name");
        self.taken.push(name.clone());
        let lt = syn::Lifetime::new(&name, Span::call_site());
        self.added.push(lt.clone());
        lt
    }
}

impl VisitMut for NameElided {
    fn visit_lifetime_mut(&mut self, lt: &mut syn::Lifetime) {
        if lt.ident == "_" {
            *lt = self.fresh();
        }
    }
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(self.fresh());
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }
    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {
        // Elided lifetimes inside a fn-pointer type belong to it.
    }
}

/// Every lifetime named in a type.
fn lifetimes_in(ty: &Type, out: &mut Vec<syn::Lifetime>) {
    use syn::visit::Visit;
    struct Collect<'a>(&'a mut Vec<syn::Lifetime>);
    impl<'a> Visit<'a> for Collect<'_> {
        fn visit_lifetime(&mut self, lt: &'a syn::Lifetime) {
            if lt.ident != "static" && !self.0.contains(lt) {
                self.0.push(lt.clone());
            }
        }
        fn visit_type_bare_fn(&mut self, _: &'a syn::TypeBareFn) {}
    }
    Collect(out).visit_type(ty);
}

/// `sig` with every elided lifetime of arguments and result named (see
/// [`NameElided`]); the new names are added to its generics.
fn name_elided(sig: &Signature) -> Signature {
    let mut s = sig.clone();
    let mut taken = Vec::new();
    {
        use syn::visit::Visit;
        struct Names<'a>(&'a mut Vec<String>);
        impl<'a> Visit<'a> for Names<'_> {
            fn visit_lifetime(&mut self, lt: &'a syn::Lifetime) {
                self.0.push(lt.to_string());
            }
        }
        Names(&mut taken).visit_signature(sig);
    }
    let mut v = NameElided {
        added: Vec::new(),
        taken,
    };
    let mut self_lt = None;
    let mut input_lts = Vec::new();
    for input in s.inputs.iter_mut() {
        match input {
            FnArg::Receiver(r) => {
                v.visit_type_mut(&mut r.ty);
                if let Type::Reference(rt) = &*r.ty {
                    self_lt = rt.lifetime.clone();
                    if let Some((_, lt)) = &mut r.reference {
                        *lt = rt.lifetime.clone();
                    }
                }
                lifetimes_in(&r.ty, &mut input_lts);
            }
            FnArg::Typed(t) => {
                v.visit_type_mut(&mut t.ty);
                lifetimes_in(&t.ty, &mut input_lts);
            }
        }
    }
    let out_lt = self_lt.or_else(|| (input_lts.len() == 1).then(|| input_lts[0].clone()));
    if let (ReturnType::Type(_, t), Some(out_lt)) = (&mut s.output, out_lt) {
        struct Output(syn::Lifetime);
        impl VisitMut for Output {
            fn visit_lifetime_mut(&mut self, lt: &mut syn::Lifetime) {
                if lt.ident == "_" {
                    *lt = self.0.clone();
                }
            }
            fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
                if r.lifetime.is_none() {
                    r.lifetime = Some(self.0.clone());
                }
                syn::visit_mut::visit_type_reference_mut(self, r);
            }
            fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}
        }
        Output(out_lt).visit_type_mut(t);
    }
    for lt in v.added {
        s.generics
            .params
            .push(GenericParam::Lifetime(syn::LifetimeParam::new(lt)));
    }
    s
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
        let named = name_elided(sig);
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

/// Removes the spaces `to_string` puts between tokens, for stable, readable text.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let s = s.replace('\n', " ");
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = if i > 0 { chars[i - 1] } else { ' ' };
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            let tight =
                |ch: char| matches!(ch, '(' | ')' | '<' | '>' | '&' | ',' | ':' | '[' | ']');
            if (tight(prev) && prev != ',') || (tight(next) && next != '&') {
                continue;
            }
        }
        out.push(c);
    }
    out
}

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

/// The atoms of a token stream: `->`, `::`, `'a`, brackets, words.
fn atoms(tokens: TokenStream, out: &mut Vec<String>) {
    use proc_macro2::{Delimiter, Spacing, TokenTree};
    let mut joint = String::new();
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                if !open.is_empty() {
                    out.push(open.to_owned());
                }
                atoms(g.stream(), out);
                if !close.is_empty() {
                    out.push(close.to_owned());
                }
            }
            TokenTree::Punct(p) => {
                joint.push(p.as_char());
                if p.spacing() == Spacing::Alone || p.as_char() == '\'' {
                    if p.as_char() != '\'' {
                        out.push(std::mem::take(&mut joint));
                    }
                } else {
                    continue;
                }
            }
            TokenTree::Ident(i) => {
                out.push(format!("{}{i}", std::mem::take(&mut joint)));
            }
            TokenTree::Literal(l) => out.push(l.to_string()),
        }
    }
    if !joint.is_empty() {
        out.push(joint);
    }
}

/// Tokens as a person writes them (`fn sum(a: i32) -> i32`), for messages.
pub fn pretty(tokens: &TokenStream) -> String {
    let mut list = Vec::new();
    atoms(tokens.clone(), &mut list);
    let mut out = String::new();
    let mut prev = String::new();
    for tok in list {
        let p = prev.as_str();
        let t = tok.as_str();
        let glue = matches!(p, "" | "(" | "<" | "&" | "::" | "[" | "#" | "!")
            || matches!(t, "," | ")" | ">" | "]" | "::" | ":" | ";")
            || (t == "(" && !matches!(p, "->" | "=" | "," | "+"))
            || (t == "<" && !matches!(p, "=" | "->" | "+"));
        if !glue {
            out.push(' ');
        }
        out.push_str(t);
        prev = tok;
    }
    out
}
