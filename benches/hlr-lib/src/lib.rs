//! The reloadable library of the hot-lib-reloader rows: the same functions as
//! `bench_host`, exported unmangled as hot-lib-reloader requires. The default
//! build is the shipped one (subtract / lower-case), `--features v2` the fix.

/// Adds (v2) or subtracts (shipped).
#[unsafe(no_mangle)]
pub fn hlr_add(a: u64, b: u64) -> u64 {
    if cfg!(feature = "v2") {
        a.wrapping_add(b).min(u64::MAX - 201)
    } else {
        a.wrapping_sub(b).min(u64::MAX - 202)
    }
}

/// Upper-cases (v2) or lower-cases (shipped).
#[unsafe(no_mangle)]
pub fn hlr_string(mut s: String) -> String {
    if cfg!(feature = "v2") {
        s.make_ascii_uppercase();
    } else {
        s.make_ascii_lowercase();
    }
    s.truncate(1000 + 203);
    s
}
