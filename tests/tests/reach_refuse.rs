//! No silent private state: a patch is refused when code reachable from one of
//! its replacements uses the patch's own copy of a host static or thread-local
//! (whatever its crate, whatever its name), and only then: a copy that no
//! replacement reaches refuses nothing. Decided from the file, before `dlopen`.

use fixture_host::reach::{add, calls, dep_total, tally};
use hotfix_core::{Error, Runtime};
use hotfix_tests::{build_patch, build_patch_with, loaded_copies, serial};
use object::{Object, ObjectSymbol, SymbolKind};
use std::path::Path;

fn rt() -> &'static Runtime {
    Runtime::global()
}

/// The host as shipped: `add` off by one, nothing applied.
fn unchanged(when: &str) {
    assert_eq!(add(1, 2), 4, "add {when}");
    let status = rt().status();
    assert!(status.patches.is_empty(), "patches {when}: {status}");
    assert!(status.functions.is_empty(), "functions {when}: {status:?}");
}

/// Applies `path`, expects a refusal made before anything of it was loaded,
/// with the host unchanged.
fn refused(path: &Path) -> Error {
    unchanged("before the apply");
    let copies = loaded_copies();
    let err = rt()
        .apply(path)
        .expect_err(&format!("{} must be refused", path.display()));
    eprintln!("{err}");
    unchanged(&format!("after the refusal `{err}`"));
    assert_eq!(
        loaded_copies(),
        copies,
        "the refused patch was loaded: {err}"
    );
    err
}

/// Whether the patch file holds a static (or thread-local) whose demangled
/// symbol contains `path`: the case a test is about exists.
fn carries(patch: &Path, path: &str, tls: bool) -> bool {
    let bytes = std::fs::read(patch).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let kind = if tls {
        SymbolKind::Tls
    } else {
        SymbolKind::Data
    };
    file.symbols().any(|s| {
        s.kind() == kind
            && s.name()
                .is_ok_and(|n| format!("{:#}", rustc_demangle::demangle(n)).contains(path))
    })
}

#[test]
fn a_replacement_writing_an_unmarked_static_is_refused() {
    let _g = serial();
    let before = calls();
    let err = refused(&build_patch("reach_direct"));
    match &err {
        Error::PrivateStatic {
            patch,
            symbol,
            reached_from,
            ..
        } => {
            assert_eq!(patch, "reach_direct 1.0.0");
            assert_eq!(symbol, "fixture_host::reach::CALLS");
            assert!(
                reached_from.starts_with("its replacement of fixture_host::reach::add"),
                "{err}"
            );
        }
        _ => panic!("expected PrivateStatic, got {err:?}"),
    }
    assert_eq!(
        err.to_string(),
        "patch reach_direct 1.0.0 keeps a private copy of fixture_host::reach::CALLS, reached from its replacement of fixture_host::reach::add: writes would not reach the host's; mark it #[shared] in the host (needs a host rebuild) or don't touch it from the patch"
    );
    assert_eq!(calls(), before);
}

#[test]
fn a_replacement_reaching_an_unmarked_static_through_a_helper_is_refused() {
    let _g = serial();
    let before = calls();
    let err = refused(&build_patch("reach_helper"));
    match &err {
        Error::PrivateStatic {
            symbol,
            reached_from,
            ..
        } => {
            assert_eq!(symbol, "fixture_host::reach::CALLS");
            assert_eq!(
                reached_from,
                "its replacement of fixture_host::reach::add (via fixture_host::reach::count_call)"
            );
        }
        _ => panic!("expected PrivateStatic, got {err:?}"),
    }
    assert_eq!(calls(), before);
}

#[test]
fn an_unmarked_static_only_another_patchable_function_uses_blocks_nothing() {
    let _g = serial();
    let patch = build_patch("reach_other");
    assert!(
        carries(&patch, "fixture_host::reach::HITS", false),
        "the patch carries its copy of HITS (with `tally`), or this test proves nothing"
    );
    let hits = tally();
    unchanged("before the apply");
    rt().apply(&patch)
        .expect("a copy no replacement reaches refuses nothing");
    assert_eq!(add(1, 2), 3, "the fixed add is live");
    assert_eq!(tally(), hits + 1, "tally still counts in the host");
    rt().revert_newest().expect("revert");
    unchanged("after the revert");
}

#[test]
fn module_level_statics_named_like_tracings_are_refused() {
    let _g = serial();
    for (features, name) in [
        (&[][..], "fixture_host::reach::META"),
        (&["callsite"][..], "fixture_host::reach::CALLSITE"),
    ] {
        let err = refused(&build_patch_with("reach_meta", features, "dev"));
        assert!(
            matches!(&err, Error::PrivateStatic { symbol, reached_from, .. }
                if symbol == name && reached_from.starts_with("its replacement of fixture_host::reach::add")),
            "{err:?}"
        );
    }
}

#[test]
fn a_static_of_a_dependency_without_patchable_items_is_refused() {
    let _g = serial();
    // The host uses the dependency's static, so its executable has it.
    let before = dep_total();
    let err = refused(&build_patch("reach_dep"));
    match &err {
        Error::PrivateStatic {
            symbol,
            reached_from,
            advice,
            ..
        } => {
            assert_eq!(symbol, "fixture_dep::TOTAL");
            assert_eq!(
                reached_from,
                "its replacement of fixture_host::reach::add (via fixture_dep::add_to_total)"
            );
            assert!(advice.contains("crate `fixture_dep`"), "{err}");
        }
        _ => panic!("expected PrivateStatic, got {err:?}"),
    }
    assert_eq!(dep_total(), before);
}

#[test]
fn a_thread_local_no_replacement_reaches_blocks_nothing() {
    let _g = serial();
    let patch = build_patch("tls_unreached");
    assert!(
        carries(&patch, "fixture_host::TL", true),
        "the patch carries its copy of TL, or this test proves nothing"
    );
    rt().apply(&patch)
        .expect("a thread-local no replacement reaches refuses nothing");
    assert_eq!(add(1, 2), 3);
    assert_eq!(fixture_host::read_tl(), 5);
    rt().revert_newest().expect("revert");
    unchanged("after the revert");
}

#[test]
fn a_tracing_patch_applies_its_callsites_are_caches_not_host_state() {
    let _g = serial();
    let patch = build_patch("reach_traced");
    for callsite in [
        "reach_traced::add::__CALLSITE",
        "fixture_host::reach::logged::__CALLSITE",
    ] {
        assert!(carries(&patch, callsite, false), "no {callsite}");
    }
    // Per-callsite caches are not host state, tracing_core's dispatcher is the
    // tracing bridge's, and what std state its code reaches is listed as
    // accepted: the patch applies.
    rt().apply(&patch)
        .expect("a patch that logs with tracing applies");
    assert_eq!(add(1, 2), 3);
    rt().revert_newest().expect("revert");
    unchanged("after the revert");
}
