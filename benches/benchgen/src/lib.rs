//! Source generators for the benchmark crates: hosts with N functions (with or
//! without `#[patchable]`) and patches replacing the first N of them. Build
//! scripts call these and `include!` the result, so no function is written by
//! hand and N is a parameter.

use std::fmt::Write;
use std::path::Path;

/// Number of functions of the `many-host` crate: the largest patch replaces all.
pub const MANY_HOST_FNS: usize = 10_000;

/// `MANY_HOST_FNS`, unless `BENCHGEN_MANY_FNS` says otherwise (for experiments).
pub fn many_host_fns() -> usize {
    std::env::var("BENCHGEN_MANY_FNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MANY_HOST_FNS)
}

/// The patch sizes of the apply-latency benchmark (one `patch-nN` crate each).
pub const PATCH_SIZES: [usize; 5] = [1, 10, 100, 1_000, 10_000];

/// Functions per generated module. `#[patchable]` puts a child module with a
/// `use super::*` glob beside each function, so one flat module of N functions
/// makes rustc's memory grow as N squared (measured: 500 functions 0.5 GB,
/// 1,000 1.7 GB, 2,000 6.7 GB; 10,000 was killed at 24 GB). Modules of 100
/// keep the build linear.
pub const MODULE_CHUNK: usize = 100;

/// The module of function `i`: `m{i / MODULE_CHUNK}`.
pub fn module_of(i: usize) -> String {
    format!("m{}", i / MODULE_CHUNK)
}

/// An odd multiplier per function, so no two bodies are equal (no code folding).
fn mul(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// Host function `f{i}` of two integer arguments. With `patchable` it carries
/// `#[hotfix_core::patchable]`; without, `#[inline(never)]` (the same code,
/// called the same way, without hotfix).
fn host_fn(s: &mut String, i: usize, patchable: bool) {
    let attr = if patchable {
        "#[::hotfix_core::patchable]"
    } else {
        "#[inline(never)]"
    };
    writeln!(
        s,
        "/// Generated function {i}.\n{attr}\npub fn f{i}(a: u64, b: u64) -> u64 {{ a.wrapping_mul({m}).wrapping_add(b ^ {i}) }}",
        m = mul(i)
    )
    .unwrap();
}

/// `n` host functions `f0 .. f{n-1}` in modules `m0, m1, ..` of
/// [`MODULE_CHUNK`] functions each (`crate::m0::f0`, ..).
pub fn host_fns(n: usize, patchable: bool) -> String {
    let mut s = String::with_capacity(n * 160);
    for i in 0..n {
        if i % MODULE_CHUNK == 0 {
            if i > 0 {
                s.push_str("}\n");
            }
            writeln!(s, "/// Generated functions.\npub mod {} {{", module_of(i)).unwrap();
        }
        host_fn(&mut s, i, patchable);
    }
    if n > 0 {
        s.push_str("}\n");
    }
    s
}

/// `call_all(acc)`: a call of every function, folded into one value (so none
/// is dead code).
pub fn call_all(n: usize) -> String {
    let mut s = String::from(
        "/// Calls every generated function once.\n#[allow(unused_mut)]\npub fn call_all(mut acc: u64) -> u64 {\n",
    );
    for i in 0..n {
        writeln!(
            s,
            "    acc = {}::f{i}(::std::hint::black_box(acc), {i});",
            module_of(i)
        )
        .unwrap();
    }
    s.push_str("    acc\n}\n");
    s
}

/// A patch replacing `host::m*::f0 .. f{n-1}` (each body changed).
pub fn patch_fns(host: &str, n: usize) -> String {
    let mut s = String::with_capacity(n * 160);
    for i in 0..n {
        writeln!(
            s,
            "#[::hotfix_core::patch({host}::{m}::f{i})]\nfn f{i}(a: u64, b: u64) -> u64 {{ a.wrapping_mul({k}).wrapping_sub(b ^ {i}) }}",
            m = module_of(i),
            k = mul(i)
        )
        .unwrap();
    }
    s
}

/// Writes `text` to `OUT_DIR/name` (only when it changed, to keep builds cached).
pub fn write_out(name: &str, text: &str) {
    let out = std::env::var("OUT_DIR").expect("OUT_DIR (call from a build script)");
    let path = Path::new(&out).join(name);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
        std::fs::write(&path, text).expect("write generated source");
    }
}
