//! Generates N functions (features n100 / n1000, else none), `#[patchable]`
//! with feature `patchable`, `#[inline(never)]` otherwise, and one call of each.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let n = if std::env::var_os("CARGO_FEATURE_N1000").is_some() {
        1000
    } else if std::env::var_os("CARGO_FEATURE_N100").is_some() {
        100
    } else {
        0
    };
    let patchable = std::env::var_os("CARGO_FEATURE_PATCHABLE").is_some();
    let mut src = benchgen::host_fns(n, patchable);
    src.push_str(&benchgen::call_all(n));
    benchgen::write_out("fns.rs", &src);
}
