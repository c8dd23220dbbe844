//! Compile-fail tests: what `#[patchable]`, `#[patch]` and `#[shared]` refuse,
//! with the message and span the user sees.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
