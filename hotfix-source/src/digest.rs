//! One digest per item of a crate's source: what a patch built against that
//! source relies on. Doc comments are left out, and so are the bodies of
//! `#[patchable]` functions: a patch replaces exactly those.
//!
//! Both sides of a comparison must be computed in the same setting (inside a
//! proc macro, or both outside): token text may be spaced differently.

use crate::tree::{Found, walk};
use quote::ToTokens;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Digests every item of the crate rooted at `root`, whose paths start with
/// `krate`.
pub fn crate_items(root: &Path, krate: &str) -> Result<Items, String> {
    let mut items = Items::default();
    walk(root, krate, &mut |found| match found {
        Found::Item { module, item, .. } => items.add(module, item),
        Found::Unparsed { module, text, .. } => items.raw_file(module, text),
    })?;
    Ok(items)
}

/// Item name (`struct crate::m::Pair`) to the first 16 hex digits of the
/// SHA-256 of its tokens.
#[derive(Default)]
pub struct Items(BTreeMap<String, String>);

impl Items {
    /// Adds one item declared in `module`.
    pub fn add(&mut self, module: &str, item: &syn::Item) {
        let mut item = item.clone();
        strip(&mut item);
        let name = name(module, &item);
        self.insert(name, &item.to_token_stream().to_string());
    }

    /// Adds a whole file this parser cannot read.
    pub fn raw_file(&mut self, module: &str, text: &str) {
        self.insert(format!("file {module}"), text);
    }

    fn insert(&mut self, mut name: String, text: &str) {
        // Two inherent impls of one type, two `use` of one path...: numbered.
        if self.0.contains_key(&name) {
            let base = name.clone();
            let mut n = 2;
            while self.0.contains_key(&name) {
                name = format!("{base} #{n}");
                n += 1;
            }
        }
        self.0.insert(name, short_digest(text.as_bytes()));
    }

    /// The crate's source digest: the first 32 hex digits of the SHA-256 of
    /// [`Items::lines`], returned with them.
    pub fn digest_and_lines(&self) -> (String, String) {
        let lines = self.lines();
        (hex(&Sha256::digest(lines.as_bytes())[..16]), lines)
    }

    /// One `name digest` line per item, sorted by name.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for (name, digest) in &self.0 {
            out.push_str(name);
            out.push('\t');
            out.push_str(digest);
            out.push('\n');
        }
        out
    }
}

/// The first 16 hex digits of SHA-256.
pub fn short_digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes)[..8])
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn is_patchable(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "patchable")
    })
}

pub fn strip_docs(attrs: &mut Vec<syn::Attribute>) {
    attrs.retain(|a| !a.path().is_ident("doc"));
}

/// Removes doc comments and the bodies a patch may replace.
pub fn strip(item: &mut syn::Item) {
    match item {
        syn::Item::Fn(f) => {
            if is_patchable(&f.attrs) {
                f.block.stmts.clear();
            }
            strip_docs(&mut f.attrs);
        }
        syn::Item::Impl(i) => {
            let whole = is_patchable(&i.attrs);
            let marked = i.items.iter().any(|it| match it {
                syn::ImplItem::Fn(f) => is_patchable(&f.attrs),
                _ => false,
            });
            for it in &mut i.items {
                match it {
                    syn::ImplItem::Fn(f) => {
                        let own = is_patchable(&f.attrs);
                        if own || (whole && !marked) {
                            f.block.stmts.clear();
                        }
                        strip_docs(&mut f.attrs);
                    }
                    syn::ImplItem::Const(c) => strip_docs(&mut c.attrs),
                    syn::ImplItem::Type(t) => strip_docs(&mut t.attrs),
                    _ => {}
                }
            }
            strip_docs(&mut i.attrs);
        }
        syn::Item::Struct(s) => {
            strip_docs(&mut s.attrs);
            for f in s.fields.iter_mut() {
                strip_docs(&mut f.attrs);
            }
        }
        syn::Item::Enum(e) => {
            strip_docs(&mut e.attrs);
            for v in &mut e.variants {
                strip_docs(&mut v.attrs);
                for f in v.fields.iter_mut() {
                    strip_docs(&mut f.attrs);
                }
            }
        }
        syn::Item::Union(u) => strip_docs(&mut u.attrs),
        syn::Item::Const(c) => strip_docs(&mut c.attrs),
        syn::Item::Static(s) => strip_docs(&mut s.attrs),
        syn::Item::Trait(t) => strip_docs(&mut t.attrs),
        syn::Item::Type(t) => strip_docs(&mut t.attrs),
        syn::Item::Macro(m) => strip_docs(&mut m.attrs),
        syn::Item::Use(u) => strip_docs(&mut u.attrs),
        _ => {}
    }
}

/// `kind path` of an item, as a refusal names it.
pub fn name(module: &str, item: &syn::Item) -> String {
    let text = |t: &dyn ToTokens| crate::text::normalize(&t.to_token_stream().to_string());
    match item {
        syn::Item::Fn(f) => format!("fn {module}::{}", f.sig.ident),
        syn::Item::Struct(s) => format!("struct {module}::{}", s.ident),
        syn::Item::Enum(e) => format!("enum {module}::{}", e.ident),
        syn::Item::Union(u) => format!("union {module}::{}", u.ident),
        syn::Item::Const(c) => format!("const {module}::{}", c.ident),
        syn::Item::Static(s) => format!("static {module}::{}", s.ident),
        syn::Item::Trait(t) => format!("trait {module}::{}", t.ident),
        syn::Item::Type(t) => format!("type {module}::{}", t.ident),
        syn::Item::Impl(i) => match &i.trait_ {
            Some((_, path, _)) => format!("impl {} for {module}::{}", text(path), text(&i.self_ty)),
            None => format!("impl {module}::{}", text(&i.self_ty)),
        },
        syn::Item::Macro(m) => match &m.ident {
            Some(id) => format!("macro {module}::{id}"),
            None => format!("{}! in {module}", text(&m.mac.path)),
        },
        syn::Item::Use(u) => format!("use {} in {module}", text(&u.tree)),
        syn::Item::ForeignMod(f) => format!("extern block in {module}: {}", text(&f.abi)),
        _ => format!("item in {module}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(src: &str) -> String {
        let file = syn::parse_file(src).unwrap();
        let mut items = Items::default();
        for i in &file.items {
            items.add("k", i);
        }
        items.lines()
    }

    #[test]
    fn patchable_bodies_and_docs_do_not_count() {
        let a =
            digest_of("#[patchable] pub fn add(a: i64) -> i64 { a + 1 }\n/// x\npub struct P(u8);");
        let b =
            digest_of("#[patchable] pub fn add(a: i64) -> i64 { a + 2 }\n/// y\npub struct P(u8);");
        assert_eq!(a, b);
    }

    #[test]
    fn everything_else_counts() {
        let base = digest_of("pub struct P { a: u8, b: u8 }\nfn helper() -> i64 { 1 }");
        let swapped = digest_of("pub struct P { b: u8, a: u8 }\nfn helper() -> i64 { 1 }");
        let helper = digest_of("pub struct P { a: u8, b: u8 }\nfn helper() -> i64 { 2 }");
        assert_ne!(base, swapped);
        assert_ne!(base, helper);
        assert!(base.contains("struct k::P\t"));
        assert!(base.contains("fn k::helper\t"));
    }

    #[test]
    fn a_patchable_impl_leaves_out_its_method_bodies() {
        let a = digest_of("#[patchable] impl P { fn f(&self) -> u8 { 1 } }");
        let b = digest_of("#[patchable] impl P { fn f(&self) -> u8 { 2 } }");
        let c = digest_of(
            "#[patchable] impl P { #[patchable] fn f(&self) -> u8 { 1 } fn g() -> u8 { 1 } }",
        );
        let d = digest_of(
            "#[patchable] impl P { #[patchable] fn f(&self) -> u8 { 1 } fn g() -> u8 { 2 } }",
        );
        assert_eq!(a, b);
        assert_ne!(c, d);
    }
}
