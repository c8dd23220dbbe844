//! A crate's items split down to what a patch can change alone: every item,
//! with each method of an `impl` on its own and the `impl` itself as a header
//! (its generics, type, trait and associated items other than methods).

use crate::digest::{is_patchable, short_digest, strip_docs};
use crate::text::normalize;
use crate::tree::{Found, walk};
use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What kind of item a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fn,
    Method,
    Struct,
    Enum,
    Union,
    Const,
    Static,
    Trait,
    Type,
    /// An `impl` block without its methods; `trait_` for `impl Trait for T`.
    ImplHeader {
        trait_: bool,
    },
    Macro,
    Use,
    ExternBlock,
    /// A file the parser could not read, whole.
    Unparsed,
    Other,
}

/// One unit of the source.
#[derive(Debug, Clone)]
pub struct Unit {
    /// `kind path`, as refusals name it: `fn k::m::f`, `fn k::m::Ty::f`,
    /// `fn k::m::<Ty as Tr>::f`, `struct k::m::P`, `impl k::m::Ty`.
    pub name: String,
    pub kind: Kind,
    /// The item's own name (`f`, `P`); empty for `impl`, `use` and blocks.
    pub ident: String,
    /// Where it is: the file and the line of its name.
    pub file: PathBuf,
    pub line: usize,
    /// Declared `pub` (not `pub(crate)` or narrower).
    pub public: bool,
    /// A function or method `#[patchable]` makes patchable.
    pub patchable: bool,
    /// Digest of the unit without doc comments and, when patchable, its body.
    pub digest: String,
    /// Digest of the body, for a patchable unit.
    pub body: Option<String>,
    /// Every identifier the unit's tokens hold (bodies and macros included).
    pub uses: BTreeSet<String>,
}

/// Every unit of one crate, by name.
#[derive(Debug, Default)]
pub struct Units {
    pub krate: String,
    pub map: BTreeMap<String, Unit>,
}

impl Units {
    /// The units of the crate rooted at `root` (its `lib.rs`), whose paths
    /// start with `krate`.
    pub fn walk(root: &Path, krate: &str) -> Result<Self, String> {
        let mut units = Units {
            krate: krate.to_owned(),
            map: BTreeMap::new(),
        };
        walk(root, krate, &mut |found| match found {
            Found::Item { module, file, item } => units.item(module, file, item),
            Found::Unparsed { module, file, text } => units.insert(Unit {
                name: format!("file {module}"),
                kind: Kind::Unparsed,
                ident: String::new(),
                file: file.to_owned(),
                line: 1,
                public: false,
                patchable: false,
                digest: short_digest(text.as_bytes()),
                body: None,
                uses: BTreeSet::new(),
            }),
        })?;
        Ok(units)
    }

    /// The units of one file's text, as the root of crate `krate` (tests).
    pub fn from_text(krate: &str, file: &str, text: &str) -> Result<Self, String> {
        let parsed = syn::parse_file(text).map_err(|e| e.to_string())?;
        let mut units = Units {
            krate: krate.to_owned(),
            map: BTreeMap::new(),
        };
        for item in &parsed.items {
            units.item(krate, Path::new(file), item);
        }
        Ok(units)
    }

    /// Whether any unit is patchable.
    pub fn has_patchable(&self) -> bool {
        self.map.values().any(|u| u.patchable)
    }

    fn insert(&mut self, mut unit: Unit) {
        if self.map.contains_key(&unit.name) {
            let base = unit.name.clone();
            let mut n = 2;
            while self.map.contains_key(&unit.name) {
                unit.name = format!("{base} #{n}");
                n += 1;
            }
        }
        self.map.insert(unit.name.clone(), unit);
    }

    fn item(&mut self, module: &str, file: &Path, item: &syn::Item) {
        if let syn::Item::Impl(i) = item {
            return self.impl_block(module, file, i);
        }
        let mut stripped = item.clone();
        crate::digest::strip(&mut stripped);
        let (kind, ident, line, public) = describe(item);
        let patchable = matches!(item, syn::Item::Fn(f) if is_patchable(&f.attrs));
        let body = match item {
            syn::Item::Fn(f) if patchable => Some(digest_of(&f.block)),
            _ => None,
        };
        self.insert(Unit {
            name: crate::digest::name(module, item),
            kind,
            ident,
            file: file.to_owned(),
            line,
            public,
            patchable,
            digest: digest_of(&stripped),
            body,
            uses: idents(item.to_token_stream()),
        });
    }

    fn impl_block(&mut self, module: &str, file: &Path, i: &syn::ItemImpl) {
        let whole = is_patchable(&i.attrs);
        let marked = i.items.iter().any(|it| match it {
            syn::ImplItem::Fn(f) => is_patchable(&f.attrs),
            _ => false,
        });
        let ty = normalize(&i.self_ty.to_token_stream().to_string());
        let owner = match &i.trait_ {
            Some((_, path, _)) => {
                let tr = normalize(&path.to_token_stream().to_string());
                format!("<{ty} as {tr}>")
            }
            None => ty,
        };
        let mut header = i.clone();
        header
            .items
            .retain(|it| !matches!(it, syn::ImplItem::Fn(_)));
        strip_docs(&mut header.attrs);
        for it in &mut header.items {
            match it {
                syn::ImplItem::Const(c) => strip_docs(&mut c.attrs),
                syn::ImplItem::Type(t) => strip_docs(&mut t.attrs),
                _ => {}
            }
        }
        self.insert(Unit {
            name: crate::digest::name(module, &syn::Item::Impl(i.clone())),
            kind: Kind::ImplHeader {
                trait_: i.trait_.is_some(),
            },
            ident: String::new(),
            file: file.to_owned(),
            line: i.impl_token.span.start().line,
            public: false,
            patchable: false,
            digest: digest_of(&header),
            body: None,
            uses: idents(header.to_token_stream()),
        });
        for it in &i.items {
            let syn::ImplItem::Fn(f) = it else { continue };
            let patchable = is_patchable(&f.attrs) || (whole && !marked);
            let mut stripped = f.clone();
            strip_docs(&mut stripped.attrs);
            if patchable {
                stripped.block.stmts.clear();
            }
            self.insert(Unit {
                name: format!("fn {module}::{owner}::{}", f.sig.ident),
                kind: Kind::Method,
                ident: f.sig.ident.to_string(),
                file: file.to_owned(),
                line: f.sig.ident.span().start().line,
                public: matches!(f.vis, syn::Visibility::Public(_)),
                patchable,
                digest: digest_of(&stripped),
                body: patchable.then(|| digest_of(&f.block)),
                uses: idents(f.to_token_stream()),
            });
        }
    }
}

/// Kind, own name, line of the name, and whether it is `pub`.
fn describe(item: &syn::Item) -> (Kind, String, usize, bool) {
    use syn::Item as I;
    let public = |v: &syn::Visibility| matches!(v, syn::Visibility::Public(_));
    let named = |k, id: &syn::Ident, v| (k, id.to_string(), id.span().start().line, public(v));
    match item {
        I::Fn(f) => named(Kind::Fn, &f.sig.ident, &f.vis),
        I::Struct(s) => named(Kind::Struct, &s.ident, &s.vis),
        I::Enum(e) => named(Kind::Enum, &e.ident, &e.vis),
        I::Union(u) => named(Kind::Union, &u.ident, &u.vis),
        I::Const(c) => named(Kind::Const, &c.ident, &c.vis),
        I::Static(s) => named(Kind::Static, &s.ident, &s.vis),
        I::Trait(t) => named(Kind::Trait, &t.ident, &t.vis),
        I::Type(t) => named(Kind::Type, &t.ident, &t.vis),
        I::Macro(m) => {
            let line = first_line(&m.to_token_stream());
            let ident = m.ident.as_ref().map(|i| i.to_string()).unwrap_or_default();
            (Kind::Macro, ident, line, false)
        }
        I::Use(u) => (
            Kind::Use,
            String::new(),
            u.use_token.span.start().line,
            false,
        ),
        I::ForeignMod(f) => (
            Kind::ExternBlock,
            String::new(),
            first_line(&f.to_token_stream()),
            false,
        ),
        other => (
            Kind::Other,
            String::new(),
            first_line(&other.to_token_stream()),
            false,
        ),
    }
}

fn first_line(tokens: &TokenStream) -> usize {
    tokens
        .clone()
        .into_iter()
        .next()
        .map_or(0, |t| t.span().start().line)
}

fn digest_of(t: &impl ToTokens) -> String {
    short_digest(t.to_token_stream().to_string().as_bytes())
}

/// Every identifier in `tokens`, groups included.
fn idents(tokens: TokenStream) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![tokens];
    while let Some(ts) = stack.pop() {
        for t in ts {
            match t {
                TokenTree::Ident(i) => {
                    out.insert(i.to_string().trim_start_matches("r#").to_owned());
                }
                TokenTree::Group(g) => stack.push(g.stream()),
                _ => {}
            }
        }
    }
    out
}
