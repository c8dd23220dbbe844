//! The call path of a `#[patchable]` function: while its slot holds the
//! original, a call runs the original (called directly, or inlined where the
//! function's own `#[inline]` lets the compiler); once the slot holds anything
//! else, every call runs that, whatever `#[inline]`, `#[inline(never)]` or
//! `#[cold]` the function carries, reached by name, through a pointer taken
//! before the change, or from a caller the compiler inlined it into. Two
//! functions with the same body keep their own slots.
//!
//! The slot is stored here as `Runtime::apply` stores it with the slot
//! strategy (`slot.store(replacement, Release)`); the runtime's own apply and
//! revert are tested end to end in `core_apply.rs` and the demo tests.

use hotfix_core::__private::{FnDesc, host_fn};
use hotfix_core::patchable;
use std::sync::atomic::Ordering;

#[patchable]
#[inline(always)]
fn always(a: u64) -> u64 {
    a + 1
}

#[patchable]
#[inline(never)]
fn never(a: u64) -> u64 {
    a + 1
}

#[patchable]
#[cold]
fn cold(a: u64) -> u64 {
    a + 1
}

/// The same body as `twin_b`.
#[patchable]
fn twin_a(a: u64) -> u64 {
    a + 1
}

/// The same body as `twin_a`.
#[patchable]
fn twin_b(a: u64) -> u64 {
    a + 1
}

/// A `String` moves in and out (passed by pointer: the wrapper forwards it).
#[patchable]
fn shout(mut s: String) -> String {
    s.push('!');
    s
}

struct Counter {
    n: u64,
}

#[patchable]
impl Counter {
    #[inline(always)]
    fn bump(&mut self, by: u64) -> u64 {
        self.n += by;
        self.n
    }
}

fn times_ten(a: u64) -> u64 {
    a * 10
}

fn whisper(mut s: String) -> String {
    s.make_ascii_lowercase();
    s
}

fn bump_twice(c: &mut Counter, by: u64) -> u64 {
    c.n += 2 * by;
    c.n
}

/// Called only by `sum_of` (each test changes slots no other test reads:
/// tests run at once).
#[patchable]
#[inline(always)]
fn step(a: u64) -> u64 {
    a + 1
}

/// A caller the compiler may inline `step` into.
#[inline(always)]
fn sum_of(calls: u64) -> u64 {
    (0..calls).map(step).sum()
}

fn desc(name: &str) -> &'static FnDesc {
    let path = format!("{}::{name}", module_path!());
    host_fn(&path).unwrap_or_else(|| panic!("no #[patchable] {path} in this binary"))
}

fn set(name: &str, f: *const ()) {
    desc(name).slot.store(f as *mut (), Ordering::Release);
}

fn restore(name: &str) {
    set(name, desc(name).unpatched);
}

#[test]
fn every_inline_attribute_runs_the_slot_once_it_changes() {
    type Case = (&'static str, fn(u64) -> u64);
    let cases: [Case; 3] = [("always", always), ("never", never), ("cold", cold)];
    for (name, f) in cases {
        let before: fn(u64) -> u64 = f;
        assert_eq!(
            desc(name).slot.load(Ordering::Acquire) as *const (),
            desc(name).unpatched
        );
        assert_eq!((0..1000).map(f).sum::<u64>(), 500_500, "{name} unpatched");

        set(name, times_ten as *const ());
        assert_eq!(f(3), 30, "{name} by name, replaced");
        assert_eq!(before(3), 30, "{name} through a pointer taken before");
        assert_eq!((0..1000).map(f).sum::<u64>(), 4_995_000, "{name} in a loop");

        restore(name);
        assert_eq!(f(3), 4, "{name} restored");
        assert_eq!(before(3), 4, "{name} restored, through the pointer");
    }
}

#[test]
fn an_inlined_caller_sees_the_change() {
    assert_eq!(sum_of(100), 5050);
    set("step", times_ten as *const ());
    let patched = sum_of(100);
    restore("step");
    assert_eq!(patched, 49_500, "the caller ran the replacement");
    assert_eq!(sum_of(100), 5050, "and the original again once restored");
}

#[test]
fn functions_with_the_same_body_keep_their_own_slots() {
    set("twin_a", times_ten as *const ());
    let (a, b) = (twin_a(3), twin_b(3));
    restore("twin_a");
    assert_eq!((a, b), (30, 4), "only twin_a was replaced");
    set("twin_b", times_ten as *const ());
    let (a, b) = (twin_a(3), twin_b(3));
    restore("twin_b");
    assert_eq!((a, b), (4, 30), "only twin_b was replaced");
}

#[test]
fn owned_arguments_and_methods_are_forwarded() {
    assert_eq!(shout("Hi".to_owned()), "Hi!");
    set("shout", whisper as *const ());
    let replaced = shout("Hi".to_owned());
    restore("shout");
    assert_eq!(replaced, "hi");
    assert_eq!(shout("Hi".to_owned()), "Hi!");

    let mut c = Counter { n: 0 };
    assert_eq!(c.bump(5), 5);
    set("Counter::bump", bump_twice as *const ());
    let replaced = c.bump(5);
    restore("Counter::bump");
    assert_eq!(
        replaced, 15,
        "the method's replacement ran on the same value"
    );
    assert_eq!(c.bump(1), 16);
}
