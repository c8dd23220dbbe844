//! Names of the hidden items generated for one function.

use proc_macro2::Span;
use quote::format_ident;
use syn::Ident;

/// Hidden names for one patchable function.
pub struct Names {
    /// The original body (for an `async fn`: the function boxing its future).
    pub original: Ident,
    /// For an `async fn`: the original `async fn` itself.
    pub inner: Ident,
    /// The `FnMeta` constant a patch names.
    pub meta: Ident,
    /// The typed function-pointer constant a patch checks its signature against.
    pub sig: Ident,
    base: String,
    location: String,
}

/// The middle part of the hidden names: `Trait_method` for trait methods.
pub fn stem(ident: &Ident, trait_: Option<&syn::Path>) -> String {
    match trait_.and_then(|t| t.segments.last()) {
        Some(seg) => format!("{}_{}", seg.ident, ident),
        None => ident.to_string(),
    }
}

impl Names {
    pub fn new(ident: &Ident, trait_: Option<&syn::Path>) -> Self {
        let base = stem(ident, trait_);
        Self {
            original: format_ident!("__hotfix_original_{}", base),
            inner: format_ident!("__hotfix_inner_{}", base),
            meta: format_ident!("__HOTFIX_META_{}", base),
            sig: format_ident!("__HOTFIX_SIG_{}", base),
            location: location(ident.span()),
            base,
        }
    }

    /// A link-time symbol unique to this function of this crate version.
    pub fn entry_symbol(&self, sig_text: &str) -> String {
        let krate = std::env::var("CARGO_CRATE_NAME").unwrap_or_default();
        let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
        let h = crate::sig::fnv(&format!(
            "{krate}|{version}|{}|{}|{sig_text}",
            self.base, self.location
        ));
        let clean: String = self
            .base
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("__hotfix_entry_{krate}_{clean}_{h:016x}")
    }
}

/// `file:line:column` of a span, when the compiler tells.
fn location(span: Span) -> String {
    let s = span.unwrap();
    format!("{}:{}:{}", s.file(), s.line(), s.column())
}
