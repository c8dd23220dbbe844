//! Torture through the public runtime, bounded in count and time: callers hammer
//! a `#[patchable]` function (directly and through a raw function pointer, so
//! through its entry) and a C function, while another thread applies and reverts
//! real patches with the entry strategy and with foreign trampolines.

use fixture_host::{c_answer, c_label, sum};
use hotfix_core::{ApplyOptions, Runtime, Strategy};
use hotfix_tests::{NewSeen, build_patch, serial};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CYCLES: u32 = 3_000;
const CAP: Duration = Duration::from_secs(60);
/// Fewer cycles than this within the cap is a failure (a stuck writer);
/// loaded 2-core runs make several times more.
const MIN_CYCLES: u32 = 500;

/// How long the patcher waits for some call to see the new code of one cycle.
const SEEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies and reverts `patch` while callers run; `is_new(sum, c_answer)` says
/// whether a call saw the patch's code. Returns (cycles, calls) after checking
/// that the new code was seen in every cycle.
fn torture(patch: &str, strategy: Strategy, is_new: fn(i64, i32) -> bool) -> (u32, u64) {
    let path = build_patch(patch);
    let rt = Runtime::global();
    let loaded = rt.load(&path).expect("load");
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(NewSeen::default());
    let threads = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (stop, calls, seen) = (stop.clone(), calls.clone(), seen.clone());
            std::thread::spawn(move || {
                let via_ptr: fn(i64, i64) -> i64 = sum;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let s = if i % 2 == 0 { sum(1, 2) } else { via_ptr(1, 2) };
                    assert!(s == -1 || s == 3, "sum returned {s}");
                    let c = c_answer(2);
                    assert!(c == 46 || c == 1002, "c_answer returned {c}");
                    if is_new(s, c) {
                        seen.saw_new();
                    }
                    if n.is_multiple_of(1024) {
                        let l = c_label();
                        assert!(
                            l == "original 7" || l == "patched 8",
                            "c_label returned {l}"
                        );
                    }
                    n += 1;
                }
                calls.fetch_add(n, Ordering::Relaxed);
                n
            })
        })
        .collect();
    let start = Instant::now();
    let (mut cycles, mut windows) = (0, 0);
    while cycles < CYCLES && start.elapsed() < CAP {
        let before = seen.count();
        let id = rt
            .apply_loaded(&loaded, ApplyOptions { strategy })
            .expect("apply")
            .id;
        windows += u32::from(seen.wait_after(before, SEEN_TIMEOUT));
        rt.revert(id).expect("revert");
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(
            w.join().expect("a caller crashed") > 0,
            "every caller made progress"
        );
    }
    assert_eq!((sum(1, 2), c_answer(2)), (-1, 46));
    let calls = calls.load(Ordering::Relaxed);
    eprintln!(
        "{patch} {strategy:?}: {cycles} apply/revert cycles, new code seen in {windows}, {calls} calls, {:?}",
        start.elapsed()
    );
    assert_eq!(windows, cycles, "the new code was not seen in every cycle");
    (cycles, calls)
}

#[test]
fn entry_strategy_under_load() {
    let _g = serial();
    let (cycles, calls) = torture("good", Strategy::Entry, |s, _| s == 3);
    assert!(cycles >= MIN_CYCLES, "only {cycles} cycles in {CAP:?}");
    assert!(calls > u64::from(cycles));
}

#[test]
fn foreign_trampolines_under_load() {
    let _g = serial();
    let (cycles, calls) = torture("foreign_good", Strategy::Slot, |_, c| c == 1002);
    assert!(cycles >= MIN_CYCLES, "only {cycles} cycles in {CAP:?}");
    assert!(calls > u64::from(cycles));
}
