//! Allocations per call of `#[patchable] async fn`s, counted by this binary's
//! global allocator (which a bound patch allocates with too): none while the
//! original is live, exactly one (the replacement's boxed future) while a
//! patch is.

use fixture_host::async_shapes::{Account, Ledger, count_words, fetch};
use hotfix_core::Runtime;
use hotfix_tests::{build_patch, serial};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;

/// Counts the allocations of each thread.
struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Polls to completion with a no-op waker (outside a runtime, tokio's
/// `yield_now` wakes at once and allocates nothing).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

const CALLS: usize = 100;

/// Per shape: its name, allocations per call (counted by this thread's
/// allocator, which a bound patch allocates with too) and the sum of its
/// results.
fn per_call(account: &Account) -> Vec<(&'static str, f64, u64)> {
    let text = "a b c";
    let mut out = Vec::new();
    let mut measure = |name: &'static str, f: &mut dyn FnMut() -> u64| {
        let mut sum = 0;
        let before = ALLOCS.with(Cell::get);
        for _ in 0..CALLS {
            sum += f();
        }
        let n = ALLOCS.with(Cell::get) - before;
        out.push((name, n as f64 / CALLS as f64, sum));
    };
    measure("fetch", &mut || block_on(fetch(1)));
    measure("count_words", &mut || block_on(count_words(text, &1)));
    measure("Account::balance", &mut || block_on(account.balance()));
    measure("Ledger::with_bonus", &mut || {
        block_on(account.with_bonus(1))
    });
    out
}

/// What each shape returns per call: shipped, and fixed by the patch.
const RESULTS: [(&str, u64, u64); 4] = [
    ("fetch", 2, 3),
    ("count_words", 6, 4),
    ("Account::balance", 11, 10),
    ("Ledger::with_bonus", 10, 11),
];

fn check(measured: &[(&'static str, f64, u64)], patched: bool, allocs: f64, when: &str) {
    assert_eq!(measured.len(), RESULTS.len());
    for (&(name, n, sum), &(expected, shipped, fixed)) in measured.iter().zip(&RESULTS) {
        assert_eq!(name, expected);
        let per = if patched { fixed } else { shipped };
        assert_eq!(
            sum,
            per * CALLS as u64,
            "{name} {when}: the wrong version ran"
        );
        assert_eq!(n, allocs, "{name} {when}: allocations per call");
    }
}

/// Unpatched, an `async fn` runs its original's future inline: no
/// allocation. Patched, each call allocates exactly once, with the host's
/// allocator: the replacement's boxed future.
#[test]
fn unpatched_allocates_nothing_patched_once() {
    let _g = serial();
    let patch = build_patch("async_shapes");
    let account = Account::new("ann", 10);
    check(&per_call(&account), false, 0.0, "unpatched");
    Runtime::global().apply(&patch).expect("apply");
    let patched = per_call(&account);
    for (name, n, _) in &patched {
        eprintln!("{name}: {n} allocations per patched call");
    }
    check(&patched, true, 1.0, "patched");
    Runtime::global().revert_newest().expect("revert");
    check(&per_call(&account), false, 0.0, "after the revert");
}
