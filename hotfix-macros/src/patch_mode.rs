//! Patch mode: `hotfix build` compiles the host's own crate, fixed in place,
//! as a patch library. It names a plan file in `HOTFIX_PATCH_PLAN`; while the
//! planned crate is compiled as a `cdylib`:
//!
//! - every function the plan lists gets a replacement (as `#[patch]` would
//!   make) whose body is the fixed one, compiled inside the crate so it
//!   reaches private items as the original did;
//! - the crate's identity, and the body fingerprints of the replaced
//!   functions, are those of the base revision (the source the running host
//!   was built from), so the runtime's proof compares like with like;
//! - the first expansion emits the registry and the allocator of a patch
//!   library, and includes the plan file so cargo rebuilds when it changes.
//!
//! Any other compilation (other crates, other crate types, no plan) is
//! untouched.

use crate::sig::{body_fingerprint, normalize};
use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable naming the plan file.
pub const PLAN_VAR: &str = "HOTFIX_PATCH_PLAN";
/// Longest plan file read, in bytes.
const MAX_PLAN: u64 = 1024 * 1024;

/// What `hotfix build` asks of this compilation.
pub struct Plan {
    pub file: PathBuf,
    pub name: String,
    pub version: String,
    pub krate: String,
    /// The base revision's root file of the crate (`.../src/lib.rs`).
    pub base_root: PathBuf,
    /// The working tree's root file of the crate.
    pub work_root: PathBuf,
    /// The functions to replace: file (canonical) and line of the name.
    pub fixes: Vec<(PathBuf, usize)>,
}

/// The plan, when this compilation is the planned crate's `cdylib`.
pub fn active() -> Result<Option<&'static Plan>, String> {
    static PLAN: OnceLock<Result<Option<Plan>, String>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let Some(file) = std::env::var_os(PLAN_VAR) else {
            return Ok(None);
        };
        let plan = parse(Path::new(&file))?;
        let krate = std::env::var("CARGO_CRATE_NAME").unwrap_or_default();
        let cdylib = crate::identity::crate_types().iter().any(|t| t == "cdylib");
        Ok((plan.krate == krate && cdylib).then_some(plan))
    })
    .as_ref()
    .map(Option::as_ref)
    .map_err(Clone::clone)
}

fn parse(file: &Path) -> Result<Plan, String> {
    let text = hotfix_source::text::read_bounded(file, MAX_PLAN)
        .ok_or_else(|| format!("cannot read the hotfix plan {}", file.display()))?;
    let mut plan = Plan {
        file: file.to_owned(),
        name: String::new(),
        version: String::new(),
        krate: String::new(),
        base_root: PathBuf::new(),
        work_root: PathBuf::new(),
        fixes: Vec::new(),
    };
    let mut lines = text.lines();
    if lines.next() != Some("hotfix-plan\t1") {
        return Err(format!(
            "{} is not a hotfix plan of version 1",
            file.display()
        ));
    }
    for line in lines {
        let mut f = line.splitn(3, '\t');
        match (f.next(), f.next(), f.next()) {
            (Some("name"), Some(v), None) => plan.name = v.to_owned(),
            (Some("version"), Some(v), None) => plan.version = v.to_owned(),
            (Some("crate"), Some(v), None) => plan.krate = v.to_owned(),
            (Some("base-root"), Some(v), None) => plan.base_root = v.into(),
            (Some("work-root"), Some(v), None) => plan.work_root = v.into(),
            (Some("fix"), Some(line), Some(path)) => {
                let line = line
                    .parse()
                    .map_err(|_| format!("bad plan line `{line}`"))?;
                plan.fixes.push((PathBuf::from(path), line));
            }
            _ => return Err(format!("bad plan line `{line}`")),
        }
    }
    Ok(plan)
}

/// The plan, when the function named `ident` is one it replaces.
pub fn fix_of(ident: &syn::Ident) -> Result<Option<&'static Plan>, String> {
    let Some(plan) = active()? else {
        return Ok(None);
    };
    let span = ident.span().unwrap();
    let Some(file) = span.local_file() else {
        return Ok(None);
    };
    let file = std::fs::canonicalize(&file).unwrap_or(file);
    let line = span.line();
    Ok(plan
        .fixes
        .iter()
        .any(|(f, l)| *l == line && *f == file)
        .then_some(plan))
}

/// The base revision's root file, when this is the planned crate.
pub fn base_root() -> Option<PathBuf> {
    active().ok().flatten().map(|p| p.base_root.clone())
}

/// The body fingerprint of the function named `ident` (of `owner`'s impl,
/// for methods) as the base revision has it.
pub fn base_body_fp(
    plan: &Plan,
    ident: &syn::Ident,
    self_ty: Option<&syn::Type>,
    trait_: Option<&syn::Path>,
) -> Result<u64, String> {
    let here = ident
        .span()
        .unwrap()
        .local_file()
        .ok_or("the compiler does not tell this function's file")?;
    let here = std::fs::canonicalize(&here).unwrap_or(here);
    let work_dir = plan.work_root.parent().unwrap_or(Path::new("/"));
    let base_dir = plan.base_root.parent().unwrap_or(Path::new("/"));
    let rel = here
        .strip_prefix(work_dir)
        .map_err(|_| format!("{} is outside the crate", here.display()))?;
    let base_file = base_dir.join(rel);
    let text = hotfix_source::text::read_bounded(&base_file, 16 * 1024 * 1024)
        .ok_or_else(|| format!("cannot read {}", base_file.display()))?;
    let file = syn::parse_file(&text).map_err(|e| format!("{}: {e}", base_file.display()))?;
    let text_of = |t: &dyn ToTokens| normalize(&t.to_token_stream().to_string());
    let owner = (self_ty.map(|t| text_of(t)), trait_.map(|t| text_of(t)));
    let mut found = Vec::new();
    find(&file.items, ident, &owner, &text_of, &mut found);
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("`{ident}` is not in {}", base_file.display())),
        _ => Err(format!(
            "`{ident}` is in {} more than once",
            base_file.display()
        )),
    }
}

type Owner = (Option<String>, Option<String>);

fn find(
    items: &[syn::Item],
    ident: &syn::Ident,
    owner: &Owner,
    text_of: &dyn Fn(&dyn ToTokens) -> String,
    found: &mut Vec<u64>,
) {
    for item in items {
        match item {
            syn::Item::Fn(f) if owner.0.is_none() && f.sig.ident == *ident => {
                found.push(body_fingerprint(&f.sig, &f.block));
            }
            syn::Item::Impl(i) => {
                let this = (
                    Some(text_of(&i.self_ty)),
                    i.trait_.as_ref().map(|(_, p, _)| text_of(p)),
                );
                if this != *owner {
                    continue;
                }
                for it in &i.items {
                    if let syn::ImplItem::Fn(f) = it
                        && f.sig.ident == *ident
                    {
                        found.push(body_fingerprint(&f.sig, &f.block));
                    }
                }
            }
            syn::Item::Mod(m) => {
                if let Some((_, inner)) = &m.content {
                    find(inner, ident, owner, text_of, found);
                }
            }
            _ => {}
        }
    }
}

/// The registry and allocator of the patch library, and the plan file
/// included (cargo then rebuilds when it changes): once per compilation.
pub fn registry_once(plan: &Plan) -> TokenStream {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) {
        return quote!();
    }
    let (name, version) = (&plan.name, &plan.version);
    let file = plan.file.display().to_string();
    let registry = crate::library::registry(
        quote!(#name),
        quote!(#version),
        crate::identity::own_and_dependency_tokens(),
    );
    quote! {
        const _: &[u8] = ::core::include_bytes!(#file);
        #registry
    }
}
