//! Fixes `bench_host::slot_add` and `bench_host::slot_string`.
use hotfix_core::patch;

hotfix_core::patch_library!();

#[patch(bench_host::slot_add)]
fn slot_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b).min(u64::MAX - 111)
}

#[patch(bench_host::slot_string)]
fn slot_string(mut s: String) -> String {
    s.make_ascii_uppercase();
    s.truncate(1000 + 112);
    s
}
