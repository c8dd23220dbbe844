//! Foreign C functions of the host replaced through the runtime, in the same
//! all-or-nothing step as `#[patchable]` functions.

use fixture_host::{c_answer, c_label, sum};
use hotfix_core::{Error, Runtime};
use hotfix_tests::{build_patch, serial};

#[test]
fn c_functions_are_patched_and_reverted_with_the_rest_of_the_patch() {
    let _g = serial();
    let patch = build_patch("foreign_good");
    assert_eq!(
        (c_answer(2), c_label(), sum(1, 2)),
        (46, "original 7".to_string(), -1)
    );
    let maps_before = std::fs::read_to_string("/proc/self/maps").unwrap();

    let applied = Runtime::global().apply(&patch).expect("apply");
    assert_eq!(applied.foreign, vec!["fixture_c_answer", "fixture_c_label"]);
    assert_eq!(
        (c_answer(2), c_label(), sum(1, 2)),
        (1002, "patched 8".to_string(), 3)
    );
    let status = Runtime::global().status();
    assert!(status.live("fixture_c_answer").is_some(), "{status}");

    Runtime::global().revert_newest().expect("revert");
    assert_eq!(
        (c_answer(2), c_label(), sum(1, 2)),
        (46, "original 7".to_string(), -1)
    );
    // Page protections are exactly as before. (The kernel may keep a written
    // page in a VMA of its own: adjacent ranges with equal protection and
    // backing file are compared as one.)
    let maps_after = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert_eq!(
        hotfix_tests::coalesced_maps(&maps_before, "foreign_apply"),
        hotfix_tests::coalesced_maps(&maps_after, "foreign_apply")
    );

    // Apply again: the same library, the same code.
    Runtime::global().apply(&patch).expect("apply again");
    assert_eq!(c_answer(2), 1002);
    Runtime::global().revert_all().expect("revert all");
    assert_eq!(c_answer(2), 46);
}

#[test]
fn a_missing_foreign_function_refuses_the_whole_patch() {
    let _g = serial();
    let patch = build_patch("foreign_missing");
    let err = Runtime::global().apply(&patch).expect_err("refused");
    assert!(matches!(err, Error::Foreign { .. }), "{err}");
    assert!(
        err.to_string().contains("no_such_function_anywhere"),
        "{err}"
    );
    assert_eq!(sum(1, 2), -1, "the valid part was not applied either");
    assert!(Runtime::global().status().patches.is_empty());
}
