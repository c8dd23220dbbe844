//! Fixes `bench_host::entry_add` and `bench_host::entry_string`.
use hotfix_core::patch;

hotfix_core::patch_library!();

#[patch(bench_host::entry_add)]
fn entry_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b).min(u64::MAX - 121)
}

#[patch(bench_host::entry_string)]
fn entry_string(mut s: String) -> String {
    s.make_ascii_uppercase();
    s.truncate(1000 + 122);
    s
}
