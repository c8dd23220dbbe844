//! A patch is proven built against the running host's own build and source of
//! every host crate it was compiled against: built against an edited copy of
//! the fixture host (a struct's fields swapped or added, an enum reordered, a
//! const changed, a non-patchable helper's body changed, a `#[repr(C)]` struct
//! reordered, another Cargo feature, another dependency version), it is
//! refused, naming the crate and what differs; built against an unedited copy
//! it applies.

use fixture_host::layouts::{Boxed, Mode, Pair, Tally, apply_mode, first, limit, unbox};
use fixture_host::uses_helper;
use hotfix_core::{Error, Runtime};
use hotfix_tests::host_copy::{Edit, build_against_copy};
use hotfix_tests::serial;

/// What the functions the patch replaces return, in order.
fn behaviour() -> [i64; 6] {
    let mut tally = Tally { total: 10 };
    [
        first(&Pair { a: 1, b: 2 }),
        limit(),
        apply_mode(Mode::Add, 5),
        tally.add(5) as i64,
        unbox(&Boxed {
            n: 2,
            p: Box::new(3),
        }),
        uses_helper(1),
    ]
}

const ORIGINAL: [i64; 6] = [1, 50, 6, 14, 5, 11];
const PATCHED: [i64; 6] = [10, 100, 7, 15, 6, 12];

fn assert_unchanged(when: &str) {
    assert_eq!(behaviour(), ORIGINAL, "behaviour {when}");
    let status = Runtime::global().status();
    assert!(status.patches.is_empty(), "patches {when}: {status}");
    assert!(status.functions.is_empty(), "functions {when}: {status:?}");
}

/// Builds the patch against a copy with `edits`, applies it, expects a
/// refusal; returns its message.
fn refused(variant: &str, edits: &[Edit<'_>], features: &[&str]) -> Error {
    let path = build_against_copy(variant, "against_copy", edits, features);
    let _guard = serial();
    assert_unchanged("before the apply");
    let err = Runtime::global()
        .apply(&path)
        .expect_err("a patch built against other source must be refused");
    assert_unchanged(&format!("after the refusal `{err}`"));
    err
}

fn layouts(from: &'static str, to: &'static str) -> [Edit<'static>; 1] {
    [Edit {
        file: "src/layouts.rs",
        from,
        to,
    }]
}

fn assert_source_differs(err: &Error, item: &str) {
    let msg = err.to_string();
    assert!(
        matches!(err, Error::CrateSourceDiffers { krate, .. } if krate == "fixture_host"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{item} differs from the running host's")),
        "`{msg}` does not name `{item}`"
    );
    assert!(msg.contains("rebuild the patch against the source the host was built from"));
}

#[test]
fn built_against_the_hosts_own_source_it_applies() {
    let path = build_against_copy("unchanged", "against_copy", &[], &[]);
    let _guard = serial();
    assert_unchanged("before the apply");
    let applied = Runtime::global()
        .apply(&path)
        .expect("the same source applies");
    assert_eq!(behaviour(), PATCHED, "every replacement is live");
    Runtime::global().revert(applied.id).expect("revert");
    assert_unchanged("after the revert");
}

#[test]
fn two_fields_of_a_struct_swapped() {
    let err = refused(
        "swapped-fields",
        &layouts(
            "    pub a: i64,\n    /// Second.\n    pub b: i64,",
            "    pub b: i64,\n    /// Second.\n    pub a: i64,",
        ),
        &[],
    );
    assert_source_differs(&err, "struct fixture_host::layouts::Pair");
}

#[test]
fn a_field_added_to_a_struct_passed_as_mut_self() {
    let err = refused(
        "added-field",
        &layouts(
            "    pub total: u64,\n",
            "    pub total: u64,\n    pub more: u64,\n",
        ),
        &[],
    );
    assert_source_differs(&err, "struct fixture_host::layouts::Tally");
}

#[test]
fn enum_variants_reordered() {
    let err = refused(
        "reordered-enum",
        &layouts(
            "    /// Adds one.\n    Add,\n    /// Triples.\n    Mul,",
            "    /// Triples.\n    Mul,\n    /// Adds one.\n    Add,",
        ),
        &[],
    );
    assert_source_differs(&err, "enum fixture_host::layouts::Mode");
}

#[test]
fn a_const_changed() {
    let err = refused(
        "changed-const",
        &layouts("pub const LIMIT: i64 = 50;", "pub const LIMIT: i64 = 5000;"),
        &[],
    );
    assert_source_differs(&err, "const fixture_host::layouts::LIMIT");
}

#[test]
fn the_body_of_a_non_patchable_helper_changed() {
    let err = refused(
        "changed-helper",
        &[Edit {
            file: "src/layouts.rs",
            from: "    x * 10\n",
            to: "    x * 20\n",
        }],
        &[],
    );
    assert_source_differs(&err, "fn fixture_host::layouts::scale");
}

#[test]
fn a_repr_c_struct_reordered() {
    let err = refused(
        "reordered-repr-c",
        &layouts(
            "    /// A number.\n    pub n: i64,\n    /// A boxed number.\n    pub p: Box<i64>,",
            "    /// A boxed number.\n    pub p: Box<i64>,\n    /// A number.\n    pub n: i64,",
        ),
        &[],
    );
    assert_source_differs(&err, "struct fixture_host::layouts::Boxed");
}

#[test]
fn another_cargo_feature_of_the_host_crate() {
    let err = refused("feature-extra", &[], &["extra"]);
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::CrateBuildDiffers { diff, .. } if diff.key == "features" && diff.patch == "extra"),
        "{msg}"
    );
    assert!(msg.contains("fixture_host"), "{msg}");
}

#[test]
fn another_version_of_a_dependency() {
    let err = refused(
        "dependency-version",
        &[Edit {
            file: "Cargo.toml",
            from: "pin-project-lite = \"0.2\"",
            to: "pin-project-lite = \"=0.2.16\"",
        }],
        &[],
    );
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::CrateBuildDiffers { diff, .. } if diff.key == "dependency pin_project_lite" && diff.patch.starts_with("0.2.16 ")),
        "{msg}"
    );
}

#[test]
fn another_feature_of_a_dependency() {
    // tokio's `parking_lot` feature changes its locks' layout and makes the
    // patch park threads in its own copy of parking_lot's table.
    let err = refused(
        "dependency-feature",
        &[Edit {
            file: "Cargo.toml",
            from: "features = [\"rt\", \"time\", \"net\", \"io-util\"]",
            to: "features = [\"rt\", \"time\", \"net\", \"io-util\", \"parking_lot\"]",
        }],
        &[],
    );
    // Refused by the build fingerprint (tokio's sources differ in the build of
    // hotfix-core's tokio bridge) before the crate identity is read.
    let msg = err.to_string();
    assert!(matches!(&err, Error::BuildMismatch { .. }), "{msg}");
    assert!(msg.contains("tokio"), "{msg}");
}
