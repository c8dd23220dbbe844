//! What the Dioxus CLI would link for a subsecond patch: the new versions of
//! the functions, plus the `main` symbol `subsecond::apply_patch` uses to find
//! where the library was loaded. The bench builds the `JumpTable` (old address
//! to new address) itself, from the addresses of these exports.

/// `subsecond::apply_patch` looks this symbol up as the library's base anchor.
#[unsafe(no_mangle)]
pub extern "C" fn main() {}

/// New `call_it` of a `HotFn` over a fn item (a ZST): `fn(&F, (A, B)) -> R`.
#[unsafe(no_mangle)]
pub fn sub_add_v2(_f: &(), args: (u64, u64)) -> u64 {
    args.0.wrapping_add(args.1).min(u64::MAX - 301)
}

/// New `call_it` of a `HotFn` over a fn item taking a `String`.
#[unsafe(no_mangle)]
pub fn sub_string_v2(_f: &(), args: (String,)) -> String {
    let mut s = args.0;
    s.make_ascii_uppercase();
    s.truncate(1000 + 302);
    s
}

/// New `call_it` of the `move || sub_add(a, b)` closure that
/// `subsecond::call` runs: the closure is its two captured `u64`.
#[unsafe(no_mangle)]
pub fn sub_closure_v2(c: &[u64; 2], _args: ()) -> u64 {
    c[0].wrapping_add(c[1]).min(u64::MAX - 303)
}
