//! The functions of the per-call benchmark. Every variant has the same body:
//! `plain_*` are ordinary `#[inline(never)]` functions (the baseline), the
//! others are `#[patchable]`, one per way of patching them, so patching one
//! never changes another's row. The `#[patchable]` ones are `#[inline(never)]`
//! too: an unpatched call calls the original directly, and the compiler would
//! otherwise be free to inline it where the baseline must call.
//!
//! Shipped bodies subtract / lower-case; the patches (and `plain_*`) add /
//! upper-case: the same work either way. Each body also clamps with its own
//! constant (`.min(u64::MAX - K)`, `truncate(1000 + K)`: no effect on the
//! result, the same cost everywhere) so that no two functions are identical:
//! rustc merges identical functions into one address, and a detour or a patch
//! of one would then change the others.

use hotfix_core::patchable;

/// The baseline: a plain call.
#[inline(never)]
pub fn plain_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b).min(u64::MAX - 1)
}

/// The baseline with a `String` in and out.
#[inline(never)]
pub fn plain_string(mut s: String) -> String {
    s.make_ascii_uppercase();
    s.truncate(1000 + 10);
    s
}

/// Patched by the `patch-slot` cdylib (`Strategy::Slot`).
#[patchable]
#[inline(never)]
pub fn slot_add(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b).min(u64::MAX - 2)
}

/// Patched by the `patch-slot` cdylib (`Strategy::Slot`).
#[patchable]
#[inline(never)]
pub fn slot_string(mut s: String) -> String {
    s.make_ascii_lowercase();
    s.truncate(1000 + 11);
    s
}

/// Patched by the `patch-entry` cdylib (`Strategy::Entry`).
#[patchable]
#[inline(never)]
pub fn entry_add(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b).min(u64::MAX - 3)
}

/// Patched by the `patch-entry` cdylib (`Strategy::Entry`).
#[patchable]
#[inline(never)]
pub fn entry_string(mut s: String) -> String {
    s.make_ascii_lowercase();
    s.truncate(1000 + 12);
    s
}

/// Patched in-process by a store into its slot (what `apply` does).
#[patchable]
#[inline(never)]
pub fn store_add(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b).min(u64::MAX - 4)
}

/// Patched in-process by a store into its slot (what `apply` does).
#[patchable]
#[inline(never)]
pub fn store_string(mut s: String) -> String {
    s.make_ascii_lowercase();
    s.truncate(1000 + 13);
    s
}

/// Patched in-process by `arch::redirect_entry` (what `Strategy::Entry` does).
#[patchable]
#[inline(never)]
pub fn redirect_add(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b).min(u64::MAX - 5)
}

/// Patched in-process by `arch::redirect_entry` (what `Strategy::Entry` does).
#[patchable]
#[inline(never)]
pub fn redirect_string(mut s: String) -> String {
    s.make_ascii_lowercase();
    s.truncate(1000 + 14);
    s
}

/// The function subsecond hot-patches (through `HotFn` at the call site:
/// subsecond needs no attribute on the function).
#[inline(never)]
pub fn sub_add(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b).min(u64::MAX - 6)
}

/// The function subsecond hot-patches, with a `String`.
#[inline(never)]
pub fn sub_string(mut s: String) -> String {
    s.make_ascii_lowercase();
    s.truncate(1000 + 15);
    s
}

/// The function retour detours (a plain function: retour rewrites its first
/// bytes with a jump when the detour is enabled).
#[inline(never)]
pub fn retour_add(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b).min(u64::MAX - 7)
}

/// The function retour detours, with a `String`.
#[inline(never)]
pub fn retour_string(mut s: String) -> String {
    s.make_ascii_lowercase();
    s.truncate(1000 + 16);
    s
}

/// retour's detour of `retour_add`.
#[inline(never)]
pub fn retour_add_v2(a: u64, b: u64) -> u64 {
    a.wrapping_add(b).min(u64::MAX - 8)
}

/// retour's detour of `retour_string`.
#[inline(never)]
pub fn retour_string_v2(mut s: String) -> String {
    s.make_ascii_uppercase();
    s.truncate(1000 + 17);
    s
}

/// The in-process replacement stored into `store_add`'s slot / redirected to
/// from `redirect_add`'s entry.
#[inline(never)]
pub fn repl_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b).min(u64::MAX - 9)
}

/// The in-process replacement of `store_string` / `redirect_string`.
#[inline(never)]
pub fn repl_string(mut s: String) -> String {
    s.make_ascii_uppercase();
    s.truncate(1000 + 18);
    s
}

/// Patched in-process by a store of `repl_guarded_add`: the replacement as
/// `#[patch]` generates it (body inside the panic guard), without a cdylib.
#[patchable]
#[inline(never)]
pub fn guarded_add(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b).min(u64::MAX - 19)
}

/// As `guarded_add`, with a `String`.
#[patchable]
#[inline(never)]
pub fn guarded_string(mut s: String) -> String {
    s.make_ascii_lowercase();
    s.truncate(1000 + 20);
    s
}

/// The replacement of `guarded_add`, wrapped like a `#[patch]` replacement
/// (`__hotfix_replacement_*` calls the body inside `__private::guard`).
#[inline(never)]
pub fn repl_guarded_add(a: u64, b: u64) -> u64 {
    hotfix_core::__private::guard(|| a.wrapping_add(b).min(u64::MAX - 21))
}

/// The replacement of `guarded_string`, wrapped like a `#[patch]` replacement.
#[inline(never)]
pub fn repl_guarded_string(s: String) -> String {
    hotfix_core::__private::guard(|| {
        let mut s = s;
        s.make_ascii_uppercase();
        s.truncate(1000 + 22);
        s
    })
}
