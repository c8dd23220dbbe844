//! The live patch of demo-server: fixes `SUM`, `SCORE`, `DIV` and, in C++,
//! `CLASS`.
//!
//! Build it with `cargo build -p demo-patch` (it lands beside the server's
//! executable as `libdemo_patch.so`), then send the server `SIGHUP`.

use demo_server::state::SCORES;
use hotfix_core::patch;
use std::sync::PoisonError;

hotfix_core::patch_library!();

/// Fixed `SUM`: adds.
#[patch(demo_server::handlers::sum)]
fn sum(a: i64, b: i64) -> Option<i64> {
    a.checked_add(b)
}

/// Fixed `SCORE`: adds `n` once, in the host's shared table.
#[patch(demo_server::handlers::add_score)]
fn add_score(name: &str, n: i64) -> Option<i64> {
    let mut scores = SCORES.lock().unwrap_or_else(PoisonError::into_inner);
    let total = scores.get(name).copied().unwrap_or(0);
    let new = total.checked_add(n)?;
    scores.insert(name.to_owned(), new);
    Some(new)
}

/// Fixed `DIV`: a clear message on a zero divisor.
#[patch(demo_server::handlers::div)]
fn div(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        panic!("division by zero");
    }
    a.checked_div(b)
}

// Fixed `CLASS`: the C++ method `Role::getClassName()` of the server, replaced
// by C++ code compiled into this patch (cpp/role_fix.cpp) through a trampoline.
hotfix_core::patch_foreign_c!("Role::getClassName[abi:cxx11]()" => hotfix_demo_role_get_class_name);
