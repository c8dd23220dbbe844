//! A patch sees the live host: its state, its functions, its allocator, its
//! panics, and can call the version it replaces.
//!
//! This test binary is the host. It installs its own global allocator, which
//! puts a header before every block and aborts when asked to free a block
//! without it: memory from any other allocator (a patch's own `std`, say)
//! freed here would abort the process.

use fixture_host::{
    COUNTER, SCORES, add_score, answer, bump, div, greet, helper, make_vec, uses_helper,
};
use hotfix_core::Runtime;
use hotfix_tests::{build_patch, serial};
use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicUsize, Ordering};

const MAGIC: u64 = 0x4854_4658_414c_4c43; // "HTFXALLC"
const HEADER: usize = 16;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);

/// The host's allocator: System plus a checked header.
struct HeaderAlloc;

// SAFETY: every block is System memory of `size + HEADER` bytes, aligned to
// max(align, 16); the caller gets the part after the header.
unsafe impl GlobalAlloc for HeaderAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let align = layout.align().max(HEADER);
        let Ok(inner) = Layout::from_size_align(layout.size() + align, align) else {
            return std::ptr::null_mut();
        };
        // SAFETY: inner has a non-zero size.
        let base = unsafe { System.alloc(inner) };
        if base.is_null() {
            return base;
        }
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: base..base+align is ours; the header sits just before the block.
        unsafe {
            let user = base.add(align);
            (user.sub(HEADER) as *mut u64).write(MAGIC);
            user
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let align = layout.align().max(HEADER);
        // SAFETY: ptr came from alloc above, so its header is readable...
        let magic = unsafe { (ptr.sub(HEADER) as *const u64).read() };
        if magic != MAGIC {
            // ...unless another allocator made it: that is the bug this catches.
            std::process::abort();
        }
        FREES.fetch_add(1, Ordering::Relaxed);
        // SAFETY: undo alloc's arithmetic with the same layout.
        unsafe {
            let base = ptr.sub(align);
            let inner = Layout::from_size_align_unchecked(layout.size() + align, align);
            System.dealloc(base, inner)
        }
    }
}

#[global_allocator]
static GLOBAL: HeaderAlloc = HeaderAlloc;

fn rt() -> &'static Runtime {
    Runtime::global()
}

#[test]
fn state_host_functions_allocator_and_hooks() {
    let _g = serial();
    let live = build_patch("live");
    let helper_v2 = build_patch("helper_v2");

    // Host state before the patch.
    assert_eq!(bump(), 1);
    assert_eq!(add_score("ann", 5), 10, "shipped bug: 2n");
    SCORES.lock().unwrap().insert("migrate-me".into(), 20);
    assert_eq!(uses_helper(2), 21);

    rt().apply(&live).expect("apply live");

    // 6. The apply hook ran against the host's table.
    assert_eq!(SCORES.lock().unwrap().get("migrate-me"), Some(&10));
    // 1. State: the patch increments the host's counter, not a copy.
    assert_eq!(bump(), 101);
    assert_eq!(COUNTER.load(Ordering::SeqCst), 101);
    // 1. State: entries written before the patch are still there.
    assert_eq!(add_score("ann", 5), 15);
    assert_eq!(SCORES.lock().unwrap().get("ann"), Some(&15));
    // 2. Host functions: the patch calls the host's live `helper`...
    assert_eq!(uses_helper(2), 22);
    // ...including a version a later patch installs.
    rt().apply(&helper_v2).expect("apply helper_v2");
    assert_eq!(helper(2), 2000);
    assert_eq!(uses_helper(2), 2002);
    rt().revert_newest().expect("revert helper_v2");
    assert_eq!(uses_helper(2), 22);

    // 4. Allocator: patch allocations are the host's, and the host frees them.
    let (a0, f0) = (ALLOCS.load(Ordering::SeqCst), FREES.load(Ordering::SeqCst));
    let s = greet("bob");
    let v = make_vec(1000);
    assert_eq!(s, "hi bob");
    assert_eq!(v.iter().sum::<u64>(), 999 * 1000);
    let a1 = ALLOCS.load(Ordering::SeqCst);
    assert!(
        a1 >= a0 + 2,
        "the patch's String and Vec came from the host allocator ({a0} -> {a1})"
    );
    drop(s);
    drop(v);
    assert!(FREES.load(Ordering::SeqCst) >= f0 + 2);

    // 6. The revert hook ran against the host's table.
    rt().revert_newest().expect("revert live");
    assert_eq!(SCORES.lock().unwrap().get("reverted"), Some(&1));
    assert_eq!(
        add_score("ann", 1),
        17,
        "the bug is back, on the same table"
    );
    assert_eq!(bump(), 102);
}

#[test]
fn panics_reach_the_host_as_its_own() {
    let _g = serial();
    let live = build_patch("live");
    static HOOK_RUNS: AtomicUsize = AtomicUsize::new(0);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {
        HOOK_RUNS.fetch_add(1, Ordering::SeqCst);
    }));
    rt().apply(&live).expect("apply live");

    // 3. A panic raised in patch code.
    let before = HOOK_RUNS.load(Ordering::SeqCst);
    let err = catch_unwind(|| div(1, 0)).expect_err("patched div panics");
    assert_eq!(hotfix_core::panic_message(&*err), "division by zero");
    assert_eq!(
        err.downcast_ref::<String>().map(String::as_str),
        Some("division by zero")
    );
    assert_eq!(
        HOOK_RUNS.load(Ordering::SeqCst),
        before + 1,
        "the host's hook ran once"
    );

    // 3. A panic raised by host code the replacement calls, unwinding back
    // through the replacement.
    let before = HOOK_RUNS.load(Ordering::SeqCst);
    let err = catch_unwind(|| div(1, -1)).expect_err("host code panics");
    assert_eq!(
        hotfix_core::panic_message(&*err),
        "host says: negative divisor"
    );
    assert_eq!(
        HOOK_RUNS.load(Ordering::SeqCst),
        before + 1,
        "the host's hook ran once"
    );

    // Panicking again and again on one thread works (no leftover panic state).
    for _ in 0..3 {
        assert!(catch_unwind(|| div(1, 0)).is_err());
    }
    assert_eq!(div(6, 3), 2);
    rt().revert_all().expect("revert");
    std::panic::set_hook(previous);
    let err = catch_unwind(|| div(1, 0)).expect_err("original div panics");
    assert_eq!(
        hotfix_core::panic_message(&*err),
        "attempt to divide by zero"
    );
}

#[test]
fn a_replacement_calls_its_original() {
    let _g = serial();
    let live = build_patch("live");
    let good = build_patch("good");
    let layer_b = build_patch("layer_b");
    // 7. Over the host's original.
    let id = rt().apply(&live).expect("apply live").id;
    assert_eq!(answer(), 1040);
    rt().revert(id).expect("revert");
    // Over another patch: `original` is the version live before.
    let good_id = rt().apply(&good).expect("apply good").id;
    rt().apply(&layer_b).expect("apply layer_b");
    let live_id = rt().apply(&live).expect("apply live").id;
    assert_eq!(answer(), 1002, "wraps layer_b's answer (2)");
    rt().revert(good_id).expect("revert the bottom patch");
    assert_eq!(answer(), 1002);
    let b = rt().status().live("fixture_host::answer").map(|f| f.id);
    assert_eq!(b, Some(live_id));
    rt().revert_all().expect("revert all");
    assert_eq!(answer(), 40);
}
