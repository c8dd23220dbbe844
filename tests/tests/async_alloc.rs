//! Allocations per call of `#[patchable] async fn`s, counted by this binary's
//! global allocator (which patches use too): none while the original is live,
//! one (the replacement's boxed future) while a patch is.

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

/// Allocations per call of every shape, and the sum of their results.
fn per_call(account: &Account) -> (Vec<(&'static str, f64)>, u64) {
    let text = "a b c";
    let mut sum = 0;
    let mut out = Vec::new();
    let mut measure = |name: &'static str, f: &mut dyn FnMut() -> u64| {
        let before = ALLOCS.with(Cell::get);
        for _ in 0..CALLS {
            sum += f();
        }
        let n = ALLOCS.with(Cell::get) - before;
        out.push((name, n as f64 / CALLS as f64));
    };
    measure("fetch", &mut || block_on(fetch(1)));
    measure("count_words", &mut || block_on(count_words(text, &1)));
    measure("Account::balance", &mut || block_on(account.balance()));
    measure("Ledger::with_bonus", &mut || {
        block_on(account.with_bonus(1))
    });
    (out, sum)
}

#[test]
fn unpatched_allocates_nothing_patched_once() {
    let _g = serial();
    let patch = build_patch("async_shapes");
    let account = Account::new("ann", 10);
    let (unpatched, before) = per_call(&account);
    for (name, n) in &unpatched {
        assert_eq!(*n, 0.0, "{name}: allocations per unpatched call");
    }
    Runtime::global().apply(&patch).expect("apply");
    let (patched, after) = per_call(&account);
    assert_ne!(before, after, "the patch is live");
    for (name, n) in &patched {
        assert!(*n <= 1.0, "{name}: {n} allocations per patched call");
        eprintln!("{name}: {n} allocations per patched call");
    }
    Runtime::global().revert_newest().expect("revert");
    let (again, _) = per_call(&account);
    for (name, n) in &again {
        assert_eq!(*n, 0.0, "{name}: allocations per call after the revert");
    }
}
