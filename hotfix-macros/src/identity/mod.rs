//! The identity of the crate being compiled, as a `&CrateIdentity` constant:
//! how it was built (version, features, codegen options, dependencies'
//! versions) and a digest of every item of its source except the bodies of
//! `#[patchable]` functions. The host's copy and a patch's copy (compiled from
//! the source the patch was built against) are compared by the runtime.

mod deps;
mod rustc_args;

use hotfix_source::text::read_bounded;
use proc_macro2::TokenStream;
use quote::quote;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What one crate compilation computed.
#[derive(Clone)]
struct Identity {
    name: String,
    build: String,
    source: String,
    items: String,
}

/// The `&'static CrateIdentity` of the crate being compiled. Only the first
/// one of a compilation lists the items (the list grows with the crate; the
/// runtime takes it from any one function of the crate, and a patch carries
/// its own view of it in its registry, see [`dependency_tokens`]).
pub fn tokens() -> TokenStream {
    let (
        Identity {
            name,
            build,
            source,
            items,
        },
        first,
    ) = current();
    let items = if first { items } else { String::new() };
    quote! {
        &::hotfix_core::__private::CrateIdentity {
            name: #name,
            build: #build,
            source: #source,
            items: #items,
        }
    }
}

/// `name=version` of each named dependency of the crate being compiled, in
/// the order given, `;`-separated; a dependency not passed to the compiler is
/// `name=absent`.
pub fn dependency_versions(names: &[String]) -> String {
    let args = rustc_args::current();
    names
        .iter()
        .map(|n| {
            let v = args
                .externs
                .iter()
                .find(|(dep, _)| dep == n)
                .map_or_else(|| "absent".to_owned(), |(_, a)| deps::version(a));
            format!("{n}={v}")
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Computed once per compilation (every `#[patchable]` of a crate asks);
/// `true` the first time.
fn current() -> (Identity, bool) {
    static CACHE: Mutex<Option<HashMap<String, Identity>>> = Mutex::new(None);
    let args = rustc_args::current();
    let name = std::env::var("CARGO_CRATE_NAME")
        .or_else(|_| std::env::var("CARGO_PKG_NAME").map(|n| n.replace('-', "_")))
        .unwrap_or_default();
    let key = format!("{name}\0{:?}", args.root);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(known) = map.get(&key) {
        return (known.clone(), false);
    }
    let computed = compute(name, args);
    map.insert(key, computed.clone());
    (computed, true)
}

/// `CrateIdentity` values (items listed) of every dependency of the crate
/// being compiled whose source is local (a path dependency, where host crates
/// live; not the registry's or git's): what a patch saw of the host crates it
/// was compiled against, so a refusal can name the item that differs.
pub fn dependency_tokens() -> TokenStream {
    let deps = dependency_list();
    quote!(&[#(#deps),*])
}

/// [`dependency_tokens`] with the crate being compiled first (its items
/// listed): what a patch made from the crate itself saw of it.
pub fn own_and_dependency_tokens() -> TokenStream {
    let (own, _) = current();
    let (name, source, items) = (&own.name, &own.source, &own.items);
    let deps = dependency_list();
    quote!(&[
        ::hotfix_core::__private::CrateIdentity {
            name: #name,
            build: "",
            source: #source,
            items: #items,
        },
        #(#deps),*
    ])
}

/// `--crate-type` values of this compilation.
pub fn crate_types() -> &'static [String] {
    &rustc_args::current().crate_types
}

fn dependency_list() -> Vec<TokenStream> {
    let args = rustc_args::current();
    let mut out = Vec::new();
    for (dep, artifact) in &args.externs {
        if dep == "hotfix_core" || dep == "hotfix_macros" {
            continue;
        }
        let Some(root) = deps::local_root(artifact) else {
            continue;
        };
        let Ok(items) = hotfix_source::digest::crate_items(&root, dep) else {
            continue;
        };
        let (source, lines) = items.digest_and_lines();
        out.push(quote! {
            ::hotfix_core::__private::CrateIdentity {
                name: #dep,
                build: "",
                source: #source,
                items: #lines,
            }
        });
    }
    out
}

fn compute(name: String, args: &rustc_args::RustcArgs) -> Identity {
    let mut build = String::new();
    let mut line = |k: &str, v: &str| {
        build.push_str(k);
        build.push('=');
        build.push_str(v);
        build.push('\n');
    };
    line(
        "version",
        &std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
    );
    line("edition", &args.edition);
    line("features", &args.features.join(","));
    line("codegen", &args.codegen.join(" "));
    for (dep, artifact) in &args.externs {
        line(&format!("dependency {dep}"), &deps::version(artifact));
    }
    let (source, items) =
        match root(args).and_then(|r| hotfix_source::digest::crate_items(&r, &name)) {
            Ok(items) => items.digest_and_lines(),
            Err(why) => (format!("unavailable: {why}"), String::new()),
        };
    Identity {
        name,
        build,
        source,
        items,
    }
}

/// The crate's root file: the one the compiler was given, else `src/lib.rs`;
/// in patch mode, the base revision's (what the running host was built from).
fn root(args: &rustc_args::RustcArgs) -> Result<PathBuf, String> {
    if let Some(base) = crate::patch_mode::base_root() {
        return Ok(base);
    }
    if let Some(r) = &args.root
        && r.is_file()
    {
        return Ok(r.clone());
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").map_err(|_| "no crate root file".to_owned())?;
    let lib = Path::new(&dir).join("src/lib.rs");
    if lib.is_file() {
        Ok(lib)
    } else {
        Err("no crate root file".into())
    }
}
