//! No silent private state: a patch whose replacements or hooks can reach its
//! own copy of a static or thread-local of the host is refused, naming the
//! static and a replacement that reaches it.
//!
//! A patch is a `cdylib`: every crate it uses is compiled into it, statics
//! included. Code of the patch that writes such a static writes the patch's
//! copy, which the host never sees. What the patch's code can reach is decided
//! by [`super::reach`]; of what it reaches, a writable static (one that stays
//! writable once loaded) or a thread-local is a copy of host state when its
//! path names a crate of the host's `#[patchable]`/`#[shared]` items, or a
//! static the host's executable also has (any crate: dependencies and `std`
//! alike). Not refused:
//! - hotfix's own (`__HOTFIX_*`, `__hotfix_*`) and the host's `#[shared]`
//!   statics: the runtime binds them to the host's;
//! - the statics in [`BRIDGED`]: the runtime bridges them;
//! - tracing's per-callsite cache (`__CALLSITE`/`CALLSITE` declared by its
//!   macros inside a function, paired with the callsite's `META`);
//! - a static of the patch's own (no copy of anything in the host).

use super::image::{Image, RelocTarget};
use super::patch_symbols::{PatchSymbols, Sym};
use super::reach::{self, ReachedStatic, Root};
use super::static_registry::ParsedRegistry;
use crate::error::{Error, Result};
use crate::foreign::{executable_statics, rust_path};
use crate::host::HostIndex;
use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

/// What the runtime bridges in a patch: its own copies of these statics are
/// harmless, and these functions never run in a bound patch (the walk does
/// not enter them). Paths as [`rust_path`] gives them; each entry says which
/// bridge covers it.
const BRIDGED: &[Bridged] = &[
    // Panic bridge: `bind` installs the bridge's hook in the patch's `std`
    // (`bridge::panic::bind_patch`), so a panic in patch code runs that hook,
    // never the default one (nor its thread names, output capture, backtraces).
    Bridged::Function("std::panicking::default_hook"),
    // Panic bridge: holds the hook the bridge installs at `bind`.
    Bridged::Static("std::panicking::HOOK"),
    // Panic bridge: count a panic of the patch's `std` while it unwinds to the
    // bridge's guard, which catches it and raises it again in the host's `std`
    // (whose counts then see it).
    Bridged::Static("std::panicking::panic_count::GLOBAL_PANIC_COUNT"),
    Bridged::Static("std::panicking::panic_count::LOCAL_PANIC_COUNT"),
    // Allocator bridge: the patch allocates with the host's allocator; should
    // that fail, the patch's `std` reports it and aborts the process as the
    // host's would (a custom hook needs the unstable `set_alloc_error_hook`).
    Bridged::Static("std::alloc::HOOK"),
    Bridged::Function("std::alloc::default_alloc_error_hook"),
    // Allocator bridge: `bind` writes the host's allocator here.
    Bridged::Static("hotfix_core::bridge::alloc::HOST"),
    // Allocator bridge: counts allocations made before `bind`; the runtime
    // refuses a patch that made any.
    Bridged::Static("hotfix_core::bridge::alloc::UNBOUND"),
    // Panic bridge: `bind` writes the host's API here (its `raise`).
    Bridged::Static("hotfix_core::bridge::panic::HOST_API"),
    // Panic bridge: whether the host's hook still has to run for a panic of
    // the patch's `std` (set by the bridge's hook, read by its guard).
    Bridged::Static("hotfix_core::bridge::panic::HOOK_PENDING"),
    // Bridged by the tracing bridge (issue 10 part 3): tracing_core's global
    // dispatcher and the callsite registry it rebuilds interest from.
    Bridged::Static("tracing_core::dispatcher::GLOBAL_DISPATCH"),
    // Bridged by the tracing bridge (issue 10 part 3).
    Bridged::Static("tracing_core::dispatcher::GLOBAL_INIT"),
    // Bridged by the tracing bridge (issue 10 part 3).
    Bridged::Static("tracing_core::dispatcher::EXISTS"),
    // Bridged by the tracing bridge (issue 10 part 3).
    Bridged::Static("tracing_core::dispatcher::SCOPED_COUNT"),
    // Bridged by the tracing bridge (issue 10 part 3).
    Bridged::Static("tracing_core::dispatcher::CURRENT_STATE"),
    // Bridged by the tracing bridge (issue 10 part 3).
    Bridged::Static("tracing_core::metadata::MAX_LEVEL"),
    // Bridged by the tracing bridge (issue 10 part 3).
    Bridged::Static("tracing_core::callsite::CALLSITES"),
    // Bridged by the tracing bridge (issue 10 part 3).
    Bridged::Static("tracing_core::callsite::DISPATCHERS"),
    // Bridged by the tracing bridge (issue 10 part 3).
    Bridged::Static("tracing_core::callsite::LOCKED_CALLSITES"),
    // Bridged by the tracing bridge (issue 10 part 3).
    Bridged::Static("tracing_core::callsite::dispatchers::LOCKED_DISPATCHERS"),
    // Log bridge: `bind` sets the patch's logger to one that forwards to the
    // host's, and its maximum level to `Trace` (the host's decides per record).
    Bridged::Static("log::LOGGER"),
    Bridged::Static("log::STATE"),
    Bridged::Static("log::MAX_LOG_LEVEL_FILTER"),
    // Not host state: the destructors of the patch's own thread-locals, which
    // its `std` registers with the C library and runs at thread exit; the
    // host's list holds the host's.
    // (An entry ending in `::` covers every static under that path.)
    Bridged::Static("std::sys::thread_local::"),
    // Accepted, not bridged: the patch's own handle of the current thread,
    // which its `std` and the crates it carries (once_cell, parking) use to
    // park and wake threads among themselves. Documented hazard: in patch code
    // `std::thread::current()` has the thread's name but a `ThreadId` of the
    // patch's own numbering, not the host's.
    Bridged::Static("std::thread::current::"),
    Bridged::Static("<std::thread::id::ThreadId>::new::COUNTER"),
    // Not patch logic: runs the patch's thread-local destructors when a
    // thread exits (and clears the patch's own current-thread handle).
    Bridged::Function("std::sys::thread_local::guard::key::enable::run"),
    // Tokio bridge: every call of patch code enters the host thread's runtime
    // into it; what else it holds stays the patch's (the cooperative budget,
    // the task id `tokio::task::id()` reads, the RNG of `select!`).
    Bridged::Static("tokio::runtime::context::CONTEXT"),
    // Accepted, not bridged: tasks the patch spawns (on the host's runtime)
    // take ids from the patch's own counter; documented hazard: their
    // `tokio::task::Id`s may repeat ids of the host's tasks.
    Bridged::Static("tokio::runtime::task::id::Id::next::NEXT_ID"),
    // Tokio bridge: `bind` writes the host's API here.
    Bridged::Static("hotfix_core::bridge::tokio::API"),
];

/// The crate a path starts in (`std` of `<std::thread::ThreadId>::new`).
fn crate_of(path: &str) -> &str {
    let p = path.trim_start_matches('<');
    p.split("::").next().unwrap_or(p)
}

/// One entry of [`BRIDGED`].
enum Bridged {
    /// A static whose copy in the patch is harmless.
    Static(&'static str),
    /// A function that never runs in a bound patch.
    Function(&'static str),
}

/// Whether [`BRIDGED`] lists the static at `path`.
fn bridged_static(path: &str) -> bool {
    BRIDGED
        .iter()
        .any(|b| matches!(b, Bridged::Static(p) if *p == path || (p.ends_with("::") && path.starts_with(p))))
        // Without the `tokio` feature nothing enters the host's runtime.
        && (cfg!(feature = "tokio") || !path.starts_with("tokio::"))
}

/// Whether [`BRIDGED`] lists the function of symbol `raw`.
fn bridged_function(raw: &str) -> bool {
    BRIDGED.iter().any(|b| match b {
        Bridged::Function(p) => {
            // The mangled name holds the last identifier as written: a cheap
            // filter before demangling.
            let last = p.rsplit("::").next().unwrap_or(p);
            raw.contains(last) && rust_path(raw).is_some_and(|r| r == *p)
        }
        Bridged::Static(_) => false,
    })
}

/// Refuses the patch if code reachable from its replacements or hooks uses
/// its own copy of host state.
pub(crate) fn check(
    path: &Path,
    label: &str,
    file: &object::File<'_>,
    image: &Image<'_>,
    parsed: &ParsedRegistry,
    index: &HostIndex,
) -> Result<()> {
    let mut syms = PatchSymbols::read(file).ok_or_else(|| Error::NoSymbolTable {
        path: path.to_owned(),
    })?;
    let roots = roots(parsed);
    let shared: HashSet<&str> = index.shared.keys().copied().collect();
    let keep_out = |name: &str| rust_path(name).is_some_and(|p| bound(&p, &shared));
    let bounds = reach::Bounds {
        keep_out: &keep_out,
        stop: &bridged_function,
    };
    let reached = reach::reach(image, &mut syms, &roots, &bounds).map_err(|e| Error::Unproven {
        patch: label.to_owned(),
        reason: e.to_string(),
    })?;
    let own: HashSet<String> = roots
        .iter()
        .filter_map(|r| syms.function_at(r.addr))
        .filter_map(|f| rust_path(syms.functions[f].name))
        .map(|p| crate_of(&p).to_owned())
        .filter(|c| c != "hotfix_core")
        .collect();
    let mut function_paths = None;
    for r in &reached {
        // Statics of C code have no crate: hotfix judges Rust statics only.
        let Some(path) = rust_path(r.sym.name) else {
            continue;
        };
        if bound(&path, &shared) || bridged_static(&path) {
            continue;
        }
        let paths = function_paths.get_or_insert_with(|| function_paths_of(&syms));
        if tracing_callsite(&path, r.sym, &syms, image, paths) {
            continue;
        }
        let krate = crate_of(&path);
        let copy = index.crates.contains(krate)
            || match host_statics() {
                Ok(Some(host)) => host.contains(&path),
                _ if own.contains(krate) => false,
                Ok(None) => {
                    return Err(undecided(
                        label,
                        &path,
                        r,
                        &roots,
                        "the host's executable has no symbol table",
                    ));
                }
                Err(e) => return Err(undecided(label, &path, r, &roots, e)),
            };
        if copy {
            tracing::debug!(patch = label, symbol = %path, "the patch reaches its own copy of host state");
            let advice = advice(krate, index.crates.contains(krate), r.tls);
            let reached_from = reached_from(r, &roots);
            return Err(if r.tls {
                Error::ThreadLocal {
                    patch: label.to_owned(),
                    symbol: path,
                    reached_from,
                    advice,
                }
            } else {
                Error::PrivateStatic {
                    patch: label.to_owned(),
                    symbol: path,
                    reached_from,
                    advice,
                }
            });
        }
    }
    Ok(())
}

/// Every replacement and hook, named for messages.
fn roots(parsed: &ParsedRegistry) -> Vec<Root> {
    let mut roots: Vec<Root> = parsed
        .entries
        .iter()
        .map(|e| Root {
            addr: e.replacement,
            label: format!("its replacement of {}", e.meta.path),
        })
        .collect();
    roots.extend(parsed.foreign.iter().map(|f| Root {
        addr: f.replacement,
        label: format!("its replacement of foreign function `{}`", f.symbol),
    }));
    for (hook, name) in [
        (parsed.on_apply, "on_apply"),
        (parsed.on_revert, "on_revert"),
    ] {
        if let Some(addr) = hook {
            roots.push(Root {
                addr,
                label: format!("its {name} hook"),
            });
        }
    }
    roots
}

/// Whether the runtime binds the static at `path` to the host's: hotfix's
/// own descriptors, cells and storage, and the host's `#[shared]` statics.
fn bound(path: &str, shared: &HashSet<&str>) -> bool {
    path.contains("__HOTFIX_") || path.contains("__hotfix_") || shared.contains(path)
}

/// The statics of the host's executable, read once.
fn host_statics() -> &'static std::result::Result<Option<HashSet<String>>, String> {
    static STATICS: OnceLock<std::result::Result<Option<HashSet<String>>, String>> =
        OnceLock::new();
    STATICS.get_or_init(|| executable_statics().map_err(|e| e.to_string()))
}

/// The paths of the patch's functions.
fn function_paths_of(syms: &PatchSymbols<'_>) -> HashSet<String> {
    syms.functions
        .iter()
        .filter_map(|f| rust_path(f.name))
        .collect()
}

/// Whether `sym` (at `path`) is a callsite cache of tracing's macros: named
/// `__CALLSITE` or `CALLSITE`, declared inside a function of the patch (or a
/// closure of one), pointing at its `META` (or `__META`, declared beside it or
/// inside its initializer) which points back at it
/// (`DefaultCallsite::new(&META)` and `metadata! { callsite: &__CALLSITE }`).
/// A cache of the callsite's registration: registering the patch's copy makes
/// it one more callsite of the dispatcher, and nothing of the host's is lost.
fn tracing_callsite(
    path: &str,
    sym: Sym<'_>,
    syms: &PatchSymbols<'_>,
    image: &Image<'_>,
    functions: &HashSet<String>,
) -> bool {
    let Some((parent, name)) = path.rsplit_once("::") else {
        return false;
    };
    if !matches!(name, "__CALLSITE" | "CALLSITE") || !functions.contains(parent) {
        return false;
    }
    // `META` is declared beside the callsite, or inside its initializer.
    let metas = [
        format!("{parent}::META"),
        format!("{parent}::__META"),
        format!("{path}::META"),
        format!("{path}::__META"),
    ];
    image
        .reloc_targets(sym.start, sym.end)
        .filter_map(|(_, t)| match t {
            RelocTarget::Address(a) => syms.object_at(a).and_then(|o| o.sym),
            _ => None,
        })
        .filter(|meta| rust_path(meta.name).is_some_and(|p| metas.contains(&p)))
        .any(|meta| {
            image
                .reloc_targets(meta.start, meta.end)
                .any(|(_, t)| matches!(t, RelocTarget::Address(a) if sym.start <= a && a < sym.end))
        })
}

/// What to do about a copy of a static of crate `krate` (`host`: a crate of
/// the host's `#[patchable]`/`#[shared]` items).
fn advice(krate: &str, host: bool, tls: bool) -> String {
    let fix = if tls {
        "move the state into a #[shared] static in the host (e.g. a Mutex<HashMap<ThreadId, _>>; needs a host rebuild)"
    } else {
        "mark it #[shared] in the host (needs a host rebuild)"
    };
    if host {
        format!("{fix} or don't touch it from the patch")
    } else if matches!(krate, "std" | "core" | "alloc") {
        format!(
            "it is state of the patch's own copy of `{krate}`, which hotfix bridges only for allocation and panics; don't use what needs it from the patch"
        )
    } else {
        format!(
            "it belongs to crate `{krate}`, which the patch carries its own copy of; if `{krate}` is yours, {fix}, otherwise don't use what needs it from the patch"
        )
    }
}

/// Names the root that reaches `r` and the functions between. The wrapper
/// hotfix's macros put around a replacement or hook
/// (`__hotfix_replacement_*`, `__hotfix_on_*`, and what it calls up to the
/// function the user wrote) is the replacement.
fn reached_from(r: &ReachedStatic<'_>, roots: &[Root]) -> String {
    let root = roots.get(r.root).map_or("the patch", |x| x.label.as_str());
    let names: Vec<String> = r.via.iter().map(|n| display_name(n)).collect();
    let wrapper = |n: &String| n.contains("__hotfix_replacement_") || n.contains("__hotfix_on_");
    let user = match names.iter().rposition(wrapper) {
        // The wrapper, then the function it wraps.
        Some(i) => i + 2,
        // No wrapper: the root's own function.
        None => 1,
    };
    let names = names.get(user..).unwrap_or_default();
    if names.is_empty() {
        return root.to_owned();
    }
    let shown = if names.len() > 6 {
        format!(
            "{} -> ... -> {}",
            names[..3].join(" -> "),
            names[names.len() - 2..].join(" -> ")
        )
    } else {
        names.join(" -> ")
    };
    format!("{root} (via {shown})")
}

/// A symbol as a person reads it: demangled without its hash.
fn display_name(raw: &str) -> String {
    rustc_demangle::try_demangle(raw).map_or_else(|_| raw.to_owned(), |d| format!("{d:#}"))
}

fn undecided(
    label: &str,
    path: &str,
    r: &ReachedStatic<'_>,
    roots: &[Root],
    reason: &str,
) -> Error {
    Error::UndecidedStatic {
        patch: label.to_owned(),
        symbol: path.to_owned(),
        reached_from: reached_from(r, roots),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached(via: Vec<&'static str>) -> ReachedStatic<'static> {
        ReachedStatic {
            sym: Sym {
                start: 0,
                end: 8,
                name: "x",
            },
            tls: false,
            root: 0,
            via,
        }
    }

    #[test]
    fn the_macros_wrapper_is_the_replacement() {
        let roots = [Root {
            addr: 0,
            label: "its replacement of host::add".into(),
        }];
        let wrapped = reached(vec![
            "p::__hotfix_replacement_add",
            "hotfix_core::bridge::panic::guard",
            "p::__hotfix_replacement_add::{{closure}}",
            "p::add",
            "host::helper",
        ]);
        assert_eq!(
            reached_from(&wrapped, &roots),
            "its replacement of host::add (via host::helper)"
        );
        let direct = reached(vec![
            "p::__hotfix_replacement_add",
            "p::__hotfix_replacement_add::{{closure}}",
            "p::add",
        ]);
        assert_eq!(
            reached_from(&direct, &roots),
            "its replacement of host::add"
        );
        // A foreign replacement is the root's own function.
        let foreign = reached(vec!["p::answer", "a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(
            reached_from(&foreign, &roots),
            "its replacement of host::add (via a -> b -> c -> ... -> f -> g)"
        );
    }

    #[test]
    fn bridged_entries_match_whole_paths() {
        assert!(bridged_static("std::panicking::HOOK"));
        assert!(!bridged_static("std::io::stdio::STDOUT"));
        assert!(!bridged_static("std::panicking"));
        assert!(bridged_function(
            "_RNvNtCsjrHSEGnQ3l9_3std9panicking12default_hook"
        ));
        // Its closures are its code.
        assert!(bridged_function(
            "_RNCNvNtCsjrHSEGnQ3l9_3std9panicking12default_hook0B5_"
        ));
        assert!(!bridged_function(
            "_RNvNtCsjrHSEGnQ3l9_3std9panicking13resume_unwind"
        ));
    }

    #[test]
    fn advice_depends_on_whose_static_it_is() {
        assert_eq!(
            advice("fixture_host", true, false),
            "mark it #[shared] in the host (needs a host rebuild) or don't touch it from the patch"
        );
        assert!(advice("std", false, true).contains("own copy of `std`"));
        assert!(advice("tokio", false, true).contains("crate `tokio`"));
    }
}
